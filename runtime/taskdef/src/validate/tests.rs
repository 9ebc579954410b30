//! One failing case per rule, each asserting the exact `path: message`.

use serde_json::{json, Value};

use super::*;

/// A valid Fargate definition with two containers, "app" and "db".
fn base() -> Value {
    json!({
        "family": "demo",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {"name": "app", "image": "busybox", "command": ["sleep", "60"]},
            {"name": "db", "image": "busybox", "essential": false}
        ]
    })
}

fn with(patch: impl FnOnce(&mut Value)) -> Value {
    let mut value = base();
    patch(&mut value);
    value
}

fn at<'a>(value: &'a mut Value, pointer: &str) -> &'a mut Value {
    value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in test fixture"))
}

fn run(value: &Value, opts: &Options) -> Vec<String> {
    let def: TaskDefinition =
        crate::parse(&value.to_string()).unwrap_or_else(|e| panic!("fixture parses: {e}"));
    problems(&def, opts)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn fargate(value: &Value) -> Vec<String> {
    run(value, &Options::default())
}

fn ec2(value: &Value) -> Vec<String> {
    run(value, &Options::non_fargate())
}

/// Asserts that Fargate validation reports exactly `expected`.
#[track_caller]
fn only(value: Value, expected: &str) {
    assert_eq!(fargate(&value), [expected]);
}

#[track_caller]
fn only_ec2(value: Value, expected: &str) {
    assert_eq!(ec2(&value), [expected]);
}

#[test]
fn base_is_valid_in_both_modes() {
    assert_eq!(fargate(&base()), Vec::<String>::new());
    assert_eq!(ec2(&base()), Vec::<String>::new());
}

#[test]
fn validate_returns_every_problem_in_one_error() {
    let value = with(|v| {
        at(v, "/family").take();
        at(v, "/containerDefinitions/1/image").take();
    });
    let def = crate::parse(&value.to_string()).expect("parses");
    let err = validate(&def, &Options::default()).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "family: required\ncontainerDefinitions[1].image: required"
    );
    assert_eq!(err.problems().len(), 2);
}

#[test]
fn family_rules() {
    only(
        with(|v| v["family"] = json!("bad name")),
        r#"family: must be 1-255 letters, digits, hyphens or underscores (got "bad name")"#,
    );
    only(
        with(|v| v["family"] = json!("x".repeat(256))),
        &format!(
            "family: must be 1-255 letters, digits, hyphens or underscores (got {:?})",
            "x".repeat(256)
        ),
    );
    only(
        with(|v| v["family"] = json!("")),
        r#"family: must be 1-255 letters, digits, hyphens or underscores (got "")"#,
    );
    assert_eq!(
        fargate(&with(|v| v["family"] = json!("A-z_09"))),
        Vec::<String>::new()
    );
}

#[test]
fn container_names() {
    only(
        with(|v| v["containerDefinitions"][1]["name"] = json!("app")),
        r#"containerDefinitions[1].name: duplicate container name "app" (also containerDefinitions[0])"#,
    );
    only(
        with(|v| v["containerDefinitions"][1]["name"] = json!("d.b")),
        r#"containerDefinitions[1].name: must be 1-255 letters, digits, hyphens or underscores (got "d.b")"#,
    );
    only(
        with(|v| {
            at(v, "/containerDefinitions/0/name").take();
        }),
        "containerDefinitions[0].name: required",
    );
}

#[test]
fn container_count_and_essential() {
    only(
        with(|v| v["containerDefinitions"] = json!([])),
        "containerDefinitions: at least one container is required",
    );
    only(
        with(|v| {
            v.as_object_mut().map(|o| o.remove("containerDefinitions"));
        }),
        "containerDefinitions: at least one container is required",
    );
    only(
        with(|v| v["containerDefinitions"][0]["essential"] = json!(false)),
        "containerDefinitions: at least one container must be essential",
    );
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    only(
        with(|v| v["containerDefinitions"] = json!(eleven)),
        "containerDefinitions: at most 10 containers are allowed (got 11)",
    );
}

#[test]
fn image_rules() {
    only(
        with(|v| {
            at(v, "/containerDefinitions/0/image").take();
        }),
        "containerDefinitions[0].image: required",
    );
    only(
        with(|v| v["containerDefinitions"][0]["image"] = json!("")),
        "containerDefinitions[0].image: must not be empty",
    );
    only(
        with(|v| v["containerDefinitions"][0]["image"] = json!("busy box")),
        r#"containerDefinitions[0].image: must not contain whitespace (got "busy box")"#,
    );
}

#[test]
fn depends_on_references() {
    only(
        with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "cache", "condition": "START"}])
        }),
        r#"containerDefinitions[0].dependsOn[0].containerName: no container named "cache""#,
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "app", "condition": "START"}])
        }),
        "containerDefinitions[0].dependsOn[0].containerName: a container cannot depend on itself",
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "db", "condition": "READY"}])
        }),
        r#"containerDefinitions[0].dependsOn[0].condition: must be one of START, COMPLETE, SUCCESS, HEALTHY (got "READY")"#,
    );
    only(
        with(|v| v["containerDefinitions"][0]["dependsOn"] = json!([{"containerName": "db"}])),
        "containerDefinitions[0].dependsOn[0].condition: required",
    );
    only(
        with(|v| v["containerDefinitions"][0]["dependsOn"] = json!([{"condition": "START"}])),
        "containerDefinitions[0].dependsOn[0].containerName: required",
    );
}

