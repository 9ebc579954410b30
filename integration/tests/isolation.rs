//! Each config.json field group, asserted from inside the container by berth-check.

use std::path::Path;

use berth_integration::*;
use serde_json::{json, Value};

const CHECK: &str = env!("CARGO_BIN_EXE_berth-check");

fn bundle(id: &str, args: &[&str]) -> Bundle {
    Bundle::new(Path::new(CHECK), id, args)
}

fn mount<'a>(rep: &'a Value, target: &str) -> &'a Value {
    rep["mounts"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["target"] == target))
        .unwrap_or_else(|| panic!("no mount at {target}: {}", rep["mounts"]))
}

#[test]
fn namespaces_pid1_and_hostname() {
    let id = unique("ns");
    let root = Root::new(&id);
    let b = bundle(&id, &["berth-check", "report"]);
    let rep = report(&root, &b);
    assert_eq!(rep["pid"], 1, "init must be pid 1 in its pid namespace");
    assert_eq!(rep["ppid"], 0);
    assert_eq!(rep["hostname"], "berth-test");
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            rep["namespaces"][ns],
            host.display().to_string(),
            "{ns} namespace shared with host"
        );
    }
    // No user namespace was asked for: it is the host's.
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_eq!(rep["namespaces"]["user"], host_user.display().to_string());
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn mounts_and_their_flags() {
    let id = unique("mnt");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "report"]);
    let vol = scratch().join(format!("vol-{id}"));
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("hello"), "from host").unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/data", "type": "bind", "source": vol,
                       "options": ["rbind", "ro", "nosuid", "nodev"]}),
    );
    mounts.push(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["noexec", "size=1m", "mode=700"]}),
    );
    b.write();
    let rep = report(&root, &b);
    let proc_m = mount(&rep, "/proc");
    assert_eq!(proc_m["fstype"], "proc");
    let sys = mount(&rep, "/sys");
    assert_eq!(sys["fstype"], "sysfs");
    assert!(sys["options"].as_str().unwrap().starts_with("ro"), "{sys}");
    let dev = mount(&rep, "/dev");
    assert_eq!(dev["fstype"], "tmpfs");
    assert!(dev["options"].as_str().unwrap().contains("nosuid"));
    let data = mount(&rep, "/data");
    let opts = data["options"].as_str().unwrap();
    assert!(
        opts.starts_with("ro") && opts.contains("nosuid") && opts.contains("nodev"),
        "{data}"
    );
    let s = mount(&rep, "/scratch");
    assert_eq!(s["fstype"], "tmpfs");
    assert!(s["options"].as_str().unwrap().contains("noexec"));
    assert!(s["super"].as_str().unwrap().contains("size=1024k"), "{s}");
    assert!(s["super"].as_str().unwrap().contains("mode=700"), "{s}");
    let pts = mount(&rep, "/dev/pts");
    assert_eq!(pts["fstype"], "devpts");
    // The root is the bundle's rootfs, not the host's.
    assert!(mount(&rep, "/")["source"] != "");
    let _ = std::fs::remove_dir_all(vol);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn masked_and_readonly_paths() {
    let id = unique("mask");
    let root = Root::new(&id);
    let b = bundle(
        &id,
        &["sh", "-c", "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo readonly; echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-readonly"],
    );
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec!["0", "0", "readonly", "sysrq-readonly"],
        "stderr: {err}"
    );
}

#[test]
fn readonly_root_and_cwd_and_env() {
    let id = unique("ro");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["sh", "-c", "pwd; echo $GREETING; touch /x 2>/dev/null && echo rw || echo ro; touch /tmp/ok 2>/dev/null && echo tmp-rw || echo tmp-ro"]);
    b.config["root"]["readonly"] = json!(true);
    b.config["process"]["cwd"] = json!("/tmp");
    b.config["process"]["env"] = json!(["PATH=/bin", "GREETING=hello there"]);
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
    );
    b.write();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["/tmp", "hello there", "ro", "tmp-rw"]
    );
}

#[test]
fn capabilities_exact_and_inheritable_empty() {
    let id = unique("caps");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "report"]);
    let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.write();
    let rep = report(&root, &b);
    // CAP_KILL = 5, CAP_NET_BIND_SERVICE = 10 → bits 0x420.
    assert_eq!(rep["caps"]["eff"], "0000000000000420");
    assert_eq!(rep["caps"]["prm"], "0000000000000420");
    assert_eq!(rep["caps"]["bnd"], "0000000000000420");
    assert_eq!(rep["caps"]["inh"], "0000000000000000");
    assert_eq!(rep["caps"]["amb"], "0000000000000000");
    assert_eq!(rep["no_new_privs"], "1");
}

