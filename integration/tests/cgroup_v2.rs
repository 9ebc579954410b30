//! berth on a pure cgroup v2 host, with real containers: memory (OOM), cpu, pids, cpuset,
//! io, the eBPF device filter, the freezer, the cgroup namespace view, update and delete;
//! and `berth task run`: the task cgroup (cpu.max, memory.max, pids.max) with one child
//! cgroup per container, the ECS OutOfMemoryError reason, and the cleanup of a task whose
//! supervisor was SIGKILLed.
//!
//! Every test needs a cgroup v2 host and is `#[ignore]`d, so `cargo test --workspace` on
//! our cgroup v1 hosts skips them; integration/vm/v2-slice.sh builds this binary and runs
//! it with `--ignored` inside a qemu guest that is a pure cgroup v2 system. The guest
//! runs under software emulation (~15x slower than native): waits are generous.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_integration::*;
use serde_json::{json, Value};

const CHECK: &str = env!("CARGO_BIN_EXE_berth-check");
const EPERM: i64 = 1;
const EAGAIN: i64 = 11;
const EROFS: i64 = 30;

/// Asserts the host is cgroup v2 only (these tests mean nothing elsewhere).
fn require_v2() {
    assert!(
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "/sys/fs/cgroup/cgroup.controllers missing: not a cgroup v2 host; \
         run these tests with integration/vm/v2-slice.sh"
    );
}

/// The checker to put in bundles: $BERTH_CHECK (v2-slice.sh runs snapshots of the binaries,
/// safe from concurrent rebuilds of target/), else the one cargo built with this test.
fn checker() -> PathBuf {
    std::env::var_os("BERTH_CHECK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHECK))
}

/// A fresh state root and bundle running `args`.
fn setup(prefix: &str, args: &[&str]) -> (String, Root, Bundle) {
    require_v2();
    let id = unique(prefix);
    let root = Root::new(&id);
    let b = Bundle::new(&checker(), &id, args);
    (id, root, b)
}

fn bundle_arg(b: &Bundle) -> String {
    b.dir.display().to_string()
}

/// The container's cgroup directory on the host.
fn cg_dir(b: &Bundle) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(b.cgroup_path().trim_start_matches('/'))
}

