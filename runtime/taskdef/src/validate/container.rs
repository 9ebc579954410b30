//! Per-container fields, and the rules that look at all containers together (essential, cpu sum).

use std::collections::HashMap;

use super::task::MIN_MEMORY_MIB;
use super::{
    health, is_absolute_path, is_valid_name, linux, logging, network, non_empty, ports, Context,
    Problems, NAME_RULE,
};
use crate::model::{ContainerDefinition, RestartPolicy};

/// Fargate's limit on stopTimeout (seconds).
const FARGATE_MAX_STOP_TIMEOUT: i64 = 120;

/// ECS allows at most 10 environment files per container.
const MAX_ENVIRONMENT_FILES: usize = 10;

pub(super) fn check_all(ctx: &Context, out: &mut Problems) {
    let containers = ctx.def.container_definitions.as_deref().unwrap_or_default();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ports = ports::TaskPorts::default();
    for (index, container) in containers.iter().enumerate() {
        let path = format!("containerDefinitions[{index}]");
        if let Some(name) = container.name.as_deref() {
            if let Some(first) = names.insert(name, index) {
                out.push(
                    format!("{path}.name"),
                    format!(
                        "duplicate container name {name:?} (also containerDefinitions[{first}])"
                    ),
                );
            }
        }
        check_one(ctx, &path, container, out);
        ports.check(ctx, &path, container, out);
    }
    if !containers.is_empty() && !containers.iter().any(ContainerDefinition::is_essential) {
        out.push(
            "containerDefinitions",
            "at least one container must be essential",
        );
    }
    if let Some(task_cpu) = ctx.task_cpu {
        // Saturating: absurd values must give a message, not an overflow panic.
        let total: u64 = containers
            .iter()
            .filter_map(|c| c.cpu)
            .filter(|&cpu| cpu > 0)
            .map(i64::unsigned_abs)
            .fold(0, u64::saturating_add);
        if total > task_cpu {
            out.push(
                "containerDefinitions",
                format!(
                    "the containers' cpu adds up to {total} units, more than the task's {task_cpu}"
                ),
            );
        }
    }
}

fn check_one(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    match c.name.as_deref() {
        None => out.push(format!("{path}.name"), "required"),
        Some(name) if !is_valid_name(name) => out.push(
            format!("{path}.name"),
            format!("{NAME_RULE} (got {name:?})"),
        ),
        Some(_) => {}
    }
    match c.image.as_deref() {
        None => out.push(format!("{path}.image"), "required"),
        Some("") => out.push(format!("{path}.image"), "must not be empty"),
        Some(image) if image.chars().any(char::is_whitespace) => out.push(
            format!("{path}.image"),
            format!("must not contain whitespace (got {image:?})"),
        ),
        Some(_) => {}
    }
    if c.repository_credentials.is_some() {
        out.unsupported(
            format!("{path}.repositoryCredentials"),
            "berth runs locally available images and never logs in to a registry",
        );
    }
    check_resources(ctx, path, c, out);
    if non_empty(&c.links) {
        if ctx.fargate {
            out.push(format!("{path}.links"), ctx.fargate_invalid(false));
        } else {
            out.unsupported(
                format!("{path}.links"),
                "links need networkMode bridge, which berth does not support",
            );
        }
    }
    if let Some(policy) = &c.restart_policy {
        check_restart_policy(&format!("{path}.restartPolicy"), policy, out);
    }
    check_environment(path, c, out);
    check_mount_points(ctx, path, c, out);
    if let Some(linux) = &c.linux_parameters {
        linux::check_parameters(ctx, &format!("{path}.linuxParameters"), linux, out);
    }
    if non_empty(&c.secrets) {
        out.unsupported(
            format!("{path}.secrets"),
            "berth has no Secrets Manager or SSM Parameter Store access",
        );
    }
    if let Some(timeout) = c.start_timeout {
        out.at_least(format!("{path}.startTimeout"), timeout, 0);
    }
    if let Some(timeout) = c.stop_timeout {
        if ctx.fargate {
            out.range(
                format!("{path}.stopTimeout"),
                timeout,
                0,
                FARGATE_MAX_STOP_TIMEOUT,
            );
        } else {
            out.at_least(format!("{path}.stopTimeout"), timeout, 0);
        }
    }
    if let Some(consistency) = c.version_consistency.as_deref() {
        out.one_of(
            format!("{path}.versionConsistency"),
            consistency,
            &["enabled", "disabled"],
        );
    }
    network::check_identity(ctx, path, c, out);
    network::check_networking(ctx, path, c, out);
    if c.privileged == Some(true) && ctx.fargate {
        out.push(format!("{path}.privileged"), ctx.fargate_invalid(true));
    }
    for (key, _) in c.docker_labels.iter().flatten() {
        if key.is_empty() {
            out.push(
                format!("{path}.dockerLabels"),
                "label names must not be empty",
            );
        }
    }
    linux::check_ulimits(ctx, path, c.ulimits.as_deref().unwrap_or_default(), out);
    if let Some(log) = &c.log_configuration {
        logging::check_log_configuration(&format!("{path}.logConfiguration"), log, out);
    }
    if let Some(health) = &c.health_check {
        health::check_health_check(&format!("{path}.healthCheck"), health, out);
    }
    linux::check_system_controls(path, c.system_controls.as_deref().unwrap_or_default(), out);
    for (i, requirement) in c.resource_requirements.iter().flatten().enumerate() {
        let at = format!("{path}.resourceRequirements[{i}].type");
        match requirement.kind.as_deref() {
            Some("GPU") => out.unsupported(at, "berth has no GPU support"),
            Some("InferenceAccelerator") => {
                out.unsupported(at, "berth has no Elastic Inference accelerators")
            }
            Some(other) => out.one_of(at, other, &["GPU", "InferenceAccelerator"]),
            None => out.push(at, "required"),
        }
    }
    if c.firelens_configuration.is_some() {
        out.unsupported(
            format!("{path}.firelensConfiguration"),
            "berth has no FireLens log router",
        );
    }
    if non_empty(&c.credential_specs) {
        out.unsupported(
            format!("{path}.credentialSpecs"),
            "credential specs configure Active Directory (gMSA) authentication, which berth does not provide",
        );
    }
}

