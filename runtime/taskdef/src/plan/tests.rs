use serde_json::json;

use super::*;
use crate::plan::process::{merge_process, ImageConfig, DEFAULT_PATH};

fn plan_of(value: serde_json::Value, opts: &Options) -> TaskPlan {
    let def = crate::parse(&value.to_string()).expect("fixture parses");
    plan(&def, opts).unwrap_or_else(|e| panic!("fixture plans: {e}"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn fargate_task_cgroup_uses_a_quota() {
    let p = plan_of(
        json!({"family": "t", "cpu": "0.5 vCPU", "memory": "1 GB",
               "containerDefinitions": [{"name": "a", "image": "busybox"}]}),
        &Options::default(),
    );
    assert_eq!(
        p.cgroup.cpu,
        TaskCpu::Quota {
            quota_us: 50_000,
            period_us: 100_000
        }
    );
    assert_eq!(p.cgroup.memory_limit_bytes, Some(1024 * 1024 * 1024));
    assert_eq!(p.cgroup.pids_limit, 4096);
    assert_eq!(p.network_mode, "awsvpc");
    assert_eq!(p.ephemeral_storage_gib, 20);
    assert!(p.fargate);
}

#[test]
fn task_without_cpu_uses_summed_shares() {
    let p = plan_of(
        json!({"family": "t", "networkMode": "none", "ephemeralStorage": {"sizeInGiB": 30},
        "containerDefinitions": [
            {"name": "a", "image": "busybox", "cpu": 512, "memory": 64},
            {"name": "b", "image": "busybox", "memoryReservation": 32}
        ]}),
        &Options {
            fargate: false,
            pids_limit: 100,
        },
    );
    // 512 + max(0, 2)
    assert_eq!(
        p.cgroup.cpu,
        TaskCpu::Shares {
            shares: 514,
            weight: 1 + (512 * 9999) / 262_142
        }
    );
    assert_eq!(p.cgroup.memory_limit_bytes, None);
    assert_eq!(p.cgroup.pids_limit, 100);
    assert_eq!(p.ephemeral_storage_gib, 30);
    assert_eq!(p.network_mode, "none");
    let [a, b] = &p.containers[..] else {
        panic!("two containers")
    };
    assert_eq!((a.cpu_shares, a.cpu_weight), (512, 20));
    assert_eq!((b.cpu_shares, b.cpu_weight), (2, 1));
    assert_eq!(a.memory_limit_bytes, Some(64 << 20));
    assert_eq!(a.memory_reservation_bytes, None);
    assert_eq!(b.memory_reservation_bytes, Some(32 << 20));
}

#[test]
fn start_and_stop_order_follow_dependencies() {
    let p = plan_of(
        json!({"family": "t", "cpu": "256", "memory": "512", "containerDefinitions": [
            {"name": "report", "image": "busybox", "dependsOn": [{"containerName": "work", "condition": "COMPLETE"}]},
            {"name": "work", "image": "busybox", "essential": false,
             "dependsOn": [{"containerName": "prepare", "condition": "SUCCESS"}]},
            {"name": "prepare", "image": "busybox", "essential": false},
            {"name": "sidecar", "image": "busybox", "essential": false, "volumesFrom": [{"sourceContainer": "prepare"}]}
        ]}),
        &Options::default(),
    );
    let levels: Vec<Vec<String>> = vec![
        strings(&["prepare"]),
        strings(&["work", "sidecar"]),
        strings(&["report"]),
    ];
    assert_eq!(p.start_order, levels);
    assert_eq!(p.stop_order, levels.into_iter().rev().collect::<Vec<_>>());
    assert_eq!(
        p.containers[1].depends_on,
        [Dependency {
            container: "prepare".to_owned(),
            condition: Condition::Success
        }]
    );
}

#[test]
fn container_defaults() {
    let p = plan_of(
        json!({"family": "t", "cpu": "256", "memory": "512", "containerDefinitions": [
            {"name": "a", "image": "busybox", "healthCheck": {"command": ["CMD-SHELL", "wget -q -O-", "http://x/ || exit 1"]}}
        ]}),
        &Options::default(),
    );
    let a = &p.containers[0];
    assert!(a.essential);
    assert_eq!(a.stop_timeout_secs, 30);
    assert_eq!(a.start_timeout_secs, None);
    assert_eq!(
        a.health_check,
        Some(HealthCheckPlan {
            command: strings(&["CMD-SHELL", "wget -q -O-", "http://x/ || exit 1"]),
            argv: strings(&["/bin/sh", "-c", "wget -q -O- http://x/ || exit 1"]),
            interval_secs: 30,
            timeout_secs: 5,
            retries: 3,
            start_period_secs: 0,
        })
    );
    assert_eq!(
        a.ulimits,
        [UlimitPlan {
            name: "nofile".into(),
            resource: "RLIMIT_NOFILE".into(),
            soft: 65_535,
            hard: 65_535
        }]
    );
    assert_eq!(
        a.log,
        LogPlan {
            driver: "json-file".into(),
            max_size_bytes: None,
            max_file: None
        }
    );
    assert_eq!(a.restart_policy, None);
    assert_eq!((a.cpu_shares, a.cpu_weight), (2, 1));
}

#[test]
fn container_values_are_converted() {
    let p = plan_of(
        json!({"family": "t", "cpu": "1024", "memory": "2048", "volumes": [{"name": "data"}],
        "containerDefinitions": [{
            "name": "a", "image": "busybox", "cpu": 1024, "memory": 256, "memoryReservation": 128,
            "stopTimeout": 5, "startTimeout": 10,
            "environment": [{"name": "A", "value": "1"}, {"name": "B"}, {"name": "A", "value": "2"}],
            "environmentFiles": [{"value": "/etc/a.env", "type": "s3"}],
            "healthCheck": {"command": ["CMD", "true"], "interval": 5, "timeout": 2, "retries": 1, "startPeriod": 10},
            "ulimits": [{"name": "nproc", "softLimit": 10, "hardLimit": 20}, {"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
            "portMappings": [{"containerPort": 8080, "name": "http"}, {"containerPortRange": "9000-9010", "protocol": "udp"}],
            "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"], "drop": ["ALL"]}, "initProcessEnabled": true},
            "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
            "restartPolicy": {"enabled": true, "ignoredExitCodes": [0]},
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "readonlyRootFilesystem": true
        }]}),
        &Options::default(),
    );
    let a = &p.containers[0];
    assert_eq!((a.cpu_shares, a.cpu_weight), (1024, 39));
    assert_eq!(a.memory_limit_bytes, Some(256 << 20));
    assert_eq!(a.memory_reservation_bytes, Some(128 << 20));
    assert_eq!((a.start_timeout_secs, a.stop_timeout_secs), (Some(10), 5));
    assert_eq!(a.environment, strings(&["A=2", "B="]));
    assert_eq!(a.environment_files, strings(&["/etc/a.env"]));
    let health = a.health_check.as_ref().expect("health check");
    assert_eq!(health.argv, strings(&["true"]));
    assert_eq!(
        (
            health.interval_secs,
            health.timeout_secs,
            health.retries,
            health.start_period_secs
        ),
        (5, 2, 1, 10)
    );
    assert_eq!(
        a.ulimits,
        [
            UlimitPlan {
                name: "nproc".into(),
                resource: "RLIMIT_NPROC".into(),
                soft: 10,
                hard: 20
            },
            UlimitPlan {
                name: "nofile".into(),
                resource: "RLIMIT_NOFILE".into(),
                soft: 1024,
                hard: 4096
            },
        ]
    );
    assert_eq!(
        a.mounts,
        [MountPlan {
            volume: "data".into(),
            container_path: "/data".into(),
            read_only: true
        }]
    );
    assert_eq!(
        a.port_mappings,
        [
            PortPlan {
                container_port: 8080,
                container_port_end: 8080,
                protocol: "tcp".into(),
                name: Some("http".into())
            },
            PortPlan {
                container_port: 9000,
                container_port_end: 9010,
                protocol: "udp".into(),
                name: None
            },
        ]
    );
    assert_eq!(a.linux.capabilities_add, strings(&["CAP_SYS_PTRACE"]));
    assert_eq!(a.linux.capabilities_drop, strings(&["ALL"]));
    assert!(a.linux.init_process);
    assert_eq!(a.log.max_size_bytes, Some(10 << 20));
    assert_eq!(a.log.max_file, Some(3));
    assert_eq!(
        a.restart_policy,
        Some(RestartPlan {
            ignored_exit_codes: vec![0],
            attempt_period_secs: 300
        })
    );
    assert_eq!(
        a.sysctls.get("net.core.somaxconn").map(String::as_str),
        Some("1024")
    );
    assert!(a.readonly_root_filesystem);
    assert_eq!(
        p.volumes,
        [VolumePlan {
            name: "data".into(),
            source: VolumeSource::Task
        }]
    );
}

#[test]
fn non_fargate_extras() {
    let p = plan_of(
        json!({"family": "t", "networkMode": "none", "cpu": "512", "memory": "256",
        "volumes": [{"name": "srv", "host": {"sourcePath": "/srv"}}],
        "containerDefinitions": [{
            "name": "a", "image": "busybox", "privileged": true, "hostname": "a1",
            "dnsServers": ["1.1.1.1"], "extraHosts": [{"hostname": "db", "ipAddress": "10.1.1.1"}],
            "dockerSecurityOptions": ["no-new-privileges"],
            "linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}], "sharedMemorySize": 64,
                "tmpfs": [{"containerPath": "/run", "size": 16, "mountOptions": ["noexec"]}],
                "maxSwap": 0, "swappiness": 10}
        }]}),
        &Options::non_fargate(),
    );
    let a = &p.containers[0];
    assert!(a.privileged && a.no_new_privileges);
    assert_eq!(a.hostname.as_deref(), Some("a1"));
    assert_eq!(a.extra_hosts, [("db".to_owned(), "10.1.1.1".to_owned())]);
    assert_eq!(
        a.linux.devices,
        [DevicePlan {
            host_path: "/dev/fuse".into(),
            container_path: "/dev/fuse".into(),
            permissions: strings(&["read", "write", "mknod"]),
        }]
    );
    assert_eq!(a.linux.shared_memory_bytes, Some(64 << 20));
    assert_eq!(
        a.linux.tmpfs,
        [TmpfsPlan {
            container_path: "/run".into(),
            size_bytes: 16 << 20,
            mount_options: strings(&["noexec"])
        }]
    );
    assert_eq!((a.max_swap_bytes, a.swappiness), (Some(0), Some(10)));
    assert_eq!(
        p.volumes,
        [VolumePlan {
            name: "srv".into(),
            source: VolumeSource::Host {
                path: "/srv".into()
            }
        }]
    );
    assert_eq!(
        p.cgroup.cpu,
        TaskCpu::Quota {
            quota_us: 50_000,
            period_us: 100_000
        }
    );
}

#[test]
fn plan_refuses_an_invalid_definition() {
    let def = crate::parse(
        r#"{"family": "t", "containerDefinitions": [{"name": "a", "image": "busybox"}]}"#,
    )
    .expect("parses");
    let err = plan(&def, &Options::default()).expect_err("no cpu/memory on Fargate");
    assert_eq!(
        err.to_string(),
        "cpu: required on Fargate\nmemory: required on Fargate"
    );
}

#[test]
fn plan_serializes_to_json() {
    let p = plan_of(
        json!({"family": "t", "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "a", "image": "busybox"}]}),
        &Options::default(),
    );
    let value = serde_json::to_value(&p).expect("serializes");
    assert_eq!(
        value["cgroup"]["cpu"],
        json!({"kind": "quota", "quota_us": 25_000, "period_us": 100_000})
    );
    assert_eq!(value["start_order"], json!([["a"]]));
}

fn container(entry_point: Option<&[&str]>, command: Option<&[&str]>) -> ContainerPlan {
    let mut value = json!({"name": "a", "image": "busybox", "environment": [{"name": "A", "value": "container"}]});
    if let Some(entry_point) = entry_point {
        value["entryPoint"] = json!(entry_point);
    }
    if let Some(command) = command {
        value["command"] = json!(command);
    }
    let def =
        json!({"family": "t", "cpu": "256", "memory": "512", "containerDefinitions": [value]});
    plan_of(def, &Options::default()).containers.remove(0)
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: Some(strings(&["/docker-entrypoint.sh"])),
        cmd: Some(strings(&["httpd", "-f"])),
        env: strings(&["A=image", "B=image", "PATH=/bin"]),
        working_dir: Some("/srv".into()),
        user: Some("www".into()),
    }
}

#[test]
fn merge_keeps_image_entrypoint_and_cmd_when_unset() {
    let process = merge_process(&image(), &container(None, None), &[]).expect("has a command");
    assert_eq!(
        process.args,
        strings(&["/docker-entrypoint.sh", "httpd", "-f"])
    );
    assert_eq!(
        process.env,
        strings(&["A=container", "B=image", "PATH=/bin"])
    );
    assert_eq!(process.cwd, "/srv");
    assert_eq!(process.user.as_deref(), Some("www"));
}

#[test]
fn merge_command_replaces_cmd_only() {
    let process =
        merge_process(&image(), &container(None, Some(&["echo", "hi"])), &[]).expect("ok");
    assert_eq!(
        process.args,
        strings(&["/docker-entrypoint.sh", "echo", "hi"])
    );
}

#[test]
fn merge_entry_point_drops_image_cmd() {
    let process = merge_process(&image(), &container(Some(&["sh", "-c"]), None), &[]).expect("ok");
    assert_eq!(process.args, strings(&["sh", "-c"]));
    let process = merge_process(
        &image(),
        &container(Some(&["sh", "-c"]), Some(&["echo hi"])),
        &[],
    )
    .expect("ok");
    assert_eq!(process.args, strings(&["sh", "-c", "echo hi"]));
}

#[test]
fn merge_empty_entry_point_clears_image_entrypoint_keeps_cmd() {
    let process = merge_process(&image(), &container(Some(&[]), None), &[]).expect("ok");
    assert_eq!(process.args, strings(&["httpd", "-f"]));
    // An empty command is no command.
    let process = merge_process(&image(), &container(None, Some(&[])), &[]).expect("ok");
    assert_eq!(
        process.args,
        strings(&["/docker-entrypoint.sh", "httpd", "-f"])
    );
}

#[test]
fn merge_without_any_command_is_an_error() {
    let err = merge_process(&ImageConfig::default(), &container(None, None), &[])
        .expect_err("nothing to run");
    assert_eq!(
        err.to_string(),
        "containerDefinitions[0]: no command to run: neither the image nor the definition sets an entryPoint or command"
    );
}

#[test]
fn merge_environment_precedence_and_defaults() {
    let bare = ImageConfig {
        cmd: Some(strings(&["sh"])),
        ..ImageConfig::default()
    };
    let files = strings(&["A=file1", "F=file1", "F=file2"]);
    let process = merge_process(&bare, &container(None, None), &files).expect("ok");
    // File entries first (later file wins), the definition overriding them, then Docker's PATH.
    assert_eq!(
        process.env,
        strings(&["A=container", "F=file2", DEFAULT_PATH])
    );
    assert_eq!(process.cwd, "/");
    assert_eq!(process.user, None);
}