#[test]
fn depends_on_conditions() {
    // db is non-essential in base, so COMPLETE and SUCCESS are fine.
    for condition in ["START", "COMPLETE", "SUCCESS"] {
        let value = with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "db", "condition": condition}])
        });
        assert_eq!(fargate(&value), Vec::<String>::new(), "{condition}");
    }
    for condition in ["COMPLETE", "SUCCESS"] {
        only(
            with(|v| {
                v["containerDefinitions"][1]["essential"] = json!(true);
                v["containerDefinitions"][0]["dependsOn"] =
                    json!([{"containerName": "db", "condition": condition}]);
            }),
            &format!(
                r#"containerDefinitions[0].dependsOn[0].condition: {condition} needs "db" to be non-essential (an essential container exiting stops the task)"#
            ),
        );
    }
    only(
        with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "db", "condition": "HEALTHY"}])
        }),
        r#"containerDefinitions[0].dependsOn[0].condition: HEALTHY needs "db" to have a healthCheck"#,
    );
    let healthy = with(|v| {
        v["containerDefinitions"][1]["healthCheck"] = json!({"command": ["CMD", "true"]});
        v["containerDefinitions"][0]["dependsOn"] =
            json!([{"containerName": "db", "condition": "HEALTHY"}]);
    });
    assert_eq!(fargate(&healthy), Vec::<String>::new());
}

#[test]
fn dependency_cycles_are_reported_with_their_members() {
    only(
        with(|v| {
            v["containerDefinitions"][0]["dependsOn"] =
                json!([{"containerName": "db", "condition": "START"}]);
            v["containerDefinitions"][1]["dependsOn"] =
                json!([{"containerName": "app", "condition": "START"}]);
        }),
        "containerDefinitions[0].dependsOn[0]: dependency cycle: app -> db -> app",
    );
    // A three-container cycle reached from a container outside it; volumesFrom counts as an edge.
    let value = json!({
        "family": "demo", "cpu": "256", "memory": "512",
        "containerDefinitions": [
            {"name": "a", "image": "busybox", "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "image": "busybox", "essential": false, "volumesFrom": [{"sourceContainer": "c"}]},
            {"name": "c", "image": "busybox", "essential": false, "dependsOn": [{"containerName": "d", "condition": "START"}]},
            {"name": "d", "image": "busybox", "essential": false, "dependsOn": [{"containerName": "b", "condition": "START"}]}
        ]
    });
    only(
        value,
        "containerDefinitions[1].volumesFrom[0]: dependency cycle: b -> c -> d -> b",
    );
}

#[test]
fn volumes_from_references() {
    only(
        with(|v| {
            v["containerDefinitions"][0]["volumesFrom"] = json!([{"sourceContainer": "nope"}])
        }),
        r#"containerDefinitions[0].volumesFrom[0].sourceContainer: no container named "nope""#,
    );
    only(
        with(|v| v["containerDefinitions"][0]["volumesFrom"] = json!([{"sourceContainer": "app"}])),
        "containerDefinitions[0].volumesFrom[0].sourceContainer: a container cannot take volumes from itself",
    );
}

#[test]
fn health_check_rules() {
    let hc = |check: Value| with(|v| v["containerDefinitions"][0]["healthCheck"] = check);
    only(
        hc(json!({"command": ["curl", "x"]})),
        r#"containerDefinitions[0].healthCheck.command[0]: must be CMD or CMD-SHELL (got "curl")"#,
    );
    only(
        hc(json!({"command": ["CMD-SHELL"]})),
        r#"containerDefinitions[0].healthCheck.command: needs the command to run after "CMD-SHELL""#,
    );
    only(
        hc(json!({})),
        "containerDefinitions[0].healthCheck.command: required",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "interval": 4})),
        "containerDefinitions[0].healthCheck.interval: must be between 5 and 300 (got 4)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "interval": 301})),
        "containerDefinitions[0].healthCheck.interval: must be between 5 and 300 (got 301)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "timeout": 1})),
        "containerDefinitions[0].healthCheck.timeout: must be between 2 and 60 (got 1)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "timeout": 61})),
        "containerDefinitions[0].healthCheck.timeout: must be between 2 and 60 (got 61)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "retries": 0})),
        "containerDefinitions[0].healthCheck.retries: must be between 1 and 10 (got 0)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "retries": 11})),
        "containerDefinitions[0].healthCheck.retries: must be between 1 and 10 (got 11)",
    );
    only(
        hc(json!({"command": ["CMD", "true"], "startPeriod": 301})),
        "containerDefinitions[0].healthCheck.startPeriod: must be between 0 and 300 (got 301)",
    );
    let edges = hc(
        json!({"command": ["CMD", "true"], "interval": 5, "timeout": 60, "retries": 10, "startPeriod": 0}),
    );
    assert_eq!(fargate(&edges), Vec::<String>::new());
}

