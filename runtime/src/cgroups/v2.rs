//! What berth does itself on a cgroup v2 host instead of leaving it to libcgroups 0.7:
//!
//! - `cpu.weight` from `cpu.shares` with the OCI conversion (`1 + ((shares - 2) * 9999) /
//!   262142`, what runc did up to 1.3.1 and what crun and the runtime-spec's v1→v2 notes
//!   use); libcgroups 0.7 applies runc 1.3.2's new quadratic fit, so the same spec would
//!   give different weights under berth and under runc/crun.
//! - `io.weight` from `blockIO.weight`: libcgroups computes `1 + (w - 10) * 9999 / 990` in
//!   u16, which overflows for any weight above 16 (a panic in debug builds, garbage in
//!   release).
//! - `memory.swap.max` = 0 when `memory.swap` equals `memory.limit` (v1's "memory+swap =
//!   memory": no swap at all): libcgroups computes the 0 and then skips writing it, leaving
//!   the container unlimited swap on a host that has swap.
//! - removal: waits for the killed processes to be gone before rmdir (libcgroups gives up
//!   after ~150 ms, too short on a loaded host) and removes child cgroups a container made
//!   inside its own cgroup namespace first.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

/// The values berth writes itself, taken out of the resources handed to libcgroups.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Own {
    pub cpu_weight: Option<u64>,
    pub blkio_weight: Option<u16>,
    /// Write 0 to memory.swap.max.
    pub no_swap: bool,
}

/// OCI `cpu.shares` (v1, 2..=262144) to v2 `cpu.weight` (1..=10000). 0 means unset.
pub fn shares_to_weight(shares: u64) -> Option<u64> {
    if shares == 0 {
        return None;
    }
    let s = shares.clamp(2, 262_144);
    Some(1 + ((s - 2) * 9999) / 262_142)
}

/// v1 `blkio.weight` (10..=1000) to v2 `io.weight` (1..=10000), as runc does. 0 is unset.
pub fn blkio_to_io_weight(weight: u16) -> Option<u64> {
    if weight == 0 {
        return None;
    }
    let w = u64::from(weight.clamp(10, 1000));
    Some(1 + ((w - 10) * 9999) / 990)
}

/// Splits `resources` into what libcgroups applies and what berth writes itself.
pub fn split(resources: &LinuxResources) -> (LinuxResources, Own) {
    let mut rest = resources.clone();
    let mut own = Own::default();
    if let Some(cpu) = rest.cpu_mut() {
        own.cpu_weight = cpu.shares().and_then(shares_to_weight);
        cpu.set_shares(None);
    }
    if let Some(mem) = rest.memory_mut() {
        if let (Some(limit), Some(swap)) = (mem.limit(), mem.swap()) {
            if limit > 0 && swap == limit {
                own.no_swap = true;
                mem.set_swap(None);
            }
        }
    }
    if let Some(bio) = rest.block_io_mut() {
        own.blkio_weight = bio.weight().filter(|w| *w != 0);
        bio.set_weight(None);
    }
    // The devices are berth's too on v2 (see devices_v2); libcgroups ignores them anyway.
    rest.set_devices(None);
    (rest, own)
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {value:?} to {file}: {e}")))
}

/// Writes the values of [`Own`] into the cgroup directory `dir`.
pub fn apply_own(dir: &Path, own: &Own) -> io::Result<()> {
    if let Some(w) = own.cpu_weight {
        write(dir, "cpu.weight", &w.to_string())?;
    }
    if own.no_swap {
        match write(dir, "memory.swap.max", "0") {
            // No swap accounting in this kernel: there is no swap to limit (as runc).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    if let Some(w) = own.blkio_weight {
        // BFQ takes the v1 range as is; otherwise the generic io.weight (blk-iocost).
        let bfq = dir.join("io.bfq.weight");
        if bfq.exists() {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else if let Some(v) = blkio_to_io_weight(w) {
            write(dir, "io.weight", &format!("default {v}"))?;
        }
    }
    Ok(())
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Child cgroups of `dir`, deepest first.
fn descendants(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                stack.push(e.path());
            }
        }
    }
    // Parents were pushed before their children: reverse for deepest first.
    out.reverse();
    out
}

