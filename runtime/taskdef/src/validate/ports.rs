//! portMappings: values, the awsvpc hostPort rule, and clashes across the task.

use std::collections::HashMap;

use super::{Context, Problems};
use crate::model::{ContainerDefinition, PortMapping};

/// Ports already taken in the task. In awsvpc mode all containers share one network namespace, so two
/// containers mapping the same port/protocol could not both bind it.
#[derive(Default)]
pub(super) struct TaskPorts {
    /// (first port, last port, protocol, path of the mapping that took them).
    taken: Vec<(i64, i64, String, String)>,
    /// Port mapping name → path of the mapping that used it (names are unique in a task).
    names: HashMap<String, String>,
}

impl TaskPorts {
    pub(super) fn check(
        &mut self,
        ctx: &Context,
        path: &str,
        c: &ContainerDefinition,
        out: &mut Problems,
    ) {
        let mappings = c.port_mappings.as_deref().unwrap_or_default();
        if !mappings.is_empty() && ctx.network_mode == "none" {
            out.push(
                format!("{path}.portMappings"),
                "not valid with networkMode none",
            );
            return;
        }
        for (i, mapping) in mappings.iter().enumerate() {
            self.check_mapping(ctx, &format!("{path}.portMappings[{i}]"), mapping, out);
        }
    }

    fn check_mapping(&mut self, ctx: &Context, at: &str, m: &PortMapping, out: &mut Problems) {
        let protocol = m.protocol.as_deref().unwrap_or("tcp");
        out.one_of(format!("{at}.protocol"), protocol, &["tcp", "udp"]);
        match (m.container_port, m.container_port_range.as_deref()) {
            (Some(_), Some(_)) => {
                out.push(
                    at.to_owned(),
                    "give containerPort or containerPortRange, not both",
                );
            }
            (None, None) => out.push(format!("{at}.containerPort"), "required"),
            (None, Some(range)) => {
                match parse_port_range(range) {
                    Some((start, end)) => self.take(
                        start,
                        end,
                        protocol,
                        &format!("{at}.containerPortRange"),
                        out,
                    ),
                    None => out.push(
                        format!("{at}.containerPortRange"),
                        format!(
                            "must be \"start-end\" with 1 <= start < end <= 65535 (got {range:?})"
                        ),
                    ),
                }
                if m.host_port.is_some() {
                    out.push(
                        format!("{at}.hostPort"),
                        "not valid with containerPortRange",
                    );
                }
            }
            (Some(port), None) => {
                if (1..=65535).contains(&port) {
                    self.take(port, port, protocol, &format!("{at}.containerPort"), out);
                } else {
                    out.push(
                        format!("{at}.containerPort"),
                        format!("must be between 1 and 65535 (got {port})"),
                    );
                }
                if let Some(host) = m.host_port {
                    // In awsvpc mode the container's port is the task's port: there is no translation.
                    if ctx.network_mode == "awsvpc" && host != port {
                        out.push(
                            format!("{at}.hostPort"),
                            format!("must equal containerPort ({port}) with networkMode awsvpc, or be omitted (got {host})"),
                        );
                    }
                }
            }
        }
        if let Some(name) = m.name.as_deref() {
            // ECS: up to 64 lowercase letters, digits, underscores and hyphens, not starting with a hyphen.
            let valid = (1..=64).contains(&name.len())
                && !name.starts_with('-')
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                out.push(
                    format!("{at}.name"),
                    format!("must be 1-64 lowercase letters, digits, underscores or hyphens (got {name:?})"),
                );
            } else if let Some(first) = self.names.get(name) {
                out.push(
                    format!("{at}.name"),
                    format!("duplicate port mapping name {name:?} (also {first})"),
                );
            } else {
                self.names.insert(name.to_owned(), at.to_owned());
            }
        }
        if let Some(app) = m.app_protocol.as_deref() {
            out.one_of(format!("{at}.appProtocol"), app, &["http", "http2", "grpc"]);
        }
    }

    /// Records ports `start..=end`, reporting (once) a clash with an earlier mapping.
    fn take(&mut self, start: i64, end: i64, protocol: &str, at: &str, out: &mut Problems) {
        let clash = self.taken.iter().find(|(first, last, taken_protocol, _)| {
            taken_protocol == protocol && start <= *last && *first <= end
        });
        if let Some((first, last, _, by)) = clash {
            let port = start.max(*first).min(*last);
            out.push(
                at.to_owned(),
                format!("port {port}/{protocol} is already mapped by {by}"),
            );
        } else {
            self.taken
                .push((start, end, protocol.to_owned(), at.to_owned()));
        }
    }
}

fn parse_port_range(range: &str) -> Option<(i64, i64)> {
    let (start, end) = range.split_once('-')?;
    let (start, end): (i64, i64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (1 <= start && start < end && end <= 65535).then_some((start, end))
}
