//! Regression tests for the OCI runtime escape classes (shared/SECURITY.md, docs/SECURITY.md).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_integration::*;
use serde_json::{json, Value};

const CHECK: &str = env!("CARGO_BIN_EXE_berth-check");

fn bundle(id: &str, args: &[&str]) -> Bundle {
    Bundle::new(Path::new(CHECK), id, args)
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read binary")
}

fn wait_running(root: &Root, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while root.state(id)["status"] != "running" {
        assert!(Instant::now() < deadline, "never running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CVE-2019-5736: the container must never get a writable handle on the host's berth.
#[test]
fn cve_2019_5736_runtime_binary_is_never_writable_from_inside() {
    let id = unique("exe");
    let root = Root::new(&id);
    let before = sha(&berth_bin());
    let b = bundle(&id, &["sleep", "300"]);
    let bundle_dir = b.dir.display().to_string();
    root.ok(&["create", "--bundle", &bundle_dir, &id]);
    // The created container's init is berth-init, waiting for start. Its exe is the sealed
    // copy; a process in the container can neither open it for writing nor ptrace it.
    let out = root.ok(&["exec", &id, "sh", "-c",
        "readlink /proc/1/exe 2>/dev/null || echo hidden; echo x >> /proc/1/exe 2>/dev/null && echo WRITABLE || echo refused; berth-check ptrace 1"]);
    let lines: Vec<&str> = out.lines().collect();
    // Non-dumpable until exec: the container cannot even read the link.
    assert_eq!(lines[0], "hidden", "{out}");
    let pid = root.state(&id)["pid"].as_i64().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, berth_bin(), "init maps the host's berth binary");
    // Not writable even by host root: a read-only overlay (EROFS) or a sealed memfd (EPERM).
    let w = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{pid}/exe"));
    assert!(w.is_err(), "init's exe ({}) is writable", exe.display());
    root.ok(&["start", &id]);
    wait_running(&root, &id);
    // An attacker loop races every `berth exec` for /proc/<pid>/exe.
    let attacker = {
        let dir = root.dir.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            let r = Root { dir };
            let out = r.ok(&["exec", &id, "berth-check", "exe-attack", "3"]);
            std::mem::forget(r);
            out
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..15 {
        root.ok(&["exec", &id, "true"]);
    }
    let out = attacker.join().unwrap();
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["opened_for_write"], json!([]), "{out}");
    assert!(r["probes"].as_u64().unwrap() > 0);
    // A container whose program is /proc/self/exe runs the sealed copy, not the host file.
    let id2 = unique("exe2");
    let b2 = bundle(&id2, &["sh", "-c", "printf '#!/proc/self/exe\\n' > /tmp/evil; chmod +x /tmp/evil; /tmp/evil --version; echo rc=$?"]);
    let (code, out2, _) = run(&root, &b2);
    assert_eq!(code, 0);
    assert!(out2.contains("rc="), "{out2}");
    root.ok(&["delete", "--force", &id]);
    assert_eq!(sha(&berth_bin()), before, "the host berth binary changed");
}

/// CVE-2019-5736 on `berth run`'s direct path, where the set-up process is not re-executed
/// and the final exec goes through berth-dmz (runtime/src/linux/dmz.rs): an entrypoint that
/// is a "#!/proc/self/exe" script reaches berth-dmz, which refuses, never berth.
#[test]
fn cve_2019_5736_direct_run_entrypoint_never_reaches_berth() {
    let id = unique("dmz");
    let root = Root::new(&id);
    let before = sha(&berth_bin());
    let b = bundle(&id, &["/evil", "--version"]);
    let evil = b.rootfs().join("evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (out, log_text) =
        root.berth_logged(&["run", "--bundle", &b.dir.display().to_string(), &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        log_text.contains("start=Direct"),
        "not the direct path: {log_text}"
    );
    assert_eq!(
        out.status.code(),
        Some(127),
        "stdout {stdout} stderr {stderr}"
    );
    assert!(
        stderr.contains("berth-dmz: only berth runs this program"),
        "stderr {stderr}"
    );
    assert!(!stdout.contains("berth"), "berth ran inside: {stdout}");
    assert_eq!(sha(&berth_bin()), before, "the host berth binary changed");
}

/// A seccomp profile that refuses execveat (the exec into berth-dmz) keeps `run` on the
/// re-exec path, and the container runs as it would under any runtime.
#[test]
fn run_with_execveat_denied_by_seccomp_re_executes() {
    let id = unique("dmzsec");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["sh", "-c", "echo started"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.write();
    let (out, log_text) =
        root.berth_logged(&["run", "--bundle", &b.dir.display().to_string(), &id]);
    assert!(log_text.contains("start=Sealed"), "{log_text}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "started");
}

/// CVE-2024-21626: no host fd leaks into the container; cwd cannot name one.
#[test]
fn cve_2024_21626_no_leaked_fds_and_fd_cwd_refused() {
    let id = unique("fdleak");
    let root = Root::new(&id);
    let b = bundle(&id, &["berth-check", "report"]);
    let rep = report(&root, &b);
    assert_eq!(rep["fds"], json!([0, 1, 2]), "init fds: {}", rep["fds"]);
    for n in 3..64 {
        let mut b = bundle(&format!("{id}-{n}"), &["true"]);
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        b.write();
        let out = root.berth(&["run", "--bundle", &b.dir.display().to_string(), &b.id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "cwd /proc/self/fd/{n} was accepted");
        assert!(err.contains("process.cwd"), "{err}");
        assert_no_leftovers(&root, &b.id, &b.cgroup_path(), &b.dir);
    }
}

/// CVE-2021-30465: a racer swaps the mount target for a symlink to a host directory during
/// many creates; nothing is ever mounted outside the rootfs. A createContainer hook (in the
/// container's mount namespace, before pivot_root) looks for a mount at the host path.
#[test]
fn cve_2021_30465_symlink_exchange_race_never_mounts_outside() {
    let id = unique("race");
    let root = Root::new(&id);
    let target = scratch().join(format!("race-target-{id}"));
    std::fs::create_dir_all(&target).unwrap();
    let log = scratch().join(format!("race-log-{id}"));
    let mut escapes = 0;
    for i in 0..25 {
        let cid = format!("{id}-{i}");
        let mut b = bundle(&cid, &["true"]);
        let mnt = b.rootfs().join("mnt");
        std::fs::create_dir_all(mnt.join("a")).unwrap();
        let up = "../".repeat(20);
        std::os::unix::fs::symlink(format!("{up}{}", target.display()), mnt.join("b")).unwrap();
        b.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs"}));
        b.config["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("grep -q ' {} ' /proc/self/mountinfo && echo ESCAPE >> {} || true", target.display(), log.display())]}]});
        b.write();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let stop = stop.clone();
            let a = std::ffi::CString::new(mnt.join("a").display().to_string()).unwrap();
            let bb = std::ffi::CString::new(mnt.join("b").display().to_string()).unwrap();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: valid C strings; RENAME_EXCHANGE swaps two existing entries.
                    unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            a.as_ptr(),
                            libc::AT_FDCWD,
                            bb.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        );
                    }
                }
            })
        };
        let out = root.berth(&["run", "--bundle", &b.dir.display().to_string(), &cid]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        racer.join().unwrap();
        let _ = out;
        let _ = root.berth(&["delete", "--force", &cid]);
        assert_no_leftovers(&root, &cid, &b.cgroup_path(), &b.dir);
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ESCAPE")
        {
            escapes += 1;
        }
    }
    assert_eq!(escapes, 0, "a mount landed on the host path");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "files appeared in the host dir"
    );
    let _ = std::fs::remove_dir_all(&target);
    let _ = std::fs::remove_file(&log);
}

/// CVE-2019-19921 / CVE-2023-27561: /proc in the image is a symlink.
#[test]
fn proc_symlink_in_image_fails_clearly() {
    let id = unique("procsym");
    let root = Root::new(&id);
    let b = bundle(&id, &["true"]);
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("proc")).unwrap();
    let out = root.berth(&["run", "--bundle", &b.dir.display().to_string(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc is a symlink in the rootfs"), "{err}");
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

/// CVE-2025-31133: /dev/null in the image is a symlink to a sensitive procfs file.
#[test]
fn dev_null_symlink_cannot_unmask_anything() {
    let id = unique("devnull");
    let root = Root::new(&id);
    let mut b = bundle(
        &id,
        &["sh", "-c", "wc -c < /proc/timer_list; ls -l /dev/null"],
    );
    // No tmpfs on /dev: the image's own /dev is used.
    b.config["mounts"].as_array_mut().unwrap().retain(|m| {
        m["destination"] != "/dev"
            && m["destination"] != "/dev/pts"
            && m["destination"] != "/dev/shm"
            && m["destination"] != "/dev/mqueue"
    });
    b.write();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", b.rootfs().join("dev/null"))
        .unwrap();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let (code, out, err) = run(&root, &b);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
    // Either berth replaced the symlink with the real node and masked with it, or it
    // refused; it never masks through the symlink.
    if code == 0 {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "0", "timer_list not masked: {out}");
        assert!(
            lines[1].starts_with('c'),
            "/dev/null is not a char device: {out}"
        );
    } else {
        assert!(err.contains("/dev/null"), "{err}");
    }
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

/// CVE-2026-41579 class: /dev in the image is a symlink; nothing is created through it.
#[test]
fn dev_symlink_in_image_creates_nothing_elsewhere() {
    let id = unique("devsym");
    let root = Root::new(&id);
    let mut b = bundle(&id, &["true"]);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    b.write();
    std::fs::remove_dir(b.rootfs().join("dev")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("tmp/x")).unwrap();
    std::os::unix::fs::symlink("/tmp/x", b.rootfs().join("dev")).unwrap();
    let out = root.berth(&["run", "--bundle", &b.dir.display().to_string(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev in the rootfs is not a directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(b.rootfs().join("tmp/x")).unwrap().count(),
        0
    );
    assert!(!Path::new("/tmp/x/null").exists());
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

/// CVE-2022-29162: exec'd processes get no inheritable capabilities unless asked.
#[test]
fn inheritable_caps_empty_for_init_and_exec() {
    let id = unique("inh");
    let root = Root::new(&id);
    let b = bundle(&id, &["sleep", "60"]);
    root.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.dir.display().to_string(),
        &id,
    ]);
    let out = root.ok(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &id,
        "berth-check",
        "report",
    ]);
    let rep: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rep["caps"]["inh"], "0000000000000000");
    assert_eq!(rep["caps"]["amb"], "0000000000000000");
    root.ok(&["delete", "--force", &id]);
}
