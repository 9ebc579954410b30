//! cgroup v1 (and the v1 half of hybrid hosts) on the hot paths: `create`, `exec`,
//! `delete`, `kill --all`.
//!
//! libcgroups' v1 manager finds each of its twelve controllers separately: per controller it
//! opens and parses /proc/self/mountinfo and /proc/self/cgroup through a verified procfs
//! handle, about fifty syscalls each, so building one manager costs ≈600 syscalls and more
//! than a millisecond — on every `create` and every `delete`. berth reads mountinfo once per
//! process instead, and does itself what those commands need (join, device rules, pids.max,
//! list, kill, remove). Everything else (memory, cpu, cpuset, blkio, hugetlb, network limits,
//! freezer, stats) still goes through libcgroups, whose manager is then built on demand.
//!
//! The host's own /proc is trusted here: this code runs in the runtime on the host, before
//! any container process exists, exactly as runc reads mountinfo for its cgroup paths.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::devices_v2::{Kind, Rule, ACC_MKNOD, ACC_READ, ACC_WRITE};

/// The controllers a container joins: libcgroups' set, so either code path puts a container
/// in the same hierarchies.
const JOINED: [&str; 12] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_cls",
    "net_prio",
    "freezer",
];

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers bound to it (of [`JOINED`]), e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The host's v1 hierarchies, read from /proc/self/mountinfo once per process.
pub fn hierarchies() -> &'static [Hierarchy] {
    static CACHE: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    CACHE.get_or_init(|| {
        fs::read_to_string("/proc/self/mountinfo")
            .map(|s| parse_mountinfo(&s))
            .unwrap_or_default()
    })
}

/// The v1 cgroup hierarchies in a mountinfo text, one per controller set (the first mount
/// of the hierarchy's root wins, as a bind mount of a sub-cgroup would put paths elsewhere).
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in crate::linux::procfs::parse_mountinfo(text) {
        if m.fs_type != "cgroup" || m.root != "/" {
            continue;
        }
        let controllers: Vec<String> = m
            .super_options
            .split(',')
            .filter(|o| JOINED.contains(o))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        out.push(Hierarchy {
            controllers,
            mount_point: m.mount_point,
        });
    }
    out
}

/// `path` below a mount point, keeping only plain components: a cgroup path can never
/// name a directory outside its hierarchy.
fn below(mount_point: &Path, path: &Path) -> PathBuf {
    let mut p = mount_point.to_path_buf();
    for c in path.components() {
        if let Component::Normal(n) = c {
            p.push(n);
        }
    }
    p
}

/// A container's cgroup in every joined v1 hierarchy.
#[derive(Debug)]
pub struct V1Cgroup {
    /// (hierarchy, the cgroup's directory in it)
    dirs: Vec<(&'static Hierarchy, PathBuf)>,
    rel: PathBuf,
}

impl V1Cgroup {
    pub fn new(path: &Path) -> V1Cgroup {
        V1Cgroup {
            dirs: hierarchies()
                .iter()
                .map(|h| (h, below(&h.mount_point, path)))
                .collect(),
            rel: path.to_path_buf(),
        }
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.has(controller))
            .map(|(_, d)| d.as_path())
    }

    /// Creates the cgroup's directory in every hierarchy.
    pub fn make_dirs(&self) -> io::Result<()> {
        for (h, dir) in &self.dirs {
            fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
            if h.has("cpuset") {
                // A new v1 cpuset has no cpus and no mems, and a task cannot join it.
                inherit_cpuset(&h.mount_point, &self.rel)?;
            }
        }
        Ok(())
    }

    /// Creates the directories and opens the cgroup's `tasks` file in every hierarchy, for
    /// a process to join by itself (see [`super::Cgroup::prepare_join`]). `tasks`, not
    /// `cgroup.procs`: only a single-thread migration skips the threadgroup lock. The files
    /// are opened here, by the runtime: the kernel checks a write against the opener's
    /// credentials, so a process already in a user namespace can still use them.
    pub fn tasks_files(&self) -> io::Result<Vec<File>> {
        self.make_dirs()?;
        self.dirs
            .iter()
            .map(|(_, dir)| {
                let p = dir.join("tasks");
                File::options()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&p)
                    .map_err(|e| at(&p, e))
            })
            .collect()
    }

    /// Replaces the device allow-list with `rules` (first rule usually "deny all").
    pub fn set_devices(&self, rules: &[Rule]) -> io::Result<()> {
        let Some(dir) = self.dir_of("devices") else {
            return Ok(());
        };
        let open = |name: &str| {
            let p = dir.join(name);
            File::options().write(true).open(&p).map_err(|e| at(&p, e))
        };
        let (mut allow, mut deny) = (open("devices.allow")?, open("devices.deny")?);
        for r in rules {
            let (f, name) = if r.allow {
                (&mut allow, "devices.allow")
            } else {
                (&mut deny, "devices.deny")
            };
            // One rule per write(2): the kernel parses each write as one entry.
            f.write_all(rule_line(r).as_bytes())
                .map_err(|e| at(&dir.join(name), e))?;
        }
        Ok(())
    }

    /// pids.max; `limit <= 0` means no limit.
    pub fn set_pids_max(&self, limit: i64) -> io::Result<()> {
        let Some(dir) = self.dir_of("pids") else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "linux.resources.pids: the pids controller is not mounted on this host",
            ));
        };
        let v = if limit > 0 {
            limit.to_string()
        } else {
            "max".to_string()
        };
        write(&dir.join("pids.max"), &v)
    }

    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> io::Result<Vec<Pid>> {
        let Some(dir) = self
            .dir_of("devices")
            .or(self.dirs.first().map(|(_, d)| d.as_path()))
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        collect_pids(dir, &mut out)?;
        Ok(out)
    }

    /// Kills what is left and removes the cgroup's directory in every hierarchy.
    pub fn remove(&self, timeout: Duration) -> io::Result<()> {
        for (_, dir) in &self.dirs {
            remove_dir(dir, timeout)?;
        }
        Ok(())
    }
}

