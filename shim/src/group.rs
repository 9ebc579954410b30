//! The group's task cgroup: containers of one pod (`io.kubernetes.cri.sandbox-id`) or berth
//! task (`berth.task.id`) share one parent cgroup, whose limits bound them all together, as
//! the task runner does for a task definition (and the ECS agent with `/ecs/<task-id>`).
//!
//! - Path: `/berth-tasks/<namespace>/<group>`; each container's cgroup is
//!   `/berth-tasks/<namespace>/<group>/<container-id>`, replacing the `linux.cgroupsPath`
//!   containerd wrote. The namespace level keeps equal task ids of two containerd namespaces
//!   apart.
//! - Limits, from the annotations of the containers that carry them:
//!   `berth.task.cpu` (ECS cpu units, `"512"` or `"0.5 vCPU"`; CFS quota = units/1024 of a
//!   100 ms period, as the task runner and the ECS agent compute it), `berth.task.memory`
//!   (MiB, `"512"` or `"2 GB"`), and CRI's `io.kubernetes.cri.sandbox-cpu-quota` /
//!   `-cpu-period` (µs) and `io.kubernetes.cri.sandbox-memory` (bytes), which containerd's
//!   CRI plugin puts on the pod's sandbox container. berth's own annotations win over CRI's.
//! - A container gets a task cgroup when it names a group or carries a limit; otherwise its
//!   cgroup stays where containerd put it (no extra directories per plain `ctr run`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_taskdef::model::TaskSize;
use berth_taskdef::plan::cgroup::{cpu_quota_us, mib_to_bytes, CPU_PERIOD_US};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
};

use crate::error::{Error, Result};
use crate::paths;

pub const TASK_CPU: &str = "berth.task.cpu";
pub const TASK_MEMORY: &str = "berth.task.memory";
pub const CRI_CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
pub const CRI_CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";
pub const CRI_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";

/// Parent of every task cgroup the shim makes (the task runner's prefix too).
const TASK_CGROUP_ROOT: &str = "/berth-tasks";

/// The kernel's bounds for a CFS period (1 ms .. 1 s) and its smallest quota (1 ms).
const MIN_CFS_US: u64 = 1_000;
const MAX_CFS_PERIOD_US: u64 = 1_000_000;

/// Task-level limits; None leaves that controller as the kernel made it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// CFS quota and period, µs.
    pub cpu: Option<(u64, u64)>,
    pub memory_bytes: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory_bytes.is_none()
    }

    pub fn resources(&self) -> Result<LinuxResources> {
        let bad = |e: oci_spec::OciSpecError| Error::Other(format!("task cgroup limits: {e}"));
        let mut r = LinuxResourcesBuilder::default();
        if let Some((quota, period)) = self.cpu {
            r = r.cpu(
                LinuxCpuBuilder::default()
                    .quota(i64::try_from(quota).unwrap_or(i64::MAX))
                    .period(period)
                    .build()
                    .map_err(bad)?,
            );
        }
        if let Some(bytes) = self.memory_bytes {
            r = r.memory(
                LinuxMemoryBuilder::default()
                    .limit(i64::try_from(bytes).unwrap_or(i64::MAX))
                    .build()
                    .map_err(bad)?,
            );
        }
        r.build().map_err(bad)
    }
}

/// Where a container's cgroup goes when it belongs to a task cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The task cgroup, e.g. `/berth-tasks/k8s.io/<sandbox-id>`.
    pub task_cgroup: PathBuf,
    /// The group key (cgroup directory name).
    pub group: String,
    /// The limits this container's annotations ask for (may be empty).
    pub limits: Limits,
}

impl Placement {
    /// The container's own cgroup below the task cgroup.
    pub fn container_cgroup(&self, id: &str) -> PathBuf {
        self.task_cgroup.join(id)
    }
}

/// The task cgroup a container with these annotations belongs to, or None. Bad values fail
/// with InvalidArgument naming the annotation, before anything is made.
pub fn placement(
    annotations: &HashMap<String, String>,
    namespace: &str,
    id: &str,
) -> Result<Option<Placement>> {
    let limits = limits(annotations)?;
    let group = paths::group_annotation(annotations);
    if group.is_none() && limits.is_empty() {
        return Ok(None);
    }
    let group = match group {
        Some((key, value)) => {
            // It becomes a directory name: no '/', no "..", nothing hidden.
            berth::state::validate_id(value).map_err(|_| {
                Error::InvalidArgument(format!(
                    "annotation {key}: {value:?} cannot name a task cgroup (letters, digits, '_', '+', '-', '.'; not starting with '.')"
                ))
            })?;
            value.to_string()
        }
        None => id.to_string(),
    };
    Ok(Some(Placement {
        task_cgroup: Path::new(TASK_CGROUP_ROOT).join(namespace).join(&group),
        group,
        limits,
    }))
}

