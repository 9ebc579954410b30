//! ECS task definitions run as sandboxes, end to end as root: the busybox image is built by
//! bundles/make-busybox-image.sh, imported into a private image root, and the berth binary runs
//! tasks against a private state root. Each test checks the live system (cgroup files, HTTP over
//! the port mapping, exit codes) and that a task leaves nothing behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_integration::*;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A private image root holding busybox:latest, made once per test process.
fn image_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let archive = scratch().join("task-busybox-oci.tar");
        let o = Command::new("bash")
            .arg(repo().join("bundles/make-busybox-image.sh"))
            .arg(&archive)
            .output()
            .expect("run make-busybox-image.sh");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let root = scratch().join(format!("task-images-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let o = Command::new(berth_bin())
            .args(["image", "--image-root"])
            .arg(&root)
            .arg("import")
            .arg(&archive)
            .output()
            .expect("berth image import");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        root
    })
    .clone()
}

/// A state root whose tasks are stopped and removed when the test ends, also when it fails.
struct TaskRoot(Root);

impl std::ops::Deref for TaskRoot {
    type Target = Root;
    fn deref(&self) -> &Root {
        &self.0
    }
}

impl Drop for TaskRoot {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.0.dir.join("tasks")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = task(&self.0, &["stop", &id]);
                let _ = task(&self.0, &["rm", &id]);
            }
        }
    }
}

fn task_root(name: &str) -> TaskRoot {
    TaskRoot(Root::new(&unique(name)))
}

