//! Task-level fields: family, sizes, modes, platform, tags and volumes.

use std::collections::HashMap;

use super::{fargate, is_absolute_path, is_valid_name, non_empty, Context, Problems, NAME_RULE};
use crate::model::{Tag, Volume};

/// ECS allows at most 10 containers in a task definition.
const MAX_CONTAINERS: usize = 10;

/// Task cpu limits for EC2-like (non-Fargate) tasks: 0.125 to 192 vCPU.
const MIN_TASK_CPU: u64 = 128;
const MAX_TASK_CPU: u64 = 196_608;

/// The Docker daemon, and so ECS, refuses memory limits below 6 MiB.
pub(crate) const MIN_MEMORY_MIB: i64 = 6;

pub(super) fn check(ctx: &Context, out: &mut Problems) {
    let def = ctx.def;
    match def.family.as_deref() {
        None => out.push("family", "required"),
        Some(family) if !is_valid_name(family) => {
            out.push("family", format!("{NAME_RULE} (got {family:?})"))
        }
        Some(_) => {}
    }
    if def
        .task_role_arn
        .as_deref()
        .is_some_and(|arn| !arn.is_empty())
    {
        out.unsupported(
            "taskRoleArn",
            "berth has no IAM credentials endpoint, so the containers would not get the role's credentials",
        );
    }
    check_network_mode(ctx, out);
    for (i, compatibility) in def.requires_compatibilities.iter().flatten().enumerate() {
        out.one_of(
            format!("requiresCompatibilities[{i}]"),
            compatibility,
            &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"],
        );
    }
    check_size(ctx, out);
    check_modes(ctx, out);
    if non_empty(&def.placement_constraints) {
        if ctx.fargate {
            out.push("placementConstraints", ctx.fargate_invalid(false));
        } else {
            out.unsupported(
                "placementConstraints",
                "berth runs a task on the host it is given and places nothing",
            );
        }
    }
    if def.proxy_configuration.is_some() {
        out.unsupported(
            "proxyConfiguration",
            "berth has no App Mesh proxy integration",
        );
    }
    if non_empty(&def.inference_accelerators) {
        out.unsupported(
            "inferenceAccelerators",
            "berth has no Elastic Inference accelerators",
        );
    }
    if let Some(storage) = &def.ephemeral_storage {
        match storage.size_in_gib {
            None => out.push("ephemeralStorage.sizeInGiB", "required"),
            Some(size) => out.range("ephemeralStorage.sizeInGiB", size, 21, 200),
        }
    }
    check_runtime_platform(ctx, out);
    if def.enable_fault_injection == Some(true) {
        out.unsupported(
            "enableFaultInjection",
            "berth has no fault injection endpoints",
        );
    }
    check_tags(def.tags.as_deref().unwrap_or_default(), out);
    match def.container_definitions.as_deref() {
        None | Some([]) => out.push("containerDefinitions", "at least one container is required"),
        Some(containers) if containers.len() > MAX_CONTAINERS => out.push(
            "containerDefinitions",
            format!(
                "at most {MAX_CONTAINERS} containers are allowed (got {})",
                containers.len()
            ),
        ),
        Some(_) => {}
    }
    check_volumes(ctx, def.volumes.as_deref().unwrap_or_default(), out);
}

fn check_network_mode(ctx: &Context, out: &mut Problems) {
    let Some(mode) = ctx.def.network_mode.as_deref() else {
        return;
    };
    match mode {
        "awsvpc" => {}
        "none" | "bridge" | "host" if ctx.fargate => {
            out.push("networkMode", format!("must be awsvpc on Fargate (got {mode:?})"))
        }
        "none" => {}
        "bridge" => out.unsupported(
            "networkMode",
            "bridge needs a shared Docker bridge with port mapping; every berth task gets its own network \
             namespace (use awsvpc)",
        ),
        "host" => out.unsupported("networkMode", "host networking would put the sandbox in the host's network"),
        _ => out.one_of("networkMode", mode, &["awsvpc", "bridge", "host", "none"]),
    }
}

