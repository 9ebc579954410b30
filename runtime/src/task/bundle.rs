//! One container's OCI bundle: config.json built from its plan, its image config and the task's
//! sandbox, next to an overlay rootfs from the image store. Docker's defaults where ECS leaves
//! something open (capability set, /dev/shm 64 MiB, masked paths).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::sandbox::Sandbox;
use super::Error;
use berth_taskdef::plan::ContainerPlan;
use berth_taskdef::{Process, TaskPlan};

/// Docker's default capability set, which ECS containers get before linuxParameters.capabilities.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's /dev/shm size when sharedMemorySize is not given.
const DEFAULT_SHM_BYTES: u64 = 64 << 20;

/// Refuses what the runner cannot honour yet, before anything is made. berth_taskdef accepts such
/// fields (they are valid ECS), so the runner must say no rather than run the container
/// differently. Every field the plan carries is honoured today.
pub fn check_supported(_plan: &TaskPlan) -> Result<(), Error> {
    Ok(())
}

/// Resolves `user` ("uid", "uid:gid", "name", "name:group") against the rootfs's /etc/passwd and
/// /etc/group, read through pathrs so that a symlink in the image cannot point at a host file.
pub fn resolve_user(rootfs: &Path, user: Option<&str>) -> Result<(u32, u32, Vec<u32>), String> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok((0, 0, Vec::new()));
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let group_file = read_in_root(rootfs, "/etc/group").unwrap_or_default();
    let mut uid_gid: Option<(u32, u32)> = None;
    let mut name: Option<String> = None;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        if f[0] == user_part || f[2] == user_part {
            if let (Ok(u), Ok(g)) = (f[2].parse(), f[3].parse()) {
                uid_gid = Some((u, g));
                name = Some(f[0].to_string());
                break;
            }
        }
    }
    let (uid, mut gid) = match (uid_gid, user_part.parse::<u32>()) {
        (Some(ids), _) => ids,
        (None, Ok(uid)) => (uid, uid),
        (None, Err(_)) => {
            return Err(format!(
                "user {user_part:?} not found in the image's /etc/passwd"
            ))
        }
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_file
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group {g:?} not found in the image's /etc/group"))?,
        };
    }
    // Supplementary groups the image gives the user by name, as Docker does.
    let mut extra = Vec::new();
    if let Some(name) = name {
        for f in group_file.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

fn read_in_root(rootfs: &Path, path: &str) -> Option<String> {
    use pathrs::flags::OpenFlags;
    use std::io::Read;
    let root = pathrs::Root::open(rootfs).ok()?;
    let mut file = root
        .resolve(path)
        .ok()?
        .reopen(OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC)
        .ok()?;
    let mut text = String::new();
    // A passwd file larger than this is not one berth should parse.
    file.by_ref().take(4 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The container's config.json as JSON.
pub fn spec(
    plan: &TaskPlan,
    container: &ContainerPlan,
    process: &Process,
    rootfs: &Path,
    sandbox: &Sandbox,
    etc_files: &[(PathBuf, &str)],
) -> Result<Value, Error> {
    let at = |field: &str| format!("containerDefinitions[{}].{field}", container.index);
    let (uid, gid, additional) = resolve_user(rootfs, process.user.as_deref())
        .map_err(|m| Error::Invalid(format!("{}: {m}", at("user"))))?;

    let mut caps: Vec<String> = if container.privileged {
        caps::all().iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    let all = |list: &[String]| list.iter().any(|c| c == "ALL" || c == "CAP_ALL");
    if all(&container.linux.capabilities_add) {
        caps = caps::all().iter().map(|c| c.to_string()).collect();
    } else {
        for c in &container.linux.capabilities_add {
            if !caps.contains(c) {
                caps.push(c.clone());
            }
        }
    }
    if all(&container.linux.capabilities_drop) {
        caps.clear();
    } else {
        caps.retain(|c| !container.linux.capabilities_drop.contains(c));
    }

    let shm = container
        .linux
        .shared_memory_bytes
        .unwrap_or(DEFAULT_SHM_BYTES);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    // ipcMode none: no /dev/shm at all; task: the task's IPC namespace, one /dev/shm per container
    // (a tmpfs cannot be shared through the namespace).
    if plan.ipc_mode.as_deref() != Some("none") {
        mounts.push(
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
        );
    }
    for (source, destination) in etc_files {
        mounts.push(json!({"destination": destination, "type": "bind",
            "source": source, "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}));
    }
    for t in &container.linux.tmpfs {
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        options.extend(t.mount_options.iter().cloned());
        options.push(format!("size={}", t.size_bytes));
        mounts.push(json!({"destination": t.container_path, "type": "tmpfs",
            "source": "tmpfs", "options": options}));
    }
    let mut volume_mounts: Vec<(&str, &str, bool)> = container
        .mounts
        .iter()
        .map(|m| (m.volume.as_str(), m.container_path.as_str(), m.read_only))
        .collect();
    // volumesFrom: the source container's mountPoints, read-only if either side asks for it.
    for from in &container.volumes_from {
        if let Some(src) = plan.containers.iter().find(|c| c.name == from.container) {
            for m in &src.mounts {
                volume_mounts.push((
                    m.volume.as_str(),
                    m.container_path.as_str(),
                    m.read_only || from.read_only,
                ));
            }
        }
    }
    for (volume, path, read_only) in volume_mounts {
        let source = sandbox.volume(volume).ok_or_else(|| {
            Error::Invalid(format!("{}: no volume named {volume:?}", at("mountPoints")))
        })?;
        let mut options = vec!["rbind", "rprivate"];
        if read_only {
            options.push("ro");
        }
        mounts.push(json!({"destination": path, "type": "bind",
            "source": source, "options": options}));
    }

    let mut namespaces = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    let join = |t: &str| -> Result<Value, Error> {
        let path = sandbox
            .namespace(t)
            .ok_or_else(|| Error::Invalid(format!("task has no {t} namespace")))?;
        Ok(json!({"type": t, "path": path}))
    };
    // pidMode task: the task's namespace (pid 1 is its holder); otherwise one per container.
    if plan.pid_mode.as_deref() == Some("task") {
        namespaces.push(join("pid")?);
    } else {
        namespaces.push(json!({"type": "pid"}));
    }
    if container.disable_networking {
        namespaces.push(json!({"type": "network"}));
    } else {
        namespaces.push(join("network")?);
    }
    let mut hostname = None;
    match &container.hostname {
        Some(h) => {
            namespaces.push(json!({"type": "uts"}));
            hostname = Some(h.clone());
        }
        None => namespaces.push(join("uts")?),
    }
    match plan.ipc_mode.as_deref() {
        Some("task") => namespaces.push(join("ipc")?),
        _ => namespaces.push(json!({"type": "ipc"})),
    }

    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "cpu": {"shares": container.cpu_shares},
    });
    let mut memory = serde_json::Map::new();
    if let Some(limit) = container.memory_limit_bytes {
        memory.insert("limit".into(), json!(limit));
    }
    if let Some(soft) = container.memory_reservation_bytes {
        memory.insert("reservation".into(), json!(soft));
    }
    if let Some(swap) = container.max_swap_bytes {
        // OCI swap is memory+swap; maxSwap 0 means no swap at all.
        let limit = container.memory_limit_bytes.unwrap_or(0);
        if limit > 0 {
            memory.insert("swap".into(), json!(limit.saturating_add(swap)));
        }
    }
    if let Some(s) = container.swappiness {
        memory.insert("swappiness".into(), json!(s));
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
    }
    let mut devices = Vec::new();
    for d in &container.linux.devices {
        let meta = fs::metadata(&d.host_path).map_err(|e| {
            Error::Invalid(format!(
                "{}: {}: {e}",
                at("linuxParameters.devices"),
                d.host_path
            ))
        })?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let kind = if meta.file_type().is_block_device() {
            "b"
        } else {
            "c"
        };
        let rdev = meta.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        devices.push(json!({"path": d.container_path, "type": kind,
            "major": major, "minor": minor, "fileMode": meta.mode() & 0o777,
            "uid": 0, "gid": 0}));
        let access: String = d
            .permissions
            .iter()
            .filter_map(|p| match p.as_str() {
                "read" => Some('r'),
                "write" => Some('w'),
                "mknod" => Some('m'),
                _ => None,
            })
            .collect();
        if let Some(list) = resources["devices"].as_array_mut() {
            list.push(json!({"allow": true, "type": kind, "major": major,
                "minor": minor, "access": access}));
        }
    }

    let rlimits: Vec<Value> = container
        .ulimits
        .iter()
        .map(|u| {
            let (soft, hard) = clamp_default_nofile(u);
            json!({"type": u.resource, "soft": soft, "hard": hard})
        })
        .collect();
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            // pseudoTerminal: a pty made inside the container, its master sent to the runner.
            "terminal": container.pseudo_terminal,
            "user": {"uid": uid, "gid": gid, "additionalGids": additional},
            "args": process.args,
            "env": process.env,
            "cwd": process.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            "noNewPrivileges": container.no_new_privileges,
        },
        "root": {"path": rootfs, "readonly": container.readonly_root_filesystem},
        "mounts": mounts,
        "annotations": container.labels,
        "linux": {
            "cgroupsPath": super::cgroup_path(&sandbox.id).join(&container.name),
            "resources": resources,
            "namespaces": namespaces,
            "devices": devices,
            "sysctl": container.sysctls,
            "maskedPaths": crate::spec::defaults::MASKED_PATHS,
            "readonlyPaths": crate::spec::defaults::READONLY_PATHS,
        }
    });
    if container.privileged {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
    }
    if let Some(h) = hostname {
        spec["hostname"] = json!(h);
    }
    if container.linux.init_process {
        // berth's own init becomes the container's pid 1 (see init::reaper).
        spec["annotations"][crate::init::reaper::INIT_ANNOTATION] = json!("true");
    }
    Ok(spec)
}

/// Fargate's default nofile (65535/65535) is applied by the plan when a definition sets none. On a
/// host whose own hard limit is lower, berth (without CAP_SYS_RESOURCE in its user namespace) cannot
/// raise it: the default is lowered to the host's hard limit rather than failing every task. An
/// explicit nofile above the host's limit still fails, with the kernel's reason.
fn clamp_default_nofile(u: &berth_taskdef::plan::UlimitPlan) -> (u64, u64) {
    const DEFAULT_NOFILE: u64 = 65_535; // berth_taskdef's default when a definition sets none
    let default = DEFAULT_NOFILE;
    if u.name != "nofile" || u.soft != default || u.hard != default {
        return (u.soft, u.hard);
    }
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((_, host_hard)) if host_hard < default => (host_hard, host_hard),
        _ => (u.soft, u.hard),
    }
}

/// /etc/hosts and /etc/resolv.conf for the container, written into its bundle directory and
/// bind-mounted read-only (as Docker does): localhost and the task hostname on loopback, plus
/// extraHosts; dnsServers / dnsSearchDomains when given.
pub fn etc_files(
    bundle_dir: &Path,
    task_hostname: &str,
    container: &ContainerPlan,
) -> Result<Vec<(PathBuf, &'static str)>, Error> {
    let mut hosts = format!(
        "127.0.0.1\tlocalhost {task_hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    for (name, ip) in &container.extra_hosts {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let write = |name: &str, text: &str| -> Result<PathBuf, Error> {
        let path = bundle_dir.join(name);
        fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    };
    let mut out = vec![(write("hosts", &hosts)?, "/etc/hosts")];
    if !container.dns_servers.is_empty() || !container.dns_search_domains.is_empty() {
        let mut text = String::new();
        for s in &container.dns_servers {
            text.push_str(&format!("nameserver {s}\n"));
        }
        if !container.dns_search_domains.is_empty() {
            text.push_str(&format!(
                "search {}\n",
                container.dns_search_domains.join(" ")
            ));
        }
        out.push((write("resolv.conf", &text)?, "/etc/resolv.conf"));
    }
    Ok(out)
}
