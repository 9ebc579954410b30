//! Per-container fields, and the rules that look at all containers together (essential, cpu sum).

use std::collections::HashMap;
use std::net::IpAddr;

use super::task::MIN_MEMORY_MIB;
use super::{is_absolute_path, is_valid_name, linux, non_empty, ports, Context, Problems, NAME_RULE};
use crate::model::{ContainerDefinition, HealthCheck, LogConfiguration, RestartPolicy};

/// Fargate's limit on stopTimeout (seconds).
const FARGATE_MAX_STOP_TIMEOUT: i64 = 120;

/// ECS allows at most 10 environment files per container.
const MAX_ENVIRONMENT_FILES: usize = 10;

/// logConfiguration.options berth's json-file driver understands (the Docker json-file rotation options).
pub(crate) const LOG_OPTIONS: [&str; 2] = ["max-size", "max-file"];

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
                    format!("duplicate container name {name:?} (also containerDefinitions[{first}])"),
                );
            }
        }
        check_one(ctx, &path, container, out);
        ports.check(ctx, &path, container, out);
    }
    if !containers.is_empty() && !containers.iter().any(ContainerDefinition::is_essential) {
        out.push("containerDefinitions", "at least one container must be essential");
    }
    if let Some(task_cpu) = ctx.task_cpu {
        let total: i64 = containers.iter().filter_map(|c| c.cpu).filter(|&cpu| cpu > 0).sum();
        if total.unsigned_abs() > task_cpu {
            out.push(
                "containerDefinitions",
                format!("the containers' cpu adds up to {total} units, more than the task's {task_cpu}"),
            );
        }
    }
}

