//! Table-driven bad input: malformed config.json and bad CLI use. Each case must fail with
//! one clear line naming the field or the state, exit non-zero, and leave nothing behind:
//! no state dir, no cgroup in any hierarchy, no mount, no process.

use std::path::Path;

use berth_integration::*;
use serde_json::{json, Value};

const CHECK: &str = env!("CARGO_BIN_EXE_berth-check");

type Edit = fn(&mut Value, &Path);

struct Case {
    name: &'static str,
    edit: Edit,
    expect: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "missing process.args", edit: |c, _| { c["process"].as_object_mut().unwrap().remove("args"); }, expect: "process.args: must name a program" },
        Case { name: "ill-typed hostname", edit: |c, _| c["hostname"] = json!(5), expect: "config.json: hostname: invalid type" },
        Case { name: "ill-typed uid", edit: |c, _| c["process"]["user"]["uid"] = json!("root"), expect: "process.user.uid: invalid type" },
        Case { name: "unknown namespace type", edit: |c, _| c["linux"]["namespaces"][0]["type"] = json!("bogus"), expect: "linux.namespaces[0].type: unknown variant `bogus`" },
        Case { name: "missing ociVersion", edit: |c, _| { c.as_object_mut().unwrap().remove("ociVersion"); }, expect: "ociVersion" },
        Case { name: "unsupported ociVersion", edit: |c, _| c["ociVersion"] = json!("2.0.0"), expect: "ociVersion: unsupported version" },
        Case { name: "empty root path", edit: |c, _| c["root"]["path"] = json!(""), expect: "root.path: empty" },
        Case { name: "root path does not exist", edit: |c, _| c["root"]["path"] = json!("no-such-rootfs"), expect: "root.path: " },
        Case { name: "relative cwd", edit: |c, _| c["process"]["cwd"] = json!("tmp"), expect: "process.cwd: \"tmp\" must be an absolute path" },
        Case { name: "relative mount destination", edit: |c, _| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "data", "type": "tmpfs", "source": "tmpfs"})), expect: "mounts[7].destination: data must be an absolute path" },
        Case { name: "mount destination with ..", edit: |c, _| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp/../../etc", "type": "tmpfs", "source": "tmpfs"})), expect: "mounts[7].destination: /tmp/../../etc must not contain '..'" },
        Case { name: "mount destination escaping through a symlink", edit: |c, b| {
            std::os::unix::fs::symlink("../../../../../../../../tmp", b.join("rootfs/escape")).unwrap();
            c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs"}));
          }, expect: "mounts[7].destination: /escape/x resolves through a symlink outside the root filesystem" },
        Case { name: "bind source missing", edit: |c, _| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]})), expect: "mounts[7].source: /no/such/dir" },
        Case { name: "mount over a procfs file", edit: |c, _| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/proc/sys/kernel/core_pattern", "type": "bind", "source": "/etc/hostname", "options": ["bind"]})), expect: "mounts[7].destination: /proc/sys/kernel/core_pattern is inside /proc" },
        Case { name: "tmpfs over /proc", edit: |c, _| c["mounts"][0] = json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}), expect: "mounts[0].destination: only a procfs (type proc) may be mounted at /proc" },
        Case { name: "args[0] not found", edit: |c, _| c["process"]["args"] = json!(["no-such-program"]), expect: "process.args[0]: \"no-such-program\" not found in $PATH" },
        Case { name: "args[0] not executable", edit: |c, _| c["process"]["args"] = json!(["/etc/passwd"]), expect: "process.args[0]: /etc/passwd is not executable" },
        Case { name: "hostname without uts namespace", edit: |c, _| { c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "uts"); }, expect: "hostname: set, but the container has no uts namespace" },
        Case { name: "duplicate namespace", edit: |c, _| c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "pid"})), expect: "linux.namespaces[6].type: pid given twice" },
        Case { name: "uid mappings without user namespace", edit: |c, _| c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]), expect: "linux.uidMappings: given, but the container has no user namespace" },
        Case { name: "rlimit soft above hard", edit: |c, _| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]), expect: "process.rlimits[0]: soft 10 exceeds hard 5" },
        Case { name: "rlimit above the host's hard limit", edit: |c, _| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1u64 << 30, "hard": 1u64 << 30}]), expect: "process.rlimits[0] (RlimitNofile" },
        Case { name: "capability the host lacks", edit: |c, _| {
            let caps = json!(["CAP_SYS_RESOURCE", "CAP_KILL"]);
            c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
          }, expect: "process.capabilities.effective: CAP_SYS_RESOURCE not available on this host" },
        Case { name: "unknown capability", edit: |c, _| c["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]), expect: "process.capabilities.bounding" },
        Case { name: "relative hook path", edit: |c, _| c["hooks"] = json!({"createRuntime": [{"path": "bin/true"}]}), expect: "hooks.createRuntime[0].path: bin/true must be an absolute path" },
        Case { name: "failing hook", edit: |c, _| c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}), expect: "hooks.createRuntime[0] /bin/false: failed" },
        Case { name: "non-namespaced sysctl", edit: |c, _| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"}), expect: "linux.sysctl.vm.swappiness: not namespaced" },
        Case { name: "bad seccomp action", edit: |c, _| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOPE"}), expect: "linux.seccomp.defaultAction" },
        Case { name: "terminal without console socket", edit: |c, _| c["process"]["terminal"] = json!(true), expect: "process.terminal is true: --console-socket is required" },
        Case { name: "device outside /dev", edit: |c, _| c["linux"]["devices"] = json!([{"path": "/etc/null", "type": "c", "major": 1, "minor": 3}]), expect: "linux.devices[0].path: /etc/null must be a path under /dev" },
        Case { name: "cgroupsPath with ..", edit: |c, _| c["linux"]["cgroupsPath"] = json!("/berth-test/../../escape"), expect: "linux.cgroupsPath: /berth-test/../../escape must not contain '..'" },
    ]
}