#[test]
fn timeouts() {
    only(
        with(|v| v["containerDefinitions"][0]["stopTimeout"] = json!(121)),
        "containerDefinitions[0].stopTimeout: must be between 0 and 120 (got 121)",
    );
    assert_eq!(
        fargate(&with(
            |v| v["containerDefinitions"][0]["stopTimeout"] = json!(120)
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        ec2(&with(
            |v| v["containerDefinitions"][0]["stopTimeout"] = json!(600)
        )),
        Vec::<String>::new()
    );
    only(
        with(|v| v["containerDefinitions"][0]["startTimeout"] = json!(-1)),
        "containerDefinitions[0].startTimeout: must be at least 0 (got -1)",
    );
}

#[test]
fn ulimit_rules() {
    let ul = |limits: Value| with(|v| v["containerDefinitions"][0]["ulimits"] = limits);
    only(
        ul(json!([{"name": "files", "softLimit": 1, "hardLimit": 1}])),
        r#"containerDefinitions[0].ulimits[0].name: must be one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack (got "files")"#,
    );
    only(ul(json!([{"name": "nofile", "softLimit": 2048, "hardLimit": 1024}])), "containerDefinitions[0].ulimits[0].softLimit: must not be more than hardLimit (2048 > 1024)");
    only(
        ul(json!([{"name": "nofile", "softLimit": 1024}])),
        "containerDefinitions[0].ulimits[0].hardLimit: required",
    );
    only(
        ul(
            json!([{"name": "nproc", "softLimit": 1, "hardLimit": 1}, {"name": "nproc", "softLimit": 1, "hardLimit": 1}]),
        ),
        r#"containerDefinitions[0].ulimits[1].name: duplicate ulimit "nproc" (also containerDefinitions[0].ulimits[0])"#,
    );
    only(ul(json!([{"name": "nofile", "softLimit": 1024, "hardLimit": 2000000}])), "containerDefinitions[0].ulimits[0].hardLimit: nofile is at most 1048576 on Fargate (got 2000000)");
    assert_eq!(
        ec2(&ul(
            json!([{"name": "nofile", "softLimit": 1024, "hardLimit": 2000000}])
        )),
        Vec::<String>::new()
    );
}

#[test]
fn environment_rules() {
    only(
        with(|v| v["containerDefinitions"][0]["environment"] = json!([{"name": "", "value": "x"}])),
        "containerDefinitions[0].environment[0].name: must not be empty",
    );
    only(
        with(|v| v["containerDefinitions"][0]["environment"] = json!([{"value": "x"}])),
        "containerDefinitions[0].environment[0].name: must not be empty",
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["environment"] = json!([{"name": "A=B", "value": "x"}])
        }),
        r#"containerDefinitions[0].environment[0].name: must not contain '=' or NUL (got "A=B")"#,
    );
}

#[test]
fn environment_files() {
    let files = |list: Value| with(|v| v["containerDefinitions"][0]["environmentFiles"] = list);
    assert_eq!(
        fargate(&files(
            json!([{"value": "/etc/berth/app.env", "type": "s3"}])
        )),
        Vec::<String>::new()
    );
    only(
        files(json!([{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}])),
        "containerDefinitions[0].environmentFiles[0].value: not supported by berth: berth has no S3 access; give an absolute path to a file on the host",
    );
    only(
        files(json!([{"value": "app.env"}])),
        r#"containerDefinitions[0].environmentFiles[0].value: must be an absolute path on the host (got "app.env")"#,
    );
    only(
        files(json!([{"value": "/a.env", "type": "file"}])),
        r#"containerDefinitions[0].environmentFiles[0].type: must be one of s3 (got "file")"#,
    );
}

#[test]
fn port_mappings() {
    let ports = |list: Value| with(|v| v["containerDefinitions"][0]["portMappings"] = list);
    assert_eq!(
        fargate(&ports(
            json!([{"containerPort": 80, "hostPort": 80, "protocol": "udp", "name": "web", "appProtocol": "http"}])
        )),
        Vec::<String>::new()
    );
    only(ports(json!([{"containerPort": 0}])), "containerDefinitions[0].portMappings[0].containerPort: must be between 1 and 65535 (got 0)");
    only(ports(json!([{"containerPort": 65536}])), "containerDefinitions[0].portMappings[0].containerPort: must be between 1 and 65535 (got 65536)");
    only(
        ports(json!([{"hostPort": 80}])),
        "containerDefinitions[0].portMappings[0].containerPort: required",
    );
    only(
        ports(json!([{"containerPort": 80, "hostPort": 8080}])),
        "containerDefinitions[0].portMappings[0].hostPort: must equal containerPort (80) with networkMode awsvpc, or be omitted (got 8080)",
    );
    only(
        ports(json!([{"containerPort": 80, "protocol": "sctp"}])),
        r#"containerDefinitions[0].portMappings[0].protocol: must be one of tcp, udp (got "sctp")"#,
    );
    only(
        ports(json!([{"containerPort": 80, "appProtocol": "ftp"}])),
        r#"containerDefinitions[0].portMappings[0].appProtocol: must be one of http, http2, grpc (got "ftp")"#,
    );
    only(
        ports(json!([{"containerPort": 80, "name": "Web"}])),
        r#"containerDefinitions[0].portMappings[0].name: must be 1-64 lowercase letters, digits, underscores or hyphens (got "Web")"#,
    );
    only(
        ports(json!([{"containerPortRange": "9000-8000"}])),
        r#"containerDefinitions[0].portMappings[0].containerPortRange: must be "start-end" with 1 <= start < end <= 65535 (got "9000-8000")"#,
    );
    only(ports(json!([{"containerPort": 1, "containerPortRange": "1-2"}])), "containerDefinitions[0].portMappings[0]: give containerPort or containerPortRange, not both");
    // All containers share the task's network namespace, so ports clash across containers.
    only(
        with(|v| {
            v["containerDefinitions"][0]["portMappings"] = json!([{"containerPortRange": "8000-8100"}]);
            v["containerDefinitions"][1]["portMappings"] = json!([{"containerPort": 8080}]);
        }),
        "containerDefinitions[1].portMappings[0].containerPort: port 8080/tcp is already mapped by containerDefinitions[0].portMappings[0].containerPortRange",
    );
    // Same number, other protocol: no clash.
    let mixed = with(|v| {
        v["containerDefinitions"][0]["portMappings"] = json!([{"containerPort": 53}]);
        v["containerDefinitions"][1]["portMappings"] =
            json!([{"containerPort": 53, "protocol": "udp"}]);
    });
    assert_eq!(fargate(&mixed), Vec::<String>::new());
    only_ec2(
        with(|v| {
            v["networkMode"] = json!("none");
            v["containerDefinitions"][0]["portMappings"] = json!([{"containerPort": 80}]);
        }),
        "containerDefinitions[0].portMappings: not valid with networkMode none",
    );
}

