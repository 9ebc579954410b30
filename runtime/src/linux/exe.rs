//! Re-executing berth from a sealed memfd copy of itself (CVE-2019-5736).
//!
//! A container process that runs `/proc/self/exe` (say, through a `#!/proc/self/exe` script)
//! while the kernel still maps the runtime's binary there gets a handle on the host's berth
//! binary, and can rewrite it once berth exits. Every process berth puts into a container
//! therefore first re-executes from a sealed, read-only memfd: its /proc/self/exe is then a
//! throw-away copy that cannot be written (F_SEAL_WRITE) and is gone when it execs the
//! container's program.
//!
//! The copy is made by [`SealedExec::new`] in the parent, before clone: its pages are then
//! charged to berth's own memory cgroup, not to the container's (a process is moved into
//! the container's cgroup right after clone, and a copy made in the child would count the
//! whole berth binary against the container's memory limit, OOM-killing small containers
//! before they start). The exec runs in a freshly cloned child of a possibly multi-threaded
//! process (the shim), so [`SealedExec::exec`] only makes one system call: no allocation,
//! no locks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The sealed copy and argv/envp, prepared before clone.
pub struct SealedExec {
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Close-on-exec: execveat of an ELF binary from it works, and no program the child
    /// or a concurrently forked sibling execs later inherits it.
    memfd: OwnedFd,
}

impl SealedExec {
    pub fn new(argv: &[&CStr], env: &[CString]) -> io::Result<SealedExec> {
        let memfd = sealed_copy()?;
        let strings: Vec<CString> = argv
            .iter()
            .map(|a| (*a).to_owned())
            .chain(env.iter().cloned())
            .collect();
        let mut argv_p: Vec<*const libc::c_char> =
            strings[..argv.len()].iter().map(|s| s.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> =
            strings[argv.len()..].iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(SealedExec {
            _strings: strings,
            argv: argv_p,
            envp,
            memfd,
        })
    }

    /// Execs the sealed copy. Returns only on failure, with the errno. Only one
    /// async-signal-safe system call happens here.
    pub fn exec(&self) -> io::Error {
        // SAFETY: the memfd is open (we own it), the path is a static empty C string and
        // argv/envp are null-terminated arrays of valid C strings owned by `self`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.memfd.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        match check(r) {
            Ok(_) => io::Error::from_raw_os_error(libc::EINVAL),
            Err(errno) => io::Error::from_raw_os_error(errno),
        }
    }
}

fn check(r: libc::c_long) -> Result<libc::c_long, i32> {
    if r < 0 {
        // SAFETY: reading errno of this thread.
        Err(unsafe { *libc::__errno_location() })
    } else {
        Ok(r)
    }
}

/// Copies /proc/self/exe into a memfd and seals it against any change.
fn sealed_copy() -> io::Result<OwnedFd> {
    const F_ADD_SEALS: libc::c_int = 1033;
    const SEALS: libc::c_int = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE
    let exe = std::fs::File::open("/proc/self/exe")?;
    let size = exe.metadata()?.len() as usize;
    let ok = |r: libc::c_long| check(r).map_err(io::Error::from_raw_os_error);
    // SAFETY: a static C string and integer flags.
    let memfd = ok(unsafe {
        libc::memfd_create(
            c"berth".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    } as libc::c_long)?;
    // SAFETY: memfd_create returned a new descriptor that only we hold.
    let memfd = unsafe { OwnedFd::from_raw_fd(memfd as RawFd) };
    let mut left = size;
    while left > 0 {
        // SAFETY: both descriptors are open; a null offset means the files' own offsets.
        let n = ok(unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
            )
        } as libc::c_long)?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        left -= n as usize;
    }
    // SAFETY: integer arguments on a descriptor we own.
    ok(unsafe { libc::fcntl(memfd.as_raw_fd(), F_ADD_SEALS, SEALS) } as libc::c_long)?;
    Ok(memfd)
}