#[test]
fn bad_config_fails_clearly_and_leaves_nothing() {
    let mut failures = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let id = unique(&format!("bad{i}"));
        let root = Root::new(&id);
        let mut b = Bundle::new(Path::new(CHECK), &id, &["true"]);
        let cg = b.cgroup_path();
        (case.edit)(&mut b.config, &b.dir);
        b.write();
        // A foreground `run` relays a terminal itself; only `create` needs a console socket.
        let cmds: &[&str] = if case.name == "terminal without console socket" {
            &["create"]
        } else {
            &["create", "run"]
        };
        for &cmd in cmds {
            let out = root.berth(&[cmd, "--bundle", &b.dir.display().to_string(), &id]);
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            if out.status.success() {
                failures.push(format!("{}: `{cmd}` succeeded", case.name));
                let _ = root.berth(&["delete", "--force", &id]);
                continue;
            }
            if !err.contains(case.expect) {
                failures.push(format!(
                    "{}: `{cmd}` said {err:?}, expected {:?}",
                    case.name, case.expect
                ));
            }
            if err.trim().lines().count() != 1 {
                failures.push(format!(
                    "{}: `{cmd}` printed more than one line: {err:?}",
                    case.name
                ));
            }
            assert_no_leftovers(&root, &id, &cg, &b.dir);
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_json_names_the_place() {
    let id = unique("badjson");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["true"]);
    std::fs::write(
        b.dir.join("config.json"),
        "{\"ociVersion\": \"1.2.0\", \"process\": [}",
    )
    .unwrap();
    let out = root.berth(&["create", "--bundle", &b.dir.display().to_string(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json: process"), "{err}");
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    let out = root.berth(&["create", "--bundle", &b.dir.display().to_string(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json: cannot read"));
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
}

#[test]
fn bad_cli_use() {
    let id = unique("badcli");
    let root = Root::new(&id);
    let b = Bundle::new(Path::new(CHECK), &id, &["sleep", "60"]);
    let bundle = b.dir.display().to_string();
    let expect_fail = |args: &[&str], needle: &str| {
        let out = root.berth(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    };
    for bad_id in ["../x", "a/b", ".hidden", ""] {
        expect_fail(&["create", "--bundle", &bundle, bad_id], "is invalid");
        assert!(!root.dir.join(bad_id).join("state.json").exists());
    }
    expect_fail(&["create", "--bundle", &bundle], "required");
    expect_fail(
        &["create", "--bogus-flag", "--bundle", &bundle, &id],
        "--bogus-flag",
    );
    expect_fail(&["start", &id], "does not exist");
    expect_fail(&["kill", &id, "NOTASIGNAL"], "unknown signal name");
    expect_fail(&["delete", &id], "does not exist");
    // A preserved fd that is not open: refused before berth opens an fd of its own that
    // could take its number (and be handed on into the container).
    for cmd in ["create", "run"] {
        expect_fail(
            &[cmd, "--preserve-fds", "2", "--bundle", &bundle, &id],
            "--preserve-fds 2: fd 3 is not open",
        );
        assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
    }
    // A duplicate id is refused and leaves the first container intact.
    root.ok(&["create", "--bundle", &bundle, &id]);
    expect_fail(
        &["create", "--bundle", &bundle, &id],
        &format!("container {id} already exists"),
    );
    assert_eq!(root.state(&id)["status"], "created");
    root.ok(&["start", &id]);
    expect_fail(
        &["start", &id],
        "is running: only a created container can be started",
    );
    expect_fail(
        &["delete", &id],
        "is running: stop it first or use delete --force",
    );
    expect_fail(&["resume", &id], "only a paused container can be resumed");
    root.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&root, &id, &b.cgroup_path(), &b.dir);
    expect_fail(&["--systemd-cgroup", "list"], "--systemd-cgroup");
}