/// Creates the cgroup directory `dir` below the v2 root `root`, enabling every controller
/// the root offers in the subtree_control of the root and of each new ancestor (not of
/// `dir` itself: a cgroup with processes cannot delegate, "no internal processes"). This
/// is what libcgroups does when it adds the first process, done ahead so the container
/// process can be cloned straight into the cgroup (CLONE_INTO_CGROUP).
pub fn make_dir(root: &Path, dir: &Path) -> io::Result<()> {
    let rel = dir.strip_prefix(root).map_err(|_| {
        io::Error::other(format!("{} is not below {}", dir.display(), root.display()))
    })?;
    let available = std::fs::read_to_string(root.join("cgroup.controllers"))?;
    let enable = |d: &Path| {
        for c in available.split_whitespace() {
            // One write per controller, as libcgroups does: one the kernel refuses (say,
            // a threaded subtree) must not keep the others off.
            let _ = std::fs::write(d.join("cgroup.subtree_control"), format!("+{c}"));
        }
    };
    let mut cur = root.to_path_buf();
    for part in rel.components() {
        let std::path::Component::Normal(part) = part else {
            return Err(io::Error::other(format!(
                "{}: not a plain cgroup path",
                dir.display()
            )));
        };
        enable(&cur);
        cur.push(part);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", cur.display()))),
        }
    }
    Ok(())
}

/// Kills every process in the cgroup at `dir` (and below), waits until it is empty and
/// removes it with its child cgroups. `timeout` bounds the wait for processes to exit.
pub fn remove(dir: &Path, timeout: Duration) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let kill = dir.join("cgroup.kill");
    if kill.exists() {
        write(dir, "cgroup.kill", "1")?;
    } else {
        // Kernels before 5.14: signal what is there (a frozen process dies on SIGKILL too).
        for d in std::iter::once(dir.to_path_buf()).chain(descendants(dir)) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let deadline = Instant::now() + timeout;
    // A killed process leaves the cgroup only once it has exited and been reaped; until
    // then rmdir fails with EBUSY.
    while populated(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for d in descendants(dir)
        .into_iter()
        .chain(std::iter::once(dir.to_path_buf()))
    {
        loop {
            match std::fs::remove_dir(&d) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("removing {}: {e}", d.display()),
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder,
    };

    #[test]
    fn shares_convert_with_the_oci_formula() {
        assert_eq!(shares_to_weight(0), None);
        assert_eq!(shares_to_weight(2), Some(1));
        assert_eq!(shares_to_weight(1), Some(1), "below the v1 minimum clamps");
        assert_eq!(shares_to_weight(1024), Some(39));
        assert_eq!(shares_to_weight(512), Some(20));
        assert_eq!(shares_to_weight(262_144), Some(10_000));
        assert_eq!(shares_to_weight(1 << 40), Some(10_000));
    }

    #[test]
    fn blkio_weight_converts_without_overflow() {
        assert_eq!(blkio_to_io_weight(0), None);
        assert_eq!(blkio_to_io_weight(10), Some(1));
        assert_eq!(blkio_to_io_weight(500), Some(4950));
        assert_eq!(blkio_to_io_weight(1000), Some(10_000));
        assert_eq!(blkio_to_io_weight(u16::MAX), Some(10_000));
    }

    #[test]
    fn split_takes_out_weights_and_devices() {
        let res = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(5000i64)
                    .build()
                    .expect("cpu"),
            )
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .build()
                    .expect("bio"),
            )
            .devices(vec![])
            .build()
            .expect("resources");
        let (rest, own) = split(&res);
        assert_eq!(
            own,
            Own {
                cpu_weight: Some(39),
                blkio_weight: Some(500),
                no_swap: false
            }
        );
        let cpu = rest.cpu().as_ref().expect("cpu kept");
        assert_eq!((cpu.shares(), cpu.quota()), (None, Some(5000)));
        assert_eq!(rest.block_io().as_ref().and_then(|b| b.weight()), None);
        assert!(rest.devices().is_none());
    }

    #[test]
    fn swap_equal_to_the_limit_means_no_swap() {
        let mem = |limit: i64, swap: i64| {
            let res = LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .limit(limit)
                        .swap(swap)
                        .build()
                        .expect("memory"),
                )
                .build()
                .expect("resources");
            let (rest, own) = split(&res);
            (own.no_swap, rest.memory().as_ref().and_then(|m| m.swap()))
        };
        assert_eq!(mem(64 << 20, 64 << 20), (true, None));
        // Anything else stays with libcgroups (which converts v1 memory+swap to v2 swap).
        assert_eq!(mem(64 << 20, 128 << 20), (false, Some(128 << 20)));
        assert_eq!(mem(-1, -1), (false, Some(-1)));
    }
}