/// The task-level limits the annotations ask for.
pub fn limits(a: &HashMap<String, String>) -> Result<Limits> {
    let mut limits = Limits::default();

    // CRI first, berth's own annotations override. containerd writes "0" for a pod without
    // a limit (kubelet leaves the field unset): that means no limit, not an error.
    let period = cri_number(a, CRI_CPU_PERIOD)?;
    if let Some(p) = period {
        if !(MIN_CFS_US..=MAX_CFS_PERIOD_US).contains(&p) {
            return Err(invalid(
                CRI_CPU_PERIOD,
                &p.to_string(),
                "must be between 1000 and 1000000 µs",
            ));
        }
    }
    if let Some(q) = cri_number(a, CRI_CPU_QUOTA)? {
        if q < MIN_CFS_US {
            return Err(invalid(
                CRI_CPU_QUOTA,
                &q.to_string(),
                "must be at least 1000 µs",
            ));
        }
        limits.cpu = Some((q, period.unwrap_or(CPU_PERIOD_US)));
    }
    limits.memory_bytes = cri_number(a, CRI_MEMORY)?;

    if let Some(text) = a.get(TASK_CPU) {
        let units = TaskSize::from(text.as_str())
            .cpu_units()
            .map_err(|e| Error::InvalidArgument(format!("annotation {TASK_CPU}: {e}")))?;
        if units == 0 {
            return Err(invalid(TASK_CPU, text, "must be more than 0 cpu units"));
        }
        limits.cpu = Some((cpu_quota_us(units), CPU_PERIOD_US));
    }
    if let Some(text) = a.get(TASK_MEMORY) {
        let mib = TaskSize::from(text.as_str())
            .memory_mib()
            .map_err(|e| Error::InvalidArgument(format!("annotation {TASK_MEMORY}: {e}")))?;
        if mib == 0 {
            return Err(invalid(TASK_MEMORY, text, "must be more than 0 MiB"));
        }
        limits.memory_bytes = Some(mib_to_bytes(mib));
    }
    Ok(limits)
}

/// A CRI sandbox annotation: a decimal integer; 0 (or absent) is no limit.
fn cri_number(a: &HashMap<String, String>, key: &str) -> Result<Option<u64>> {
    let Some(text) = a.get(key) else {
        return Ok(None);
    };
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        let why = if t.starts_with('-') && t[1..].bytes().all(|b| b.is_ascii_digit()) {
            "must not be negative"
        } else {
            "is not a whole number"
        };
        return Err(invalid(key, text, why));
    }
    match t.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(invalid(key, text, "is too large")),
    }
}

fn invalid(key: &str, value: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("annotation {key}: {value:?} {why}"))
}

/// Cross-process order between placing a container in a task cgroup and removing an empty
/// task cgroup, for the one pair the shim's own lock cannot order: a `delete` action cleaning
/// up after a killed shim, and a Create in a new shim of the same group. Without it the
/// action could rmdir a task cgroup a new shim just made, before the library made the
/// container's cgroup below it (which would then run without the task's limits).
///
/// A flock on the namespace's state directory: shared by each Create from before the task
/// cgroup is made until the container's cgroup exists (Creates do not wait for each other),
/// exclusive by the `delete` action around its check-and-rmdir.
pub struct PlacementLock {
    /// Unlocks when dropped.
    _held: Flock<File>,
}