fn check_resources(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    if let Some(cpu) = c.cpu {
        out.at_least(format!("{path}.cpu"), cpu, 0);
    }
    for (field, value) in [
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
    ] {
        let Some(mib) = value else { continue };
        if mib < MIN_MEMORY_MIB {
            out.push(
                format!("{path}.{field}"),
                format!("must be at least {MIN_MEMORY_MIB} MiB (got {mib})"),
            );
        } else if let Some(task) = ctx.task_memory.filter(|&task| mib.unsigned_abs() > task) {
            out.push(
                format!("{path}.{field}"),
                format!("{mib} MiB is more than the task memory of {task} MiB"),
            );
        }
    }
    if let (Some(hard), Some(soft)) = (c.memory, c.memory_reservation) {
        if soft > hard {
            out.push(
                format!("{path}.memoryReservation"),
                format!("must not be more than memory ({soft} MiB > {hard} MiB)"),
            );
        }
    }
    // Without a task-level size ECS needs each container's own size to place and limit it.
    // (Fargate requires task memory, reported at the task level.)
    if !ctx.fargate
        && ctx.def.memory.is_none()
        && c.memory.is_none()
        && c.memory_reservation.is_none()
    {
        out.push(
            format!("{path}.memory"),
            "memory or memoryReservation is required when the task has no memory",
        );
    }
}

fn check_restart_policy(path: &str, policy: &RestartPolicy, out: &mut Problems) {
    if policy.enabled.is_none() {
        out.push(format!("{path}.enabled"), "required");
    }
    if let Some(codes) = &policy.ignored_exit_codes {
        if codes.len() > 50 {
            out.push(
                format!("{path}.ignoredExitCodes"),
                format!("at most 50 exit codes are allowed (got {})", codes.len()),
            );
        }
    }
    if let Some(period) = policy.restart_attempt_period {
        out.range(format!("{path}.restartAttemptPeriod"), period, 60, 1800);
    }
}

fn check_environment(path: &str, c: &ContainerDefinition, out: &mut Problems) {
    for (i, variable) in c.environment.iter().flatten().enumerate() {
        let at = format!("{path}.environment[{i}]");
        match variable.name.as_deref() {
            None | Some("") => out.push(format!("{at}.name"), "must not be empty"),
            // The runner passes "NAME=VALUE" strings to execve; a name with '=' would split differently.
            Some(name) if name.contains(['=', '\0']) => out.push(
                format!("{at}.name"),
                format!("must not contain '=' or NUL (got {name:?})"),
            ),
            Some(_) => {}
        }
        if variable
            .value
            .as_deref()
            .is_some_and(|value| value.contains('\0'))
        {
            out.push(format!("{at}.value"), "must not contain NUL");
        }
    }
    let files = c.environment_files.as_deref().unwrap_or_default();
    if files.len() > MAX_ENVIRONMENT_FILES {
        out.push(
            format!("{path}.environmentFiles"),
            format!(
                "at most {MAX_ENVIRONMENT_FILES} environment files are allowed (got {})",
                files.len()
            ),
        );
    }
    for (i, file) in files.iter().enumerate() {
        let at = format!("{path}.environmentFiles[{i}]");
        // "s3" is the only type ECS has; berth keeps it for compatibility but reads local files.
        if let Some(kind) = file.kind.as_deref() {
            out.one_of(format!("{at}.type"), kind, &["s3"]);
        }
        match file.value.as_deref() {
            None => out.push(format!("{at}.value"), "required"),
            Some(value) if value.starts_with("arn:") => out.unsupported(
                format!("{at}.value"),
                "berth has no S3 access; give an absolute path to a file on the host",
            ),
            Some(value) if !is_absolute_path(value) => out.push(
                format!("{at}.value"),
                format!("must be an absolute path on the host (got {value:?})"),
            ),
            Some(_) => {}
        }
    }
}

fn check_mount_points(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    let mut targets: HashMap<&str, usize> = HashMap::new();
    for (i, mount) in c.mount_points.iter().flatten().enumerate() {
        let at = format!("{path}.mountPoints[{i}]");
        match mount.source_volume.as_deref() {
            None => out.push(format!("{at}.sourceVolume"), "required"),
            Some(volume) if !ctx.volumes.contains_key(volume) => out.push(
                format!("{at}.sourceVolume"),
                format!("no volume named {volume:?}"),
            ),
            Some(_) => {}
        }
        match mount.container_path.as_deref() {
            None => out.push(format!("{at}.containerPath"), "required"),
            Some(target) if !is_absolute_path(target) => out.push(
                format!("{at}.containerPath"),
                format!("must be an absolute path (got {target:?})"),
            ),
            Some(target) => {
                if let Some(first) = targets.insert(target, i) {
                    out.push(
                        format!("{at}.containerPath"),
                        format!("{target:?} is already mounted by {path}.mountPoints[{first}]"),
                    );
                }
            }
        }
    }
}
