//! Per-container plan: a container definition with defaults applied and units converted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cgroup;
use super::non_negative;
use crate::kernel_names::rlimit_resource;
use crate::model::{ContainerDefinition, HealthCheck};
use crate::validate::{
    parse_log_size, HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD, HEALTH_TIMEOUT,
};

/// stopTimeout when not given (Fargate's default, and the ECS agent's ECS_CONTAINER_STOP_TIMEOUT default).
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 30;

/// nofile when the definition sets none: Fargate's default soft and hard limit.
pub const DEFAULT_NOFILE: u64 = 65_535;

/// restartPolicy.restartAttemptPeriod when not given.
pub const DEFAULT_RESTART_ATTEMPT_PERIOD_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerPlan {
    /// Position in containerDefinitions, for messages (`containerDefinitions[index]`).
    pub index: usize,
    pub name: String,
    pub image: String,
    pub essential: bool,
    /// cgroup v1 cpu.shares (container cpu clamped to 2..=262144).
    pub cpu_shares: u64,
    /// cgroup v2 cpu.weight, converted from cpu_shares.
    pub cpu_weight: u64,
    /// Hard limit (memory.max) from `memory`.
    pub memory_limit_bytes: Option<u64>,
    /// Soft limit (v2 memory.low, v1 memory.soft_limit_in_bytes) from `memoryReservation`.
    pub memory_reservation_bytes: Option<u64>,
    /// From linuxParameters.maxSwap (0 = no swap); None = the host's default.
    pub max_swap_bytes: Option<u64>,
    pub swappiness: Option<u64>,
    /// As in the definition; see [`crate::merge_process`] for combining them with the image.
    pub entry_point: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// `NAME=VALUE` from `environment`, in order; a repeated name keeps its first position and last value.
    pub environment: Vec<String>,
    /// Host paths of environment files, in order (read them with [`crate::parse_env_file`]).
    pub environment_files: Vec<String>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub depends_on: Vec<Dependency>,
    /// How long a dependent waits for this container to reach its condition; None = no limit.
    pub start_timeout_secs: Option<u64>,
    /// Grace between SIGTERM and SIGKILL.
    pub stop_timeout_secs: u64,
    pub health_check: Option<HealthCheckPlan>,
    /// The definition's ulimits, plus nofile 65535/65535 when it sets none.
    pub ulimits: Vec<UlimitPlan>,
    pub mounts: Vec<MountPlan>,
    pub volumes_from: Vec<VolumesFromPlan>,
    pub port_mappings: Vec<PortPlan>,
    pub linux: LinuxPlan,
    pub privileged: bool,
    pub readonly_root_filesystem: bool,
    pub interactive: bool,
    pub pseudo_terminal: bool,
    /// Only loopback in the container's network.
    pub disable_networking: bool,
    /// dockerSecurityOptions no-new-privileges.
    pub no_new_privileges: bool,
    pub hostname: Option<String>,
    pub dns_servers: Vec<String>,
    pub dns_search_domains: Vec<String>,
    /// (hostname, IP address) lines for /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// systemControls. In awsvpc mode net.* values land in the network namespace the whole task shares.
    pub sysctls: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub log: LogPlan,
    /// Present when restartPolicy.enabled is true.
    pub restart_policy: Option<RestartPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub container: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Condition {
    /// The dependency has started.
    Start,
    /// The dependency has exited (any code).
    Complete,
    /// The dependency has exited with code 0; a non-zero exit fails the task fast.
    Success,
    /// The dependency's health check passes.
    Healthy,
}

impl Condition {
    fn from_ecs(text: &str) -> Option<Self> {
        Some(match text {
            "START" => Condition::Start,
            "COMPLETE" => Condition::Complete,
            "SUCCESS" => Condition::Success,
            "HEALTHY" => Condition::Healthy,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheckPlan {
    /// The definition's command, e.g. `["CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"]`.
    pub command: Vec<String>,
    /// What to exec in the container: CMD's arguments as given; CMD-SHELL's joined and run by
    /// `/bin/sh -c`, as Docker does.
    pub argv: Vec<String>,
    pub interval_secs: u64,
    pub timeout_secs: u64,
    pub retries: u64,
    /// Failures during this grace period after start do not count; 0 = none.
    pub start_period_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UlimitPlan {
    /// ECS name, e.g. "nofile".
    pub name: String,
    /// setrlimit resource, e.g. "RLIMIT_NOFILE".
    pub resource: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountPlan {
    pub volume: String,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumesFromPlan {
    pub container: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortPlan {
    /// First and last port (equal unless containerPortRange was used).
    pub container_port: u16,
    pub container_port_end: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxPlan {
    /// Capabilities with the kernel's CAP_ prefix (or "ALL").
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub devices: Vec<DevicePlan>,
    /// Run an init process (PID 1) that reaps zombies and forwards signals.
    pub init_process: bool,
    /// Size of /dev/shm.
    pub shared_memory_bytes: Option<u64>,
    pub tmpfs: Vec<TmpfsPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicePlan {
    pub host_path: String,
    /// Defaults to host_path.
    pub container_path: String,
    /// Subset of "read", "write", "mknod"; all three when the definition gives none.
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TmpfsPlan {
    pub container_path: String,
    pub size_bytes: u64,
    pub mount_options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogPlan {
    /// Always "json-file", the only driver berth has.
    pub driver: String,
    pub max_size_bytes: Option<u64>,
    pub max_file: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestartPlan {
    /// Exits with these codes do not restart the container.
    pub ignored_exit_codes: Vec<i64>,
    /// A container must have run this long before it may be restarted (ECS's guard against restart loops).
    pub attempt_period_secs: u64,
}

pub(super) fn plan(index: usize, c: &ContainerDefinition) -> ContainerPlan {
    let cpu_shares = cgroup::cpu_shares(non_negative(c.cpu.unwrap_or(0)));
    let mib = |value: Option<i64>| value.map(|mib| cgroup::mib_to_bytes(non_negative(mib)));
    let linux = c.linux_parameters.clone().unwrap_or_default();
    let security_options = c.docker_security_options.as_deref().unwrap_or_default();
    ContainerPlan {
        index,
        name: c.name.clone().unwrap_or_default(),
        image: c.image.clone().unwrap_or_default(),
        essential: c.is_essential(),
        cpu_shares,
        cpu_weight: cgroup::shares_to_weight(cpu_shares),
        memory_limit_bytes: mib(c.memory),
        memory_reservation_bytes: mib(c.memory_reservation),
        max_swap_bytes: mib(linux.max_swap),
        swappiness: linux.swappiness.map(non_negative),
        entry_point: c.entry_point.clone(),
        command: c.command.clone(),
        environment: environment(c),
        environment_files: c
            .environment_files
            .iter()
            .flatten()
            .filter_map(|f| f.value.clone())
            .collect(),
        working_directory: c.working_directory.clone(),
        user: c.user.clone(),
        depends_on: c
            .depends_on
            .iter()
            .flatten()
            .filter_map(|d| {
                Some(Dependency {
                    container: d.container_name.clone()?,
                    condition: Condition::from_ecs(d.condition.as_deref()?)?,
                })
            })
            .collect(),
        start_timeout_secs: c.start_timeout.map(non_negative),
        stop_timeout_secs: c
            .stop_timeout
            .map_or(DEFAULT_STOP_TIMEOUT_SECS, non_negative),
        health_check: c.health_check.as_ref().map(health_check),
        ulimits: ulimits(c),
        mounts: c
            .mount_points
            .iter()
            .flatten()
            .map(|m| MountPlan {
                volume: m.source_volume.clone().unwrap_or_default(),
                container_path: m.container_path.clone().unwrap_or_default(),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect(),
        volumes_from: c
            .volumes_from
            .iter()
            .flatten()
            .map(|v| VolumesFromPlan {
                container: v.source_container.clone().unwrap_or_default(),
                read_only: v.read_only.unwrap_or(false),
            })
            .collect(),
        port_mappings: c.port_mappings.iter().flatten().filter_map(port).collect(),
        linux: linux_plan(&linux),
        privileged: c.privileged.unwrap_or(false),
        readonly_root_filesystem: c.readonly_root_filesystem.unwrap_or(false),
        interactive: c.interactive.unwrap_or(false),
        pseudo_terminal: c.pseudo_terminal.unwrap_or(false),
        disable_networking: c.disable_networking.unwrap_or(false),
        no_new_privileges: security_options.iter().any(|o| o == "no-new-privileges"),
        hostname: c.hostname.clone(),
        dns_servers: c.dns_servers.clone().unwrap_or_default(),
        dns_search_domains: c.dns_search_domains.clone().unwrap_or_default(),
        extra_hosts: c
            .extra_hosts
            .iter()
            .flatten()
            .filter_map(|h| Some((h.hostname.clone()?, h.ip_address.clone()?)))
            .collect(),
        sysctls: c
            .system_controls
            .iter()
            .flatten()
            .filter_map(|s| Some((s.namespace.clone()?, s.value.clone()?)))
            .collect(),
        labels: c.docker_labels.clone().unwrap_or_default(),
        log: log(c),
        restart_policy: c
            .restart_policy
            .as_ref()
            .filter(|p| p.enabled == Some(true))
            .map(|p| RestartPlan {
                ignored_exit_codes: p.ignored_exit_codes.clone().unwrap_or_default(),
                attempt_period_secs: p
                    .restart_attempt_period
                    .map_or(DEFAULT_RESTART_ATTEMPT_PERIOD_SECS, non_negative),
            }),
    }
}

fn environment(c: &ContainerDefinition) -> Vec<String> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for variable in c.environment.iter().flatten() {
        let name = variable.name.clone().unwrap_or_default();
        let value = variable.value.clone().unwrap_or_default();
        match entries.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = value,
            None => entries.push((name, value)),
        }
    }
    entries
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

fn health_check(health: &HealthCheck) -> HealthCheckPlan {
    let command = health.command.clone().unwrap_or_default();
    let argv = match command.split_first() {
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")]
        }
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    };
    let or_default = |value: Option<i64>, (_, _, default): (i64, i64, i64)| {
        non_negative(value.unwrap_or(default))
    };
    HealthCheckPlan {
        argv,
        command,
        interval_secs: or_default(health.interval, HEALTH_INTERVAL),
        timeout_secs: or_default(health.timeout, HEALTH_TIMEOUT),
        retries: or_default(health.retries, HEALTH_RETRIES),
        start_period_secs: or_default(health.start_period, HEALTH_START_PERIOD),
    }
}

fn ulimits(c: &ContainerDefinition) -> Vec<UlimitPlan> {
    let mut plans: Vec<UlimitPlan> = c
        .ulimits
        .iter()
        .flatten()
        .filter_map(|u| {
            let name = u.name.clone()?;
            Some(UlimitPlan {
                resource: rlimit_resource(&name)?.to_owned(),
                name,
                soft: non_negative(u.soft_limit?),
                hard: non_negative(u.hard_limit?),
            })
        })
        .collect();
    if !plans.iter().any(|u| u.name == "nofile") {
        plans.push(UlimitPlan {
            name: "nofile".to_owned(),
            resource: "RLIMIT_NOFILE".to_owned(),
            soft: DEFAULT_NOFILE,
            hard: DEFAULT_NOFILE,
        });
    }
    plans
}

fn port(m: &crate::model::PortMapping) -> Option<PortPlan> {
    let (start, end) = match (m.container_port, m.container_port_range.as_deref()) {
        (Some(port), _) => (port, port),
        (None, Some(range)) => {
            let (start, end) = range.split_once('-')?;
            (start.trim().parse().ok()?, end.trim().parse().ok()?)
        }
        (None, None) => return None,
    };
    Some(PortPlan {
        container_port: u16::try_from(start).ok()?,
        container_port_end: u16::try_from(end).ok()?,
        protocol: m.protocol.clone().unwrap_or_else(|| "tcp".to_owned()),
        name: m.name.clone(),
    })
}

fn linux_plan(linux: &crate::model::LinuxParameters) -> LinuxPlan {
    let caps = |list: Option<&Vec<String>>| -> Vec<String> {
        list.into_iter()
            .flatten()
            .map(|cap| {
                if cap == "ALL" {
                    cap.clone()
                } else {
                    format!("CAP_{cap}")
                }
            })
            .collect()
    };
    let capabilities = linux.capabilities.as_ref();
    LinuxPlan {
        capabilities_add: caps(capabilities.and_then(|c| c.add.as_ref())),
        capabilities_drop: caps(capabilities.and_then(|c| c.drop.as_ref())),
        devices: linux
            .devices
            .iter()
            .flatten()
            .filter_map(|d| {
                let host_path = d.host_path.clone()?;
                let permissions = match d.permissions.as_deref() {
                    Some(list) if !list.is_empty() => list.to_vec(),
                    _ => vec!["read".to_owned(), "write".to_owned(), "mknod".to_owned()],
                };
                Some(DevicePlan {
                    container_path: d
                        .container_path
                        .clone()
                        .unwrap_or_else(|| host_path.clone()),
                    host_path,
                    permissions,
                })
            })
            .collect(),
        init_process: linux.init_process_enabled.unwrap_or(false),
        shared_memory_bytes: linux
            .shared_memory_size
            .map(|mib| cgroup::mib_to_bytes(non_negative(mib))),
        tmpfs: linux
            .tmpfs
            .iter()
            .flatten()
            .filter_map(|t| {
                Some(TmpfsPlan {
                    container_path: t.container_path.clone()?,
                    size_bytes: cgroup::mib_to_bytes(non_negative(t.size?)),
                    mount_options: t.mount_options.clone().unwrap_or_default(),
                })
            })
            .collect(),
    }
}

fn log(c: &ContainerDefinition) -> LogPlan {
    let options = c
        .log_configuration
        .as_ref()
        .and_then(|l| l.options.as_ref());
    let option = |key: &str| options.and_then(|o| o.get(key));
    LogPlan {
        driver: "json-file".to_owned(),
        max_size_bytes: option("max-size").and_then(|size| parse_log_size(size)),
        max_file: option("max-file").and_then(|n| n.parse().ok()),
    }
}