#[test]
fn mount_points() {
    let value = |mounts: Value| {
        with(|v| {
            v["volumes"] = json!([{"name": "data"}]);
            v["containerDefinitions"][0]["mountPoints"] = mounts;
        })
    };
    assert_eq!(
        fargate(&value(
            json!([{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}])
        )),
        Vec::<String>::new()
    );
    only(
        value(json!([{"sourceVolume": "logs", "containerPath": "/logs"}])),
        r#"containerDefinitions[0].mountPoints[0].sourceVolume: no volume named "logs""#,
    );
    only(
        value(json!([{"sourceVolume": "data", "containerPath": "data"}])),
        r#"containerDefinitions[0].mountPoints[0].containerPath: must be an absolute path (got "data")"#,
    );
    only(
        value(json!([{"sourceVolume": "data"}])),
        "containerDefinitions[0].mountPoints[0].containerPath: required",
    );
    only(
        value(
            json!([{"sourceVolume": "data", "containerPath": "/d"}, {"sourceVolume": "data", "containerPath": "/d"}]),
        ),
        r#"containerDefinitions[0].mountPoints[1].containerPath: "/d" is already mounted by containerDefinitions[0].mountPoints[0]"#,
    );
}

#[test]
fn log_configuration() {
    let log = |config: Value| with(|v| v["containerDefinitions"][0]["logConfiguration"] = config);
    assert_eq!(
        fargate(&log(
            json!({"logDriver": "json-file", "options": {"max-size": "10m", "max-file": "3"}})
        )),
        Vec::<String>::new()
    );
    only(
        log(json!({"logDriver": "awslogs", "options": {}})),
        r#"containerDefinitions[0].logConfiguration.logDriver: not supported by berth: berth keeps container output in local json-file logs only (got "awslogs"; use "json-file")"#,
    );
    only(
        log(json!({"logDriver": "json-file", "options": {"compress": "true"}})),
        "containerDefinitions[0].logConfiguration.options.compress: not supported by berth: the json-file driver takes only max-size, max-file",
    );
    only(
        log(json!({"logDriver": "json-file", "options": {"max-size": "ten"}})),
        r#"containerDefinitions[0].logConfiguration.options.max-size: must be a size like 10m, 512k or 1g (got "ten")"#,
    );
    only(
        log(json!({"logDriver": "json-file", "options": {"max-file": "0"}})),
        r#"containerDefinitions[0].logConfiguration.options.max-file: must be a positive whole number (got "0")"#,
    );
    only(
        log(json!({})),
        "containerDefinitions[0].logConfiguration.logDriver: required",
    );
}