fn check_size(ctx: &Context, out: &mut Problems) {
    let def = ctx.def;
    let cpu = def.cpu.as_ref().map(|cpu| cpu.cpu_units());
    let memory = def.memory.as_ref().map(|memory| memory.memory_mib());
    if let Some(Err(message)) = &cpu {
        out.push("cpu", message.clone());
    }
    if let Some(Err(message)) = &memory {
        out.push("memory", message.clone());
    }
    if ctx.fargate {
        if cpu.is_none() {
            out.push("cpu", "required on Fargate");
        }
        if memory.is_none() {
            out.push("memory", "required on Fargate");
        }
        if let (Some(Ok(cpu)), Some(Ok(memory))) = (cpu, memory) {
            if let Err((path, message)) = fargate::check_task_size(cpu, memory) {
                out.push(path, message);
            }
        }
        return;
    }
    if let Some(Ok(cpu)) = cpu {
        if !(MIN_TASK_CPU..=MAX_TASK_CPU).contains(&cpu) {
            out.push(
                "cpu",
                format!("must be between {MIN_TASK_CPU} and {MAX_TASK_CPU} units (got {cpu})"),
            );
        }
    }
    if let Some(Ok(memory)) = memory {
        if memory < MIN_MEMORY_MIB.unsigned_abs() {
            out.push(
                "memory",
                format!("must be at least {MIN_MEMORY_MIB} MiB (got {memory})"),
            );
        }
    }
}

fn check_modes(ctx: &Context, out: &mut Problems) {
    let def = ctx.def;
    match def.pid_mode.as_deref() {
        None | Some("task") => {}
        Some("host") if ctx.fargate => {
            out.push("pidMode", "must be task on Fargate (got \"host\")")
        }
        Some("host") => out.unsupported(
            "pidMode",
            "host would put the sandbox in the host's PID namespace",
        ),
        Some(other) => out.one_of("pidMode", other, &["host", "task"]),
    }
    match def.ipc_mode.as_deref() {
        None => {}
        Some(_) if ctx.fargate => out.push("ipcMode", ctx.fargate_invalid(true)),
        Some("task" | "none") => {}
        Some("host") => out.unsupported(
            "ipcMode",
            "host would put the sandbox in the host's IPC namespace",
        ),
        Some(other) => out.one_of("ipcMode", other, &["host", "task", "none"]),
    }
}

fn check_runtime_platform(ctx: &Context, out: &mut Problems) {
    let Some(platform) = &ctx.def.runtime_platform else {
        return;
    };
    if let Some(os) = platform.operating_system_family.as_deref() {
        if os.starts_with("WINDOWS_SERVER_") {
            out.unsupported(
                "runtimePlatform.operatingSystemFamily",
                "berth runs Linux containers only",
            );
        } else {
            out.one_of("runtimePlatform.operatingSystemFamily", os, &["LINUX"]);
        }
    }
    if let Some(arch) = platform.cpu_architecture.as_deref() {
        out.one_of(
            "runtimePlatform.cpuArchitecture",
            arch,
            &["X86_64", "ARM64"],
        );
    }
}

fn check_tags(tags: &[Tag], out: &mut Problems) {
    // ECS: at most 50 tags, keys 1-128 characters, values up to 256.
    if tags.len() > 50 {
        out.push(
            "tags",
            format!("at most 50 tags are allowed (got {})", tags.len()),
        );
    }
    let mut seen = HashMap::new();
    for (i, tag) in tags.iter().enumerate() {
        match tag.key.as_deref() {
            None => out.push(format!("tags[{i}].key"), "required"),
            Some(key) if key.is_empty() || key.chars().count() > 128 => {
                out.push(format!("tags[{i}].key"), "must be 1-128 characters")
            }
            Some(key) => {
                if let Some(first) = seen.insert(key, i) {
                    out.push(
                        format!("tags[{i}].key"),
                        format!("duplicate tag key {key:?} (also tags[{first}])"),
                    );
                }
            }
        }
        if tag
            .value
            .as_deref()
            .is_some_and(|value| value.chars().count() > 256)
        {
            out.push(format!("tags[{i}].value"), "must be at most 256 characters");
        }
    }
}

