//! dependsOn and volumesFrom: references to other containers, conditions, and cycles.

use super::{Context, Problems};
use crate::model::ContainerDefinition;
use crate::order;

pub(crate) const CONDITIONS: [&str; 4] = ["START", "COMPLETE", "SUCCESS", "HEALTHY"];

/// A reference from one container to another that orders their start: a dependsOn entry, or a
/// volumesFrom entry (the source's volumes must exist before they can be shared).
pub(crate) struct Edge {
    pub dependent: usize,
    pub dependency: usize,
    /// JSON path of the entry, e.g. `containerDefinitions[1].dependsOn[0]`.
    pub path: String,
}

pub(super) fn check(ctx: &Context, out: &mut Problems) {
    let containers = ctx.def.container_definitions.as_deref().unwrap_or_default();
    for (index, container) in containers.iter().enumerate() {
        check_references(ctx, index, container, containers, out);
    }
    let edges = edges(ctx);
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.dependent, e.dependency)).collect();
    if let Err(cycle) = order::levels(containers.len(), &pairs) {
        report_cycle(&cycle, &edges, containers, out);
    }
}

fn check_references(
    ctx: &Context,
    index: usize,
    container: &ContainerDefinition,
    containers: &[ContainerDefinition],
    out: &mut Problems,
) {
    let path = format!("containerDefinitions[{index}]");
    for (j, dependency) in container.depends_on.iter().flatten().enumerate() {
        let at = format!("{path}.dependsOn[{j}]");
        let target = match dependency.container_name.as_deref() {
            None => {
                out.push(format!("{at}.containerName"), "required");
                None
            }
            Some(name) if container.name.as_deref() == Some(name) => {
                out.push(
                    format!("{at}.containerName"),
                    "a container cannot depend on itself",
                );
                None
            }
            Some(name) => match ctx.containers.get(name) {
                None => {
                    out.push(
                        format!("{at}.containerName"),
                        format!("no container named {name:?}"),
                    );
                    None
                }
                Some(&target) => containers.get(target).map(|c| (name, c)),
            },
        };
        let Some(condition) = dependency.condition.as_deref() else {
            out.push(format!("{at}.condition"), "required");
            continue;
        };
        if !CONDITIONS.contains(&condition) {
            out.one_of(format!("{at}.condition"), condition, &CONDITIONS);
            continue;
        }
        let Some((name, target)) = target else {
            continue;
        };
        match condition {
            // An essential container exiting stops the whole task, so waiting for it to exit is
            // waiting for the task to stop.
            "COMPLETE" | "SUCCESS" if target.is_essential() => out.push(
                format!("{at}.condition"),
                format!("{condition} needs {name:?} to be non-essential (an essential container exiting stops the task)"),
            ),
            "HEALTHY" if target.health_check.is_none() => out.push(
                format!("{at}.condition"),
                format!("HEALTHY needs {name:?} to have a healthCheck"),
            ),
            _ => {}
        }
    }
    for (j, source) in container.volumes_from.iter().flatten().enumerate() {
        let at = format!("{path}.volumesFrom[{j}].sourceContainer");
        match source.source_container.as_deref() {
            None => out.push(at, "required"),
            Some(name) if container.name.as_deref() == Some(name) => {
                out.push(at, "a container cannot take volumes from itself")
            }
            Some(name) if !ctx.containers.contains_key(name) => {
                out.push(at, format!("no container named {name:?}"))
            }
            Some(_) => {}
        }
    }
}

/// The ordering edges between existing, distinct containers (bad references are reported elsewhere).
pub(crate) fn edges(ctx: &Context) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (dependent, container) in ctx.def.container_definitions.iter().flatten().enumerate() {
        let path = format!("containerDefinitions[{dependent}]");
        let depends_on = container
            .depends_on
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, d)| {
                (
                    d.container_name.as_deref(),
                    format!("{path}.dependsOn[{j}]"),
                )
            });
        let volumes_from = container
            .volumes_from
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, v)| {
                (
                    v.source_container.as_deref(),
                    format!("{path}.volumesFrom[{j}]"),
                )
            });
        for (name, path) in depends_on.chain(volumes_from) {
            if let Some(&dependency) = name.and_then(|name| ctx.containers.get(name)) {
                if dependency != dependent {
                    edges.push(Edge {
                        dependent,
                        dependency,
                        path,
                    });
                }
            }
        }
    }
    edges
}

fn report_cycle(
    cycle: &[usize],
    edges: &[Edge],
    containers: &[ContainerDefinition],
    out: &mut Problems,
) {
    let (Some(&first), Some(&second)) = (cycle.first(), cycle.get(1).or(cycle.first())) else {
        return;
    };
    let name = |i: usize| {
        containers
            .get(i)
            .and_then(|c| c.name.as_deref())
            .unwrap_or("?")
    };
    let mut names: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
    names.push(name(first));
    let path = edges
        .iter()
        .find(|e| e.dependent == first && e.dependency == second)
        .map_or_else(
            || format!("containerDefinitions[{first}]"),
            |e| e.path.clone(),
        );
    out.push(path, format!("dependency cycle: {}", names.join(" -> ")));
}