#[test]
fn restart_policy() {
    let policy = |p: Value| with(|v| v["containerDefinitions"][0]["restartPolicy"] = p);
    assert_eq!(
        fargate(&policy(
            json!({"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60})
        )),
        Vec::<String>::new()
    );
    only(policy(json!({"enabled": true, "restartAttemptPeriod": 59})), "containerDefinitions[0].restartPolicy.restartAttemptPeriod: must be between 60 and 1800 (got 59)");
    only(policy(json!({"enabled": true, "restartAttemptPeriod": 1801})), "containerDefinitions[0].restartPolicy.restartAttemptPeriod: must be between 60 and 1800 (got 1801)");
    only(policy(json!({"enabled": true, "ignoredExitCodes": (0..51).collect::<Vec<_>>()})), "containerDefinitions[0].restartPolicy.ignoredExitCodes: at most 50 exit codes are allowed (got 51)");
    only(
        policy(json!({"ignoredExitCodes": [1]})),
        "containerDefinitions[0].restartPolicy.enabled: required",
    );
}

#[test]
fn task_size_required_and_tabled_on_fargate() {
    only(
        with(|v| {
            at(v, "/cpu").take();
        }),
        "cpu: required on Fargate",
    );
    only(
        with(|v| {
            at(v, "/memory").take();
        }),
        "memory: required on Fargate",
    );
    only(
        with(|v| v["memory"] = json!("1.5 GB")),
        "memory: 1536 MiB is not valid with cpu 256 on Fargate (valid: 512, 1024, 2048)",
    );
    only(
        with(|v| v["cpu"] = json!("3 vCPU")),
        "cpu: 3072 is not a Fargate cpu value (valid: 256, 512, 1024, 2048, 4096, 8192, 16384)",
    );
    only(
        with(|v| v["cpu"] = json!("lots")),
        r#"cpu: "lots" is not a cpu value (expected units like "256" or vCPUs like "1 vCPU")"#,
    );
    for (cpu, memory) in [
        ("0.25 vCPU", "0.5GB"),
        ("1 vcpu", "2 GB"),
        ("16 vCPU", "120 GB"),
        ("4096", "30720"),
    ] {
        let value = with(|v| {
            v["cpu"] = json!(cpu);
            v["memory"] = json!(memory);
        });
        assert_eq!(fargate(&value), Vec::<String>::new(), "{cpu} / {memory}");
    }
    // JSON numbers are accepted.
    assert_eq!(
        fargate(&with(|v| {
            v["cpu"] = json!(512);
            v["memory"] = json!(1024);
        })),
        Vec::<String>::new()
    );
}

#[test]
fn task_size_outside_fargate() {
    let mut value = with(|v| {
        at(v, "/cpu").take();
        at(v, "/memory").take();
    });
    // Without task memory each container needs its own.
    assert_eq!(
        ec2(&value),
        [
            "containerDefinitions[0].memory: memory or memoryReservation is required when the task has no memory",
            "containerDefinitions[1].memory: memory or memoryReservation is required when the task has no memory",
        ]
    );
    value["containerDefinitions"][0]["memory"] = json!(128);
    value["containerDefinitions"][1]["memoryReservation"] = json!(64);
    assert_eq!(ec2(&value), Vec::<String>::new());
    only_ec2(
        with(|v| v["cpu"] = json!("64")),
        "cpu: must be between 128 and 196608 units (got 64)",
    );
    only_ec2(
        with(|v| v["memory"] = json!("4")),
        "memory: must be at least 6 MiB (got 4)",
    );
}

#[test]
fn container_resources() {
    only(
        with(|v| {
            v["containerDefinitions"][0]["cpu"] = json!(200);
            v["containerDefinitions"][1]["cpu"] = json!(100);
        }),
        "containerDefinitions: the containers' cpu adds up to 300 units, more than the task's 256",
    );
    only(
        with(|v| v["containerDefinitions"][0]["memory"] = json!(1024)),
        "containerDefinitions[0].memory: 1024 MiB is more than the task memory of 512 MiB",
    );
    only(with(|v| v["containerDefinitions"][0]["memoryReservation"] = json!(513)), "containerDefinitions[0].memoryReservation: 513 MiB is more than the task memory of 512 MiB");
    only(
        with(|v| {
            v["containerDefinitions"][0]["memory"] = json!(128);
            v["containerDefinitions"][0]["memoryReservation"] = json!(256);
        }),
        "containerDefinitions[0].memoryReservation: must not be more than memory (256 MiB > 128 MiB)",
    );
    only(
        with(|v| v["containerDefinitions"][0]["memory"] = json!(4)),
        "containerDefinitions[0].memory: must be at least 6 MiB (got 4)",
    );
    only(
        with(|v| v["containerDefinitions"][0]["cpu"] = json!(-1)),
        "containerDefinitions[0].cpu: must be at least 0 (got -1)",
    );
    assert_eq!(
        fargate(&with(|v| {
            v["containerDefinitions"][0]["cpu"] = json!(256);
            v["containerDefinitions"][0]["memory"] = json!(512);
        })),
        Vec::<String>::new()
    );
}

#[test]
fn network_mode() {
    only(
        with(|v| v["networkMode"] = json!("bridge")),
        r#"networkMode: must be awsvpc on Fargate (got "bridge")"#,
    );
    only(
        with(|v| v["networkMode"] = json!("none")),
        r#"networkMode: must be awsvpc on Fargate (got "none")"#,
    );
    assert_eq!(
        ec2(&with(|v| v["networkMode"] = json!("none"))),
        Vec::<String>::new()
    );
    only_ec2(
        with(|v| v["networkMode"] = json!("bridge")),
        "networkMode: not supported by berth: bridge needs a shared Docker bridge with port mapping; every berth task gets its own network namespace (use awsvpc)",
    );
    only_ec2(with(|v| v["networkMode"] = json!("host")), "networkMode: not supported by berth: host networking would put the sandbox in the host's network");
    only_ec2(
        with(|v| v["networkMode"] = json!("vpc")),
        r#"networkMode: must be one of awsvpc, bridge, host, none (got "vpc")"#,
    );
}

#[test]
fn requires_compatibilities_forces_fargate_rules() {
    let value = with(|v| {
        v["requiresCompatibilities"] = json!(["FARGATE"]);
        v["containerDefinitions"][0]["privileged"] = json!(true);
    });
    assert_eq!(ec2(&value), ["containerDefinitions[0].privileged: not valid on Fargate (allowed when Fargate mode is off)"]);
    only(
        with(|v| v["requiresCompatibilities"] = json!(["LAMBDA"])),
        r#"requiresCompatibilities[0]: must be one of EC2, FARGATE, EXTERNAL, MANAGED_INSTANCES (got "LAMBDA")"#,
    );
}

/// Each field Fargate rejects, with the container path it is reported at.
#[test]
fn fields_invalid_on_fargate() {
    let container = [
        ("disableNetworking", json!(true), "disableNetworking", true),
        (
            "dnsSearchDomains",
            json!(["example.com"]),
            "dnsSearchDomains",
            true,
        ),
        ("dnsServers", json!(["10.0.0.2"]), "dnsServers", true),
        (
            "dockerSecurityOptions",
            json!(["no-new-privileges"]),
            "dockerSecurityOptions",
            true,
        ),
        (
            "extraHosts",
            json!([{"hostname": "db", "ipAddress": "10.0.0.3"}]),
            "extraHosts",
            true,
        ),
        ("links", json!(["db"]), "links", false),
        ("privileged", json!(true), "privileged", true),
        (
            "linuxParameters",
            json!({"maxSwap": 0}),
            "linuxParameters.maxSwap",
            true,
        ),
        (
            "linuxParameters",
            json!({"swappiness": 10}),
            "linuxParameters.swappiness",
            true,
        ),
        (
            "linuxParameters",
            json!({"devices": [{"hostPath": "/dev/fuse"}]}),
            "linuxParameters.devices",
            true,
        ),
        (
            "linuxParameters",
            json!({"sharedMemorySize": 64}),
            "linuxParameters.sharedMemorySize",
            true,
        ),
        (
            "linuxParameters",
            json!({"tmpfs": [{"containerPath": "/tmp", "size": 64}]}),
            "linuxParameters.tmpfs",
            true,
        ),
    ];
    for (field, value, path, allowed_elsewhere) in container {
        let suffix = if allowed_elsewhere {
            " (allowed when Fargate mode is off)"
        } else {
            ""
        };
        only(
            with(|v| v["containerDefinitions"][0][field] = value.clone()),
            &format!("containerDefinitions[0].{path}: not valid on Fargate{suffix}"),
        );
    }
    only(
        with(|v| v["ipcMode"] = json!("task")),
        "ipcMode: not valid on Fargate (allowed when Fargate mode is off)",
    );
    only(
        with(|v| v["placementConstraints"] = json!([{"type": "memberOf", "expression": "x"}])),
        "placementConstraints: not valid on Fargate",
    );
    only(
        with(|v| v["pidMode"] = json!("host")),
        r#"pidMode: must be task on Fargate (got "host")"#,
    );
    assert_eq!(
        fargate(&with(|v| v["pidMode"] = json!("task"))),
        Vec::<String>::new()
    );
    only(
        with(|v| v["containerDefinitions"][0]["linuxParameters"] = json!({"capabilities": {"add": ["SYS_PTRACE", "NET_ADMIN"], "drop": ["ALL"]}})),
        "containerDefinitions[0].linuxParameters.capabilities.add[1]: NET_ADMIN is not valid on Fargate (only SYS_PTRACE can be added)",
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["linuxParameters"] =
                json!({"capabilities": {"drop": ["SYS_FOO"]}})
        }),
        r#"containerDefinitions[0].linuxParameters.capabilities.drop[0]: unknown capability "SYS_FOO""#,
    );
    only(
        with(|v| v["volumes"] = json!([{"name": "v", "host": {"sourcePath": "/srv"}}])),
        "volumes[0].host.sourcePath: not valid on Fargate (allowed when Fargate mode is off)",
    );
}

