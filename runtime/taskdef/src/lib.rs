//! `berth-taskdef`: read, check and plan ECS task definitions. Pure logic: no I/O, no processes.
//!
//! ```text
//! JSON text ──parse──▶ TaskDefinition ──validate──▶ ok / every problem ──plan──▶ TaskPlan
//!                                                                     merge_process(image, container)
//! ```
//!
//! * [`parse`] reads a definition: the RegisterTaskDefinition shape, or whole `aws ecs
//!   describe-task-definition` output (`{"taskDefinition": {...}, "tags": [...]}`). The model
//!   ([`model`]) has every field of the ECS API; an unknown field is an error naming its JSON path
//!   (with a "did you mean" for typos) instead of being silently dropped.
//! * [`validate`] checks ECS's rules and berth's limits and returns **all** problems, each printed as
//!   `path: message`, e.g. `containerDefinitions[1].dependsOn[0].containerName: no container named "db"`.
//! * [`plan()`] turns a valid definition into what the runner needs: cgroup values, start/stop order,
//!   defaults applied (see [`TaskPlan`]). [`merge_process`] combines a container with its image config.
//!
//! ```
//! use berth_taskdef::{load, plan, Options};
//!
//! let json = r#"{"family": "hello", "cpu": "256", "memory": "0.5 GB",
//!     "containerDefinitions": [{"name": "main", "image": "busybox", "command": ["echo", "hi"]}]}"#;
//! let def = load(json, &Options::default())?;
//! let plan = plan(&def, &Options::default())?;
//! assert_eq!(plan.start_order, [["main"]]);
//! assert_eq!(plan.cgroup.memory_limit_bytes, Some(512 << 20));
//!
//! let bad = r#"{"family": "hello", "cpu": "256", "memory": "512",
//!     "containerDefinitions": [{"name": "main", "image": "busybox",
//!         "dependsOn": [{"containerName": "db", "condition": "START"}]}]}"#;
//! let err = load(bad, &Options::default()).unwrap_err();
//! assert_eq!(err.to_string(), r#"containerDefinitions[0].dependsOn[0].containerName: no container named "db""#);
//! # Ok::<(), berth_taskdef::Error>(())
//! ```
//!
//! # Decisions
//!
//! **Fargate mode** ([`Options::fargate`], on by default, and forced by `requiresCompatibilities`
//! containing FARGATE, as in ECS): task cpu and memory are required and must be a pair from Fargate's
//! table; networkMode must be awsvpc; disableNetworking, dnsServers, dnsSearchDomains, extraHosts,
//! dockerSecurityOptions, ipcMode, links, placementConstraints, privileged, maxSwap, swappiness,
//! devices, sharedMemorySize, tmpfs, host.sourcePath, dockerVolumeConfiguration and capabilities other
//! than SYS_PTRACE are rejected; stopTimeout is at most 120 s; nofile at most 1048576. With Fargate mode
//! off, berth accepts devices, sharedMemorySize, tmpfs, privileged, maxSwap, swappiness, host volumes,
//! ipcMode task/none, networkMode none, no-new-privileges and, outside awsvpc, DNS settings.
//!
//! **networkMode** defaults to awsvpc in both modes (ECS's EC2 default, bridge, is not supported):
//! every berth task gets its own network namespace. `none` is allowed outside Fargate; `bridge` and
//! `host` are rejected.
//!
//! **Rejected because berth cannot honour them** (message `not supported by berth: <why>`), so that a
//! task never runs differently from what its definition says: taskRoleArn (no credentials endpoint),
//! secrets and logConfiguration.secretOptions (no Secrets Manager / SSM), repositoryCredentials (images
//! are local), environmentFiles given as S3 ARNs, efsVolumeConfiguration,
//! fsxWindowsFileServerVolumeConfiguration, configuredAtLaunch volumes, proxyConfiguration,
//! inferenceAccelerators, firelensConfiguration, credentialSpecs, resourceRequirements (GPU or
//! accelerator), enableFaultInjection, Windows platforms, pidMode/ipcMode host, placementConstraints,
//! log drivers other than json-file, json-file options other than max-size / max-file, and
//! dockerSecurityOptions other than no-new-privileges. Empty lists of these are accepted: they ask for
//! nothing.
//!
//! **Accepted with a berth meaning:**
//! * `logConfiguration.logDriver` must be `json-file` (berth's local log files), also in Fargate mode
//!   where ECS itself would not offer json-file.
//! * `environmentFiles[].value` is an absolute path of a file on the host (ECS's is an S3 ARN); `type`
//!   may be `s3`, ECS's only value, for compatibility. [`parse_env_file`] reads the ECS file format.
//! * `dockerVolumeConfiguration` (outside Fargate) only as `scope: task` with driver `local` and no
//!   driverOpts/labels: that is exactly a task-scoped empty directory, like a volume without `host`.
//! * `executionRoleArn`, `versionConsistency`, `tags`, `requiresCompatibilities` and `dockerLabels` are
//!   validated but change nothing: the execution role only authorises agent actions berth rejects
//!   separately (secrets, registry logins, awslogs), and images are resolved locally.
//! * The read-only DescribeTaskDefinition fields (taskDefinitionArn, revision, status, compatibilities,
//!   requiresAttributes, registeredAt, registeredBy, deregisteredAt) are accepted and ignored.
//!
//! **Ordering**: volumesFrom orders start like a START dependency (the source's volumes must exist), so
//! it takes part in cycle detection and in [`TaskPlan::start_order`].
//!
//! **Defaults the plan applies**: essential true, stopTimeout 30 s, no startTimeout (wait without
//! limit), health check interval 30 / timeout 5 / retries 3 / startPeriod 0, nofile 65535/65535 when no
//! nofile ulimit is given (Fargate's default, used in both modes), pids.max 4096 for the task
//! ([`Options::pids_limit`]), ephemeral storage 20 GiB, restartAttemptPeriod 300 s.

mod env_file;
mod error;
mod kernel_names;
pub mod model;
mod order;
mod parse;
pub mod plan;
mod validate;

pub use env_file::parse_env_file;
pub use error::{Error, Problem};
pub use model::TaskDefinition;
pub use parse::parse;
pub use plan::process::{merge_process, ImageConfig, Process};
pub use plan::{plan, TaskPlan};
pub use validate::{problems, validate, Options, DEFAULT_PIDS_LIMIT};

/// [`parse`] then [`validate`]: a definition that is ready to [`plan()`].
pub fn load(json: &str, opts: &Options) -> Result<TaskDefinition, Error> {
    let def = parse(json)?;
    validate(&def, opts)?;
    Ok(def)
}