fn check_volumes(ctx: &Context, volumes: &[Volume], out: &mut Problems) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, volume) in volumes.iter().enumerate() {
        let path = format!("volumes[{i}]");
        match volume.name.as_deref() {
            None => out.push(format!("{path}.name"), "required"),
            Some(name) if !is_valid_name(name) => out.push(
                format!("{path}.name"),
                format!("{NAME_RULE} (got {name:?})"),
            ),
            Some(name) => {
                if let Some(first) = seen.insert(name, i) {
                    out.push(
                        format!("{path}.name"),
                        format!("duplicate volume name {name:?} (also volumes[{first}])"),
                    );
                }
            }
        }
        let kinds = [
            volume.host.is_some(),
            volume.docker_volume_configuration.is_some(),
            volume.efs_volume_configuration.is_some(),
            volume
                .fsx_windows_file_server_volume_configuration
                .is_some(),
        ];
        if kinds.iter().filter(|&&given| given).count() > 1 {
            out.push(
                path.clone(),
                "give at most one of host, dockerVolumeConfiguration, efsVolumeConfiguration, \
                 fsxWindowsFileServerVolumeConfiguration",
            );
        }
        if let Some(source) = volume
            .host
            .as_ref()
            .and_then(|host| host.source_path.as_deref())
        {
            let source_path = format!("{path}.host.sourcePath");
            if ctx.fargate {
                out.push(source_path, ctx.fargate_invalid(true));
            } else if !is_absolute_path(source) {
                out.push(
                    source_path,
                    format!("must be an absolute path (got {source:?})"),
                );
            }
        }
        if let Some(docker) = &volume.docker_volume_configuration {
            let docker_path = format!("{path}.dockerVolumeConfiguration");
            if ctx.fargate {
                out.push(docker_path, ctx.fargate_invalid(true));
            } else {
                check_docker_volume(&docker_path, docker, out);
            }
        }
        if volume.efs_volume_configuration.is_some() {
            out.unsupported(
                format!("{path}.efsVolumeConfiguration"),
                "berth has no Amazon EFS client",
            );
        }
        if volume
            .fsx_windows_file_server_volume_configuration
            .is_some()
        {
            out.unsupported(
                format!("{path}.fsxWindowsFileServerVolumeConfiguration"),
                "FSx for Windows File Server serves Windows containers only",
            );
        }
        if volume.configured_at_launch == Some(true) {
            out.unsupported(
                format!("{path}.configuredAtLaunch"),
                "berth takes no volume configuration when a task is run",
            );
        }
    }
}

/// A task-scoped volume of the local driver without options is exactly berth's task volume (an empty
/// directory that lives as long as the task), so it is accepted; anything else needs a Docker volume
/// plugin or outlives the task.
fn check_docker_volume(
    path: &str,
    docker: &crate::model::DockerVolumeConfiguration,
    out: &mut Problems,
) {
    match docker.scope.as_deref() {
        None | Some("task") => {
            if docker.autoprovision == Some(true) {
                out.push(
                    format!("{path}.autoprovision"),
                    "only valid when scope is shared",
                );
            }
        }
        Some("shared") => out.unsupported(
            format!("{path}.scope"),
            "berth volumes live and die with their task (use scope task)",
        ),
        Some(other) => out.one_of(format!("{path}.scope"), other, &["task", "shared"]),
    }
    if let Some(driver) = docker.driver.as_deref() {
        if driver != "local" {
            out.unsupported(
                format!("{path}.driver"),
                "berth has no Docker volume plugins (use driver local)",
            );
        }
    }
    if docker
        .driver_opts
        .as_ref()
        .is_some_and(|opts| !opts.is_empty())
    {
        out.unsupported(
            format!("{path}.driverOpts"),
            "berth's task volumes are plain directories and take no options",
        );
    }
    if docker
        .labels
        .as_ref()
        .is_some_and(|labels| !labels.is_empty())
    {
        out.unsupported(
            format!("{path}.labels"),
            "berth's task volumes are plain directories and carry no labels",
        );
    }
}