impl PlacementLock {
    /// Shared: blocks while a `delete` action removes a task cgroup (milliseconds). Call off
    /// the runtime thread.
    pub fn shared(state_dir: &Path) -> Result<PlacementLock> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| Error::io(format!("creating {}", state_dir.display()), e))?;
        let dir = File::open(state_dir)
            .map_err(|e| Error::io(format!("opening {}", state_dir.display()), e))?;
        Flock::lock(dir, FlockArg::LockShared)
            .map(|l| PlacementLock { _held: l })
            .map_err(|(_, e)| Error::io(format!("locking {}", state_dir.display()), e))
    }

    /// Exclusive, waiting at most `timeout` (the `delete` action must stay fast; a Create
    /// stuck in a hook must not hold it up). None if not acquired in time.
    pub fn exclusive(state_dir: &Path, timeout: Duration) -> Option<PlacementLock> {
        // Made if missing: a Create that makes it a moment later must find the lock taken.
        std::fs::create_dir_all(state_dir).ok()?;
        let mut dir = File::open(state_dir).ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Some(PlacementLock { _held: l }),
                Err((d, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    dir = d;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return None,
            }
        }
    }
}

/// The shim's bookkeeping of the task cgroups it serves (in practice one: the shim serves one
/// group): which containers are in each, and the limits set on it.
#[derive(Default)]
pub struct TaskCgroups {
    groups: HashMap<PathBuf, Members>,
}

#[derive(Default)]
struct Members {
    ids: HashSet<String>,
    limits: Limits,
}

/// What [`TaskCgroups::join`] asks the caller to do on the host.
#[derive(Debug, PartialEq, Eq)]
pub enum Join {
    /// First container: (re)make the task cgroup with these limits.
    Create(Limits),
    /// The container asks for limits that differ from those set: apply them.
    Update(Limits),
    Nothing,
}

impl TaskCgroups {
    /// Records `id` as a member and says what must be done to the cgroup first. Then call
    /// [`TaskCgroups::applied`] when that worked, [`TaskCgroups::leave`] when it failed.
    pub fn join(&mut self, id: &str, p: &Placement) -> Join {
        let m = self.groups.entry(p.task_cgroup.clone()).or_default();
        let first = m.ids.is_empty();
        m.ids.insert(id.to_string());
        if first {
            m.limits = Limits::default();
            return Join::Create(p.limits);
        }
        // Annotations a container leaves out keep what the group has (CRI puts them on the
        // sandbox container only); those it gives replace the group's.
        if merge(m.limits, p.limits) != m.limits {
            return Join::Update(p.limits);
        }
        Join::Nothing
    }

    /// `limits` are set on the cgroup now.
    pub fn applied(&mut self, task_cgroup: &Path, limits: &Limits) {
        if let Some(m) = self.groups.get_mut(task_cgroup) {
            m.limits = merge(m.limits, *limits);
        }
    }

    /// Forgets `id`; true if it was the last member (the caller removes the cgroup).
    pub fn leave(&mut self, id: &str, task_cgroup: &Path) -> bool {
        let Some(m) = self.groups.get_mut(task_cgroup) else {
            return false;
        };
        m.ids.remove(id);
        if m.ids.is_empty() {
            self.groups.remove(task_cgroup);
            return true;
        }
        false
    }
}