#[test]
fn fields_allowed_outside_fargate() {
    let value = with(|v| {
        v["networkMode"] = json!("none");
        v["ipcMode"] = json!("task");
        v["volumes"] = json!([
            {"name": "srv", "host": {"sourcePath": "/srv"}},
            {"name": "scratch", "dockerVolumeConfiguration": {"scope": "task", "driver": "local"}}
        ]);
        v["containerDefinitions"][0]["privileged"] = json!(true);
        v["containerDefinitions"][0]["disableNetworking"] = json!(true);
        v["containerDefinitions"][0]["hostname"] = json!("app-1");
        v["containerDefinitions"][0]["dnsServers"] = json!(["1.1.1.1"]);
        v["containerDefinitions"][0]["dnsSearchDomains"] = json!(["corp.example"]);
        v["containerDefinitions"][0]["extraHosts"] =
            json!([{"hostname": "db", "ipAddress": "::1"}]);
        v["containerDefinitions"][0]["dockerSecurityOptions"] = json!(["no-new-privileges"]);
        v["containerDefinitions"][0]["linuxParameters"] = json!({
            "capabilities": {"add": ["NET_ADMIN"]},
            "devices": [{"hostPath": "/dev/fuse", "permissions": ["read", "write"]}],
            "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/run", "size": 16, "mountOptions": ["noexec", "mode=1777"]}],
            "maxSwap": 0,
            "swappiness": 0,
            "initProcessEnabled": true
        });
    });
    assert_eq!(ec2(&value), Vec::<String>::new());
}

#[test]
fn linux_parameter_values_outside_fargate() {
    let linux = |p: Value| with(|v| v["containerDefinitions"][0]["linuxParameters"] = p);
    only_ec2(
        linux(json!({"swappiness": 101})),
        "containerDefinitions[0].linuxParameters.swappiness: must be between 0 and 100 (got 101)",
    );
    only_ec2(
        linux(json!({"maxSwap": -1})),
        "containerDefinitions[0].linuxParameters.maxSwap: must be at least 0 (got -1)",
    );
    only_ec2(
        linux(json!({"tmpfs": [{"containerPath": "/t"}]})),
        "containerDefinitions[0].linuxParameters.tmpfs[0].size: required",
    );
    only_ec2(
        linux(json!({"tmpfs": [{"containerPath": "/t", "size": 1, "mountOptions": ["bogus"]}]})),
        r#"containerDefinitions[0].linuxParameters.tmpfs[0].mountOptions[0]: unknown tmpfs mount option "bogus""#,
    );
    only_ec2(
        linux(json!({"devices": [{"hostPath": "dev/fuse"}]})),
        r#"containerDefinitions[0].linuxParameters.devices[0].hostPath: must be an absolute path (got "dev/fuse")"#,
    );
    only_ec2(
        linux(json!({"devices": [{"hostPath": "/dev/fuse", "permissions": ["exec"]}]})),
        r#"containerDefinitions[0].linuxParameters.devices[0].permissions[0]: must be one of read, write, mknod (got "exec")"#,
    );
    only_ec2(
        linux(json!({"sharedMemorySize": 0})),
        "containerDefinitions[0].linuxParameters.sharedMemorySize: must be at least 1 (got 0)",
    );
}