#[test]
fn non_root_user_with_groups_umask_and_ambient_caps() {
    let id = unique("user");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "report"]);
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 63});
    let caps = json!(["CAP_NET_BIND_SERVICE"]);
    b.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps,
        "permitted": caps, "inheritable": caps, "ambient": caps});
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.write();
    let rep = report(&root, &b);
    assert_eq!(rep["uid"], 1000);
    assert_eq!(rep["euid"], 1000);
    assert_eq!(rep["gid"], 1001);
    assert_eq!(rep["groups"], json!([5, 6]));
    assert_eq!(rep["umask"], 63);
    assert_eq!(rep["caps"]["eff"], "0000000000000400");
    assert_eq!(rep["caps"]["amb"], "0000000000000400");
    assert_eq!(rep["no_new_privs"], "0");
}

#[test]
fn rlimits_and_oom_score_adj() {
    let id = unique("rlim");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "report"]);
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.write();
    let rep = report(&root, &b);
    assert_eq!(rep["rlimits"]["RLIMIT_NOFILE"], json!([256, 512]));
    assert_eq!(rep["rlimits"]["RLIMIT_NPROC"], json!([100, 200]));
    assert_eq!(rep["rlimits"]["RLIMIT_CORE"], json!([0, 0]));
    assert_eq!(rep["oom_score_adj"], "500");
}

#[test]
fn seccomp_denied_syscall_returns_configured_errno() {
    let id = unique("seccomp");
    let root = Root::new(&id);
    let mut b = bundle(
        &id,
        &[
            "sh",
            "-c",
            "berth-check syscall mkdir; berth-check syscall uname; berth-check syscall getpid",
        ],
    );
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    b.write();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results[0]["errno"], 99, "mkdir: {out}");
    assert_eq!(results[1]["errno"], libc_eperm(), "uname: {out}");
    assert_eq!(results[2]["errno"], 0, "getpid: {out}");
}

fn libc_eperm() -> i32 {
    1
}

#[test]
fn seccomp_argument_filter() {
    let id = unique("secarg");
    let root = Root::new(&id);
    // personality(0xffffffff) queries; anything else is denied with EACCES.
    let mut b = bundle(&id, &["sh", "-c", "berth-check syscall sethostname"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    b.write();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["errno"], 13, "len==1 matches the rule: {out}");
}

#[test]
fn memory_limit_oom_kills_the_hog() {
    let id = unique("oom");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "alloc", "512"]);
    b.config["linux"]["resources"] =
        json!({"memory": {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}});
    b.write();
    let (code, _out, err) = run(&root, &b);
    assert_eq!(
        code, 137,
        "the hog must be SIGKILLed by the OOM killer: {err}"
    );
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let id = unique("pids");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["berth-check", "fork", "100"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.write();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    let forked = r["forked"].as_u64().unwrap();
    assert!(forked < 10, "pids.max=10 allowed {forked} forks");
    assert_eq!(r["errno"], 11, "fork must fail with EAGAIN: {out}");
}

#[test]
fn cpu_and_cgroup_files_follow_the_spec() {
    let id = unique("cpu");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["sleep", "60"]);
    b.config["linux"]["resources"] = json!({"cpu": {"quota": 50000, "period": 100000, "shares": 512},
                                              "memory": {"limit": 64 * 1024 * 1024}});
    b.write();
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    let rel = b.cgroup_path();
    let read = |p: String| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(
            read(format!("/sys/fs/cgroup{rel}/cpu.max")).trim(),
            "50000 100000"
        );
    } else {
        assert_eq!(
            read(format!("/sys/fs/cgroup/cpu{rel}/cpu.cfs_quota_us")).trim(),
            "50000"
        );
        assert_eq!(
            read(format!("/sys/fs/cgroup/cpu{rel}/cpu.cfs_period_us")).trim(),
            "100000"
        );
        assert_eq!(
            read(format!("/sys/fs/cgroup/cpu{rel}/cpu.shares")).trim(),
            "512"
        );
        assert_eq!(
            read(format!("/sys/fs/cgroup/memory{rel}/memory.limit_in_bytes")).trim(),
            "67108864"
        );
    }
    root.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn cgroupfs_is_read_only_inside() {
    let id = unique("cgro");
    let root = Root::new(&id);
    let b = bundle(&id, &["sh", "-c", "ls /sys/fs/cgroup >/dev/null && mkdir /sys/fs/cgroup/x 2>/dev/null && echo writable || echo readonly"]);
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "readonly");
}

/// The cgroup mount shows the container its own cgroup's files, with a cgroup namespace
/// (hierarchies mounted as the namespace's root) and without one (the host's directories
/// bind-mounted).
#[test]
fn cgroupfs_shows_the_containers_own_cgroup() {
    for with_ns in [true, false] {
        let id = unique("cgview");
        let root = Root::new(&id);
        let script = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
        } else {
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;              ls /sys/fs/cgroup/memory/ | grep -c '^memory.limit_in_bytes$'"
        };
        let mut b = bundle(&id, &["sh", "-c", script]);
        b.config["linux"]["resources"] =
            json!({"memory": {"limit": 67108864}, "pids": {"limit": 77}});
        if !with_ns {
            let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "cgroup");
        }
        b.write();
        let (code, out, err) = run(&root, &b);
        assert_eq!(code, 0, "cgroup ns {with_ns}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[..2],
            &["67108864", "77"],
            "cgroup ns {with_ns}: {out}"
        );
        assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
    }
}

