//! The process a container runs: its definition combined with its image's config, as Docker does.

use serde::Serialize;

use super::ContainerPlan;
use crate::error::{Error, Problem};

/// Docker's PATH for a container whose image and definition set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an OCI image config (`config` of the image configuration JSON) that shape the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `NAME=VALUE` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// What to exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    /// argv; `args[0]` is the program.
    pub args: Vec<String>,
    /// `NAME=VALUE` entries.
    pub env: Vec<String>,
    pub cwd: String,
    /// None: the image's default (root).
    pub user: Option<String>,
}

/// Combines a container's definition with its image config the way Docker's daemon does:
///
/// * A non-empty `entryPoint` replaces the image's Entrypoint **and** drops the image's Cmd; the
///   definition's `command` (if any) follows it.
/// * Otherwise `command` (if non-empty) replaces the image's Cmd, after the image's Entrypoint. An
///   explicitly empty `entryPoint: []` clears the image's Entrypoint but keeps its Cmd, as
///   `docker run --entrypoint ""` does.
/// * Environment: environment files in order (a later file overrides an earlier one), then the
///   definition's `environment` (which ECS gives precedence over files), then the image's Env for names
///   not yet set; PATH gets Docker's default if still unset.
/// * Working directory: `workingDirectory`, else the image's WorkingDir, else `/`.
/// * User: `user`, else the image's User.
///
/// `file_env` holds the entries of the container's environment files (see [`crate::parse_env_file`]),
/// in file order. An empty argv (neither image nor definition names a program) is an error.
pub fn merge_process(
    image: &ImageConfig,
    container: &ContainerPlan,
    file_env: &[String],
) -> Result<Process, Error> {
    let entry_point = container.entry_point.as_ref();
    let command = container
        .command
        .as_ref()
        .filter(|command| !command.is_empty());
    let args: Vec<String> = match entry_point {
        Some(entry_point) if !entry_point.is_empty() => entry_point
            .iter()
            .chain(command.into_iter().flatten())
            .cloned()
            .collect(),
        _ => {
            let entry = match entry_point {
                Some(_) => None, // explicitly emptied
                None => image.entrypoint.as_ref(),
            };
            let cmd = command.or(image.cmd.as_ref());
            entry
                .into_iter()
                .flatten()
                .chain(cmd.into_iter().flatten())
                .cloned()
                .collect()
        }
    };
    if args.is_empty() {
        return Err(Error::Invalid(vec![Problem::new(
            format!("containerDefinitions[{}]", container.index),
            "no command to run: neither the image nor the definition sets an entryPoint or command",
        )]));
    }

    let mut env: Vec<String> = Vec::new();
    for entry in file_env.iter().chain(&container.environment) {
        upsert(&mut env, entry);
    }
    for entry in &image.env {
        if !env
            .iter()
            .any(|existing| name_of(existing) == name_of(entry))
        {
            env.push(entry.clone());
        }
    }
    if !env.iter().any(|entry| name_of(entry) == "PATH") {
        env.push(DEFAULT_PATH.to_owned());
    }

    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    Ok(Process {
        args,
        env,
        cwd: non_empty(&container.working_directory)
            .or_else(|| non_empty(&image.working_dir))
            .unwrap_or_else(|| "/".to_owned()),
        user: non_empty(&container.user).or_else(|| non_empty(&image.user)),
    })
}

fn name_of(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// Sets an entry, replacing one with the same name in place.
fn upsert(env: &mut Vec<String>, entry: &str) {
    match env
        .iter_mut()
        .find(|existing| name_of(existing) == name_of(entry))
    {
        Some(existing) => entry.clone_into(existing),
        None => env.push(entry.to_owned()),
    }
}