fn merge(current: Limits, given: Limits) -> Limits {
    Limits {
        cpu: given.cpu.or(current.cpu),
        memory_bytes: given.memory_bytes.or(current.memory_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn berth_limits() {
        let l = limits(&ann(&[(TASK_CPU, "512"), (TASK_MEMORY, "256")])).expect("valid");
        assert_eq!(l.cpu, Some((50_000, 100_000)));
        assert_eq!(l.memory_bytes, Some(256 << 20));
        let l = limits(&ann(&[(TASK_CPU, "0.25 vCPU"), (TASK_MEMORY, "1 GB")])).expect("valid");
        assert_eq!(l.cpu, Some((25_000, 100_000)));
        assert_eq!(l.memory_bytes, Some(1 << 30));
    }

    #[test]
    fn cri_limits() {
        let l = limits(&ann(&[
            (CRI_CPU_QUOTA, "150000"),
            (CRI_CPU_PERIOD, "50000"),
            (CRI_MEMORY, "67108864"),
        ]))
        .expect("valid");
        assert_eq!(l.cpu, Some((150_000, 50_000)));
        assert_eq!(l.memory_bytes, Some(64 << 20));
        // A pod without limits: containerd writes zeros.
        let l = limits(&ann(&[
            (CRI_CPU_QUOTA, "0"),
            (CRI_CPU_PERIOD, "0"),
            (CRI_MEMORY, "0"),
        ]))
        .expect("valid");
        assert!(l.is_empty());
        let l = limits(&ann(&[(CRI_CPU_QUOTA, "20000")])).expect("valid");
        assert_eq!(l.cpu, Some((20_000, 100_000)));
        // berth's own win.
        let l = limits(&ann(&[(CRI_MEMORY, "67108864"), (TASK_MEMORY, "128")])).expect("valid");
        assert_eq!(l.memory_bytes, Some(128 << 20));
    }

    #[test]
    fn bad_values_name_the_annotation() {
        for (k, v) in [
            (TASK_CPU, "0"),
            (TASK_CPU, "-5"),
            (TASK_CPU, "lots"),
            (TASK_MEMORY, "0"),
            (TASK_MEMORY, "12x"),
            (TASK_MEMORY, ""),
            (CRI_CPU_QUOTA, "-1"),
            (CRI_CPU_QUOTA, "500"),
            (CRI_CPU_QUOTA, "1.5"),
            (CRI_CPU_PERIOD, "abc"),
            (CRI_CPU_PERIOD, "100"),
            (CRI_MEMORY, "-1"),
            (CRI_MEMORY, "99999999999999999999999"),
        ] {
            match limits(&ann(&[(k, v)])) {
                Err(Error::InvalidArgument(m)) => {
                    assert!(m.contains(k), "{k}={v}: message {m:?} must name it")
                }
                other => panic!("{k}={v}: {other:?}"),
            }
        }
    }

    #[test]
    fn placement_rules() {
        assert_eq!(placement(&ann(&[]), "ns", "c1").expect("ok"), None);
        let p = placement(&ann(&[("berth.task.id", "t1")]), "ns", "c1")
            .expect("ok")
            .expect("grouped");
        assert_eq!(p.task_cgroup, PathBuf::from("/berth-tasks/ns/t1"));
        assert_eq!(
            p.container_cgroup("c1"),
            PathBuf::from("/berth-tasks/ns/t1/c1")
        );
        assert!(p.limits.is_empty());
        // Limits without a group: the container is its own task.
        let p = placement(&ann(&[(TASK_MEMORY, "64")]), "ns", "c1")
            .expect("ok")
            .expect("own task");
        assert_eq!(p.task_cgroup, PathBuf::from("/berth-tasks/ns/c1"));
        for bad in ["../x", "a/b", ".hidden"] {
            assert!(matches!(
                placement(&ann(&[("berth.task.id", bad)]), "ns", "c1"),
                Err(Error::InvalidArgument(m)) if m.contains("berth.task.id")
            ));
        }
    }

    #[test]
    fn placement_lock_orders_creates_and_removal() {
        let dir = std::env::temp_dir().join(format!("berth-shim-plock-{}", std::process::id()));
        let a = PlacementLock::shared(&dir).expect("shared");
        let b = PlacementLock::shared(&dir).expect("a second Create does not wait");
        let short = Duration::from_millis(50);
        assert!(
            PlacementLock::exclusive(&dir, short).is_none(),
            "removal waits for Creates"
        );
        drop((a, b));
        let x = PlacementLock::exclusive(&dir, short).expect("exclusive once they are done");
        drop(x);
        std::fs::remove_dir(&dir).ok();
    }

    #[test]
    fn membership() {
        let mut t = TaskCgroups::default();
        let p = |cpu| Placement {
            task_cgroup: PathBuf::from("/berth-tasks/ns/g"),
            group: "g".into(),
            limits: Limits {
                cpu,
                memory_bytes: None,
            },
        };
        let a = p(Some((50_000, 100_000)));
        assert_eq!(t.join("a", &a), Join::Create(a.limits));
        t.applied(&a.task_cgroup, &a.limits);
        assert_eq!(t.join("b", &p(None)), Join::Nothing);
        assert_eq!(t.join("c", &a), Join::Nothing);
        let d = p(Some((25_000, 100_000)));
        assert_eq!(t.join("d", &d), Join::Update(d.limits));
        t.applied(&d.task_cgroup, &d.limits);
        assert_eq!(t.join("e", &d), Join::Nothing);
        assert!(!t.leave("e", &a.task_cgroup));
        assert!(!t.leave("a", &a.task_cgroup));
        assert!(!t.leave("b", &a.task_cgroup));
        assert!(!t.leave("c", &a.task_cgroup));
        assert!(t.leave("d", &a.task_cgroup));
        assert!(!t.leave("d", &a.task_cgroup));
    }
}