#[test]
fn sysctl_in_the_network_namespace() {
    let id = unique("sysctl");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.write();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    let id = unique("hooks");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["sh", "-c", "echo main >> /hooklog"]);
    let log = b.rootfs().join("hooklog");
    let host_hook = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("read -r s; case \"$s\" in *'\"id\":\"{id}\"'*) echo {name} >> {} ;; *) echo {name}-nostate >> {} ;; esac", log.display(), log.display())]})
    };
    let in_container = |name: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("read -r s; case \"$s\" in *'\"id\":\"{id}\"'*) echo {name} >> /hooklog ;; *) echo {name}-nostate >> /hooklog ;; esac")]})
    };
    b.config["hooks"] = json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [in_container("startContainer")],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")]
    });
    b.write();
    let (code, _out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // poststart runs after start returns, concurrently with the process: it may land on
    // either side of "main".
    let mut expect = vec![
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
    ];
    assert_eq!(&lines[..4], &expect[..], "{text}");
    let mut rest: Vec<&str> = lines[4..6].to_vec();
    rest.sort();
    assert_eq!(rest, vec!["main", "poststart"], "{text}");
    expect = vec!["poststop"];
    assert_eq!(&lines[6..], &expect[..], "{text}");
}

#[test]
fn user_namespace_with_mappings() {
    let id = unique("userns");
    let root = Root::new(&id);
    let mut b = bundle(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; id -u; touch /tmp/f && stat -c %u /tmp/f",
        ],
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // A user namespace cannot mount sysfs without its own netns... it has one; cgroupfs in a
    // user namespace is read-only anyway.
    b.write();
    // The rootfs must be owned by the mapped root to be usable.
    let rootfs = b.rootfs();
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].split_whitespace().collect::<Vec<_>>() == ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2], "0");
    // On the host the file belongs to the mapped uid.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(rootfs.join("tmp/f")).unwrap().uid(),
        100000
    );
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

/// mknod and open probes of devices the default list allows (/dev/null) and does not
/// (c 1:11 kmsg, b 7:9 a loop device), in one container; errnos in order.
fn device_probes(root: &Root, b: &mut Bundle, devices: Option<Value>) -> Vec<i64> {
    match devices {
        Some(d) => b.config["linux"]["resources"] = json!({"devices": d}),
        None => {
            if let Some(l) = b.config["linux"].as_object_mut() {
                l.remove("resources");
            }
        }
    }
    b.write();
    let (code, out, err) = run(root, b);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    let v: Vec<i64> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let j: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            j["errno"]
                .as_i64()
                .unwrap_or_else(|| panic!("no errno in {l}"))
        })
        .collect();
    assert_eq!(v.len(), 6, "six probes: {out}");
    v
}

/// The device cgroup on v1 (the v2 eBPF filter has the same test in cgroup_v2.rs): default
/// deny with runc's default allow list, last rule wins per access bit.
#[test]
fn device_cgroup_denies_by_default_and_allows_what_rules_allow() {
    const EPERM: i64 = 1;
    let id = unique("dev");
    let root = Root::new(&id);
    let mut b = bundle(
        &id,
        &[
            "sh",
            "-c",
            "berth-check open /dev/null rw; berth-check mknod /dev/probe-kmsg c 1 11; \
             berth-check open /dev/probe-kmsg w; berth-check open /dev/probe-kmsg r; \
             berth-check mknod /dev/probe-loop b 7 9; berth-check open /dev/probe-loop r",
        ],
    );
    let deny_all = json!([{"allow": false, "access": "rwm"}]);
    assert_eq!(
        device_probes(&root, &mut b, Some(deny_all)),
        vec![0, 0, EPERM, EPERM, 0, EPERM],
        "deny all + default devices: mknod of anything, open of defaults only"
    );
    assert_eq!(
        device_probes(&root, &mut b, None),
        vec![0, 0, EPERM, EPERM, 0, EPERM],
        "no linux.resources at all must still deny non-default devices"
    );
    let listed = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "r"}
    ]);
    assert_eq!(
        device_probes(&root, &mut b, Some(listed)),
        vec![0, 0, 0, EPERM, 0, EPERM],
        "allow c 1:11 rwm then deny r: write stays allowed, read is denied"
    );
    let all = json!([{"allow": true, "access": "rwm"}]);
    let v = device_probes(&root, &mut b, Some(all));
    // (Reading /dev/kmsg is then up to the driver, which wants CAP_SYSLOG.)
    assert_eq!(
        &v[..3],
        &[0, 0, 0],
        "allow a *:* rwm opens c 1:11 for writing"
    );
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}