/// Whether `resources` (without devices and pids, which [`V1Cgroup`] writes itself) asks
/// for anything only libcgroups writes on v1.
pub fn needs_libcgroups(r: &oci_spec::runtime::LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|m| !m.is_empty())
        || r.unified().as_ref().is_some_and(|m| !m.is_empty())
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    let mut f = File::options()
        .write(true)
        .open(path)
        .map_err(|e| at(path, e))?;
    f.write_all(value.as_bytes()).map_err(|e| at(path, e))
}

/// Copies cpuset.cpus and cpuset.mems down from the first non-empty ancestor to every
/// empty directory on the way to the container's cgroup.
fn inherit_cpuset(mount_point: &Path, rel: &Path) -> io::Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut cur = mount_point.to_path_buf();
        let mut value = fs::read_to_string(cur.join(file)).map_err(|e| at(&cur, e))?;
        for c in rel.components() {
            let Component::Normal(n) = c else { continue };
            cur.push(n);
            let p = cur.join(file);
            let own = fs::read_to_string(&p).map_err(|e| at(&p, e))?;
            if own.trim().is_empty() {
                write(&p, &value)?;
            } else {
                value = own;
            }
        }
    }
    Ok(())
}

/// A rule as the v1 devices.allow/devices.deny files take it: `c 1:3 rwm`.
pub fn rule_line(r: &Rule) -> String {
    let kind = match r.kind {
        Kind::All => 'a',
        Kind::Char => 'c',
        Kind::Block => 'b',
    };
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let mut access = String::new();
    for (bit, ch) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if r.access & bit != 0 {
            access.push(ch);
        }
    }
    format!("{kind} {}:{} {access}", num(r.major), num(r.minor))
}

fn collect_pids(dir: &Path, out: &mut Vec<Pid>) -> io::Result<()> {
    let procs = match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(dir, e)),
    };
    out.extend(
        procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(Pid::from_raw),
    );
    for e in fs::read_dir(dir).map_err(|e| at(dir, e))?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

/// Kills the processes in `dir` and removes it, retrying while the kernel still counts the
/// dying ones (rmdir answers EBUSY until they are gone). A cgroup with child cgroups cannot
/// be removed however long one waits: that fails at once.
fn remove_dir(dir: &Path, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if has_child_cgroup(dir) {
            return Err(io::Error::new(
                err.kind(),
                format!("{}: {err} (it has child cgroups)", dir.display()),
            ));
        }
        if Instant::now() >= deadline {
            return Err(at(dir, err));
        }
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn has_child_cgroup(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid - cgroup cgroup rw,net_cls,net_prio
38 30 0:32 /sub /mnt/memsub rw - cgroup cgroup rw,memory
39 30 0:31 / /mnt/again rw - cgroup cgroup rw,cpu,cpuacct
40 30 0:34 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn mountinfo_gives_one_entry_per_hierarchy() {
        let h = parse_mountinfo(HYBRID);
        let got: Vec<(String, String)> = h
            .iter()
            .map(|h| (h.controllers.join(","), h.mount_point.display().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
                ("memory", "/sys/fs/cgroup/memory"),
                ("net_cls,net_prio", "/sys/fs/cgroup/net_cls,net_prio"),
                ("pids", "/mnt/with space"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn cgroup_paths_stay_inside_their_hierarchy() {
        let m = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(below(m, Path::new("/berth/c1")), m.join("berth/c1"));
        assert_eq!(below(m, Path::new("../../etc")), m.join("etc"));
        assert_eq!(below(m, Path::new("/a/./b/../c")), m.join("a/b/c"));
    }

    #[test]
    fn device_rules_in_kernel_syntax() {
        let deny_all = Rule {
            allow: false,
            kind: Kind::All,
            major: None,
            minor: None,
            access: ACC_READ | ACC_WRITE | ACC_MKNOD,
        };
        assert_eq!(rule_line(&deny_all), "a *:* rwm");
        let tty = Rule {
            allow: true,
            kind: Kind::Char,
            major: Some(136),
            minor: None,
            access: ACC_READ | ACC_WRITE,
        };
        assert_eq!(rule_line(&tty), "c 136:* rw");
        let blk = Rule {
            allow: true,
            kind: Kind::Block,
            major: Some(8),
            minor: Some(0),
            access: ACC_MKNOD,
        };
        assert_eq!(rule_line(&blk), "b 8:0 m");
    }
}