/// `berth --root R task --image-root I ARGS…`
fn task(root: &Root, args: &[&str]) -> std::process::Output {
    let images = image_root().display().to_string();
    let mut all = vec!["task", "--image-root", images.as_str()];
    all.extend_from_slice(args);
    root.berth(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(root: &Root, id: &str) -> Value {
    let o = task(root, &["describe", id]);
    assert!(o.status.success(), "describe: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("describe JSON")
}

fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {d}"))
}

fn write_def(name: &str, def: Value) -> PathBuf {
    let p = scratch().join(format!("{}.json", unique(name)));
    std::fs::write(&p, serde_json::to_vec_pretty(&def).expect("json")).expect("write def");
    p
}

fn def(family: &str, containers: Value) -> Value {
    json!({"family": family, "cpu": "256", "memory": "512", "networkMode": "awsvpc",
           "containerDefinitions": containers})
}

/// Every per-task trace: cgroup dirs, namespace mounts, rootfs mounts.
fn assert_no_task_leftovers(root: &Root, id: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup fs")
        .flatten()
    {
        let p = h.path().join("berth-tasks").join(id);
        assert!(!p.exists(), "cgroup left behind: {}", p.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = root.dir.join("tasks").join(id).display().to_string();
    assert!(!mounts.contains(&dir), "mounts left under {dir}:\n{mounts}");
    let task_dir = root.dir.join("tasks").join(id);
    for sub in ["ns", "bundles", "containers", "volumes", "pidns"] {
        assert!(
            !task_dir.join(sub).exists(),
            "{sub} left in {}",
            task_dir.display()
        );
    }
    let procs = task_processes(id);
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

/// Processes whose cgroup is under the task's: none may outlive a task.
fn task_processes(id: &str) -> Vec<String> {
    let needle = format!("/berth-tasks/{id}/");
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("cgroup")).is_ok_and(|c| c.contains(&needle))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{controller}/berth-tasks/{id}/{file}"
    ))
    .unwrap_or_else(|e| panic!("{controller}/{id}/{file}: {e}"))
    .trim()
    .to_string()
}

#[test]
fn batch_sample_runs_in_dependency_order() {
    let root = task_root("task-batch");
    let o = task(
        &root,
        &[
            "run",
            "--name",
            "batch",
            &repo()
                .join("bundles/tasks/batch.json")
                .display()
                .to_string(),
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout {out}\nstderr {}",
        text(&o.stderr)
    );
    assert!(out.contains("report | report: 41 bytes of input"), "{out}");
    let d = describe(&root, "batch");
    assert_eq!(d["lastStatus"], "STOPPED");
    assert_eq!(d["stoppedReason"], "Essential container in task exited");
    for name in ["prepare", "work", "report"] {
        assert_eq!(container(&d, name)["exitCode"], 0, "{d}");
    }
    // SUCCESS and COMPLETE: each starts only after its dependency finished.
    let t = |n: &str, f: &str| container(&d, n)[f].as_str().unwrap_or_default().to_string();
    assert!(t("prepare", "finishedAt") <= t("work", "startedAt"), "{d}");
    assert!(t("work", "finishedAt") <= t("report", "startedAt"), "{d}");
    // Logs: Docker json-file lines with stream and time.
    let log = std::fs::read_to_string(root.dir.join("tasks/batch/logs/report.log")).expect("log");
    let line: Value =
        serde_json::from_str(log.lines().next().unwrap_or_default()).expect("json line");
    assert_eq!(line["stream"], "stdout");
    assert_eq!(line["log"], "report: 41 bytes of input\n");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let logs = task(&root, &["logs", "batch", "report"]);
    assert_eq!(text(&logs.stdout), "report: 41 bytes of input\n");
    assert_no_task_leftovers(&root, "batch");
    assert!(task(&root, &["rm", "batch"]).status.success());
    assert!(!root.dir.join("tasks/batch").exists());
}

#[test]
fn task_cgroup_values_land_in_the_cgroup_files() {
    let root = task_root("task-cg");
    let f = write_def(
        "cg",
        def(
            "cg",
            json!([{"name": "main", "image": "busybox", "cpu": 128, "memory": 256,
            "memoryReservation": 128,
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "cg", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(cgroup_file("cpu", "cg", "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file("cpu", "cg", "cpu.cfs_quota_us"), "25000");
    assert_eq!(
        cgroup_file("memory", "cg", "memory.limit_in_bytes"),
        (512u64 << 20).to_string()
    );
    assert_eq!(cgroup_file("pids", "cg", "pids.max"), "4096");
    assert_eq!(cgroup_file("cpu", "cg", "main/cpu.shares"), "128");
    assert_eq!(
        cgroup_file("memory", "cg", "main/memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        cgroup_file("memory", "cg", "main/memory.soft_limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    // The container's processes are in its child cgroup.
    let procs = cgroup_file("pids", "cg", "main/cgroup.procs");
    assert!(!procs.is_empty());
    let ls = text(&task(&root, &["ls"]).stdout);
    assert!(ls.contains("cg") && ls.contains("RUNNING"), "{ls}");
    assert!(task(&root, &["stop", "cg"]).status.success());
    let d = describe(&root, "cg");
    assert_eq!(d["stoppedReason"], "Task stopped by user");
    assert_eq!(container(&d, "main")["exitCode"], 0, "{d}");
    assert_no_task_leftovers(&root, "cg");
}

#[test]
fn memory_hog_is_oom_killed_with_the_ecs_reason() {
    let root = task_root("task-oom");
    let o = task(
        &root,
        &[
            "run",
            "--name",
            "oom",
            &repo().join("bundles/tasks/oom.json").display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", text(&o.stderr));
    let d = describe(&root, "oom");
    assert_eq!(
        d["stoppedReason"],
        "OutOfMemoryError: Container killed due to memory usage"
    );
    assert_eq!(container(&d, "hog")["exitCode"], 137);
    assert_no_task_leftovers(&root, "oom");
}

#[test]
fn cpu_hog_is_held_near_a_quarter_cpu() {
    let root = task_root("task-cpu");
    let f = write_def(
        "cpu",
        def(
            "cpu",
            json!([{"name": "hog", "image": "busybox",
            "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "cpu", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::thread::sleep(Duration::from_millis(500));
    let usage = || {
        cgroup_file("cpuacct", "cpu", "cpuacct.usage")
            .parse::<u64>()
            .unwrap_or(0)
    };
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (u1, t1) = (usage(), Instant::now());
    let share = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    eprintln!(
        "cpu hog in a 256-unit task: {:.1}% of one CPU",
        share * 100.0
    );
    assert!((0.15..=0.35).contains(&share), "cpu share {share}");
    assert!(task(&root, &["stop", "cpu"]).status.success());
    assert_no_task_leftovers(&root, "cpu");
}

#[test]
fn essential_exit_stops_the_others_within_stop_timeout() {
    let root = task_root("task-ess");
    let f = write_def(
        "ess",
        def(
            "ess",
            json!([
                {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 1; exit 3"]},
                // PID 1 sh ignores SIGTERM: only the SIGKILL after stopTimeout ends it.
                {"name": "side", "image": "busybox", "essential": false, "stopTimeout": 1, "stopTimeout": 2,
                 "command": ["sh", "-c", "sleep 600"]}
            ]),
        ),
    );
    let start = Instant::now();
    let o = task(&root, &["run", "--name", "ess", &f.display().to_string()]);
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        took >= Duration::from_secs(3),
        "stopTimeout not waited: {took:?}"
    );
    let d = describe(&root, "ess");
    assert_eq!(d["stoppedReason"], "Essential container in task exited");
    assert_eq!(container(&d, "side")["exitCode"], 137, "{d}");
    assert_no_task_leftovers(&root, "ess");
}

#[test]
fn start_and_success_conditions_and_a_failed_dependency() {
    let root = task_root("task-deps");
    let f = write_def(
        "deps",
        def(
            "deps",
            json!([
                {"name": "init", "image": "busybox", "essential": false,
                 "command": ["sh", "-c", "exit 4"]},
                {"name": "after", "image": "busybox", "essential": false,
                 "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
                 "command": ["true"]},
                {"name": "main", "image": "busybox",
                 "dependsOn": [{"containerName": "init", "condition": "START"}],
                 "command": ["sh", "-c", "sleep 1; echo done"]}
            ]),
        ),
    );
    let o = task(&root, &["run", "--name", "deps", &f.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let d = describe(&root, "deps");
    assert_eq!(container(&d, "init")["exitCode"], 4);
    let after = container(&d, "after");
    assert!(after["exitCode"].is_null(), "{d}");
    assert!(
        after["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("did not reach SUCCESS"),
        "{d}"
    );
    assert_eq!(container(&d, "main")["exitCode"], 0);
    assert_no_task_leftovers(&root, "deps");
}

#[test]
fn web_sample_healthy_dependency_and_port_mapping_serves_http() {
    let root = task_root("task-web");
    let o = task(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "web",
            &repo().join("bundles/tasks/web.json").display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d = describe(&root, "web");
    assert_eq!(container(&d, "web")["healthStatus"], "UNKNOWN", "{d}");
    assert_eq!(container(&d, "probe")["lastStatus"], "PENDING", "{d}");
    wait_for("web HEALTHY", Duration::from_secs(20), || {
        container(&describe(&root, "web"), "web")["healthStatus"] == "HEALTHY"
    });
    wait_for("probe RUNNING", Duration::from_secs(5), || {
        container(&describe(&root, "web"), "probe")["lastStatus"] == "RUNNING"
    });
    let mut s = TcpStream::connect("127.0.0.1:8080").expect("connect to the port mapping");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
        "{resp}"
    );
    assert!(resp.ends_with("hello from berth\n"), "{resp}");
    wait_for("probe output in its log", Duration::from_secs(5), || {
        text(&task(&root, &["logs", "web", "probe"]).stdout).contains("hello from berth")
    });
    assert!(task(&root, &["stop", "web"]).status.success());
    let d = describe(&root, "web");
    assert_eq!(d["lastStatus"], "STOPPED");
    assert_eq!(container(&d, "web")["exitCode"], 0, "{d}");
    assert!(
        TcpStream::connect("127.0.0.1:8080").is_err(),
        "listener left open"
    );
    assert_no_task_leftovers(&root, "web");
}

#[test]
fn health_turns_unhealthy_and_stops_the_task() {
    let root = task_root("task-health");
    let f = write_def(
        "health",
        def(
            "health",
            json!([{"name": "main", "image": "busybox",
            "command": ["sh", "-c", "touch /tmp/ok; sleep 6; rm /tmp/ok; trap 'exit 0' TERM; sleep 600 & wait"],
            "healthCheck": {"command": ["CMD", "test", "-f", "/tmp/ok"],
                            "interval": 5, "timeout": 2, "retries": 1}}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "health", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("HEALTHY", Duration::from_secs(10), || {
        container(&describe(&root, "health"), "main")["healthStatus"] == "HEALTHY"
    });
    wait_for("UNHEALTHY and stopped", Duration::from_secs(20), || {
        describe(&root, "health")["lastStatus"] == "STOPPED"
    });
    let d = describe(&root, "health");
    assert_eq!(container(&d, "main")["healthStatus"], "UNHEALTHY", "{d}");
    assert_eq!(d["stoppedReason"], "Task failed container health checks");
    assert_no_task_leftovers(&root, "health");
}

#[test]
fn restart_policy_restarts_after_the_attempt_period() {
    let root = task_root("task-restart");
    // ECS restarts only a container that ran at least restartAttemptPeriod (minimum 60 s).
    let f = write_def(
        "restart",
        def(
            "restart",
            json!([{"name": "main", "image": "busybox",
            "command": ["sh", "-c", "echo run; sleep 61; exit 5"],
            "restartPolicy": {"enabled": true, "restartAttemptPeriod": 60}}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "restart", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_for("a restart", Duration::from_secs(75), || {
        container(&describe(&root, "restart"), "main")["restartCount"] == 1
    });
    let d = describe(&root, "restart");
    assert_eq!(d["lastStatus"], "RUNNING", "{d}");
    assert_eq!(container(&d, "main")["lastStatus"], "RUNNING", "{d}");
    wait_for("second run's output", Duration::from_secs(5), || {
        text(&task(&root, &["logs", "restart", "main"]).stdout)
            .matches("run")
            .count()
            == 2
    });
    assert!(task(&root, &["stop", "restart"]).status.success());
    assert_no_task_leftovers(&root, "restart");
}

#[test]
fn volumes_user_env_and_readonly_root_are_honoured() {
    let root = task_root("task-fields");
    let mut d = def(
        "fields",
        json!([
            {"name": "writer", "image": "busybox", "essential": false,
             "command": ["sh", "-c", "echo shared > /data/f"],
             "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]},
            {"name": "main", "image": "busybox",
             "dependsOn": [{"containerName": "writer", "condition": "SUCCESS"}],
             "user": "65534:65534", "workingDirectory": "/tmp",
             "readonlyRootFilesystem": true,
             "environment": [{"name": "GREETING", "value": "hi"}],
             "ulimits": [{"name": "nofile", "softLimit": 1000, "hardLimit": 1000}],
             "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
             "command": ["sh", "-c",
                "echo $(id -u):$(id -g) $PWD $GREETING $(ulimit -n) $(cat /data/f) $(hostname); touch /x 2>/dev/null && echo rw || echo ro; grep CapEff /proc/self/status"],
             "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}]}
        ]),
    );
    d["volumes"] = json!([{"name": "data"}]);
    let f = write_def("fields", d);
    let o = task(
        &root,
        &["run", "--name", "fields", &f.display().to_string()],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("main | 65534:65534 /tmp hi 1000 shared fields"),
        "{out}"
    );
    assert!(out.contains("main | ro"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert_no_task_leftovers(&root, "fields");
}

#[test]
fn invalid_definitions_fail_with_their_path_and_leave_nothing() {
    let root = task_root("task-invalid");
    let dir = repo().join("bundles/tasks/invalid");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("invalid dir").flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let expected = std::fs::read_to_string(p.with_extension("expected")).expect("expected");
        for detach in [false, true] {
            let mut args = vec!["run"];
            if detach {
                args.push("-d");
            }
            let file = p.display().to_string();
            args.push(&file);
            let o = task(&root, &args);
            assert!(!o.status.success(), "{} was accepted", p.display());
            let err = text(&o.stderr);
            assert!(err.contains(expected.trim()), "{}: {err}", p.display());
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} invalid samples");
    // Nothing made: no task state, no cgroups, no supervisor.
    let tasks = root.dir.join("tasks");
    let left: Vec<_> = std::fs::read_dir(&tasks)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left: {left:?}");
    let ps = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .filter(|c| c.contains("--supervise") && c.contains(&root.dir.display().to_string()))
        .count();
    assert_eq!(ps, 0, "a supervisor was started");
}

/// Polls `berth task logs ID NAME` until it contains `needle`; returns the log text.
fn wait_log(root: &Root, id: &str, name: &str, needle: &str) -> String {
    let mut log = String::new();
    wait_for(
        &format!("{needle:?} in {name}'s log"),
        Duration::from_secs(15),
        || {
            log = text(&task(root, &["logs", id, name]).stdout);
            log.contains(needle)
        },
    );
    log
}

#[test]
fn init_process_reaps_orphans_and_forwards_stop_signals() {
    let root = task_root("task-init");
    let f = write_def(
        "init",
        def(
            "init",
            json!([
                // The inner sh exits at once: its background sleep is orphaned to pid 1, which
                // must reap it (no Z in ps a second later).
                {"name": "main", "image": "busybox", "stopTimeout": 20,
                 "linuxParameters": {"initProcessEnabled": true},
                 "command": ["sh", "-c",
                    concat!(
                    "sh -c 'sleep 0.1 &'; sleep 1; ps -o pid,stat,comm; echo self $$; ",
                    // init is not dumpable: no /proc/1/exe (berth's memfd) from inside; and
                    // SIGKILL from inside the namespace cannot end it.
                    "readlink /proc/1/exe >/dev/null 2>&1 || echo exe-denied; ",
                    "kill -KILL 1; sleep 0.2; echo survived-kill; ",
                    "trap 'exit 7' TERM; echo ready; sleep 600 & wait")]},
                // As pid 1, sleep would ignore SIGTERM; as init's child it dies of it: 128+15.
                {"name": "plain", "image": "busybox", "essential": false, "stopTimeout": 20,
                 "linuxParameters": {"initProcessEnabled": true},
                 "command": ["sleep", "600"]}
            ]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "init", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let log = wait_log(&root, "init", "main", "ready");
    let rows: Vec<Vec<&str>> = log
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| r.len() == 3 && r[0].parse::<u32>().is_ok())
        .collect();
    assert_eq!(
        rows.first().map(|r| (r[0], r[2])),
        Some(("1", "berth")),
        "{log}"
    );
    assert!(
        rows.iter().all(|r| !r[1].contains('Z')),
        "zombie left: {log}"
    );
    assert!(
        log.contains("self 2\n"),
        "the program is not init's first child: {log}"
    );
    assert!(log.contains("exe-denied\n"), "{log}");
    assert!(log.contains("survived-kill\n"), "{log}");
    let start = Instant::now();
    assert!(task(&root, &["stop", "init"]).status.success());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "SIGTERM not forwarded: stop took {:?}",
        start.elapsed()
    );
    let d = describe(&root, "init");
    assert_eq!(container(&d, "main")["exitCode"], 7, "{d}");
    assert_eq!(container(&d, "plain")["exitCode"], 143, "{d}");
    assert_no_task_leftovers(&root, "init");
}

#[test]
fn pid_mode_task_containers_share_one_pid_namespace() {
    let root = task_root("task-pid");
    let mut d = def(
        "pid",
        json!([
            {"name": "a", "image": "busybox", "essential": false,
             "command": ["sh", "-c",
                "sleep 601 & until ps -o args | grep -q '[s]leep 602'; do sleep 0.1; done; echo a sees b; wait"]},
            {"name": "b", "image": "busybox",
             "command": ["sh", "-c",
                "sleep 602 & until ps -o args | grep -q '[s]leep 601'; do sleep 0.1; done; echo b sees a; ps -o pid,user,comm | grep ' 1 '; wait"]}
        ]),
    );
    d["pidMode"] = json!("task");
    let f = write_def("pid", d);
    let o = task(
        &root,
        &["run", "-d", "--name", "pid", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, "pid", "a", "a sees b");
    let log = wait_log(&root, "pid", "b", "b sees a");
    // pid 1 of the task's namespace is the holder: berth's init, as nobody.
    assert!(
        log.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "nobody", "berth"]),
        "{log}"
    );
    assert!(task(&root, &["stop", "pid"]).status.success());
    assert_no_task_leftovers(&root, "pid");
}

#[test]
fn pid_mode_task_holder_is_removed_when_the_task_fails_to_start() {
    let root = task_root("task-pidfail");
    // A busy host port fails the task after its sandbox (and the holder) was made.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut d = def(
        "pidfail",
        json!([{"name": "main", "image": "busybox", "command": ["true"],
                "portMappings": [{"containerPort": port}]}]),
    );
    d["pidMode"] = json!("task");
    let f = write_def("pidfail", d);
    let o = task(
        &root,
        &["run", "--name", "pidfail", &f.display().to_string()],
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&o.stderr)
    );
    assert_no_task_leftovers(&root, "pidfail");
    assert!(!root.dir.join("tasks/pidfail").exists());
}

/// berth-check and the libraries it needs in one directory, for a task to mount read-only as a
/// host volume and run through the dynamic loader (the busybox image has no libc).
fn checker_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join(format!("task-checker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("checker dir");
        let checker = berth_bin().with_file_name("berth-check");
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cp {c} {d}/berth-check && for l in $(ldd {c} | grep -o '/[^ ]*'); do cp -L $l {d}/; done",
                c = checker.display(),
                d = dir.display()
            ))
            .output()
            .expect("copy berth-check");
        assert!(o.status.success(), "{}", text(&o.stderr));
        dir
    })
    .clone()
}

/// A command running berth-check from the `/check` mount.
fn checker_command(args: &[&str]) -> Value {
    let mut cmd = vec![
        "/check/ld-linux-x86-64.so.2",
        "--library-path",
        "/check",
        "/check/berth-check",
    ];
    cmd.extend_from_slice(args);
    json!(cmd)
}

#[test]
fn udp_port_mapping_round_trips_from_the_host() {
    let root = task_root("task-udp");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free udp port")
        .port();
    let mut d = def(
        "udp",
        // With init, stop's SIGTERM ends berth-check (which has no handler) at once.
        json!([{"name": "echo", "image": "busybox",
                "linuxParameters": {"initProcessEnabled": true},
                "command": checker_command(&["udp-echo", &port.to_string()]),
                "mountPoints": [{"sourceVolume": "check", "containerPath": "/check", "readOnly": true}],
                "portMappings": [{"containerPort": port, "protocol": "udp"}]}]),
    );
    d["volumes"] = json!([{"name": "check", "host": {"sourcePath": checker_dir()}}]);
    let f = write_def("udp", d);
    let o = task(
        &root,
        &[
            "--no-fargate",
            "run",
            "-d",
            "--name",
            "udp",
            &f.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, "udp", "echo", "listening");
    // Two clients: each gets its own session (its own upstream socket, seen by the echo server
    // as the sender port) and only its own replies; a second datagram reuses the session.
    let clients: Vec<std::net::UdpSocket> = (0..2)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("client"))
        .collect();
    let round_trip = |c: &std::net::UdpSocket, msg: &str| -> (String, String) {
        c.set_read_timeout(Some(Duration::from_millis(500))).ok();
        let mut buf = [0u8; 64];
        for _ in 0..10 {
            c.send_to(msg.as_bytes(), ("127.0.0.1", port))
                .expect("send");
            if let Ok(n) = c.recv(&mut buf) {
                let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
                let mut parts = reply.splitn(3, ':');
                assert_eq!(parts.next(), Some("echo"), "{reply}");
                let session = parts.next().unwrap_or_default().to_string();
                return (session, parts.next().unwrap_or_default().to_string());
            }
        }
        panic!("no reply to {msg:?} through udp port {port}");
    };
    let mut sessions = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let (s1, body) = round_trip(c, &format!("ping {i}"));
        assert_eq!(body, format!("ping {i}"));
        let (s2, body) = round_trip(c, &format!("again {i}"));
        assert_eq!(body, format!("again {i}"));
        assert_eq!(s1, s2, "client {i}: a second datagram got a new session");
        sessions.push(s1);
    }
    assert_ne!(sessions[0], sessions[1], "two clients shared a session");
    assert!(task(&root, &["stop", "udp"]).status.success());
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
        "udp port still bound after stop"
    );
    assert_no_task_leftovers(&root, "udp");
}

#[test]
fn pseudo_terminal_output_is_logged_and_interactive_keeps_stdin_open() {
    let root = task_root("task-tty");
    let f = write_def(
        "tty",
        def(
            "tty",
            json!([
                {"name": "main", "image": "busybox", "pseudoTerminal": true,
                 "dependsOn": [{"containerName": "stdin", "condition": "COMPLETE"}],
                 "command": ["sh", "-c",
                    "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; echo to-stderr >&2"]},
                // Without interactive, stdin is /dev/null and cat ends at once with 0.
                {"name": "stdin", "image": "busybox", "essential": false, "interactive": true,
                 "command": ["sh", "-c", "timeout 1 cat; echo cat=$?"]}
            ]),
        ),
    );
    let o = task(&root, &["run", "--name", "tty", &f.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let log = std::fs::read_to_string(root.dir.join("tasks/tty/logs/main.log")).expect("log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["log"].as_str()).collect();
    // A terminal's output: one stream, CRLF line ends (as Docker logs a tty).
    assert!(lines.iter().all(|l| l["stream"] == "stdout"), "{log}");
    assert!(texts[0].starts_with("/dev/pts/"), "{log}");
    assert!(texts.contains(&"all-tty\r\n"), "{log}");
    assert!(texts.contains(&"to-stderr\r\n"), "{log}");
    let stdin = text(&task(&root, &["logs", "tty", "stdin"]).stdout);
    assert!(
        stdin.contains("cat=143"),
        "stdin was not kept open: {stdin}"
    );
    assert_no_task_leftovers(&root, "tty");
}

#[test]
fn linux_parameters_and_host_volumes_take_effect_inside() {
    let root = task_root("task-linux");
    let host_dir = scratch().join(unique("task-hostvol"));
    let ro_dir = scratch().join(unique("task-hostvol-ro"));
    std::fs::create_dir_all(&host_dir).expect("host dir");
    std::fs::create_dir_all(&ro_dir).expect("ro dir");
    std::fs::write(ro_dir.join("given"), "from-host\n").expect("seed");
    let mut d = def(
        "linux",
        json!([{"name": "main", "image": "busybox",
            "linuxParameters": {
                "sharedMemorySize": 128,
                "tmpfs": [{"containerPath": "/scratch", "size": 16,
                           "mountOptions": ["noexec", "mode=1770"]}],
                "devices": [{"hostPath": "/dev/loop-control", "containerPath": "/dev/lc",
                             "permissions": ["read"]}]},
            "mountPoints": [
                {"sourceVolume": "out", "containerPath": "/out"},
                {"sourceVolume": "in", "containerPath": "/in", "readOnly": true}],
            "command": ["sh", "-c", concat!(
                "grep -E ' /dev/shm | /scratch ' /proc/mounts; ",
                "echo data > /scratch/f && echo tmpfs-writable; ",
                "[ -c /dev/lc ] && echo dev-present; ",
                // Subshells: a failed redirection on `:` (a special builtin) would end sh.
                "(true < /dev/lc) && echo dev-read-ok; ",
                "(true > /dev/lc) 2>/dev/null || echo dev-write-refused; ",
                "[ -e /dev/fuse ] || echo unlisted-absent; ",
                "echo from-container > /out/written; ",
                "cat /in/given; touch /in/x 2>/dev/null || echo ro-refused")]}]),
    );
    d["volumes"] = json!([
        {"name": "out", "host": {"sourcePath": host_dir}},
        {"name": "in", "host": {"sourcePath": ro_dir}}
    ]);
    let f = write_def("linux", d);
    let o = task(
        &root,
        &[
            "--no-fargate",
            "run",
            "--name",
            "linux",
            &f.display().to_string(),
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let mount = |dest: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(3) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted: {out}"))
            .to_string()
    };
    let shm = mount("/dev/shm");
    assert!(shm.contains("size=131072k"), "sharedMemorySize: {shm}");
    let scratch_mount = mount("/scratch");
    assert!(scratch_mount.contains(" tmpfs "), "{scratch_mount}");
    for opt in ["size=16384k", "noexec", "mode=1770"] {
        assert!(scratch_mount.contains(opt), "tmpfs {opt}: {scratch_mount}");
    }
    for word in [
        "tmpfs-writable",
        "dev-present",
        "dev-read-ok",
        "dev-write-refused",
        "unlisted-absent",
        "from-host",
        "ro-refused",
    ] {
        assert!(out.contains(&format!("main | {word}")), "{word}: {out}");
    }
    assert_eq!(
        std::fs::read_to_string(host_dir.join("written")).expect("file on the host"),
        "from-container\n"
    );
    assert!(!ro_dir.join("x").exists(), "readOnly volume was written");
    // Host volumes are the host's: they stay after the task.
    assert!(host_dir.exists());
    assert_no_task_leftovers(&root, "linux");
    let _ = std::fs::remove_dir_all(&host_dir);
    let _ = std::fs::remove_dir_all(&ro_dir);
}

#[test]
fn task_volume_is_shared_by_two_running_containers() {
    let root = task_root("task-vol");
    let mut d = def(
        "vol",
        json!([
            {"name": "a", "image": "busybox", "essential": false,
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/v"}],
             "command": ["sh", "-c",
                "echo a > /v/a; until [ -f /v/b ]; do sleep 0.1; done; echo a-sees-$(cat /v/b)"]},
            {"name": "b", "image": "busybox",
             "dependsOn": [{"containerName": "a", "condition": "START"}],
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}],
             "command": ["sh", "-c",
                "echo b > /data/b; until [ -f /data/a ]; do sleep 0.1; done; echo b-sees-$(cat /data/a); sleep 1"]}
        ]),
    );
    d["volumes"] = json!([{"name": "shared"}]);
    let f = write_def("vol", d);
    let o = task(&root, &["run", "--name", "vol", &f.display().to_string()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("a | a-sees-b"), "{out}");
    assert!(out.contains("b | b-sees-a"), "{out}");
    assert_no_task_leftovers(&root, "vol");
}

#[test]
fn sidecar_sample_shares_pids_and_init_stops_at_once() {
    let root = task_root("task-sidecar");
    let sample = repo().join("bundles/tasks/sidecar.json");
    let start = Instant::now();
    let o = task(
        &root,
        &["run", "--name", "sidecar", &sample.display().to_string()],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    // app's stopTimeout is the default 30 s: only the forwarded SIGTERM makes this quick.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(out.contains("monitor | monitor sees:"), "{out}");
    assert!(
        out.contains("sleep 600"),
        "monitor does not see app's process: {out}"
    );
    let d = describe(&root, "sidecar");
    assert_eq!(container(&d, "app")["exitCode"], 143, "{d}");
    assert_no_task_leftovers(&root, "sidecar");
}

/// SIGKILLs the task's supervisor (its pid from describe) and waits until it is gone, reaped
/// or a zombie (which berth counts as gone).
fn kill_supervisor(root: &Root, id: &str) {
    let pid = describe(root, id)["supervisorPid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .expect("supervisorPid");
    assert!(pid > 1, "supervisorPid {pid}");
    sigkill(pid);
    wait_for("the supervisor to die", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim().starts_with('Z'))
            })
            .unwrap_or(true)
    });
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) with integer arguments touches no memory of ours.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// What a task whose supervisor died could leave and `task stop`/`rm` must not: on top of
/// assert_no_task_leftovers, any process in the task cgroup itself (not only below it), the
/// cgroup in any hierarchy, and an image-store lease for one of its rootfs.
fn assert_reclaimed(root: &Root, id: &str) {
    assert_no_task_leftovers(root, id);
    let cgroup = format!("/berth-tasks/{id}");
    let procs = processes_in_cgroup(&cgroup);
    assert!(procs.is_empty(), "processes left in {cgroup}: {procs:?}");
    for d in cgroup_dirs(&cgroup) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let dir = root.dir.join("tasks").join(id).display().to_string();
    for e in std::fs::read_dir(image_root().join("leases"))
        .expect("leases")
        .flatten()
    {
        let lease = std::fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!lease.contains(&dir), "lease left: {lease}");
    }
}

#[test]
fn killed_supervisor_task_stop_then_rm_removes_everything() {
    let root = task_root("task-orphan");
    let id = "orphan";
    let mut d = def(
        "orphan",
        json!([
            {"name": "a", "image": "busybox", "essential": false, "stopTimeout": 2,
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/v"}],
             "command": ["sh", "-c", "echo a-up > /v/a; echo a up; sleep 600"]},
            {"name": "b", "image": "busybox", "stopTimeout": 2,
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/v"}],
             "command": ["sh", "-c", "sleep 601 & echo b up; wait"]}
        ]),
    );
    d["volumes"] = json!([{"name": "shared"}]);
    d["pidMode"] = json!("task");
    let f = write_def("orphan", d);
    let o = task(
        &root,
        &["run", "-d", "--name", id, &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, id, "a", "a up");
    wait_log(&root, id, "b", "b up");
    let task_dir = root.dir.join("tasks").join(id);
    assert!(task_dir.join("volumes/shared/a").exists());

    kill_supervisor(&root, id);
    // The containers outlive their supervisor, and berth says so rather than STOPPED.
    let d = describe(&root, id);
    assert_eq!(d["lastStatus"], "RUNNING", "{d}");
    assert_eq!(container(&d, "a")["lastStatus"], "RUNNING", "{d}");
    assert!(!processes_in_cgroup(&format!("/berth-tasks/{id}")).is_empty());
    // rm without --force refuses a running task (as docker rm does) and names task stop.
    let o = task(&root, &["rm", id]);
    assert!(!o.status.success(), "rm of a running orphan succeeded");
    assert!(
        text(&o.stderr).contains(&format!("berth task stop {id}")),
        "{}",
        text(&o.stderr)
    );
    assert!(
        task_dir.join("task.json").exists(),
        "rm removed state anyway"
    );

    let o = task(&root, &["stop", id]);
    assert!(o.status.success(), "stop: {}", text(&o.stderr));
    let d = describe(&root, id);
    assert_eq!(d["lastStatus"], "STOPPED", "{d}");
    assert_eq!(
        d["stoppedReason"], "Task supervisor exited unexpectedly",
        "{d}"
    );
    assert_eq!(container(&d, "b")["lastStatus"], "STOPPED", "{d}");
    // stop already removed every resource; the record and logs stay for describe/logs.
    assert_reclaimed(&root, id);
    assert!(text(&task(&root, &["logs", id, "a"]).stdout).contains("a up"));

    let o = task(&root, &["rm", id]);
    assert!(o.status.success(), "rm: {}", text(&o.stderr));
    assert!(!task_dir.exists(), "{} left", task_dir.display());
    assert_reclaimed(&root, id);
}

#[test]
fn killed_supervisor_task_rm_force_or_after_exit_removes_everything() {
    let root = task_root("task-orphan-rm");
    // A container that ignores SIGTERM: rm --force must still end it (SIGKILL after stopTimeout).
    let f = write_def(
        "orphan-rm",
        def(
            "orphanrm",
            json!([
                {"name": "main", "image": "busybox", "stopTimeout": 1,
                 "command": ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"]},
                {"name": "side", "image": "busybox", "essential": false, "stopTimeout": 1,
                 "command": ["sleep", "600"]}
            ]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "force", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, "force", "main", "up");
    kill_supervisor(&root, "force");
    let o = task(&root, &["rm", "--force", "force"]);
    assert!(o.status.success(), "rm --force: {}", text(&o.stderr));
    assert!(!root.dir.join("tasks/force").exists());
    assert_reclaimed(&root, "force");

    // Containers that ended on their own after the supervisor died: the task reads STOPPED,
    // and a plain rm removes what the supervisor left (this used to fail with EBUSY).
    let f = write_def(
        "orphan-exit",
        def(
            "orphanexit",
            json!([{"name": "main", "image": "busybox",
                    "command": ["sh", "-c", "echo up; sleep 2"]}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", "exited", &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, "exited", "main", "up");
    kill_supervisor(&root, "exited");
    wait_for(
        "the orphan to read STOPPED",
        Duration::from_secs(15),
        || describe(&root, "exited")["lastStatus"] == "STOPPED",
    );
    assert!(root
        .dir
        .join("tasks/exited/bundles/main/fs/rootfs")
        .exists());
    let o = task(&root, &["rm", "exited"]);
    assert!(o.status.success(), "rm: {}", text(&o.stderr));
    assert!(!root.dir.join("tasks/exited").exists());
    assert_reclaimed(&root, "exited");
}

#[test]
fn supervisor_killed_during_task_stop_is_finished_by_task_stop() {
    let root = task_root("task-orphan-stop");
    let id = "midstop";
    // main ignores SIGTERM, so the supervisor is still waiting out its stopTimeout when killed.
    let f = write_def(
        "midstop",
        def(
            "midstop",
            json!([{"name": "main", "image": "busybox", "stopTimeout": 3,
                    "command": ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"]}]),
        ),
    );
    let o = task(
        &root,
        &["run", "-d", "--name", id, &f.display().to_string()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    wait_log(&root, id, "main", "up");
    let stop = std::thread::scope(|s| {
        let stopper = s.spawn(|| task(&root, &["stop", id]));
        wait_for("STOPPING", Duration::from_secs(10), || {
            describe(&root, id)["lastStatus"] == "STOPPING"
        });
        kill_supervisor(&root, id);
        stopper.join().expect("stop thread")
    });
    assert!(stop.status.success(), "stop: {}", text(&stop.stderr));
    let d = describe(&root, id);
    assert_eq!(d["lastStatus"], "STOPPED", "{d}");
    assert_eq!(d["stoppedReason"], "Task stopped by user", "{d}");
    assert_reclaimed(&root, id);
    let o = task(&root, &["rm", id]);
    assert!(o.status.success(), "rm: {}", text(&o.stderr));
    assert!(!root.dir.join("tasks").join(id).exists());
}
