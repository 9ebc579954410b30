//! Checks that need no privilege and change nothing: run before `create` touches the host,
//! so that a bad spec leaves nothing behind.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::FieldError;

/// Validates `spec` for a bundle at `bundle_dir`; returns the absolute rootfs path.
pub fn validate(spec: &Spec, bundle_dir: &Path) -> Result<PathBuf, FieldError> {
    if spec.version().is_empty() {
        return Err(FieldError::new("ociVersion", "missing"));
    }
    if !spec.version().starts_with("1.") {
        return Err(FieldError::new(
            "ociVersion",
            format!(
                "unsupported version {:?} (berth supports 1.x)",
                spec.version()
            ),
        ));
    }
    let rootfs = validate_root(spec, bundle_dir)?;
    validate_process(spec)?;
    let namespaces = validate_namespaces(spec)?;
    validate_mounts(spec, &rootfs)?;
    validate_linux(spec, &namespaces)?;
    validate_hooks(spec)?;
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !namespaces.contains(&LinuxNamespaceType::Uts)
    {
        return Err(FieldError::new(
            "hostname",
            "set, but the container has no uts namespace of its own",
        ));
    }
    Ok(rootfs)
}

fn validate_root(spec: &Spec, bundle_dir: &Path) -> Result<PathBuf, FieldError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| FieldError::new("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(FieldError::new("root.path", "empty"));
    }
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle_dir.join(root.path())
    };
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(FieldError::new(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) => {
            return Err(FieldError::new(
                "root.path",
                format!("{}: {e}", rootfs.display()),
            ))
        }
    }
    if rootfs == Path::new("/") {
        return Err(FieldError::new(
            "root.path",
            "the host's / cannot be a container root",
        ));
    }
    Ok(rootfs)
}

