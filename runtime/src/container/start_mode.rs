//! Whether a container process may skip berth's re-exec (see [`crate::linux::dmz`] for the
//! reasoning): every condition below keeps any process of the container from seeing the
//! set-up code while it is still berth's binary.

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp, LinuxSeccompAction, Spec};

use super::spawn::Start;
use crate::init::reaper;
use crate::linux::{dmz, namespaces, procfs};

/// `Direct` for a `run` (`start_now`) that meets every condition, else `Sealed`.
pub fn choose(spec: &Spec, start_now: bool) -> Start {
    // A fork of a multi-threaded process may only exec (the library in the shim).
    if eligible(spec, start_now) && procfs::own_thread_count().is_ok_and(|n| n == 1) {
        Start::Direct
    } else {
        Start::Sealed
    }
}

/// The conditions that depend on the container alone.
fn eligible(spec: &Spec, start_now: bool) -> bool {
    start_now
        && dmz::AVAILABLE
        && new_pid_namespace(spec)
        && !namespaces::has(spec, LinuxNamespaceType::User)
        && !has_hooks_before_exec(spec)
        && !reaper::init_wanted(spec)
        && !reaper::pause_wanted(spec)
        && spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_none_or(allows_execveat)
}

/// A pid namespace of its own: the set-up process is its only member until the exec.
fn new_pid_namespace(spec: &Spec) -> bool {
    namespaces::new_flags(spec).contains(CloneFlags::CLONE_NEWPID)
        && !namespaces::joins(spec)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Pid)
}

/// Hooks that run while the process is still berth: createContainer and startContainer run
/// inside the container; prestart and createRuntime run on the host but may enter its
/// namespaces (with every capability). Only poststart/poststop keep the direct path.
fn has_hooks_before_exec(spec: &Spec) -> bool {
    let Some(h) = spec.hooks() else { return false };
    #[allow(deprecated)]
    let lists = [
        h.prestart(),
        h.create_runtime(),
        h.create_container(),
        h.start_container(),
    ];
    lists
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
}

/// Whether the profile lets execveat through unconditionally: the final exec through
/// berth-dmz is one, made after the filter is loaded.
fn allows_execveat(s: &LinuxSeccomp) -> bool {
    let allows = |a: LinuxSeccompAction| {
        matches!(
            a,
            LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
        )
    };
    let rules: Vec<_> = s
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == "execveat"))
        .collect();
    if rules.is_empty() {
        return allows(s.default_action());
    }
    rules
        .iter()
        .all(|r| allows(r.action()) && r.args().as_ref().is_none_or(|a| a.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).expect("test spec")
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        });
        merge(&mut v, extra);
        v
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn plain_run_goes_direct_where_berth_dmz_exists() {
        let plain = spec(base(serde_json::json!({})));
        assert_eq!(eligible(&plain, true), dmz::AVAILABLE);
        // The test harness runs threads: never a direct start from here.
        assert_eq!(choose(&plain, true), Start::Sealed);
    }

    #[test]
    fn create_and_anything_visible_from_inside_re_executes() {
        let plain = spec(base(serde_json::json!({})));
        assert!(!eligible(&plain, false), "create waits for start");
        let cases = [
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}]}}),
            serde_json::json!({"linux": {"namespaces": [
                {"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}]}}),
            serde_json::json!({"linux": {"namespaces": [
                {"type": "pid"}, {"type": "mount"}, {"type": "user"}]}}),
            serde_json::json!({"hooks": {"startContainer": [{"path": "/bin/true"}]}}),
            serde_json::json!({"hooks": {"createContainer": [{"path": "/bin/true"}]}}),
            serde_json::json!({"hooks": {"createRuntime": [{"path": "/bin/true"}]}}),
            serde_json::json!({"hooks": {"prestart": [{"path": "/bin/true"}]}}),
            serde_json::json!({"annotations": {"berth.init": "true"}}),
            serde_json::json!({"annotations": {"berth.pause": "true"}}),
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}}),
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]}}}),
            serde_json::json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}}}),
        ];
        for c in cases {
            let s = spec(base(c.clone()));
            assert!(!eligible(&s, true), "{c}");
        }
    }

    #[test]
    fn poststart_and_poststop_hooks_keep_the_direct_path() {
        let s = spec(base(serde_json::json!({"hooks": {
            "poststart": [{"path": "/bin/true"}], "poststop": [{"path": "/bin/true"}]
        }})));
        assert_eq!(eligible(&s, true), dmz::AVAILABLE);
    }

    #[test]
    fn a_profile_that_allows_execveat_keeps_the_direct_path() {
        let s = spec(base(serde_json::json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["execve", "execveat", "read"], "action": "SCMP_ACT_ALLOW"}]
        }}})));
        assert!(s
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_some_and(allows_execveat));
    }
}
