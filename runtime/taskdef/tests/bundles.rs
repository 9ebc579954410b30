//! The sample definitions in bundles/tasks: every `*.json` there is valid and plans; every
//! `invalid/*.json` fails with the text of its sibling `.expected` file.

use std::fs;
use std::path::{Path, PathBuf};

use berth_taskdef::{load, plan, Error, Options, TaskPlan};

fn tasks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bundles/tasks")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn plan_file(name: &str) -> TaskPlan {
    let path = tasks_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let def =
        load(&text, &Options::default()).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
    plan(&def, &Options::default()).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

#[test]
fn every_sample_is_valid_and_plans() {
    let files = json_files(&tasks_dir());
    assert!(
        files.len() >= 3,
        "expected the web, batch and oom samples, found {files:?}"
    );
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let plan = plan_file(&name);
        assert!(
            plan.containers.iter().all(|c| c.image == "busybox"),
            "{name}: every sample uses busybox"
        );
        assert_eq!(plan.cgroup.memory_limit_bytes, Some(512 << 20), "{name}");
    }
}

#[test]
fn every_invalid_sample_fails_with_its_expected_message() {
    let dir = tasks_dir().join("invalid");
    let files = json_files(&dir);
    assert!(
        files.len() >= 8,
        "expected at least 8 invalid samples, found {}",
        files.len()
    );
    for path in files {
        let expected_path = path.with_extension("expected");
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", expected_path.display()));
        let expected = expected.trim_end_matches(['\n', '\r']);
        assert!(!expected.is_empty(), "{} is empty", expected_path.display());
        let text = fs::read_to_string(&path).expect("read sample");
        let err = match load(&text, &Options::default()) {
            Ok(_) => panic!("{} should be invalid", path.display()),
            Err(err) => err,
        };
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "{}:\n  expected: {expected}\n  got:      {message}",
            path.display()
        );
        // Each sample breaks exactly one rule, so that it keeps testing that rule.
        if let Error::Invalid(problems) = &err {
            assert_eq!(problems.len(), 1, "{}: {message}", path.display());
        }
    }
}

#[test]
fn web_sample_starts_the_probe_after_web_is_healthy() {
    let plan = plan_file("web.json");
    assert_eq!(
        plan.start_order,
        [vec!["web".to_owned()], vec!["probe".to_owned()]]
    );
    assert_eq!(
        plan.stop_order,
        [vec!["probe".to_owned()], vec!["web".to_owned()]]
    );
    let web = &plan.containers[0];
    let health = web.health_check.as_ref().expect("web has a health check");
    assert_eq!(
        health.argv,
        [
            "/bin/sh",
            "-c",
            "wget -q -O- http://127.0.0.1:8080/ || exit 1"
        ]
    );
    assert_eq!(web.port_mappings[0].container_port, 8080);
    assert_eq!(
        plan.cgroup.cpu,
        berth_taskdef::plan::TaskCpu::Quota {
            quota_us: 25_000,
            period_us: 100_000
        }
    );
    let probe = &plan.containers[1];
    assert!(!probe.essential);
    assert_eq!(
        probe.depends_on[0].condition,
        berth_taskdef::plan::Condition::Healthy
    );
}

#[test]
fn batch_sample_runs_prepare_work_report_in_order() {
    let plan = plan_file("batch.json");
    let names: Vec<Vec<&str>> = plan
        .start_order
        .iter()
        .map(|level| level.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(names, [["prepare"], ["work"], ["report"]]);
    let essential: Vec<bool> = plan.containers.iter().map(|c| c.essential).collect();
    assert_eq!(essential, [false, false, true]);
    assert!(plan.containers[2].mounts[0].read_only);
}

#[test]
fn oom_sample_has_one_essential_container_under_the_task_limit() {
    let plan = plan_file("oom.json");
    assert_eq!(plan.containers.len(), 1);
    assert!(plan.containers[0].essential);
    assert_eq!(
        plan.containers[0].memory_limit_bytes, None,
        "the task's 512 MiB limit is what kills it"
    );
}
