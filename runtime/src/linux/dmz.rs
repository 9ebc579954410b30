//! berth-dmz: the last exec of a container process that `berth run` set up without
//! re-executing berth (after runc's runc-dmz).
//!
//! Every container process normally re-executes berth from a sealed view first
//! ([`super::exe`]): its /proc/self/exe must never be the host's berth binary when the
//! container's program could reach it (CVE-2019-5736). That re-exec is a full start of a
//! 4 MB static binary (glibc's start-up alone is ≈0.5 ms in a VM, where each of its ~80
//! CPUID instructions traps to the hypervisor). For the plainest case — `run`, where the
//! process goes straight from set-up to the program — berth skips it: the cloned process
//! sets the container up as the forked CLI, and its final exec goes through this 736-byte
//! program (dmz.S, assembled by build.rs) in a sealed memfd, which then execs the
//! container's program. So /proc/self/exe is the memfd while the program is being loaded,
//! and the program's own afterwards; berth's binary is never reachable from inside.
//!
//! While it sets up, the process is the host binary. That is safe only while no process of
//! the container can see it, which [`crate::container`] makes sure of before choosing this
//! path: a new pid namespace (it is that namespace's only process until the exec), no
//! user namespace, no hooks before the exec (createContainer and startContainer run inside;
//! prestart and createRuntime could enter the namespaces; only poststart/poststop), no
//! `berth.init`/`berth.pause` (berth stays the container's pid 1 there), no `start` to wait
//! for (no `created` window in which `exec` could join), a seccomp profile that lets
//! execveat through, and a single-threaded caller (the CLI: a fork of a multi-threaded
//! process must exec at once). It is also non-dumpable from its first instruction of
//! berth code, like every container process berth makes.

#[cfg(berth_dmz)]
const DMZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-dmz"));

/// Whether this build carries berth-dmz (x86_64 only).
pub const AVAILABLE: bool = cfg!(berth_dmz);

/// berth-dmz in a sealed, close-on-exec memfd.
#[cfg(berth_dmz)]
pub fn sealed() -> std::io::Result<std::os::fd::OwnedFd> {
    super::exe::sealed_memfd(c"berth-dmz", |fd| {
        let mut left = DMZ;
        while !left.is_empty() {
            let n = rustix::io::write(fd, left)?;
            left = &left[n..];
        }
        Ok(())
    })
}

#[cfg(not(berth_dmz))]
pub fn sealed() -> std::io::Result<std::os::fd::OwnedFd> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