#[test]
fn networking_values_outside_fargate() {
    only_ec2(
        with(|v| v["containerDefinitions"][0]["dnsServers"] = json!(["8.8.8.8"])),
        "containerDefinitions[0].dnsServers: not valid with networkMode awsvpc",
    );
    only_ec2(
        with(|v| v["containerDefinitions"][0]["hostname"] = json!("h")),
        "containerDefinitions[0].hostname: not valid with networkMode awsvpc",
    );
    let none = |field: &str, value: Value| {
        with(|v| {
            v["networkMode"] = json!("none");
            v["containerDefinitions"][0][field] = value;
        })
    };
    only_ec2(
        none("dnsServers", json!(["dns.google"])),
        r#"containerDefinitions[0].dnsServers[0]: must be an IP address (got "dns.google")"#,
    );
    only_ec2(
        none("extraHosts", json!([{"hostname": "db", "ipAddress": "x"}])),
        r#"containerDefinitions[0].extraHosts[0].ipAddress: must be an IP address (got "x")"#,
    );
    only_ec2(
        none("hostname", json!("bad_host")),
        r#"containerDefinitions[0].hostname: is not a valid hostname (got "bad_host")"#,
    );
    only_ec2(
        none("dockerSecurityOptions", json!(["apparmor:unconfined"])),
        r#"containerDefinitions[0].dockerSecurityOptions[0]: not supported by berth: only no-new-privileges is available (got "apparmor:unconfined"); berth has no AppArmor, SELinux or credential spec support"#,
    );
    only_ec2(
        with(|v| v["ipcMode"] = json!("host")),
        "ipcMode: not supported by berth: host would put the sandbox in the host's IPC namespace",
    );
    only_ec2(
        with(|v| v["pidMode"] = json!("host")),
        "pidMode: not supported by berth: host would put the sandbox in the host's PID namespace",
    );
    only_ec2(
        with(|v| v["containerDefinitions"][0]["links"] = json!(["db"])),
        "containerDefinitions[0].links: not supported by berth: links need networkMode bridge, which berth does not support",
    );
}

#[test]
fn unsupported_fields_are_rejected_with_a_reason() {
    let container = [
        ("secrets", json!([{"name": "A", "valueFrom": "arn:aws:ssm:x"}]), "secrets", "berth has no Secrets Manager or SSM Parameter Store access"),
        ("repositoryCredentials", json!({"credentialsParameter": "arn"}), "repositoryCredentials", "berth runs locally available images and never logs in to a registry"),
        ("firelensConfiguration", json!({"type": "fluentbit"}), "firelensConfiguration", "berth has no FireLens log router"),
        ("credentialSpecs", json!(["credentialspec:file://x.json"]), "credentialSpecs", "credential specs configure Active Directory (gMSA) authentication, which berth does not provide"),
        ("resourceRequirements", json!([{"type": "GPU", "value": "1"}]), "resourceRequirements[0].type", "berth has no GPU support"),
        ("logConfiguration", json!({"logDriver": "json-file", "secretOptions": [{"name": "k", "valueFrom": "arn"}]}), "logConfiguration.secretOptions", "berth has no Secrets Manager or SSM Parameter Store access"),
    ];
    for (field, value, path, reason) in container {
        only(
            with(|v| v["containerDefinitions"][0][field] = value.clone()),
            &format!("containerDefinitions[0].{path}: not supported by berth: {reason}"),
        );
    }
    let task = [
        ("taskRoleArn", json!("arn:aws:iam::1:role/r"), "taskRoleArn", "berth has no IAM credentials endpoint, so the containers would not get the role's credentials"),
        ("proxyConfiguration", json!({"type": "APPMESH", "containerName": "envoy"}), "proxyConfiguration", "berth has no App Mesh proxy integration"),
        ("inferenceAccelerators", json!([{"deviceName": "d", "deviceType": "eia2.medium"}]), "inferenceAccelerators", "berth has no Elastic Inference accelerators"),
        ("enableFaultInjection", json!(true), "enableFaultInjection", "berth has no fault injection endpoints"),
        ("runtimePlatform", json!({"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"}), "runtimePlatform.operatingSystemFamily", "berth runs Linux containers only"),
        ("volumes", json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]), "volumes[0].efsVolumeConfiguration", "berth has no Amazon EFS client"),
        ("volumes", json!([{"name": "f", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "\\", "authorizationConfig": {"credentialsParameter": "a", "domain": "d"}}}]), "volumes[0].fsxWindowsFileServerVolumeConfiguration", "FSx for Windows File Server serves Windows containers only"),
        ("volumes", json!([{"name": "l", "configuredAtLaunch": true}]), "volumes[0].configuredAtLaunch", "berth takes no volume configuration when a task is run"),
    ];
    for (field, value, path, reason) in task {
        only(
            with(|v| v[field] = value.clone()),
            &format!("{path}: not supported by berth: {reason}"),
        );
    }
    // Empty lists ask for nothing and pass.
    let empty = with(|v| {
        v["containerDefinitions"][0]["secrets"] = json!([]);
        v["containerDefinitions"][0]["credentialSpecs"] = json!([]);
        v["inferenceAccelerators"] = json!([]);
        v["enableFaultInjection"] = json!(false);
        v["executionRoleArn"] = json!("arn:aws:iam::1:role/ecsTaskExecutionRole");
    });
    assert_eq!(fargate(&empty), Vec::<String>::new());
}

#[test]
fn docker_volumes_outside_fargate() {
    let docker = |config: Value| {
        with(|v| v["volumes"] = json!([{"name": "d", "dockerVolumeConfiguration": config}]))
    };
    only(docker(json!({"scope": "task"})), "volumes[0].dockerVolumeConfiguration: not valid on Fargate (allowed when Fargate mode is off)");
    assert_eq!(ec2(&docker(json!({}))), Vec::<String>::new());
    only_ec2(docker(json!({"scope": "shared"})), "volumes[0].dockerVolumeConfiguration.scope: not supported by berth: berth volumes live and die with their task (use scope task)");
    only_ec2(docker(json!({"driver": "rexray"})), "volumes[0].dockerVolumeConfiguration.driver: not supported by berth: berth has no Docker volume plugins (use driver local)");
    only_ec2(docker(json!({"driverOpts": {"type": "nfs"}})), "volumes[0].dockerVolumeConfiguration.driverOpts: not supported by berth: berth's task volumes are plain directories and take no options");
    only_ec2(
        docker(json!({"autoprovision": true})),
        "volumes[0].dockerVolumeConfiguration.autoprovision: only valid when scope is shared",
    );
}