fn cg_read(b: &Bundle, file: &str) -> String {
    let p = cg_dir(b).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A value of a flat-keyed cgroup file (memory.events, cpu.stat, ...).
fn cg_key(b: &Bundle, file: &str, key: &str) -> u64 {
    let text = cg_read(b, file);
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{file} has no {key}: {text}"))
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_status(root: &Root, id: &str, want: &str) {
    wait_for(&format!("{id} to be {want}"), 60, || {
        root.state(id)["status"] == want
    });
}

fn run_detached(root: &Root, b: &Bundle) {
    root.ok(&["run", "--detach", "--bundle", &bundle_arg(b), &b.id]);
    wait_status(root, &b.id, "running");
}

/// `berth run --keep`: runs to completion but keeps the container (and its cgroup) for
/// inspection. Returns (exit code, stdout, stderr).
fn run_keep(root: &Root, b: &Bundle) -> (i32, String, String) {
    let out = root.berth(&["run", "--keep", "--bundle", &bundle_arg(b), &b.id]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `create` and `exec` clone the process straight into the container's cgroup
/// (CLONE_INTO_CGROUP): no cgroup.procs write, so no wait for the threadgroup lock.
#[test]
#[ignore = "needs a cgroup v2 host: integration/vm/v2-slice.sh"]
fn create_and_exec_clone_into_the_cgroup() {
    require_v2();
    let id = unique("v2clone");
    let root = Root::new(&id);
    let b = Bundle::new(&checker(), &id, &["sleep", "300"]);
    let (created, create_log) = root.berth_logged(&["create", "--bundle", &bundle_arg(&b), &id]);
    assert!(created.status.success(), "{created:?}");
    root.ok(&["start", &id]);
    wait_status(&root, &id, "running");
    let (execd, exec_log) = root.berth_logged(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert!(execd.status.success(), "{execd:?}");
    let out = String::from_utf8_lossy(&execd.stdout);
    let text = create_log + &exec_log;
    assert!(
        text.contains("create: cloned") && text.contains("cloned_in=true"),
        "{text}"
    );
    assert!(text.contains("exec: cloned"), "{text}");
    assert_eq!(
        text.matches("cloned_in=true").count(),
        2,
        "create and exec both cloned into the cgroup: {text}"
    );
    // In its own cgroup namespace the container sees its cgroup as the root.
    assert_eq!(out.trim(), "0::/", "{out}");
    let pid = root.state(&id)["pid"].as_i64().unwrap();
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        host_view.trim(),
        format!("0::{}", b.cgroup_path()),
        "{host_view}"
    );
    delete_clean(&root, &b);
}

/// Deletes the container and asserts nothing is left, the cgroup directory included.
fn delete_clean(root: &Root, b: &Bundle) {
    root.ok(&["delete", "--force", &b.id]);
    assert!(
        !cg_dir(b).exists(),
        "berth delete left {}",
        cg_dir(b).display()
    );
    assert_no_leftovers(root, &b.id, &b.cgroup_path(), &b.dir);
}

/// The JSON lines berth-check printed (one per probe).
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON {l:?}: {e}")))
        .collect()
}

/// Runs `berth exec <id> args...` and returns the single JSON line it printed.
fn exec_json(root: &Root, id: &str, args: &[&str]) -> Value {
    let mut a = vec!["exec", id];
    a.extend_from_slice(args);
    let out = root.ok(&a);
    json_lines(&out)
        .pop()
        .unwrap_or_else(|| panic!("exec {args:?} printed no JSON: {out}"))
}

fn errno_of(v: &Value) -> i64 {
    v["errno"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errno in {v}"))
}

/// `berth update --resources <file>` with `resources` as JSON.
fn update_resources(root: &Root, b: &Bundle, resources: Value) {
    let f = b.dir.join("update.json");
    std::fs::write(&f, resources.to_string()).expect("write update.json");
    root.ok(&["update", "--resources", &f.display().to_string(), &b.id]);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn memory_max_is_enforced_and_the_oom_kill_is_reported() {
    // The allocation starts once the test creates /tmp/go: after `berth events` runs.
    let (id, root, mut b) = setup(
        "oom",
        &[
            "sh",
            "-c",
            // bounded (60 s), so a failed test cannot leave `run` waiting forever
            "i=0; while [ ! -e /tmp/go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             exec berth-check alloc 512",
        ],
    );
    b.config["linux"]["resources"] = json!({"memory": {"limit": 64 << 20, "swap": 64 << 20}});
    b.write();
    std::thread::scope(|s| {
        let runner = s.spawn(|| run_keep(&root, &b));
        wait_for("the container to exist", 60, || {
            root.berth(&["state", &id]).status.success()
        });
        let events_out = b.dir.join("events.out");
        let mut events = root
            .cmd()
            .args(["events", "--interval", "60s", &id])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&events_out).expect("events.out"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth events");
        // Its first stats line comes after it has read the OOM count it compares against.
        wait_for("berth events to start", 60, || {
            std::fs::read_to_string(&events_out).is_ok_and(|t| t.contains("\"stats\""))
        });
        std::fs::write(b.rootfs().join("tmp/go"), "").expect("write /tmp/go");
        let (code, out, err) = runner.join().expect("runner thread");
        assert_eq!(
            code, 137,
            "an OOM-killed init exits 128+SIGKILL; stdout {out} stderr {err}"
        );

        assert_eq!(cg_read(&b, "memory.max"), (64u64 << 20).to_string());
        assert_eq!(
            cg_read(&b, "memory.swap.max"),
            "0",
            "swap = limit means no swap on v2"
        );
        assert!(
            cg_key(&b, "memory.events", "oom_kill") >= 1,
            "memory.events: {}",
            cg_read(&b, "memory.events")
        );

        // `berth events` ends once the container has stopped; it polls memory.events.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = events.try_wait().expect("wait events") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = events.kill();
                let _ = events.wait();
                panic!("berth events did not exit after the container stopped");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "berth events: {status}");
        let lines = std::fs::read_to_string(&events_out).unwrap_or_default();
        let evs = json_lines(&lines);
        assert!(
            evs.iter()
                .any(|e| e["type"] == "oom" && e["id"] == id.as_str()),
            "no oom event from berth events: {lines}"
        );
    });
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn cpu_max_and_weight_come_from_quota_period_and_shares() {
    let (id, root, mut b) = setup("cpu", &["sleep", "300"]);
    b.config["linux"]["resources"] =
        json!({"cpu": {"quota": 20000, "period": 100000, "shares": 1024}});
    b.write();
    run_detached(&root, &b);
    assert_eq!(cg_read(&b, "cpu.max"), "20000 100000");
    // OCI: weight = 1 + ((shares - 2) * 9999) / 262142
    assert_eq!(
        cg_read(&b, "cpu.weight"),
        "39",
        "1 + (1022 * 9999) / 262142"
    );
    // The quota is enforced: a process spinning for a second gets throttled.
    let before = cg_key(&b, "cpu.stat", "nr_throttled");
    exec_json(&root, &id, &["berth-check", "burn", "1000"]);
    let after = cg_key(&b, "cpu.stat", "nr_throttled");
    assert!(
        after > before,
        "no throttling under cpu.max 20000 100000: {}",
        cg_read(&b, "cpu.stat")
    );

    for (shares, weight) in [("2", "1"), ("512", "20"), ("262144", "10000")] {
        root.ok(&["update", "--cpu-shares", shares, &id]);
        assert_eq!(cg_read(&b, "cpu.weight"), weight, "shares {shares}");
    }
    root.ok(&["update", "--cpu-quota=-1", &id]);
    assert_eq!(cg_read(&b, "cpu.max"), "max 100000");
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn pids_max_stops_a_fork_bomb() {
    let (_id, root, mut b) = setup("pids", &["berth-check", "fork", "100"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 16}});
    b.write();
    let (code, out, err) = run_keep(&root, &b);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    let r = json_lines(&out).pop().expect("fork report");
    let forked = r["forked"].as_i64().unwrap_or(-1);
    assert!(
        (1..16).contains(&forked),
        "pids.max 16 let {forked} forks through: {r}"
    );
    assert_eq!(
        errno_of(&r),
        EAGAIN,
        "fork past pids.max fails with EAGAIN: {r}"
    );
    assert_eq!(cg_read(&b, "pids.max"), "16");
    assert!(
        cg_key(&b, "pids.events", "max") >= 1,
        "pids.events: {}",
        cg_read(&b, "pids.events")
    );
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn cpuset_pins_cpus_and_mems() {
    let cpus = std::fs::read_to_string("/sys/fs/cgroup/cpuset.cpus.effective").unwrap_or_default();
    // The highest CPU of the host, so the pin differs from "all CPUs" whenever there are
    // several (the VM has 2).
    let last = cpus
        .trim()
        .split([',', '-'])
        .filter_map(|c| c.parse::<u32>().ok())
        .max()
        .expect("cpuset.cpus.effective of the root");
    let (_id, root, mut b) = setup(
        "cpuset",
        &[
            "sh",
            "-c",
            "grep -E '^(Cpus|Mems)_allowed_list' /proc/self/status",
        ],
    );
    b.config["linux"]["resources"] = json!({"cpu": {"cpus": last.to_string(), "mems": "0"}});
    b.write();
    let (code, out, err) = run_keep(&root, &b);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    assert!(
        out.contains(&format!("Cpus_allowed_list:\t{last}\n")),
        "{out}"
    );
    assert!(out.contains("Mems_allowed_list:\t0\n"), "{out}");
    assert_eq!(cg_read(&b, "cpuset.cpus"), last.to_string());
    assert_eq!(cg_read(&b, "cpuset.cpus.effective"), last.to_string());
    assert_eq!(cg_read(&b, "cpuset.mems"), "0");
    delete_clean(&root, &b);
}

/// A block device for io.max: the first one the guest has, else a null_blk device (the VM
/// has no disks: its root is 9p).
fn block_device() -> (u32, u32) {
    let find = || {
        let mut devs: Vec<(u32, u32)> = std::fs::read_dir("/sys/block")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let t = std::fs::read_to_string(e.path().join("dev")).ok()?;
                let (a, b) = t.trim().split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        devs.sort();
        devs.into_iter().next()
    };
    if let Some(d) = find() {
        return d;
    }
    let st = Command::new("modprobe")
        .args(["null_blk", "nr_devices=1"])
        .status()
        .expect("run modprobe");
    assert!(
        st.success(),
        "modprobe null_blk failed: no block device for io.max"
    );
    find().expect("null_blk loaded but /sys/block is empty")
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn io_weight_and_io_max_are_applied() {
    let (major, minor) = block_device();
    let (id, root, mut b) = setup("io", &["sleep", "300"]);
    b.config["linux"]["resources"] = json!({"blockIO": {
        "weight": 500,
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
    }});
    b.write();
    run_detached(&root, &b);
    let controllers = cg_read(&b, "cgroup.controllers");
    assert!(
        controllers.split(' ').any(|c| c == "io"),
        "io controller not enabled for the container: {controllers}"
    );
    let io_max = cg_read(&b, "io.max");
    assert!(
        io_max.contains(&format!(
            "{major}:{minor} rbps=1048576 wbps=max riops=max wiops=100"
        )),
        "io.max: {io_max}"
    );
    // BFQ takes the v1 weight as is; otherwise io.weight (blk-iocost) gets the converted
    // 1 + (500 - 10) * 9999 / 990 = 4950.
    let dir = cg_dir(&b);
    if dir.join("io.bfq.weight").exists() {
        assert!(
            cg_read(&b, "io.bfq.weight").starts_with("default 500"),
            "{}",
            cg_read(&b, "io.bfq.weight")
        );
    } else {
        assert!(
            dir.join("io.weight").exists(),
            "guest kernel has neither io.bfq.weight (CONFIG_BFQ_GROUP_IOSCHED, bfq loaded) nor \
             io.weight (CONFIG_BLK_CGROUP_IOCOST): blockIO.weight cannot be applied"
        );
        assert!(
            cg_read(&b, "io.weight").starts_with("default 4950"),
            "io.weight: {}",
            cg_read(&b, "io.weight")
        );
    }
    root.ok(&["update", "--blkio-weight", "1000", &id]);
    if dir.join("io.bfq.weight").exists() {
        assert!(cg_read(&b, "io.bfq.weight").starts_with("default 1000"));
    } else {
        assert!(
            cg_read(&b, "io.weight").starts_with("default 10000"),
            "io.weight: {}",
            cg_read(&b, "io.weight")
        );
    }
    delete_clean(&root, &b);
}

/// The device probes every device test runs in the container: /dev/null read-write, then
/// a character node c 1:11 (/dev/kmsg: write-only opens need no privilege, so only the
/// device cgroup can refuse them) and a block node b 7:9 (a loop device), each created
/// with mknod and opened.
const DEVICE_PROBES: &str = "berth-check open /dev/null rw; \
     berth-check mknod /dev/probe-kmsg c 1 11; \
     berth-check open /dev/probe-kmsg w; \
     berth-check open /dev/probe-kmsg r; \
     berth-check mknod /dev/probe-loop b 7 9; \
     berth-check open /dev/probe-loop r";

/// errnos of the probes above, in order.
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
    let (code, out, err) = run_keep(root, b);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    root.ok(&["delete", "--force", &b.id]);
    let v: Vec<i64> = json_lines(&out).iter().map(errno_of).collect();
    assert_eq!(v.len(), 6, "six probes: {out}");
    v
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn device_filter_denies_by_default_and_allows_what_rules_allow() {
    let (_id, root, mut b) = setup("dev", &["sh", "-c", DEVICE_PROBES]);
    // [null rw, mknod c 1:11, open w, open r, mknod b 7:9, open r]
    let deny_all = json!([{"allow": false, "access": "rwm"}]);
    assert_eq!(
        device_probes(&root, &mut b, Some(deny_all.clone())),
        vec![0, 0, EPERM, EPERM, 0, EPERM],
        "runc's default (deny all + default devices): mknod of anything, open of defaults only"
    );
    assert_eq!(
        device_probes(&root, &mut b, None),
        vec![0, 0, EPERM, EPERM, 0, EPERM],
        "no linux.resources at all must still deny non-default devices"
    );
    // containerd/docker list the defaults explicitly; the rule for c 1:11 allows rwm, then
    // a later rule takes read away again (last match wins, per access).
    let listed = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "r"}
    ]);
    assert_eq!(
        device_probes(&root, &mut b, Some(listed)),
        vec![0, 0, 0, EPERM, 0, EPERM]
    );
    // A denied mknod.
    let no_mknod = json!([
        {"allow": false, "access": "rwm"},
        {"allow": false, "type": "b", "access": "m"}
    ]);
    let v = device_probes(&root, &mut b, Some(no_mknod));
    assert_eq!(v[0], 0, "/dev/null stays usable");
    // The default `b *:* m` comes after the spec's rules (as in runc), so mknod of a block
    // node is still allowed; opening it is not.
    assert_eq!((v[4], v[5]), (0, EPERM));
    // Privileged: allow everything.
    let all = json!([{"allow": true, "access": "rwm"}]);
    let v = device_probes(&root, &mut b, Some(all));
    assert_eq!(
        &v[..3],
        &[0, 0, 0],
        "allow a *:* rwm opens c 1:11 for writing"
    );
    assert_ne!(
        v[5], EPERM,
        "allow a *:* rwm: the loop device open is up to the driver"
    );
    assert_no_leftovers(&root, &b.id, &b.cgroup_path(), &b.dir);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn update_replaces_the_device_filter() {
    let (id, root, mut b) = setup("devupd", &["sleep", "300"]);
    b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    b.write();
    run_detached(&root, &b);
    let probe = |root: &Root| {
        exec_json(
            root,
            &id,
            &["berth-check", "mknod", "/dev/probe-kmsg", "c", "1", "11"],
        );
        errno_of(&exec_json(
            root,
            &id,
            &["berth-check", "open", "/dev/probe-kmsg", "w"],
        ))
    };
    assert_eq!(probe(&root), EPERM);
    update_resources(
        &root,
        &b,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
        ]}),
    );
    // Had the old program stayed attached next to the new one, both would have to allow.
    assert_eq!(probe(&root), 0, "update did not replace the device program");
    // An update without devices leaves the filter alone.
    root.ok(&["update", "--pids-limit", "50", &id]);
    assert_eq!(probe(&root), 0);
    update_resources(
        &root,
        &b,
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    );
    assert_eq!(probe(&root), EPERM);
    assert_eq!(
        errno_of(&exec_json(
            &root,
            &id,
            &["berth-check", "open", "/dev/null", "rw"]
        )),
        0
    );
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn pause_and_resume_use_cgroup_freeze() {
    let (id, root, b) = setup(
        "freeze",
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done",
        ],
    );
    run_detached(&root, &b);
    let counter = b.rootfs().join("tmp/counter");
    let read = || std::fs::read_to_string(&counter).unwrap_or_default();
    wait_for("the counter to start", 30, || !read().is_empty());
    root.ok(&["pause", &id]);
    assert_eq!(root.state(&id)["status"], "paused");
    assert_eq!(cg_read(&b, "cgroup.freeze"), "1");
    assert!(
        cg_read(&b, "cgroup.events")
            .lines()
            .any(|l| l == "frozen 1"),
        "{}",
        cg_read(&b, "cgroup.events")
    );
    let frozen_at = read();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(read(), frozen_at, "the container kept running while paused");
    root.ok(&["resume", &id]);
    assert_eq!(root.state(&id)["status"], "running");
    assert_eq!(cg_read(&b, "cgroup.freeze"), "0");
    assert!(cg_read(&b, "cgroup.events")
        .lines()
        .any(|l| l == "frozen 0"));
    wait_for("the counter to move after resume", 30, || {
        read() != frozen_at
    });
    // Deleting a paused container works too (SIGKILL reaches frozen tasks).
    root.ok(&["pause", &id]);
    delete_clean(&root, &b);
}

/// What the container sees of its cgroup, printed by a shell inside.
const CGROUP_VIEW: &str = "cat /proc/self/cgroup; echo ---; \
     cat /sys/fs/cgroup/cgroup.controllers; echo ---; \
     grep ' /sys/fs/cgroup ' /proc/self/mountinfo; echo ---; \
     cat /sys/fs/cgroup/memory.max; echo ---; \
     mkdir /sys/fs/cgroup/child && echo mkdir-ok; \
     berth-check write /sys/fs/cgroup/pids.max";

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn cgroup_namespace_shows_the_container_its_own_cgroup_as_root() {
    let (id, root, mut b) = setup("cgns", &["sh", "-c", CGROUP_VIEW]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 96 << 20}, "pids": {"limit": 64}});
    b.write();
    let (code, out, err) = run_keep(&root, &b);
    assert_eq!(code, 0, "stdout {out} stderr {err}");
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{out}");
    assert_eq!(
        parts[0], "0::/\n",
        "/proc/self/cgroup in a cgroup namespace"
    );
    let host_controllers = cg_read(&b, "cgroup.controllers");
    assert_eq!(
        parts[1].trim(),
        host_controllers,
        "cgroup.controllers inside = the container's"
    );
    for c in ["cpu", "memory", "pids"] {
        assert!(
            parts[1].split_whitespace().any(|x| x == c),
            "{c} missing inside: {}",
            parts[1]
        );
    }
    // mountinfo: "... /sys/fs/cgroup ro,... - cgroup2 cgroup2 ..." with root "/" (the ns root)
    let mi = parts[2].trim();
    let fields: Vec<&str> = mi.split(' ').collect();
    assert!(mi.contains(" - cgroup2 "), "not a cgroup2 mount: {mi}");
    assert_eq!(
        fields.get(3),
        Some(&"/"),
        "mount root is the namespace root: {mi}"
    );
    assert!(
        fields
            .get(5)
            .is_some_and(|o| o.split(',').any(|x| x == "ro")),
        "read-only by default: {mi}"
    );
    assert_eq!(
        parts[3].trim(),
        (96u64 << 20).to_string(),
        "the container's own memory.max is at its root"
    );
    assert!(
        !parts[4].contains("mkdir-ok"),
        "mkdir in a read-only cgroupfs worked: {out}"
    );
    let w = json_lines(parts[4]).pop().expect("write probe");
    assert_eq!(errno_of(&w), EROFS, "{w}");
    root.ok(&["delete", "--force", &id]);

    // exec joins the namespace: same view.
    b.config["process"]["args"] = json!(["sleep", "300"]);
    b.write();
    run_detached(&root, &b);
    let out = root.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(out, "0::/\n", "exec'd process");
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn a_read_write_cgroupfs_lets_the_container_make_child_cgroups() {
    let (id, root, mut b) = setup("cgnsrw", &["sleep", "300"]);
    // The config's /sys/fs/cgroup mount, without "ro".
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    for m in mounts
        .iter_mut()
        .filter(|m| m["destination"] == "/sys/fs/cgroup")
    {
        m["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
    }
    b.write();
    run_detached(&root, &b);
    root.ok(&["exec", &id, "mkdir", "/sys/fs/cgroup/child"]);
    // A process that moves itself into a grandchild cgroup and stays there.
    root.ok(&[
        "exec",
        "--detach",
        &id,
        "sh",
        "-c",
        "mkdir /sys/fs/cgroup/child/grandchild && \
         echo $$ > /sys/fs/cgroup/child/grandchild/cgroup.procs && exec sleep 300",
    ]);
    let grandchild = cg_dir(&b).join("child/grandchild");
    wait_for(
        "a process in the grandchild cgroup (seen from the host)",
        60,
        || {
            std::fs::read_to_string(grandchild.join("cgroup.procs"))
                .is_ok_and(|p| !p.trim().is_empty())
        },
    );
    // The container's processes live below its cgroup: delete must remove the whole tree.
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn update_changes_memory_pids_and_cpu_of_a_running_container() {
    let (id, root, mut b) = setup("update", &["sleep", "300"]);
    b.config["linux"]["resources"] =
        json!({"memory": {"limit": 256 << 20}, "pids": {"limit": 100}});
    b.write();
    run_detached(&root, &b);
    assert_eq!(cg_read(&b, "memory.max"), (256u64 << 20).to_string());
    assert_eq!(cg_read(&b, "pids.max"), "100");
    root.ok(&[
        "update",
        "--memory",
        "48m",
        "--pids-limit",
        "42",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "100000",
        "--cpu-shares",
        "2048",
        &id,
    ]);
    assert_eq!(cg_read(&b, "memory.max"), (48u64 << 20).to_string());
    assert_eq!(cg_read(&b, "pids.max"), "42");
    assert_eq!(cg_read(&b, "cpu.max"), "30000 100000");
    assert_eq!(
        cg_read(&b, "cpu.weight"),
        "79",
        "1 + (2046 * 9999) / 262142"
    );
    // The new memory limit is enforced on what runs in the container now.
    let out = root.berth(&["exec", &id, "berth-check", "alloc", "256"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "alloc past the updated memory.max: {out:?}"
    );
    assert!(cg_key(&b, "memory.events", "oom_kill") >= 1);
    // --resources: JSON, as containerd's shim sends it.
    update_resources(
        &root,
        &b,
        json!({"memory": {"limit": -1}, "pids": {"limit": 7}}),
    );
    assert_eq!(cg_read(&b, "memory.max"), "max");
    assert_eq!(cg_read(&b, "pids.max"), "7");
    assert_eq!(
        root.state(&id)["status"],
        "running",
        "the OOM kill took only the exec'd process"
    );
    delete_clean(&root, &b);
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn delete_removes_the_cgroup_directory() {
    let (id, root, b) = setup("delete", &["sh", "-c", "sleep 300 & sleep 300 & wait"]);
    run_detached(&root, &b);
    let dir = cg_dir(&b);
    wait_for("three processes in the cgroup", 30, || {
        cg_read(&b, "cgroup.procs").lines().count() == 3
    });
    assert!(cg_read(&b, "cgroup.events")
        .lines()
        .any(|l| l == "populated 1"));
    root.ok(&["kill", &id, "KILL"]);
    wait_status(&root, &id, "stopped");
    root.ok(&["delete", &id]);
    assert!(!dir.exists(), "berth delete left {}", dir.display());
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

// ---- berth task run: the task cgroup on v2 ----

/// A private image store holding busybox:latest, imported once per test process from
/// $BERTH_V2_IMAGE (v2-slice.sh builds the archive on the host: umoci and skopeo are slow
/// under emulation), else from an archive built here by bundles/make-busybox-image.sh.
fn task_images() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let archive = std::env::var_os("BERTH_V2_IMAGE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let archive = scratch().join("v2-busybox-oci.tar");
                let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let o = Command::new("bash")
                    .arg(repo.join("bundles/make-busybox-image.sh"))
                    .arg(&archive)
                    .output()
                    .expect("run make-busybox-image.sh");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                archive
            });
        let root = scratch().join(format!("v2-images-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let o = Command::new(berth_bin())
            .args(["image", "--image-root"])
            .arg(&root)
            .args(["import", "--name", "busybox:latest"])
            .arg(&archive)
            .output()
            .expect("berth image import");
        assert!(
            o.status.success(),
            "berth image import {}: {}",
            archive.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        root
    })
    .clone()
}

/// A state root whose tasks are stopped and removed when the test ends, also when it fails.
struct TaskRoot(Root);

impl Drop for TaskRoot {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.dir.join("tasks")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.task(&["stop", &id]);
                let _ = self.task(&["rm", &id]);
            }
        }
    }
}

impl TaskRoot {
    fn new(prefix: &str) -> TaskRoot {
        require_v2();
        TaskRoot(Root::new(&unique(prefix)))
    }

    /// `berth --root R task --image-root I ARGS…`
    fn task(&self, args: &[&str]) -> Output {
        let images = task_images().display().to_string();
        let mut all = vec!["task", "--image-root", images.as_str()];
        all.extend_from_slice(args);
        self.0.berth(&all)
    }

    fn describe(&self, id: &str) -> Value {
        let o = self.task(&["describe", id]);
        assert!(o.status.success(), "describe: {}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("describe JSON")
    }

    /// Writes the task definition `def` and returns its path.
    fn def(&self, def: Value) -> String {
        std::fs::create_dir_all(&self.0.dir).expect("state dir");
        let p = self.0.dir.with_extension("json");
        std::fs::write(&p, def.to_string()).expect("write task definition");
        p.display().to_string()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn task_container<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {d}"))
}

/// A file of the task's cgroup (`sub` "" for the task itself, else a container's).
fn task_cg(id: &str, sub: &str, file: &str) -> String {
    let p = Path::new("/sys/fs/cgroup/berth-tasks")
        .join(id)
        .join(sub)
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// cpu.weight for cpu.shares by the OCI conversion libcgroups (and runc, crun) use.
fn weight_of_shares(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262142
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn task_cgroup_has_the_task_budget_and_a_child_per_container() {
    let root = TaskRoot::new("v2-task-cg");
    let id = unique("v2cg");
    let def = root.def(json!({
        "family": "v2cg", "cpu": "512", "memory": "1024", "networkMode": "awsvpc",
        "containerDefinitions": [
            {"name": "main", "image": "busybox", "cpu": 128, "memory": 256,
             "memoryReservation": 128,
             "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]},
            {"name": "side", "image": "busybox", "cpu": 256,
             "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]}
        ]
    }));
    let o = root.task(&["run", "-d", "--name", &id, &def]);
    assert!(o.status.success(), "task run -d: {}", text(&o.stderr));
    for c in ["main", "side"] {
        wait_for(&format!("processes in {c}'s cgroup"), 60, || {
            !task_cg(&id, c, "cgroup.procs").is_empty()
        });
    }

    // The task cgroup: cpu 512 units = half a CPU (512/1024 * 100000 per 100000 µs),
    // the task memory in bytes, a pids limit; the controllers enabled for its children.
    assert_eq!(task_cg(&id, "", "cpu.max"), "50000 100000");
    assert_eq!(task_cg(&id, "", "memory.max"), (1024u64 << 20).to_string());
    assert_eq!(task_cg(&id, "", "pids.max"), "4096");
    let subtree = task_cg(&id, "", "cgroup.subtree_control");
    for c in ["cpu", "memory", "pids"] {
        assert!(
            subtree.split_whitespace().any(|s| s == c),
            "{c} not enabled for the containers: {subtree}"
        );
    }
    assert_eq!(
        task_cg(&id, "", "cgroup.procs"),
        "",
        "the task cgroup itself holds no process (v2: no internal processes)"
    );

    // Each container: a child cgroup with its own weight and memory limit.
    assert_eq!(
        task_cg(&id, "main", "memory.max"),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        task_cg(&id, "main", "memory.low"),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        task_cg(&id, "main", "cpu.weight"),
        weight_of_shares(128).to_string()
    );
    assert_eq!(task_cg(&id, "side", "memory.max"), "max");
    assert_eq!(
        task_cg(&id, "side", "cpu.weight"),
        weight_of_shares(256).to_string()
    );
    assert_eq!(task_cg(&id, "side", "cpu.max"), "max 100000");
    // side's busy loop wants a whole CPU; the task's quota (half of one) holds it back.
    let throttled = || {
        task_cg(&id, "", "cpu.stat")
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("the task cgroup to be throttled", 60, || throttled() > 0);
    for c in ["main", "side"] {
        let procs = task_cg(&id, c, "cgroup.procs");
        for pid in procs.lines() {
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            assert_eq!(
                cg.trim(),
                format!("0::/berth-tasks/{id}/{c}"),
                "pid {pid} of {c}"
            );
        }
    }

    let o = root.task(&["stop", &id]);
    assert!(o.status.success(), "task stop: {}", text(&o.stderr));
    let d = root.describe(&id);
    assert_eq!(d["stoppedReason"], "Task stopped by user", "{d}");
    let dir = Path::new("/sys/fs/cgroup/berth-tasks").join(&id);
    assert!(!dir.exists(), "task stop left {}", dir.display());
    for c in ["main", "side"] {
        assert_eq!(task_container(&d, c)["exitCode"], 0, "{d}");
    }
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn task_memory_limit_oom_gives_the_ecs_out_of_memory_reason() {
    let root = TaskRoot::new("v2-task-oom");
    let id = unique("v2oom");
    // A small task outside Fargate's sizes, with no task cpu (so the task cgroup gets a weight
    // from the containers' cpu, not a quota). The hog has no memory limit of its own, so the
    // task's memory.max kills it; the kill is counted in the container's cgroup all the same.
    // It allocates once /ctl/go exists (a host volume), and ends by itself after 120 s if the
    // limit does not hold.
    let ctl = root.0.dir.with_extension("ctl");
    std::fs::create_dir_all(&ctl).expect("ctl dir");
    let def = root.def(json!({
        "family": "v2oom", "memory": "48", "networkMode": "awsvpc",
        "volumes": [{"name": "ctl", "host": {"sourcePath": ctl.display().to_string()}}],
        "containerDefinitions": [
            {"name": "hog", "image": "busybox", "essential": true, "cpu": 100,
             "mountPoints": [{"sourceVolume": "ctl", "containerPath": "/ctl"}],
             "command": ["sh", "-c",
                "i=0; while [ ! -e /ctl/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
                 exec timeout 120 tail /dev/zero"]}
        ]
    }));
    let o = root.task(&["run", "-d", "--no-fargate", "--name", &id, &def]);
    assert!(o.status.success(), "task run -d: {}", text(&o.stderr));
    wait_for("the hog's process in its cgroup", 60, || {
        !task_cg(&id, "hog", "cgroup.procs").is_empty()
    });
    assert_eq!(task_cg(&id, "", "memory.max"), (48u64 << 20).to_string());
    assert_eq!(task_cg(&id, "", "cpu.max"), "max 100000");
    assert_eq!(
        task_cg(&id, "", "cpu.weight"),
        weight_of_shares(100).to_string()
    );
    assert_eq!(task_cg(&id, "hog", "memory.max"), "max");

    std::fs::write(ctl.join("go"), "").expect("write go");
    wait_for("the task to stop", 180, || {
        root.describe(&id)["lastStatus"] == "STOPPED"
    });
    let d = root.describe(&id);
    assert_eq!(
        d["stoppedReason"], "OutOfMemoryError: Container killed due to memory usage",
        "{d}"
    );
    let hog = task_container(&d, "hog");
    assert_eq!(hog["exitCode"], 137, "{d}");
    assert_eq!(
        hog["reason"], "OutOfMemoryError: Container killed due to memory usage",
        "{d}"
    );
    let dir = Path::new("/sys/fs/cgroup/berth-tasks").join(&id);
    wait_for("the task cgroup to be removed", 60, || !dir.exists());
    let _ = std::fs::remove_dir_all(&ctl);
}

/// Live processes whose v2 cgroup (`0::/…`) is the task cgroup or below it.
fn task_cgroup_processes(id: &str) -> Vec<String> {
    let cgroup = format!("/berth-tasks/{id}");
    let below = format!("{cgroup}/");
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| {
                c.lines()
                    .filter_map(|l| l.strip_prefix("0::"))
                    .any(|p| p == cgroup || p.starts_with(&below))
            })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "cgroup v2 only: run by integration/vm/v2-slice.sh"]
fn killed_supervisor_task_stop_then_rm_leaves_no_cgroup_process_or_mount() {
    let root = TaskRoot::new("v2-task-orphan");
    let id = unique("v2orphan");
    // Two containers in a shared pid namespace (pidMode task: a pid holder in its own child
    // cgroup) with a shared volume, so the reclaim has every kind of leftover to remove.
    let def = root.def(json!({
        "family": "v2orphan", "cpu": "256", "memory": "512", "networkMode": "awsvpc",
        "pidMode": "task", "volumes": [{"name": "shared"}],
        "containerDefinitions": [
            {"name": "a", "image": "busybox", "essential": false, "stopTimeout": 2,
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/v"}],
             "command": ["sh", "-c", "echo up > /v/a; sleep 600"]},
            {"name": "b", "image": "busybox", "stopTimeout": 2,
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/v"}],
             "command": ["sh", "-c", "sleep 601 & wait"]}
        ]
    }));
    let o = root.task(&["run", "-d", "--name", &id, &def]);
    assert!(o.status.success(), "task run -d: {}", text(&o.stderr));
    for c in ["a", "b"] {
        wait_for(&format!("processes in {c}'s cgroup"), 60, || {
            !task_cg(&id, c, "cgroup.procs").is_empty()
        });
    }
    let task_dir = root.0.dir.join("tasks").join(&id);
    wait_for("a's file in the shared volume", 60, || {
        task_dir.join("volumes/shared/a").exists()
    });
    // A frozen container too: SIGTERM cannot reach it, the reclaim must thaw it.
    let freeze = Path::new("/sys/fs/cgroup/berth-tasks")
        .join(&id)
        .join("a/cgroup.freeze");
    std::fs::write(&freeze, "1").expect("freeze a");
    wait_for("a to be frozen", 60, || {
        task_cg(&id, "a", "cgroup.events").contains("frozen 1")
    });

    let d = root.describe(&id);
    let pid = d["supervisorPid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no supervisorPid in {d}"));
    assert!(pid > 1, "supervisorPid {pid}");
    // SAFETY: kill(2) with integer arguments touches no memory of ours.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill {pid}: {}", std::io::Error::last_os_error());
    wait_for("the supervisor to die", 60, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim().starts_with('Z'))
        })
    });
    let d = root.describe(&id);
    assert_eq!(d["lastStatus"], "RUNNING", "the containers outlive it: {d}");
    assert!(!task_cgroup_processes(&id).is_empty());
    let o = root.task(&["rm", &id]);
    assert!(!o.status.success(), "rm of a running orphan succeeded");

    let o = root.task(&["stop", &id]);
    assert!(o.status.success(), "task stop: {}", text(&o.stderr));
    let d = root.describe(&id);
    assert_eq!(d["lastStatus"], "STOPPED", "{d}");
    assert_eq!(
        d["stoppedReason"], "Task supervisor exited unexpectedly",
        "{d}"
    );
    let assert_gone = |when: &str| {
        let dir = Path::new("/sys/fs/cgroup/berth-tasks").join(&id);
        assert!(!dir.exists(), "{when} left {}", dir.display());
        let procs = task_cgroup_processes(&id);
        assert!(procs.is_empty(), "{when} left processes {procs:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let under = task_dir.display().to_string();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&under)).collect();
        assert!(left.is_empty(), "{when} left mounts {left:#?}");
    };
    assert_gone("task stop");

    let o = root.task(&["rm", &id]);
    assert!(o.status.success(), "task rm: {}", text(&o.stderr));
    assert!(!task_dir.exists(), "task rm left {}", task_dir.display());
    assert_gone("task rm");
}
