//! Re-executing berth from a sealed memfd copy of itself (CVE-2019-5736).
//!
//! A container process that runs `/proc/self/exe` (say, through a `#!/proc/self/exe` script)
//! while the kernel still maps the runtime's binary there gets a handle on the host's berth
//! binary, and can rewrite it once berth exits. Every process berth puts into a container
//! therefore first re-executes from a sealed, read-only memfd: its /proc/self/exe is then a
//! throw-away copy that cannot be written (F_SEAL_WRITE) and is gone when it execs the
//! container's program.
//!
//! The copy and exec run in a freshly cloned child of a possibly multi-threaded process (the
//! shim), so [`SealedExec::exec`] only makes system calls: no allocation, no locks. Every
//! buffer it needs is built beforehand by [`SealedExec::new`].

use std::ffi::{CStr, CString};
use std::io;

/// argv/envp prepared before clone.
pub struct SealedExec {
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl SealedExec {
    pub fn new(argv: &[&CStr], env: &[CString]) -> SealedExec {
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
        SealedExec {
            _strings: strings,
            argv: argv_p,
            envp,
        }
    }

    /// Copies /proc/self/exe into a sealed memfd and execs it. Returns only on failure, with
    /// the errno. Only async-signal-safe system calls happen here.
    pub fn exec(&self) -> io::Error {
        match copy_and_exec(&self.argv, &self.envp) {
            Ok(never) => match never {},
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

fn copy_and_exec(
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Result<std::convert::Infallible, i32> {
    const F_ADD_SEALS: libc::c_int = 1033;
    const SEALS: libc::c_int = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE
    // SAFETY: every call below takes integer arguments or pointers to static C strings and
    // stack buffers that outlive the call; argv/envp are null-terminated arrays of valid C
    // strings owned by the caller's SealedExec. On failure we return the errno.
    unsafe {
        let exe = check(libc::open(c"/proc/self/exe".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_long)? as libc::c_int;
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(exe, &mut st) as libc::c_long)?;
        let memfd = check(libc::memfd_create(
            c"berth".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        ) as libc::c_long)? as libc::c_int;
        let mut left = st.st_size as usize;
        while left > 0 {
            let n = check(libc::sendfile(memfd, exe, std::ptr::null_mut(), left) as libc::c_long)?;
            if n == 0 {
                return Err(libc::EIO);
            }
            left -= n as usize;
        }
        libc::close(exe);
        check(libc::fcntl(memfd, F_ADD_SEALS, SEALS) as libc::c_long)?;
        check(libc::syscall(
            libc::SYS_execveat,
            memfd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        ))?;
    }
    Err(libc::EINVAL)
}
