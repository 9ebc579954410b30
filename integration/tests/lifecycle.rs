//! The OCI lifecycle through the berth CLI: create/start/state/kill/delete, run, exec,
//! pause/resume, ps, list, update, events — with real containers.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_integration::*;

const CHECK: &str = env!("CARGO_BIN_EXE_berth-check");

fn wait_status(root: &Root, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = root.state(id);
        if st["status"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status stayed {} (want {want})",
            st["status"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_state_kill_delete() {
    let id = unique("life");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["sleep", "300"]);
    root.ok(&["create", "--bundle", &b.dir.display().to_string(), &id]);
    let st = root.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"], "1.2.0");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(st["bundle"], b.dir.display().to_string());
    // The process waits for start: it is still berth's init, not sleep.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(comm.starts_with("berth-init"), "before start: {comm:?}");

    root.ok(&["start", &id]);
    wait_status(&root, &id, "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if comm.starts_with("sleep") {
            break;
        }
        assert!(Instant::now() < deadline, "never exec'd sleep: {comm:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Starting twice is an error naming the state.
    let out = root.berth(&["start", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is running"));

    // Deleting a running container needs --force.
    let out = root.berth(&["delete", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use delete --force"));

    root.ok(&["kill", &id, "KILL"]);
    wait_status(&root, &id, "stopped");
    assert_eq!(root.state(&id)["pid"], 0);
    root.ok(&["delete", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
    let out = root.berth(&["state", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn run_returns_exit_code_and_cleans_up() {
    let id = unique("runexit");
    let root = Root::new(&id);
    let b = Bundle::new(
        Path::new(CHECK),
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
    );
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 7);
    assert_eq!(out.trim(), "out");
    assert!(err.contains("err"));
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn run_detach_then_exec_and_ps() {
    let id = unique("exec");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["sleep", "300"]);
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    wait_status(&root, &id, "running");
    // exec with arguments after the id, options after the id too.
    let out = root.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $$ in $(hostname); cat /proc/1/cmdline",
    ]);
    assert!(out.contains("in berth-test"), "{out}");
    assert!(out.contains("sleep"), "{out}");
    // exec with --process: a JSON process.
    let proc_json = b.dir.join("proc.json");
    std::fs::write(
        &proc_json,
        r#"{"args":["sh","-c","echo from-process-json; exit 3"],"cwd":"/tmp","env":["PATH=/bin"],"user":{"uid":65534,"gid":65534}}"#,
    )
    .unwrap();
    let out = root.berth(&["exec", "--process", &proc_json.display().to_string(), &id]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-process-json"));
    // The exec'd process sees the container's pid namespace and fds 0-2 only.
    let out = root.ok(&["exec", &id, "berth-check", "report"]);
    let rep: serde_json::Value = serde_json::from_str(out.trim()).expect("report");
    assert_eq!(
        rep["fds"],
        serde_json::json!([0, 1, 2]),
        "exec fds: {}",
        rep["fds"]
    );
    assert_eq!(rep["caps"]["inh"], "0000000000000000");
    // ps lists init and nothing else once exec'd processes are gone.
    let pids: Vec<i64> = serde_json::from_str(&root.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![root.state(&id)["pid"].as_i64().unwrap()]);
    let table = root.ok(&["ps", &id]);
    assert!(table.contains("sleep 300"), "{table}");
    // list shows it.
    let list = root.ok(&["list"]);
    assert!(list.contains(&id) && list.contains("running"), "{list}");
    let quiet = root.ok(&["list", "-q"]);
    assert_eq!(quiet.trim(), id);
    root.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn pause_and_resume_freeze_the_container() {
    let id = unique("pause");
    let root = Root::new(&id);
    let b = Bundle::new(
        Path::new(CHECK),
        &id,
        &["sh", "-c", "while :; do sleep 0.05; done"],
    );
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    wait_status(&root, &id, "running");
    root.ok(&["pause", &id]);
    assert_eq!(root.state(&id)["status"], "paused");
    let pid = root.state(&id)["pid"].as_i64().unwrap();
    // A frozen task shows state D or S with the freezer's "frozen" in /proc/<pid>/status? Use
    // the cgroup: every process of the container is frozen.
    let out = root.berth(&["pause", &id]);
    assert!(!out.status.success(), "pausing twice must fail");
    root.ok(&["resume", &id]);
    assert_eq!(root.state(&id)["status"], "running");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let out = root.berth(&["resume", &id]);
    assert!(
        !out.status.success(),
        "resuming a running container must fail"
    );
    root.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn kill_all_signals_every_process() {
    let id = unique("killall");
    let root = Root::new(&id);
    let b = Bundle::new(
        Path::new(CHECK),
        &id,
        &["sh", "-c", "sleep 300 & sleep 300 & wait"],
    );
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    wait_status(&root, &id, "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while serde_json::from_str::<Vec<i64>>(&root.ok(&["ps", "--format", "json", &id]))
        .unwrap()
        .len()
        < 3
    {
        assert!(Instant::now() < deadline, "children never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    root.ok(&["kill", "--all", &id, "9"]);
    wait_status(&root, &id, "stopped");
    root.ok(&["delete", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let id = unique("update");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["sleep", "300"]);
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    root.ok(&["update", "--memory", "64m", "--pids-limit", "42", &id]);
    let mem = cgroup_file(
        &b.cgroup_path(),
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let pids = cgroup_file(&b.cgroup_path(), "pids", "pids.max", "pids.max");
    assert_eq!(pids.trim(), "42");
    // --resources from stdin, like containerd's runc shim sends it.
    let input = b.dir.join("resources.json");
    std::fs::write(&input, br#"{"pids":{"limit":77}}"#).unwrap();
    let out = root.berth_stdin(
        &["update", "--resources", "-", &id],
        std::process::Stdio::from(std::fs::File::open(&input).unwrap()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids = cgroup_file(&b.cgroup_path(), "pids", "pids.max", "pids.max");
    assert_eq!(pids.trim(), "77");
    root.ok(&["delete", "--force", &id]);
}

/// Reads a cgroup file of the container: v1 (controller dir) or v2 (unified) name.
pub fn cgroup_file(cg: &str, controller: &str, v1: &str, v2: &str) -> String {
    let rel = cg.trim_start_matches('/');
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let p = if unified {
        format!("/sys/fs/cgroup/{rel}/{v2}")
    } else {
        format!("/sys/fs/cgroup/{controller}/{rel}/{v1}")
    };
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn events_stats_reports_memory_and_pids() {
    let id = unique("events");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["sleep", "300"]);
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    let out = root.ok(&["events", "--stats", &id]);
    let ev: serde_json::Value = serde_json::from_str(out.trim()).expect("event JSON");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert!(
        ev["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "{ev}"
    );
    assert!(
        ev["data"]["memory"]["memory"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{ev}"
    );
    root.ok(&["delete", "--force", &id]);
}

#[test]
fn features_and_spec() {
    let root = Root::new(&unique("feat"));
    let f: serde_json::Value = serde_json::from_str(&root.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMax"], "1.2.0");
    assert!(f["linux"]["namespaces"].as_array().unwrap().len() >= 7);
    let dir = scratch().join(unique("spec"));
    std::fs::create_dir_all(&dir).unwrap();
    root.ok(&["spec", "--bundle", &dir.display().to_string()]);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh"]));
    let out = root.berth(&["spec", "--bundle", &dir.display().to_string()]);
    assert!(!out.status.success(), "spec must not overwrite");
    let _ = std::fs::remove_dir_all(dir);
    let v = root.ok(&["--version"]);
    assert!(v.contains("berth"));
}

/// `run`/`exec` in the foreground with a terminal and no --console-socket: berth relays the
/// pty itself (driven through script(1), which gives berth a terminal of its own).
#[test]
fn foreground_terminal_is_relayed() {
    let id = unique("tty");
    let root = Root::new(&id);
    let mut b = Bundle::new(
        Path::new(CHECK),
        &id,
        &["sh", "-c", "tty; stty size; exit 4"],
    );
    b.config["process"]["terminal"] = serde_json::json!(true);
    b.write();
    let berth = berth_bin();
    let cmd = format!(
        "stty rows 33 cols 101; {} --root {} run --bundle {} {id}",
        berth.display(),
        root.dir.display(),
        b.dir.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);

    let id2 = unique("ttyexec");
    let b2 = Bundle::new(Path::new(CHECK), &id2, &["sleep", "60"]);
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b2.dir.display().to_string(),
        &id2,
    ]);
    let cmd = format!(
        "{} --root {} exec -t {id2} sh -c 'tty; exit 6'",
        berth.display(),
        root.dir.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    root.ok(&["delete", "--force", &id2]);
}

/// A field of /proc/<pid>/status.
fn proc_status(pid: i64, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn init_annotation_puts_berths_init_at_pid_1() {
    // run: the program is pid 2 under berth's init, and its exit code is the container's.
    let id = unique("initrun");
    let root = Root::new(&id);
    let mut b = Bundle::new(
        Path::new(CHECK),
        &id,
        &["sh", "-c", "echo pid=$$; cat /proc/1/cmdline; echo; exit 3"],
    );
    b.config["annotations"] = serde_json::json!({"berth.init": "true"});
    b.write();
    let (code, out, err) = run(&root, &b);
    assert_eq!(code, 3, "stdout {out} stderr {err}");
    assert!(out.contains("pid=2\n"), "{out}");
    assert!(out.contains("berth-init"), "{out}");
    drop(b);

    // A running one: init has the program's credentials, capabilities, no_new_privs and
    // seccomp mode, holds only stdio, and forwards SIGTERM (sleep, pid 1, would ignore it).
    let id = unique("initkill");
    let root = Root::new(&id);
    let mut b = Bundle::new(Path::new(CHECK), &id, &["sleep", "300"]);
    b.config["annotations"] = serde_json::json!({"berth.init": "true"});
    b.config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] =
        serde_json::json!({"bounding": ["CAP_KILL"], "effective": [], "permitted": []});
    b.write();
    root.ok(&["create", "--bundle", &b.dir.display().to_string(), &id]);
    root.ok(&["start", &id]);
    wait_status(&root, &id, "running");
    let init = root.state(&id)["pid"].as_i64().expect("pid");
    let mut child = 0i64;
    let deadline = Instant::now() + Duration::from_secs(5);
    while child == 0 {
        child = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmd = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if !cmd.starts_with("sleep") {
            child = 0;
        }
        assert!(Instant::now() < deadline, "init never started sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    for field in [
        "Uid",
        "Gid",
        "CapEff",
        "CapPrm",
        "CapBnd",
        "NoNewPrivs",
        "Seccomp",
    ] {
        assert_eq!(
            proc_status(init, field),
            proc_status(child, field),
            "{field} of init and program differ"
        );
    }
    assert!(proc_status(init, "Uid").starts_with("1000"));
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .expect("fd dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "init holds extra fds");
    root.ok(&["kill", &id, "TERM"]);
    wait_status(&root, &id, "stopped");
    root.ok(&["delete", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}