#[test]
fn volume_rules() {
    only(
        with(|v| v["volumes"] = json!([{"name": "a"}, {"name": "a"}])),
        r#"volumes[1].name: duplicate volume name "a" (also volumes[0])"#,
    );
    only(
        with(|v| v["volumes"] = json!([{"host": {}}])),
        "volumes[0].name: required",
    );
    only(
        with(|v| v["volumes"] = json!([{"name": "a b"}])),
        r#"volumes[0].name: must be 1-255 letters, digits, hyphens or underscores (got "a b")"#,
    );
    only_ec2(
        with(|v| v["volumes"] = json!([{"name": "a", "host": {"sourcePath": "srv"}}])),
        r#"volumes[0].host.sourcePath: must be an absolute path (got "srv")"#,
    );
    only_ec2(
        with(|v| v["volumes"] = json!([{"name": "a", "host": {}, "dockerVolumeConfiguration": {}}])),
        "volumes[0]: give at most one of host, dockerVolumeConfiguration, efsVolumeConfiguration, fsxWindowsFileServerVolumeConfiguration",
    );
}

#[test]
fn task_level_values() {
    only(
        with(|v| v["ephemeralStorage"] = json!({"sizeInGiB": 20})),
        "ephemeralStorage.sizeInGiB: must be between 21 and 200 (got 20)",
    );
    only(
        with(|v| v["ephemeralStorage"] = json!({})),
        "ephemeralStorage.sizeInGiB: required",
    );
    only(
        with(|v| v["runtimePlatform"] = json!({"cpuArchitecture": "RISCV64"})),
        r#"runtimePlatform.cpuArchitecture: must be one of X86_64, ARM64 (got "RISCV64")"#,
    );
    assert_eq!(
        fargate(&with(
            |v| v["runtimePlatform"] =
                json!({"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"})
        )),
        Vec::<String>::new()
    );
    only(
        with(|v| v["tags"] = json!([{"key": "a", "value": "1"}, {"key": "a"}])),
        r#"tags[1].key: duplicate tag key "a" (also tags[0])"#,
    );
    only(
        with(|v| v["tags"] = json!([{"value": "1"}])),
        "tags[0].key: required",
    );
}

#[test]
fn other_container_values() {
    only(
        with(|v| v["containerDefinitions"][0]["workingDirectory"] = json!("app")),
        r#"containerDefinitions[0].workingDirectory: must be an absolute path (got "app")"#,
    );
    only(
        with(|v| v["containerDefinitions"][0]["user"] = json!("1000:")),
        r#"containerDefinitions[0].user: must be user, uid, user:group or uid:gid (got "1000:")"#,
    );
    assert_eq!(
        fargate(&with(
            |v| v["containerDefinitions"][0]["user"] = json!("nobody:nogroup")
        )),
        Vec::<String>::new()
    );
    only(
        with(|v| v["containerDefinitions"][0]["versionConsistency"] = json!("maybe")),
        r#"containerDefinitions[0].versionConsistency: must be one of enabled, disabled (got "maybe")"#,
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["systemControls"] =
                json!([{"namespace": "kernel.panic", "value": "1"}])
        }),
        r#"containerDefinitions[0].systemControls[0].namespace: "kernel.panic" is not a namespaced sysctl (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)"#,
    );
    only(
        with(|v| {
            v["containerDefinitions"][0]["systemControls"] =
                json!([{"namespace": "net.core.somaxconn"}])
        }),
        "containerDefinitions[0].systemControls[0].value: required",
    );
    only(
        with(|v| v["containerDefinitions"][0]["dockerLabels"] = json!({"": "x"})),
        "containerDefinitions[0].dockerLabels: label names must not be empty",
    );
}

#[test]
fn describe_output_with_read_only_fields_is_valid() {
    let json = r#"{
        "taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/demo:3",
            "containerDefinitions": [{
                "name": "app", "image": "busybox", "cpu": 0, "portMappings": [], "essential": true,
                "environment": [], "mountPoints": [], "volumesFrom": [], "systemControls": []
            }],
            "family": "demo",
            "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
            "networkMode": "awsvpc",
            "revision": 3,
            "volumes": [],
            "status": "ACTIVE",
            "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"},
                                   {"name": "ecs.capability.task-eni"}],
            "placementConstraints": [],
            "compatibilities": ["EC2", "FARGATE"],
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
            "registeredAt": "2024-05-01T12:00:00.123000+02:00",
            "registeredBy": "arn:aws:iam::123456789012:user/dev",
            "deregisteredAt": 1714557600.5
        },
        "tags": [{"key": "team", "value": "platform"}]
    }"#;
    let def = crate::parse(json).expect("describe output parses");
    assert_eq!(def.revision, Some(3));
    assert_eq!(def.tags.as_ref().map(Vec::len), Some(1));
    assert_eq!(problems(&def, &Options::default()), Vec::<Problem>::new());
}

#[test]
fn huge_numbers_give_messages_not_panics() {
    let value = with(|v| {
        v["containerDefinitions"][0]["cpu"] = json!(i64::MAX);
        v["containerDefinitions"][1]["cpu"] = json!(i64::MAX);
        v["containerDefinitions"][0]["memory"] = json!(i64::MAX);
    });
    assert_eq!(
        fargate(&value),
        [
            format!("containerDefinitions[0].memory: {} MiB is more than the task memory of 512 MiB", i64::MAX),
            format!("containerDefinitions: the containers' cpu adds up to {} units, more than the task's 256", u64::MAX - 1),
        ]
    );
    // Too big for i64 at all: a parse error with the path.
    let err = crate::parse(r#"{"containerDefinitions": [{"cpu": 99999999999999999999}]}"#)
        .expect_err("overflow");
    assert!(
        err.to_string().starts_with("containerDefinitions[0].cpu: "),
        "{err}"
    );
}