fn check_one(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    match c.name.as_deref() {
        None => out.push(format!("{path}.name"), "required"),
        Some(name) if !is_valid_name(name) => out.push(format!("{path}.name"), format!("{NAME_RULE} (got {name:?})")),
        Some(_) => {}
    }
    match c.image.as_deref() {
        None => out.push(format!("{path}.image"), "required"),
        Some("") => out.push(format!("{path}.image"), "must not be empty"),
        Some(image) if image.chars().any(char::is_whitespace) => {
            out.push(format!("{path}.image"), format!("must not contain whitespace (got {image:?})"))
        }
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
            out.unsupported(format!("{path}.links"), "links need networkMode bridge, which berth does not support");
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
        out.unsupported(format!("{path}.secrets"), "berth has no Secrets Manager or SSM Parameter Store access");
    }
    if let Some(timeout) = c.start_timeout {
        out.at_least(format!("{path}.startTimeout"), timeout, 0);
    }
    if let Some(timeout) = c.stop_timeout {
        if ctx.fargate {
            out.range(format!("{path}.stopTimeout"), timeout, 0, FARGATE_MAX_STOP_TIMEOUT);
        } else {
            out.at_least(format!("{path}.stopTimeout"), timeout, 0);
        }
    }
    if let Some(consistency) = c.version_consistency.as_deref() {
        out.one_of(format!("{path}.versionConsistency"), consistency, &["enabled", "disabled"]);
    }
    check_identity(ctx, path, c, out);
    check_networking(ctx, path, c, out);
    if c.privileged == Some(true) && ctx.fargate {
        out.push(format!("{path}.privileged"), ctx.fargate_invalid(true));
    }
    for (key, _) in c.docker_labels.iter().flatten() {
        if key.is_empty() {
            out.push(format!("{path}.dockerLabels"), "label names must not be empty");
        }
    }
    linux::check_ulimits(ctx, path, c.ulimits.as_deref().unwrap_or_default(), out);
    if let Some(log) = &c.log_configuration {
        check_log_configuration(&format!("{path}.logConfiguration"), log, out);
    }
    if let Some(health) = &c.health_check {
        check_health_check(&format!("{path}.healthCheck"), health, out);
    }
    linux::check_system_controls(path, c.system_controls.as_deref().unwrap_or_default(), out);
    for (i, requirement) in c.resource_requirements.iter().flatten().enumerate() {
        let at = format!("{path}.resourceRequirements[{i}].type");
        match requirement.kind.as_deref() {
            Some("GPU") => out.unsupported(at, "berth has no GPU support"),
            Some("InferenceAccelerator") => out.unsupported(at, "berth has no Elastic Inference accelerators"),
            Some(other) => out.one_of(at, other, &["GPU", "InferenceAccelerator"]),
            None => out.push(at, "required"),
        }
    }
    if c.firelens_configuration.is_some() {
        out.unsupported(format!("{path}.firelensConfiguration"), "berth has no FireLens log router");
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
    for (field, value) in [("memory", c.memory), ("memoryReservation", c.memory_reservation)] {
        let Some(mib) = value else { continue };
        if mib < MIN_MEMORY_MIB {
            out.push(format!("{path}.{field}"), format!("must be at least {MIN_MEMORY_MIB} MiB (got {mib})"));
        } else if let Some(task) = ctx.task_memory.filter(|&task| mib.unsigned_abs() > task) {
            out.push(format!("{path}.{field}"), format!("{mib} MiB is more than the task memory of {task} MiB"));
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
    if !ctx.fargate && ctx.def.memory.is_none() && c.memory.is_none() && c.memory_reservation.is_none() {
        out.push(format!("{path}.memory"), "memory or memoryReservation is required when the task has no memory");
    }
}

fn check_restart_policy(path: &str, policy: &RestartPolicy, out: &mut Problems) {
    if policy.enabled.is_none() {
        out.push(format!("{path}.enabled"), "required");
    }
    if let Some(codes) = &policy.ignored_exit_codes {
        if codes.len() > 50 {
            out.push(format!("{path}.ignoredExitCodes"), format!("at most 50 exit codes are allowed (got {})", codes.len()));
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
            Some(name) if name.contains(['=', '\0']) => {
                out.push(format!("{at}.name"), format!("must not contain '=' or NUL (got {name:?})"))
            }
            Some(_) => {}
        }
        if variable.value.as_deref().is_some_and(|value| value.contains('\0')) {
            out.push(format!("{at}.value"), "must not contain NUL");
        }
    }
    let files = c.environment_files.as_deref().unwrap_or_default();
    if files.len() > MAX_ENVIRONMENT_FILES {
        out.push(
            format!("{path}.environmentFiles"),
            format!("at most {MAX_ENVIRONMENT_FILES} environment files are allowed (got {})", files.len()),
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
            Some(value) if !is_absolute_path(value) => {
                out.push(format!("{at}.value"), format!("must be an absolute path on the host (got {value:?})"))
            }
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
            Some(volume) if !ctx.volumes.contains_key(volume) => {
                out.push(format!("{at}.sourceVolume"), format!("no volume named {volume:?}"))
            }
            Some(_) => {}
        }
        match mount.container_path.as_deref() {
            None => out.push(format!("{at}.containerPath"), "required"),
            Some(target) if !is_absolute_path(target) => {
                out.push(format!("{at}.containerPath"), format!("must be an absolute path (got {target:?})"))
            }
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

fn check_identity(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    if let Some(hostname) = c.hostname.as_deref() {
        if ctx.network_mode == "awsvpc" {
            out.push(format!("{path}.hostname"), "not valid with networkMode awsvpc");
        } else if !is_valid_hostname(hostname) {
            out.push(format!("{path}.hostname"), format!("is not a valid hostname (got {hostname:?})"));
        }
    }
    if let Some(user) = c.user.as_deref() {
        // Docker's forms: user, uid, user:group, uid:gid (and mixes).
        let valid = match user.split_once(':') {
            Some((user, group)) => !user.is_empty() && !group.is_empty() && !group.contains(':'),
            None => !user.is_empty(),
        };
        if !valid || user.contains(char::is_whitespace) {
            out.push(format!("{path}.user"), format!("must be user, uid, user:group or uid:gid (got {user:?})"));
        }
    }
    if let Some(dir) = c.working_directory.as_deref() {
        if !is_absolute_path(dir) {
            out.push(format!("{path}.workingDirectory"), format!("must be an absolute path (got {dir:?})"));
        }
    }
}

fn check_networking(ctx: &Context, path: &str, c: &ContainerDefinition, out: &mut Problems) {
    if c.disable_networking == Some(true) && ctx.fargate {
        out.push(format!("{path}.disableNetworking"), ctx.fargate_invalid(true));
    }
    // ECS does not allow these in awsvpc mode (the task's DNS comes from its network), and Fargate is
    // always awsvpc; with networkMode none berth writes them into the container's resolv.conf / hosts.
    let lists = [
        ("dnsServers", non_empty(&c.dns_servers)),
        ("dnsSearchDomains", non_empty(&c.dns_search_domains)),
        ("extraHosts", non_empty(&c.extra_hosts)),
    ];
    let mut allowed = true;
    for (field, given) in lists {
        if !given {
            continue;
        }
        if ctx.fargate {
            out.push(format!("{path}.{field}"), ctx.fargate_invalid(true));
            allowed = false;
        } else if ctx.network_mode == "awsvpc" {
            out.push(format!("{path}.{field}"), "not valid with networkMode awsvpc");
            allowed = false;
        }
    }
    if allowed {
        for (i, server) in c.dns_servers.iter().flatten().enumerate() {
            if server.parse::<IpAddr>().is_err() {
                out.push(format!("{path}.dnsServers[{i}]"), format!("must be an IP address (got {server:?})"));
            }
        }
        for (i, domain) in c.dns_search_domains.iter().flatten().enumerate() {
            if !is_valid_hostname(domain) {
                out.push(format!("{path}.dnsSearchDomains[{i}]"), format!("is not a valid domain (got {domain:?})"));
            }
        }
        for (i, host) in c.extra_hosts.iter().flatten().enumerate() {
            match host.hostname.as_deref() {
                Some(name) if is_valid_hostname(name) => {}
                Some(name) => out.push(format!("{path}.extraHosts[{i}].hostname"), format!("is not a valid hostname (got {name:?})")),
                None => out.push(format!("{path}.extraHosts[{i}].hostname"), "required"),
            }
            match host.ip_address.as_deref() {
                Some(ip) if ip.parse::<IpAddr>().is_ok() => {}
                Some(ip) => out.push(format!("{path}.extraHosts[{i}].ipAddress"), format!("must be an IP address (got {ip:?})")),
                None => out.push(format!("{path}.extraHosts[{i}].ipAddress"), "required"),
            }
        }
    }
    if non_empty(&c.docker_security_options) {
        if ctx.fargate {
            out.push(format!("{path}.dockerSecurityOptions"), ctx.fargate_invalid(true));
        } else {
            for (i, option) in c.docker_security_options.iter().flatten().enumerate() {
                if option != "no-new-privileges" {
                    out.unsupported(
                        format!("{path}.dockerSecurityOptions[{i}]"),
                        &format!("only no-new-privileges is available (got {option:?}); berth has no AppArmor, SELinux or credential spec support"),
                    );
                }
            }
        }
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, 253 characters at most.
fn is_valid_hostname(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn check_log_configuration(path: &str, log: &LogConfiguration, out: &mut Problems) {
    match log.log_driver.as_deref() {
        None => out.push(format!("{path}.logDriver"), "required"),
        Some("json-file") => {}
        Some(driver) => out.unsupported(
            format!("{path}.logDriver"),
            &format!("berth keeps container output in local json-file logs only (got {driver:?}; use \"json-file\")"),
        ),
    }
    for (key, value) in log.options.iter().flatten() {
        let at = format!("{path}.options.{key}");
        match key.as_str() {
            "max-size" => {
                if parse_log_size(value).is_none() {
                    out.push(at, format!("must be a size like 10m, 512k or 1g (got {value:?})"));
                }
            }
            "max-file" => {
                if value.parse::<u32>().map_or(true, |n| n == 0) {
                    out.push(at, format!("must be a positive whole number (got {value:?})"));
                }
            }
            _ => out.unsupported(at, &format!("the json-file driver takes only {}", LOG_OPTIONS.join(", "))),
        }
    }
    if non_empty(&log.secret_options) {
        out.unsupported(format!("{path}.secretOptions"), "berth has no Secrets Manager or SSM Parameter Store access");
    }
}

/// Docker's json-file max-size: a positive number with an optional k, m or g suffix (powers of 1024).
pub(crate) fn parse_log_size(text: &str) -> Option<u64> {
    let (number, multiplier) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (text.get(..at)?, 1u64 << 10),
        (at, 'm' | 'M') => (text.get(..at)?, 1 << 20),
        (at, 'g' | 'G') => (text.get(..at)?, 1 << 30),
        _ => (text, 1),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(multiplier).filter(|&bytes| bytes > 0)
}

/// ECS health check limits (seconds, except retries): (field, min, max).
pub(crate) const HEALTH_INTERVAL: (i64, i64, i64) = (5, 300, 30);
pub(crate) const HEALTH_TIMEOUT: (i64, i64, i64) = (2, 60, 5);
pub(crate) const HEALTH_RETRIES: (i64, i64, i64) = (1, 10, 3);
pub(crate) const HEALTH_START_PERIOD: (i64, i64, i64) = (0, 300, 0);

fn check_health_check(path: &str, health: &HealthCheck, out: &mut Problems) {
    let command = health.command.as_deref().unwrap_or_default();
    match command.first().map(String::as_str) {
        None => out.push(format!("{path}.command"), "required"),
        Some(kind @ ("CMD" | "CMD-SHELL")) if command.len() < 2 => {
            out.push(format!("{path}.command"), format!("needs the command to run after {kind:?}"))
        }
        Some("CMD" | "CMD-SHELL") => {}
        Some(other) => out.push(format!("{path}.command[0]"), format!("must be CMD or CMD-SHELL (got {other:?})")),
    }
    let fields = [
        ("interval", health.interval, HEALTH_INTERVAL),
        ("timeout", health.timeout, HEALTH_TIMEOUT),
        ("retries", health.retries, HEALTH_RETRIES),
        ("startPeriod", health.start_period, HEALTH_START_PERIOD),
    ];
    for (field, value, (min, max, _default)) in fields {
        if let Some(value) = value {
            out.range(format!("{path}.{field}"), value, min, max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sizes() {
        assert_eq!(parse_log_size("10m"), Some(10 << 20));
        assert_eq!(parse_log_size("512k"), Some(512 << 10));
        assert_eq!(parse_log_size("1G"), Some(1 << 30));
        assert_eq!(parse_log_size("100"), Some(100));
        assert_eq!(parse_log_size("0"), None);
        assert_eq!(parse_log_size("m"), None);
        assert_eq!(parse_log_size("-1m"), None);
        assert_eq!(parse_log_size(""), None);
    }

    #[test]
    fn hostnames() {
        assert!(is_valid_hostname("web-1.internal"));
        assert!(!is_valid_hostname("-web"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname("under_score"));
    }
}
