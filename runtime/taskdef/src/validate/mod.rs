//! Rules a task definition must satisfy before berth runs it.
//!
//! All problems are collected (not just the first) so that one run shows everything to fix. Paths are
//! relative to the task definition object and use the JSON names: `containerDefinitions[1].memory`.

mod container;
mod dependencies;
mod fargate;
mod health;
mod linux;
mod logging;
mod network;
mod ports;
mod task;

use std::collections::HashMap;

use crate::error::{Error, Problem};
use crate::model::TaskDefinition;

pub(crate) use dependencies::edges as dependency_edges;
pub(crate) use health::{HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD, HEALTH_TIMEOUT};
pub(crate) use logging::parse_log_size;

/// Default pids.max of a task cgroup; see [`Options::pids_limit`].
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

/// Switches for validation and planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Apply AWS Fargate's rules (the cpu/memory table, awsvpc only, the Fargate-invalid fields).
    /// A definition whose `requiresCompatibilities` names FARGATE gets them regardless, as in ECS.
    pub fargate: bool,
    /// pids.max for the task cgroup. ECS sets none by default; berth sets one so that a fork bomb in one
    /// sandbox cannot exhaust the host's PIDs. 4096 is far above what a Fargate-sized task needs.
    pub pids_limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fargate: true,
            pids_limit: DEFAULT_PIDS_LIMIT,
        }
    }
}

impl Options {
    /// Options with Fargate mode off (EC2-like rules where berth supports them).
    pub fn non_fargate() -> Self {
        Options {
            fargate: false,
            ..Options::default()
        }
    }

    /// Whether Fargate rules apply to this definition.
    pub fn fargate_for(&self, def: &TaskDefinition) -> bool {
        self.fargate
            || def
                .requires_compatibilities
                .iter()
                .flatten()
                .any(|c| c == "FARGATE")
    }
}

/// Checks `def`; on failure the error lists every problem found.
pub fn validate(def: &TaskDefinition, opts: &Options) -> Result<(), Error> {
    let problems = problems(def, opts);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Every problem with `def`, in document order (task fields, then each container), empty when valid.
pub fn problems(def: &TaskDefinition, opts: &Options) -> Vec<Problem> {
    let ctx = Context::new(def, opts);
    let mut out = Problems::default();
    task::check(&ctx, &mut out);
    container::check_all(&ctx, &mut out);
    dependencies::check(&ctx, &mut out);
    out.0
}

/// What the rules need to know about the whole task while checking one part of it.
pub(crate) struct Context<'a> {
    pub def: &'a TaskDefinition,
    pub fargate: bool,
    /// networkMode with berth's default (awsvpc) applied.
    pub network_mode: &'a str,
    /// Task cpu units / memory MiB, when given and readable (unreadable ones are reported by task.rs).
    pub task_cpu: Option<u64>,
    pub task_memory: Option<u64>,
    /// Container name → index of its first definition.
    pub containers: HashMap<&'a str, usize>,
    /// Volume names defined by the task.
    pub volumes: HashMap<&'a str, usize>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(def: &'a TaskDefinition, opts: &Options) -> Self {
        let mut containers = HashMap::new();
        for (index, container) in def.container_definitions.iter().flatten().enumerate() {
            if let Some(name) = container.name.as_deref() {
                containers.entry(name).or_insert(index);
            }
        }
        let mut volumes = HashMap::new();
        for (index, volume) in def.volumes.iter().flatten().enumerate() {
            if let Some(name) = volume.name.as_deref() {
                volumes.entry(name).or_insert(index);
            }
        }
        Context {
            def,
            fargate: opts.fargate_for(def),
            network_mode: def.network_mode.as_deref().unwrap_or(DEFAULT_NETWORK_MODE),
            task_cpu: def.cpu.as_ref().and_then(|cpu| cpu.cpu_units().ok()),
            task_memory: def
                .memory
                .as_ref()
                .and_then(|memory| memory.memory_mib().ok()),
            containers,
            volumes,
        }
    }

    /// Message for a field Fargate rejects; `allowed_elsewhere` says whether turning Fargate mode off helps.
    pub fn fargate_invalid(&self, allowed_elsewhere: bool) -> String {
        if allowed_elsewhere {
            "not valid on Fargate (allowed when Fargate mode is off)".to_owned()
        } else {
            "not valid on Fargate".to_owned()
        }
    }
}

/// ECS's default for EC2 is bridge, which berth does not support; every berth task gets its own network
/// namespace, which is what awsvpc means.
pub const DEFAULT_NETWORK_MODE: &str = "awsvpc";

/// Collects problems.
#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    pub fn unsupported(&mut self, path: impl Into<String>, reason: &str) {
        self.push(path, format!("not supported by berth: {reason}"));
    }

    /// Reports `value` at `path` unless it lies in `min..=max`.
    pub fn range(&mut self, path: impl Into<String>, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.push(
                path,
                format!("must be between {min} and {max} (got {value})"),
            );
        }
    }

    pub fn at_least(&mut self, path: impl Into<String>, value: i64, min: i64) {
        if value < min {
            self.push(path, format!("must be at least {min} (got {value})"));
        }
    }

    /// Reports a value outside `allowed`.
    pub fn one_of(&mut self, path: impl Into<String>, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(
                path,
                format!("must be one of {} (got {value:?})", allowed.join(", ")),
            );
        }
    }
}

/// Family, container and volume names: ECS allows 1-255 ASCII letters, digits, hyphens and underscores.
pub(crate) fn is_valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) const NAME_RULE: &str = "must be 1-255 letters, digits, hyphens or underscores";

pub(crate) fn is_absolute_path(path: &str) -> bool {
    path.starts_with('/') && !path.contains('\0')
}

/// A list field that is absent or empty has no effect, so unsupported features only matter when non-empty.
pub(crate) fn non_empty<T>(list: &Option<Vec<T>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

#[cfg(test)]
mod tests;
