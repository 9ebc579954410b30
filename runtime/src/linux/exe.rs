//! Re-executing berth from a sealed memfd copy of itself (CVE-2019-5736).
//!
//! A container process that runs `/proc/self/exe` (say, through a `#!/proc/self/exe` script)
//! while the kernel still maps the runtime's binary there gets a handle on the host's berth
//! binary, and can rewrite it once berth exits. Every process berth puts into a container
//! therefore first re-executes from a sealed, read-only memfd: its /proc/self/exe is then a
//! throw-away copy that cannot be written (F_SEAL_WRITE) and is gone when it execs the
//! container's program.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Copies /proc/self/exe into a sealed memfd and execs it. Returns only on failure.
pub fn exec_sealed_self(argv: &[&CStr], env: &[CString]) -> io::Error {
    match try_exec(argv, env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(argv: &[&CStr], env: &[CString]) -> io::Result<std::convert::Infallible> {
    let exe = File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len() as usize;
    let memfd = memfd_create(
        c"berth",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut copied = 0usize;
    while copied < len {
        let n = nix::sys::sendfile::sendfile(memfd.as_fd(), exe.as_fd(), None, len - copied)?;
        if n == 0 {
            break;
        }
        copied += n;
    }
    if copied != len {
        return Err(io::Error::other("short copy of /proc/self/exe"));
    }
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&memfd),
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )?;
    drop(exe);
    match nix::unistd::fexecve(std::os::fd::AsRawFd::as_raw_fd(&memfd), argv, env) {
        Ok(never) => match never {},
        Err(e) => Err(e.into()),
    }
}
