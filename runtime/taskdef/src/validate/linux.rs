//! linuxParameters, ulimits and systemControls.

use std::collections::HashMap;

use super::{is_absolute_path, non_empty, Context, Problems};
use crate::kernel_names::{is_namespaced_sysctl, rlimit_resource, CAPABILITIES, TMPFS_OPTIONS};
use crate::model::{LinuxParameters, SystemControl, Ulimit};

/// Fargate's ceiling for nofile.
const FARGATE_MAX_NOFILE: i64 = 1_048_576;

pub(super) fn check_parameters(
    ctx: &Context,
    path: &str,
    linux: &LinuxParameters,
    out: &mut Problems,
) {
    if let Some(capabilities) = &linux.capabilities {
        for (i, cap) in capabilities.add.iter().flatten().enumerate() {
            let at = format!("{path}.capabilities.add[{i}]");
            if !CAPABILITIES.contains(&cap.as_str()) {
                out.push(at, format!("unknown capability {cap:?}"));
            } else if ctx.fargate && cap != "SYS_PTRACE" {
                out.push(
                    at,
                    format!("{cap} is not valid on Fargate (only SYS_PTRACE can be added)"),
                );
            }
        }
        for (i, cap) in capabilities.drop.iter().flatten().enumerate() {
            if !CAPABILITIES.contains(&cap.as_str()) {
                out.push(
                    format!("{path}.capabilities.drop[{i}]"),
                    format!("unknown capability {cap:?}"),
                );
            }
        }
    }
    if non_empty(&linux.devices) {
        if ctx.fargate {
            out.push(format!("{path}.devices"), ctx.fargate_invalid(true));
        } else {
            for (i, device) in linux.devices.iter().flatten().enumerate() {
                let at = format!("{path}.devices[{i}]");
                match device.host_path.as_deref() {
                    None => out.push(format!("{at}.hostPath"), "required"),
                    Some(host) if !is_absolute_path(host) => out.push(
                        format!("{at}.hostPath"),
                        format!("must be an absolute path (got {host:?})"),
                    ),
                    Some(_) => {}
                }
                if let Some(target) = device
                    .container_path
                    .as_deref()
                    .filter(|p| !is_absolute_path(p))
                {
                    out.push(
                        format!("{at}.containerPath"),
                        format!("must be an absolute path (got {target:?})"),
                    );
                }
                for (j, permission) in device.permissions.iter().flatten().enumerate() {
                    out.one_of(
                        format!("{at}.permissions[{j}]"),
                        permission,
                        &["read", "write", "mknod"],
                    );
                }
            }
        }
    }
    if let Some(size) = linux.shared_memory_size {
        if ctx.fargate {
            out.push(
                format!("{path}.sharedMemorySize"),
                ctx.fargate_invalid(true),
            );
        } else {
            out.at_least(format!("{path}.sharedMemorySize"), size, 1);
        }
    }
    if non_empty(&linux.tmpfs) {
        if ctx.fargate {
            out.push(format!("{path}.tmpfs"), ctx.fargate_invalid(true));
        } else {
            for (i, tmpfs) in linux.tmpfs.iter().flatten().enumerate() {
                let at = format!("{path}.tmpfs[{i}]");
                match tmpfs.container_path.as_deref() {
                    None => out.push(format!("{at}.containerPath"), "required"),
                    Some(target) if !is_absolute_path(target) => out.push(
                        format!("{at}.containerPath"),
                        format!("must be an absolute path (got {target:?})"),
                    ),
                    Some(_) => {}
                }
                match tmpfs.size {
                    None => out.push(format!("{at}.size"), "required"),
                    Some(size) => out.at_least(format!("{at}.size"), size, 1),
                }
                for (j, option) in tmpfs.mount_options.iter().flatten().enumerate() {
                    let name = option
                        .split_once('=')
                        .map_or(option.as_str(), |(name, _)| name);
                    if !TMPFS_OPTIONS.contains(&name) {
                        out.push(
                            format!("{at}.mountOptions[{j}]"),
                            format!("unknown tmpfs mount option {option:?}"),
                        );
                    }
                }
            }
        }
    }
    if let Some(swap) = linux.max_swap {
        if ctx.fargate {
            out.push(format!("{path}.maxSwap"), ctx.fargate_invalid(true));
        } else {
            out.at_least(format!("{path}.maxSwap"), swap, 0);
        }
    }
    if let Some(swappiness) = linux.swappiness {
        if ctx.fargate {
            out.push(format!("{path}.swappiness"), ctx.fargate_invalid(true));
        } else {
            out.range(format!("{path}.swappiness"), swappiness, 0, 100);
        }
    }
}

pub(super) fn check_ulimits(ctx: &Context, path: &str, ulimits: &[Ulimit], out: &mut Problems) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, ulimit) in ulimits.iter().enumerate() {
        let at = format!("{path}.ulimits[{i}]");
        match ulimit.name.as_deref() {
            None => out.push(format!("{at}.name"), "required"),
            Some(name) if rlimit_resource(name).is_none() => {
                let names: Vec<&str> = crate::kernel_names::ULIMITS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect();
                out.push(
                    format!("{at}.name"),
                    format!("must be one of {} (got {name:?})", names.join(", ")),
                );
            }
            Some(name) => {
                if let Some(first) = seen.insert(name, i) {
                    out.push(
                        format!("{at}.name"),
                        format!("duplicate ulimit {name:?} (also {path}.ulimits[{first}])"),
                    );
                }
            }
        }
        let (soft, hard) = (ulimit.soft_limit, ulimit.hard_limit);
        for (field, value) in [("softLimit", soft), ("hardLimit", hard)] {
            match value {
                None => out.push(format!("{at}.{field}"), "required"),
                Some(value) => out.at_least(format!("{at}.{field}"), value, 0),
            }
        }
        if let (Some(soft), Some(hard)) = (soft, hard) {
            if soft > hard {
                out.push(
                    format!("{at}.softLimit"),
                    format!("must not be more than hardLimit ({soft} > {hard})"),
                );
            }
            if ctx.fargate && ulimit.name.as_deref() == Some("nofile") && hard > FARGATE_MAX_NOFILE
            {
                out.push(
                    format!("{at}.hardLimit"),
                    format!("nofile is at most {FARGATE_MAX_NOFILE} on Fargate (got {hard})"),
                );
            }
        }
    }
}

pub(super) fn check_system_controls(path: &str, controls: &[SystemControl], out: &mut Problems) {
    for (i, control) in controls.iter().enumerate() {
        let at = format!("{path}.systemControls[{i}]");
        match control.namespace.as_deref() {
            None => out.push(format!("{at}.namespace"), "required"),
            Some(name) if !is_namespaced_sysctl(name) => out.push(
                format!("{at}.namespace"),
                format!(
                    "{name:?} is not a namespaced sysctl (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)"
                ),
            ),
            Some(_) => {}
        }
        if control.value.as_deref().is_none_or(str::is_empty) {
            out.push(format!("{at}.value"), "required");
        }
    }
}
