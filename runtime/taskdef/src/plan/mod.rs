//! What the runner needs to run a validated task definition, as plain data with every default applied.

pub mod cgroup;
mod container;
pub mod process;

use serde::Serialize;

pub use cgroup::TaskCpu;
pub use container::{
    Condition, ContainerPlan, Dependency, DevicePlan, HealthCheckPlan, LinuxPlan, LogPlan,
    MountPlan, PortPlan, RestartPlan, TmpfsPlan, UlimitPlan, VolumesFromPlan,
};

use crate::error::Error;
use crate::model::TaskDefinition;
use crate::order;
use crate::validate::{self, Options, DEFAULT_NETWORK_MODE};

/// Task storage when ephemeralStorage is not given (Fargate's default).
pub const DEFAULT_EPHEMERAL_STORAGE_GIB: u64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskPlan {
    pub family: String,
    /// Whether Fargate rules were applied.
    pub fargate: bool,
    /// "awsvpc" (the default) or "none".
    pub network_mode: String,
    /// "task": the containers share one PID namespace; None: each container has its own.
    pub pid_mode: Option<String>,
    /// "task": the containers share one IPC namespace; "none": private IPC without /dev/shm;
    /// None: each container has its own.
    pub ipc_mode: Option<String>,
    pub ephemeral_storage_gib: u64,
    pub cgroup: TaskCgroup,
    pub volumes: Vec<VolumePlan>,
    /// In definition order.
    pub containers: Vec<ContainerPlan>,
    /// Container names in levels: every container comes after everything it depends on (dependsOn and
    /// volumesFrom); containers in one level may start together. The runner still waits for each
    /// dependsOn condition, which the levels only order.
    pub start_order: Vec<Vec<String>>,
    /// start_order reversed: dependents stop before their dependencies.
    pub stop_order: Vec<Vec<String>>,
}

/// The task cgroup (parent of the containers' cgroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskCgroup {
    pub cpu: TaskCpu,
    /// memory.max / memory.limit_in_bytes from task memory; None when the task has no memory (only the
    /// containers' own limits apply then).
    pub memory_limit_bytes: Option<u64>,
    pub pids_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VolumeSource {
    /// An empty directory created for the task and removed with it (no host, or a task-scoped local
    /// dockerVolumeConfiguration).
    Task,
    /// A host directory bind-mounted as is (host.sourcePath; not on Fargate).
    Host { path: String },
}

/// Validates `def` and computes its plan.
pub fn plan(def: &TaskDefinition, opts: &Options) -> Result<TaskPlan, Error> {
    validate::validate(def, opts)?;
    let fargate = opts.fargate_for(def);
    let containers_def = def.container_definitions.as_deref().unwrap_or_default();

    let task_cpu = def
        .cpu
        .as_ref()
        .map(|cpu| cpu.cpu_units())
        .transpose()
        .map_err(|m| invalid("cpu", m))?;
    let task_memory = def
        .memory
        .as_ref()
        .map(|memory| memory.memory_mib())
        .transpose()
        .map_err(|m| invalid("memory", m))?;
    let cpu = match task_cpu {
        Some(units) => TaskCpu::Quota {
            quota_us: cgroup::cpu_quota_us(units),
            period_us: cgroup::CPU_PERIOD_US,
        },
        None => {
            let shares = cgroup::task_cpu_shares(
                containers_def
                    .iter()
                    .map(|c| non_negative(c.cpu.unwrap_or(0))),
            );
            TaskCpu::Shares {
                shares,
                weight: cgroup::shares_to_weight(shares),
            }
        }
    };

    let containers: Vec<ContainerPlan> = containers_def
        .iter()
        .enumerate()
        .map(|(index, c)| container::plan(index, c))
        .collect();

    let ctx = validate::Context::new(def, opts);
    let edges: Vec<(usize, usize)> = validate::dependency_edges(&ctx)
        .iter()
        .map(|e| (e.dependent, e.dependency))
        .collect();
    // validate() has ruled cycles out; keep an error rather than a panic should that ever change.
    let levels = order::levels(containers.len(), &edges)
        .map_err(|_| invalid("containerDefinitions", "dependency cycle"))?;
    let name_of = |i: &usize| {
        containers
            .get(*i)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    };
    let start_order: Vec<Vec<String>> = levels
        .iter()
        .map(|level| level.iter().map(name_of).collect())
        .collect();
    let stop_order = start_order.iter().rev().cloned().collect();

    Ok(TaskPlan {
        family: def.family.clone().unwrap_or_default(),
        fargate,
        network_mode: def
            .network_mode
            .clone()
            .unwrap_or_else(|| DEFAULT_NETWORK_MODE.to_owned()),
        pid_mode: def.pid_mode.clone(),
        ipc_mode: def.ipc_mode.clone(),
        ephemeral_storage_gib: def
            .ephemeral_storage
            .as_ref()
            .and_then(|storage| storage.size_in_gib)
            .map_or(DEFAULT_EPHEMERAL_STORAGE_GIB, non_negative),
        cgroup: TaskCgroup {
            cpu,
            memory_limit_bytes: task_memory.map(cgroup::mib_to_bytes),
            pids_limit: opts.pids_limit,
        },
        volumes: def
            .volumes
            .iter()
            .flatten()
            .map(|volume| VolumePlan {
                name: volume.name.clone().unwrap_or_default(),
                source: match volume
                    .host
                    .as_ref()
                    .and_then(|host| host.source_path.clone())
                {
                    Some(path) => VolumeSource::Host { path },
                    None => VolumeSource::Task,
                },
            })
            .collect(),
        containers,
        start_order,
        stop_order,
    })
}

fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![crate::error::Problem::new(path, message)])
}

/// Validated values are never negative; clamp rather than wrap should one slip through.
pub(crate) fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests;
