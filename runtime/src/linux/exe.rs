//! Re-executing berth from a binary the container can never write (CVE-2019-5736).
//!
//! A container process that runs `/proc/self/exe` (say, through a `#!/proc/self/exe` script)
//! while the kernel still maps the runtime's binary there gets a handle on the host's berth
//! binary, and can rewrite it once berth exits. Every process berth puts into a container
//! therefore first re-executes from a view of berth that cannot be written:
//!
//! 1. preferred, as runc 1.2 does: the binary opened through a private, detached, read-only
//!    overlayfs mount (fsopen/fsmount; never attached to any mount tree). An overlay without
//!    an upper layer is read-only at the superblock, so not even a privileged container that
//!    clones the mount and clears its read-only flag can write through it. No copy is made:
//!    the pages are the page cache of the real binary, shared by every container process.
//! 2. fallback: a copy in a memfd sealed against writes (F_SEAL_WRITE), when overlayfs or the
//!    new mount API is unavailable. Costs a copy of the binary (about 1.5 ms for 4 MB here).
//!
//! Either way /proc/self/exe is gone when the process execs the container's program.
//!
//! The view is made by [`SealedExec::new`] in the parent, before clone: a copy's pages are then
//! charged to berth's own memory cgroup, not to the container's (a process is moved into
//! the container's cgroup right after clone, and a copy made in the child would count the
//! whole berth binary against the container's memory limit, OOM-killing small containers
//! before they start). The exec runs in a freshly cloned child of a possibly multi-threaded
//! process (the shim), so [`SealedExec::exec`] only makes one system call: no allocation,
//! no locks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The sealed copy and argv/envp, prepared before clone.
pub struct SealedExec {
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Close-on-exec: execveat of an ELF binary from it works, and no program the child
    /// or a concurrently forked sibling execs later inherits it.
    exe: OwnedFd,
}

impl SealedExec {
    pub fn new(argv: &[&CStr], env: &[CString]) -> io::Result<SealedExec> {
        let exe = match read_only_overlay_exe() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(error = %e, "read-only overlay of berth unavailable: sealed copy");
                sealed_copy()?
            }
        };
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
            exe,
        })
    }

    /// Execs the sealed copy. Returns only on failure, with the errno. Only one
    /// async-signal-safe system call happens here.
    pub fn exec(&self) -> io::Error {
        // SAFETY: the exe fd is open (we own it), the path is a static empty C string and
        // argv/envp are null-terminated arrays of valid C strings owned by `self`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.exe.as_raw_fd(),
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
    let exe = std::fs::File::open("/proc/self/exe")?;
    let size = exe.metadata()?.len() as usize;
    sealed_memfd(c"berth", |memfd| {
        let mut left = size;
        while left > 0 {
            // SAFETY: both descriptors are open; a null offset means the files' own offsets.
            let n = check(unsafe {
                libc::sendfile(
                    memfd.as_raw_fd(),
                    exe.as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                )
            } as libc::c_long)
            .map_err(io::Error::from_raw_os_error)?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            left -= n as usize;
        }
        Ok(())
    })
}

/// An executable memfd (close-on-exec) that `fill` writes, then sealed against any change:
/// nobody, not even a process that opens it through /proc/<pid>/exe, can write it.
pub(crate) fn sealed_memfd(
    name: &CStr,
    fill: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<OwnedFd> {
    const F_ADD_SEALS: libc::c_int = 1033;
    const SEALS: libc::c_int = 0x1 | 0x2 | 0x4 | 0x8; // SEAL, SHRINK, GROW, WRITE
                                                      // Linux 6.3+ wants executable memfds said so (vm.memfd_noexec may refuse them
                                                      // otherwise); older kernels reject the flag they do not know.
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let ok = |r: libc::c_long| check(r).map_err(io::Error::from_raw_os_error);
    // SAFETY: a valid C string and integer flags.
    let memfd =
        match ok(unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) } as libc::c_long) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // SAFETY: as above.
                ok(unsafe { libc::memfd_create(name.as_ptr(), flags) } as libc::c_long)?
            }
            r => r?,
        };
    // SAFETY: memfd_create returned a new descriptor that only we hold.
    let memfd = unsafe { OwnedFd::from_raw_fd(memfd as RawFd) };
    fill(memfd.as_fd())?;
    // SAFETY: integer arguments on a descriptor we own.
    ok(unsafe { libc::fcntl(memfd.as_raw_fd(), F_ADD_SEALS, SEALS) } as libc::c_long)?;
    Ok(memfd)
}

/// A directory that is empty and root-owned, for the overlay's second (required) lower
/// layer. /run is root-only on Debian; a path an unprivileged user could have prepared is
/// refused.
const EMPTY_DIR: &str = "/run/.berth-empty";

fn empty_dir() -> io::Result<&'static str> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o500).create(EMPTY_DIR) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(EMPTY_DIR)?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{EMPTY_DIR} is not a root-owned private directory"
        )));
    }
    Ok(EMPTY_DIR)
}

fn fs_call(r: libc::c_long) -> io::Result<RawFd> {
    check(r)
        .map(|fd| fd as RawFd)
        .map_err(io::Error::from_raw_os_error)
}

/// Opens berth's own binary through a fresh, detached, read-only overlayfs mount.
fn read_only_overlay_exe() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
    use std::os::unix::ffi::OsStrExt;

    let exe = std::fs::read_link("/proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(io::Error::other("berth's own path has no directory"));
    };
    let dir_bytes = dir.as_os_str().as_bytes();
    // Overlay's option syntax cannot carry these characters (nor a deleted binary's path).
    if dir_bytes
        .iter()
        .any(|b| matches!(b, b':' | b',' | b'\\' | b' '))
    {
        return Err(io::Error::other(
            "berth's directory is not expressible as a lowerdir",
        ));
    }
    let lower = CString::new(format!("{}:{}", dir.display(), empty_dir()?))
        .map_err(|_| io::Error::other("NUL in path"))?;
    let name = CString::new(name.as_bytes()).map_err(|_| io::Error::other("NUL in path"))?;
    // SAFETY: fsopen takes a static C string and flags; it returns a new fd we own.
    let fs =
        fs_call(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned this descriptor just now; only we hold it.
    let fs = unsafe { OwnedFd::from_raw_fd(fs) };
    // SAFETY: fsconfig with a valid fd, static key and a C string value living for the call.
    fs_call(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"lowerdir".as_ptr(),
            lower.as_ptr(),
            0,
        )
    })?;
    // SAFETY: as above, with null key and value as FSCONFIG_CMD_CREATE requires.
    fs_call(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: fsmount on our configured fs context; returns a new detached-mount fd.
    let mnt = fs_call(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })?;
    // SAFETY: fsmount returned this descriptor just now; only we hold it.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt) };
    // SAFETY: openat relative to the mount fd with a valid C string; returns a new fd.
    let fd = fs_call(unsafe {
        libc::openat(
            mnt.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    } as libc::c_long)?;
    // SAFETY: openat returned this descriptor just now; only we hold it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
