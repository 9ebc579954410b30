//! A container's identity and networking: hostname, user, workingDirectory, DNS, extraHosts and
//! dockerSecurityOptions.

use std::net::IpAddr;

use super::{is_absolute_path, non_empty, Context, Problems};
use crate::model::ContainerDefinition;

pub(super) fn check_identity(
    ctx: &Context,
    path: &str,
    c: &ContainerDefinition,
    out: &mut Problems,
) {
    if let Some(hostname) = c.hostname.as_deref() {
        if ctx.network_mode == "awsvpc" {
            out.push(
                format!("{path}.hostname"),
                "not valid with networkMode awsvpc",
            );
        } else if !is_valid_hostname(hostname) {
            out.push(
                format!("{path}.hostname"),
                format!("is not a valid hostname (got {hostname:?})"),
            );
        }
    }
    if let Some(user) = c.user.as_deref() {
        // Docker's forms: user, uid, user:group, uid:gid (and mixes).
        let valid = match user.split_once(':') {
            Some((user, group)) => !user.is_empty() && !group.is_empty() && !group.contains(':'),
            None => !user.is_empty(),
        };
        if !valid || user.contains(char::is_whitespace) {
            out.push(
                format!("{path}.user"),
                format!("must be user, uid, user:group or uid:gid (got {user:?})"),
            );
        }
    }
    if let Some(dir) = c.working_directory.as_deref() {
        if !is_absolute_path(dir) {
            out.push(
                format!("{path}.workingDirectory"),
                format!("must be an absolute path (got {dir:?})"),
            );
        }
    }
}

pub(super) fn check_networking(
    ctx: &Context,
    path: &str,
    c: &ContainerDefinition,
    out: &mut Problems,
) {
    if c.disable_networking == Some(true) && ctx.fargate {
        out.push(
            format!("{path}.disableNetworking"),
            ctx.fargate_invalid(true),
        );
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
            out.push(
                format!("{path}.{field}"),
                "not valid with networkMode awsvpc",
            );
            allowed = false;
        }
    }
    if allowed {
        for (i, server) in c.dns_servers.iter().flatten().enumerate() {
            if server.parse::<IpAddr>().is_err() {
                out.push(
                    format!("{path}.dnsServers[{i}]"),
                    format!("must be an IP address (got {server:?})"),
                );
            }
        }
        for (i, domain) in c.dns_search_domains.iter().flatten().enumerate() {
            if !is_valid_hostname(domain) {
                out.push(
                    format!("{path}.dnsSearchDomains[{i}]"),
                    format!("is not a valid domain (got {domain:?})"),
                );
            }
        }
        for (i, host) in c.extra_hosts.iter().flatten().enumerate() {
            match host.hostname.as_deref() {
                Some(name) if is_valid_hostname(name) => {}
                Some(name) => out.push(
                    format!("{path}.extraHosts[{i}].hostname"),
                    format!("is not a valid hostname (got {name:?})"),
                ),
                None => out.push(format!("{path}.extraHosts[{i}].hostname"), "required"),
            }
            match host.ip_address.as_deref() {
                Some(ip) if ip.parse::<IpAddr>().is_ok() => {}
                Some(ip) => out.push(
                    format!("{path}.extraHosts[{i}].ipAddress"),
                    format!("must be an IP address (got {ip:?})"),
                ),
                None => out.push(format!("{path}.extraHosts[{i}].ipAddress"), "required"),
            }
        }
    }
    if non_empty(&c.docker_security_options) {
        if ctx.fargate {
            out.push(
                format!("{path}.dockerSecurityOptions"),
                ctx.fargate_invalid(true),
            );
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
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(is_valid_hostname("web-1.internal"));
        assert!(!is_valid_hostname("-web"));
        assert!(!is_valid_hostname("a..b"));
        assert!(!is_valid_hostname("under_score"));
    }
}
