//! Helpers for berth's integration tests: real bundles (a busybox-static rootfs plus the
//! berth-check binary and the libraries it links), the berth binary, and leak checks that
//! prove a container left nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where test bundles and state roots live.
pub fn scratch() -> PathBuf {
    let p = std::env::var_os("BERTH_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("berth-it"));
    std::fs::create_dir_all(&p).expect("create scratch dir");
    p
}

/// The workspace's target directory (tests run with cwd = the integration crate).
fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The berth binary under test: $BERTH_BIN, or the one built next to the test binary.
pub fn berth_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(b);
    }
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target_dir().join("debug"));
    let b = profile_dir.join("berth");
    assert!(
        b.exists(),
        "{} not built: run `cargo build --workspace` (or cargo test --workspace)",
        b.display()
    );
    b
}

/// A unique name for a container in this test run.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "command failed: {cmd}");
}

/// Builds (once per test process) a template rootfs: busybox-static with its applets,
/// berth-check, and the shared libraries berth-check needs.
fn template_rootfs(checker: &Path) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join(format!("rootfs-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (apt-get install busybox-static)");
        let d = dir.display();
        sh(&format!(
            "mkdir -p {d}/bin {d}/sbin {d}/etc {d}/dev {d}/proc {d}/sys {d}/tmp {d}/root {d}/usr/bin {d}/var/tmp && \
             chmod 1777 {d}/tmp {d}/var/tmp && cp {busybox} {d}/bin/busybox && \
             for a in $({d}/bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox {d}/bin/$a; done && \
             printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/:/bin/false\\n' > {d}/etc/passwd && \
             printf 'root:x:0:\\nnogroup:x:65534:\\n' > {d}/etc/group"
        ));
        let c = checker.display();
        sh(&format!("cp {c} {d}/bin/berth-check"));
        // The dynamic loader and libraries, at the same paths as on the host.
        sh(&format!(
            "for l in $(ldd {c} | grep -o '/[^ ]*'); do mkdir -p {d}$(dirname $l) && cp -L $l {d}$l; done"
        ));
        dir
    })
    .clone()
}

/// A bundle on disk: rootfs + config.json, removed on drop.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    pub id: String,
}

impl Bundle {
    /// A bundle whose process runs `args`, in its own cgroup `/berth-test/<id>`.
    pub fn new(checker: &Path, id: &str, args: &[&str]) -> Bundle {
        let dir = scratch().join(format!("bundle-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bundle dir");
        let tpl = template_rootfs(checker);
        sh(&format!("cp -a {} {}/rootfs", tpl.display(), dir.display()));
        let mut config = default_config();
        config["process"]["args"] = json!(args);
        config["linux"]["cgroupsPath"] = json!(format!("/berth-test/{id}"));
        let b = Bundle {
            dir,
            config,
            id: id.to_string(),
        };
        b.write();
        b
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_string_pretty(&self.config).expect("serialize"),
        )
        .expect("write config.json");
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn cgroup_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The config.json tests start from: the shape of `runc spec` without a terminal, with a
/// writable root so probes can write.
pub fn default_config() -> Value {
    let caps = json!([
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
        "CAP_AUDIT_WRITE"
    ]);
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["berth-check", "report"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A private state root for one test.
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    pub fn new(name: &str) -> Root {
        let dir = scratch().join(format!("state-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        Root { dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(berth_bin());
        c.arg("--root").arg(&self.dir);
        c
    }

    /// Runs berth with `args`, capturing output. Output goes through files, not pipes: a
    /// detached container inherits berth's stdio, and a pipe would never see EOF.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_stdin(args, Stdio::null())
    }

    pub fn berth_stdin(&self, args: &[&str], stdin: Stdio) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out_path = scratch().join(format!("out-{}-{n}", std::process::id()));
        let err_path = scratch().join(format!("err-{}-{n}", std::process::id()));
        let out_f = std::fs::File::create(&out_path).expect("stdout file");
        let err_f = std::fs::File::create(&err_path).expect("stderr file");
        let status = self
            .cmd()
            .args(args)
            .stdin(stdin)
            .stdout(out_f)
            .stderr(err_f)
            .status()
            .expect("run berth");
        let stdout = std::fs::read(&out_path).unwrap_or_default();
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Runs berth and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs berth with `--debug` logging into a fresh file; returns the output and what
    /// berth logged (which path it took, for tests of internal choices).
    pub fn berth_logged(&self, args: &[&str]) -> (Output, String) {
        let log = scratch().join(format!("log-{}", unique("berth")));
        let log_arg = log.display().to_string();
        let mut full = vec!["--log", &log_arg, "--debug"];
        full.extend_from_slice(args);
        let out = self.berth(&full);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        (out, text)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Best effort: delete whatever a failed test left, then the directory.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                let _ = self.berth(&["delete", "--force", &id]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a container to completion and returns (exit code, stdout, stderr).
pub fn run(root: &Root, bundle: &Bundle) -> (i32, String, String) {
    let out = root.berth(&[
        "run",
        "--bundle",
        &bundle.dir.display().to_string(),
        &bundle.id,
    ]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs berth-check report in the bundle and parses its JSON.
pub fn report(root: &Root, bundle: &Bundle) -> Value {
    let (code, out, err) = run(root, bundle);
    assert_eq!(code, 0, "container failed: stdout {out} stderr {err}");
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad report {line:?}: {e}; stderr {err}"))
}

/// Every cgroup directory the container's cgroup path could occupy on this host.
pub fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let rel = cgroup_path.trim_start_matches('/');
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        out.push(base.join(rel));
        return out;
    }
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            if e.path().is_symlink() {
                continue;
            }
            out.push(e.path().join(rel));
        }
    }
    out
}

/// Asserts that container `id` left nothing: no state dir, no cgroup in any hierarchy, no
/// mount under the bundle, no process running berth's sealed init or the container's
/// programs from the bundle.
pub fn assert_no_leftovers(root: &Root, id: &str, cgroup_path: &str, bundle_dir: &Path) {
    let state = root.dir.join(id);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    for d in cgroup_dirs(cgroup_path) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let bundle = bundle_dir.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&bundle)),
        "mount under {bundle} left behind"
    );
    let procs = processes_in_cgroup(cgroup_path);
    assert!(
        procs.is_empty(),
        "processes {procs:?} left behind in cgroup {cgroup_path}"
    );
}

/// Pids of live processes whose cgroup (any hierarchy) is `cgroup_path` or below it.
pub fn processes_in_cgroup(cgroup_path: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cg.lines().any(|l| {
            l.splitn(3, ':')
                .nth(2)
                .is_some_and(|p| p == cgroup_path || p.starts_with(&format!("{cgroup_path}/")))
        }) {
            out.push(pid);
        }
    }
    out
}
