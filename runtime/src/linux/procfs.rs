//! Reading and writing /proc safely: mountinfo, our own cgroups, and sysctl writes that
//! are proven to land on procfs (CVE-2025-52881: binds over /proc files redirected writes).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::Root;

use super::{sys, Context, SetupError};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_id: u32,
    pub root: String,
    pub mount_point: PathBuf,
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(MountInfo {
            mount_id: l[0].parse().unwrap_or(0),
            root: unescape(l[3]),
            mount_point: PathBuf::from(unescape(l[4])),
            optional: l[6..].iter().map(|s| s.to_string()).collect(),
            fs_type: r[0].to_string(),
            source: unescape(r[1]),
            super_options: r[2].to_string(),
        });
    }
    out
}

pub fn mountinfo() -> io::Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The key under which a v1 hierarchy appears in /proc/self/cgroup, from its super options
/// (`rw,cpu,cpuacct` → `cpu,cpuacct`; `rw,name=systemd` → `name=systemd`).
pub fn hierarchy_key(super_options: &str) -> String {
    const NON_CONTROLLERS: &[&str] = &[
        "rw",
        "ro",
        "relatime",
        "noatime",
        "nsdelegate",
        "memory_recursiveprot",
        "clone_children",
        "xattr",
        "cpuset_v2_mode",
        "noprefix",
        "favordynmods",
        "memory_localevents",
    ];
    super_options
        .split(',')
        .filter(|o| !NON_CONTROLLERS.contains(o) && !o.starts_with("release_agent="))
        .collect::<Vec<_>>()
        .join(",")
}

/// Our own cgroup in each hierarchy: controller list (`""` for cgroup2) → path.
pub fn own_cgroups() -> io::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        out.insert(ctrl.to_string(), path.to_string());
    }
    Ok(out)
}

pub fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    sys::fstatfs_magic(fd).is_ok_and(|m| m == PROC_SUPER_MAGIC)
}

/// Writes `value` to /proc/sys/<key> inside the container after checking that the opened
/// file is on procfs and is not hidden under a bind mount.
pub fn write_sysctl(key: &str, value: &str) -> Result<(), SetupError> {
    let rel = format!("sys/{}", key.replace('.', "/"));
    let proc_root = Root::open("/proc").ctx(|| "opening /proc".into())?;
    if !is_procfs(proc_root.as_fd()) {
        return Err(SetupError::invalid("sysctl: /proc is not procfs"));
    }
    let h = proc_root
        .resolve_nofollow(&rel)
        .ctx(|| format!("sysctl {key}: resolving /proc/{rel}"))?;
    let mut f = h
        .reopen(OpenFlags::O_WRONLY | OpenFlags::O_CLOEXEC)
        .ctx(|| format!("sysctl {key}: opening"))?;
    if !is_procfs(f.as_fd()) {
        return Err(SetupError::invalid(format!(
            "sysctl {key}: /proc/{rel} is not on procfs (overmounted?): refusing to write"
        )));
    }
    let proc_mnt = mount_id(proc_root.as_fd());
    let file_mnt = mount_id(f.as_fd());
    if proc_mnt.is_some() && proc_mnt != file_mnt {
        return Err(SetupError::invalid(format!(
            "sysctl {key}: /proc/{rel} is under another mount: refusing to write"
        )));
    }
    f.write_all(value.as_bytes())
        .ctx(|| format!("sysctl {key}={value}"))
}

/// The mount id of what `fd` refers to (statx STX_MNT_ID).
fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// How many threads this process has (field 20 of /proc/self/stat).
pub fn own_thread_count() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')', starting with field 3.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("unexpected /proc/self/stat format"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    50 1 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(m[0].optional, vec!["shared:5"]);
        assert_eq!(hierarchy_key(&m[0].super_options), "cpu");
        assert_eq!(m[1].fs_type, "cgroup2");
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn hierarchy_keys() {
        assert_eq!(hierarchy_key("rw,cpu,cpuacct"), "cpu,cpuacct");
        assert_eq!(hierarchy_key("rw,name=systemd"), "name=systemd");
        assert_eq!(
            hierarchy_key("rw,xattr,release_agent=/x,name=systemd"),
            "name=systemd"
        );
    }

    #[test]
    fn own_proc_is_procfs() {
        let f = std::fs::File::open("/proc/self").unwrap();
        assert!(is_procfs(f.as_fd()));
        let t = std::fs::File::open("/").unwrap();
        assert!(!is_procfs(t.as_fd()));
    }
}