fn validate_process(spec: &Spec) -> Result<(), FieldError> {
    let Some(process) = spec.process() else {
        return Err(FieldError::new("process", "missing"));
    };
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(FieldError::new("process.args", "must name a program")),
    }
    if !process.cwd().is_absolute() {
        return Err(FieldError::new(
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(FieldError::new(
                format!("process.env[{i}]"),
                format!("{e:?} is not NAME=VALUE"),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err(FieldError::new(
                format!("process.rlimits[{i}]"),
                format!("soft {} exceeds hard {}", r.soft(), r.hard()),
            ));
        }
        if !seen.insert(format!("{:?}", r.typ())) {
            return Err(FieldError::new(
                format!("process.rlimits[{i}].type"),
                format!("{:?} given twice", r.typ()),
            ));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(FieldError::new(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }
    Ok(())
}

fn validate_namespaces(spec: &Spec) -> Result<HashSet<LinuxNamespaceType>, FieldError> {
    let mut types = HashSet::new();
    let Some(linux) = spec.linux() else {
        return Ok(types);
    };
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(FieldError::new(
                format!("linux.namespaces[{i}].type"),
                format!("{} given twice", ns_name(ns.typ())),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(FieldError::new(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} must be an absolute path", path.display()),
                ));
            }
            if let Err(e) = std::fs::metadata(path) {
                return Err(FieldError::new(
                    format!("linux.namespaces[{i}].path"),
                    format!("{}: {e}", path.display()),
                ));
            }
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let user_ns = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    match user_ns {
        Some(ns) if ns.path().is_none() && !has_maps => {
            return Err(FieldError::new(
                "linux.uidMappings",
                "a new user namespace needs uidMappings and gidMappings",
            ))
        }
        None if has_maps => {
            return Err(FieldError::new(
                "linux.uidMappings",
                "given, but the container has no user namespace",
            ))
        }
        _ => {}
    }
    for (field, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        for (i, m) in maps.iter().flatten().enumerate() {
            if m.size() == 0 {
                return Err(FieldError::new(format!("{field}[{i}].size"), "must be > 0"));
            }
        }
    }
    Ok(types)
}

pub(crate) fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn validate_mounts(spec: &Spec, rootfs: &Path) -> Result<(), FieldError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}].destination");
        let dest = m.destination();
        if !dest.is_absolute() {
            return Err(FieldError::new(
                field,
                format!("{} must be an absolute path", dest.display()),
            ));
        }
        if dest.components().any(|c| c == Component::ParentDir) {
            return Err(FieldError::new(
                field,
                format!("{} must not contain '..'", dest.display()),
            ));
        }
        let typ_name = m.typ().as_deref().unwrap_or("");
        if dest == Path::new("/proc") && typ_name != "proc" {
            return Err(FieldError::new(
                field,
                "only a procfs (type proc) may be mounted at /proc",
            ));
        }
        // Over-mounting procfs files redirects what the runtime writes there (LSM labels,
        // sysctls: CVE-2019-16884, CVE-2025-52881). Only the files lxcfs-style setups
        // virtualise are allowed.
        const PROC_ALLOWED: &[&str] = &[
            "/proc/cpuinfo",
            "/proc/diskstats",
            "/proc/meminfo",
            "/proc/stat",
            "/proc/swaps",
            "/proc/uptime",
            "/proc/loadavg",
            "/proc/slabinfo",
            "/proc/net/dev",
        ];
        if dest != Path::new("/proc")
            && dest.starts_with("/proc")
            && !PROC_ALLOWED.iter().any(|a| dest == Path::new(a))
        {
            return Err(FieldError::new(
                field,
                format!(
                    "{} is inside /proc: mounting over procfs is not allowed",
                    dest.display()
                ),
            ));
        }
        if let Err(msg) = check_no_escape(rootfs, dest) {
            return Err(FieldError::new(field, msg));
        }
        let typ = m.typ().as_deref().unwrap_or("");
        let is_bind = typ == "bind"
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if is_bind {
            let Some(src) = m.source() else {
                return Err(FieldError::new(
                    format!("mounts[{i}].source"),
                    "a bind mount needs a source",
                ));
            };
            if !src.is_absolute() {
                // A relative bind source is relative to the bundle (runc's behaviour);
                // checked when the mount happens.
                continue;
            }
            if let Err(e) = std::fs::symlink_metadata(src) {
                return Err(FieldError::new(
                    format!("mounts[{i}].source"),
                    format!("{}: {e}", src.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Walks the existing part of `dest` inside `rootfs`, following symlinks as the kernel would
/// inside the container, and refuses a path that climbs above the container's root.
/// Mounting itself resolves with RESOLVE_IN_ROOT (which clamps such paths), so this check
/// is not what keeps the host safe; it makes a hostile or broken image fail loudly instead
/// of silently mounting somewhere unexpected.
fn check_no_escape(rootfs: &Path, dest: &Path) -> Result<(), String> {
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = dest
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if stack.pop().is_none() {
                return Err(format!(
                    "{} resolves through a symlink outside the root filesystem",
                    dest.display()
                ));
            }
            continue;
        }
        if part == "." {
            continue;
        }
        let mut host = rootfs.to_path_buf();
        host.extend(&stack);
        host.push(&part);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            return Ok(());
        };
        if !meta.file_type().is_symlink() {
            stack.push(part);
            continue;
        }
        links += 1;
        if links > 40 {
            return Err(format!("{}: too many levels of symlinks", dest.display()));
        }
        let target = std::fs::read_link(&host).map_err(|e| format!("{}: {e}", host.display()))?;
        if target.is_absolute() {
            stack.clear();
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => pending.push(n.to_os_string()),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(())
}

fn validate_linux(spec: &Spec, namespaces: &HashSet<LinuxNamespaceType>) -> Result<(), FieldError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if let Some(cg) = linux.cgroups_path() {
        if cg.components().any(|c| c == Component::ParentDir) {
            return Err(FieldError::new(
                "linux.cgroupsPath",
                format!("{} must not contain '..'", cg.display()),
            ));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let p = d.path();
        if !p.starts_with("/dev/") || p.components().any(|c| c == Component::ParentDir) {
            return Err(FieldError::new(
                format!("linux.devices[{i}].path"),
                format!("{} must be a path under /dev", p.display()),
            ));
        }
    }
    for (i, p) in linux
        .masked_paths()
        .iter()
        .flatten()
        .chain(linux.readonly_paths().iter().flatten())
        .enumerate()
    {
        if !p.starts_with('/') {
            return Err(FieldError::new(
                format!("linux.maskedPaths/readonlyPaths[{i}]"),
                format!("{p:?} must be an absolute path"),
            ));
        }
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        let field = format!("linux.sysctl.{key}");
        if key.is_empty() || key.contains("..") || key.contains('/') && key.contains('.') {
            return Err(FieldError::new(field, "not a valid sysctl name"));
        }
        let k = key.replace('/', ".");
        let needs = if k.starts_with("net.") {
            Some(LinuxNamespaceType::Network)
        } else if k.starts_with("fs.mqueue.")
            || [
                "kernel.msgmax",
                "kernel.msgmnb",
                "kernel.msgmni",
                "kernel.sem",
            ]
            .contains(&k.as_str())
            || k.starts_with("kernel.shm")
        {
            Some(LinuxNamespaceType::Ipc)
        } else if k == "kernel.hostname" || k == "kernel.domainname" {
            Some(LinuxNamespaceType::Uts)
        } else {
            None
        };
        match needs {
            Some(ns) if !namespaces.contains(&ns) => {
                return Err(FieldError::new(
                    field,
                    format!("needs the container's own {} namespace", ns_name(ns)),
                ))
            }
            None => {
                return Err(FieldError::new(
                    field,
                    "not namespaced: setting it would change the host",
                ))
            }
            _ => {}
        }
    }
    if let Some(rp) = linux.rootfs_propagation() {
        if ![
            "",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ]
        .contains(&rp.as_str())
        {
            return Err(FieldError::new(
                "linux.rootfsPropagation",
                format!("unknown propagation {rp:?}"),
            ));
        }
    }
    Ok(())
}

fn validate_hooks(spec: &Spec) -> Result<(), FieldError> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)]
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                return Err(FieldError::new(
                    format!("hooks.{name}[{i}].path"),
                    format!("{} must be an absolute path", h.path().display()),
                ));
            }
            // startContainer hooks run inside the container, where the path may differ.
            if name != "startContainer" {
                match std::fs::metadata(h.path()) {
                    Ok(m) if m.is_file() && m.mode() & 0o111 != 0 => {}
                    Ok(_) => {
                        return Err(FieldError::new(
                            format!("hooks.{name}[{i}].path"),
                            format!("{} is not an executable file", h.path().display()),
                        ))
                    }
                    Err(e) => {
                        return Err(FieldError::new(
                            format!("hooks.{name}[{i}].path"),
                            format!("{}: {e}", h.path().display()),
                        ))
                    }
                }
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    return Err(FieldError::new(
                        format!("hooks.{name}[{i}].timeout"),
                        "must be a positive number of seconds",
                    ));
                }
            }
        }
    }
    Ok(())
}
