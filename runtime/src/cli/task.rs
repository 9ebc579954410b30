//! `berth task …`: run ECS task definitions as sandboxes (berth::task), attached or detached, and
//! inspect, stop and read the logs of running tasks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth::image::DEFAULT_ROOT;
use berth::state::StateRoot;
use berth::task::record::{self, TaskRecord, TaskStatus};
use berth::task::{self, runner, supervisor, RunOptions, TaskPaths};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct TaskArgs {
    /// Directory of the image store the task's images resolve in.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub image_root: PathBuf,
    /// Accept definitions outside Fargate's rules (host volumes, devices, tmpfs, …).
    #[arg(long, global = true)]
    pub no_fargate: bool,
    #[command(subcommand)]
    pub command: TaskCommand,
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Run a task definition: stream its logs and exit with the essential container's code, or
    /// with --detach leave it to a supervisor and print its id.
    Run {
        file: PathBuf,
        #[arg(short, long)]
        detach: bool,
        /// Task id (default: <family>-<random>).
        #[arg(long)]
        name: Option<String>,
        /// Internal: this process is the detached task's supervisor.
        #[arg(long, hide = true)]
        supervise: bool,
    },
    /// List tasks.
    #[command(alias = "list")]
    Ls {
        /// Print ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a task's state as JSON: containers, exit codes, health, stoppedReason.
    Describe { id: String },
    /// Stop a task: SIGTERM its containers in reverse dependency order, SIGKILL after stopTimeout.
    /// A task whose supervisor died is stopped and cleaned up here (SIGTERM, stopTimeout, SIGKILL).
    Stop { id: String },
    /// Print a task's container logs.
    Logs {
        id: String,
        container: Option<String>,
        #[arg(short, long)]
        follow: bool,
    },
    /// Remove a stopped task's record and logs, and whatever a dead supervisor left.
    Rm {
        /// Stop a running task first (as `task stop` does), then remove it.
        #[arg(short, long)]
        force: bool,
        ids: Vec<String>,
    },
}

pub fn run(root: &StateRoot, args: TaskArgs) -> Result<i32> {
    let taskdef = berth_taskdef::Options {
        fargate: !args.no_fargate,
        ..Default::default()
    };
    match args.command {
        TaskCommand::Run {
            file,
            detach,
            name,
            supervise,
        } => {
            if detach && !supervise {
                return run_detached(
                    root,
                    &args.image_root,
                    args.no_fargate,
                    &file,
                    name,
                    &taskdef,
                );
            }
            run_here(root, &args.image_root, &file, name, supervise, taskdef)
        }
        TaskCommand::Ls { quiet } => {
            let tasks = record::list(&root.dir);
            let mut out = std::io::stdout().lock();
            if quiet {
                for t in tasks {
                    writeln!(out, "{}", t.id)?;
                }
                return Ok(0);
            }
            writeln!(
                out,
                "{:<32} {:<16} {:<9} {:<10} CREATED",
                "ID", "FAMILY", "STATUS", "CONTAINERS"
            )?;
            for t in tasks {
                let running = t
                    .containers
                    .iter()
                    .filter(|c| c.last_status == "RUNNING")
                    .count();
                writeln!(
                    out,
                    "{:<32} {:<16} {:<9} {:<10} {}",
                    t.id,
                    t.family,
                    status_word(t.last_status),
                    format!("{running}/{}", t.containers.len()),
                    t.created_at
                )?;
            }
            Ok(0)
        }
        TaskCommand::Describe { id } => {
            let r = load(root, &id)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(0)
        }
        TaskCommand::Stop { id } => stop(root, &args.image_root, &id),
        TaskCommand::Logs {
            id,
            container,
            follow,
        } => logs(root, &id, container.as_deref(), follow),
        TaskCommand::Rm { force, ids } => {
            for id in ids {
                rm(root, &args.image_root, &id, force)?;
            }
            Ok(0)
        }
    }
}

/// `task rm`: like `docker rm`, a running task is refused unless --force (which stops it
/// first). That includes a task whose supervisor died while its containers still run: the
/// message names `task stop`, which ends them. Whatever a dead supervisor left is removed.
fn rm(root: &StateRoot, image_root: &Path, id: &str, force: bool) -> Result<()> {
    let r = load(root, id)?;
    if r.orphaned && r.last_status != TaskStatus::Stopped && !force {
        bail!(
            "task {id} is {} without its supervisor (it exited unexpectedly): \
             `berth task stop {id}` stops its containers and cleans up, or use `task rm --force`",
            status_word(r.last_status)
        );
    }
    if !r.orphaned && r.last_status != TaskStatus::Stopped {
        if !force {
            bail!(
                "task {id} is {}: stop it first (`berth task stop {id}`) or use `task rm --force`",
                status_word(r.last_status)
            );
        }
        stop(root, image_root, id)?;
    }
    let r = load(root, id)?;
    let paths = TaskPaths::new(&root.dir, id);
    // A cleanly stopped task has nothing left (its supervisor records STOPPED after its
    // teardown) and this finds nothing; one whose supervisor died has everything left.
    task::reclaim::reclaim(&paths, &r, image_root)?;
    std::fs::remove_dir_all(&paths.dir)
        .with_context(|| format!("removing {}", paths.dir.display()))?;
    Ok(())
}

fn status_word(s: TaskStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn load(root: &StateRoot, id: &str) -> Result<TaskRecord> {
    berth::state::validate_id(id)?;
    Ok(TaskRecord::load(&TaskPaths::new(&root.dir, id), id)?)
}

fn run_here(
    root: &StateRoot,
    image_root: &Path,
    file: &Path,
    name: Option<String>,
    supervise: bool,
    taskdef: berth_taskdef::Options,
) -> Result<i32> {
    let stop = supervisor::install_stop_handlers()?;
    if supervise {
        supervisor::become_subreaper()?;
    }
    let console: Option<task::logs::Console> = if supervise {
        None
    } else {
        Some(Arc::new(Mutex::new(Box::new(std::io::stdout()))))
    };
    let outcome = task::run(
        file,
        RunOptions {
            berth_root: root.dir.clone(),
            image_root: image_root.to_path_buf(),
            id: name,
            detached: supervise,
            console,
            taskdef,
            stop,
            on_started: None,
        },
    )?;
    if !supervise {
        let reason = outcome.record.stopped_reason.clone().unwrap_or_default();
        eprintln!("task {} stopped: {reason}", outcome.id);
    }
    Ok(outcome.exit_code)
}

fn run_detached(
    root: &StateRoot,
    image_root: &Path,
    no_fargate: bool,
    file: &Path,
    name: Option<String>,
    taskdef: &berth_taskdef::Options,
) -> Result<i32> {
    // Invalid definitions fail here, before a supervisor exists.
    let plan = runner::load_plan(file, taskdef)?;
    let id = name.unwrap_or_else(|| task::new_id(&plan.family));
    berth::state::validate_id(&id)?;
    if TaskPaths::new(&root.dir, &id).dir.exists() {
        bail!("task {id} already exists (berth task rm {id} removes a stopped one)");
    }
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let file = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let mut args = vec![
        "--root".to_string(),
        root.dir.display().to_string(),
        "task".to_string(),
        "--image-root".to_string(),
        image_root.display().to_string(),
    ];
    if no_fargate {
        args.push("--no-fargate".into());
    }
    args.extend([
        "run".to_string(),
        "--supervise".to_string(),
        "--detach".to_string(),
        "--name".to_string(),
        id.clone(),
        file.display().to_string(),
    ]);
    let r = supervisor::spawn_detached(&exe, &args, &root.dir, &id, Duration::from_secs(120))?;
    println!("{}", r.id);
    Ok(0)
}

fn stop(root: &StateRoot, image_root: &Path, id: &str) -> Result<i32> {
    let r = load(root, id)?;
    if r.orphaned {
        return stop_orphan(root, image_root, r);
    }
    if r.last_status == TaskStatus::Stopped {
        return Ok(0);
    }
    match nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.supervisor_pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        // ESRCH: it died since the load; the loop below finds the task orphaned.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => return Err(e).with_context(|| format!("signalling the supervisor of task {id}")),
    }
    // Stop order runs level by level, each level up to its longest stopTimeout.
    let end = Instant::now() + Duration::from_secs(30 + 130 * r.containers.len() as u64);
    loop {
        let now = load(root, id)?;
        if now.orphaned {
            // Killed before (or while) stopping the task: finish the job ourselves.
            return stop_orphan(root, image_root, now);
        }
        if now.last_status == TaskStatus::Stopped {
            return Ok(0);
        }
        if Instant::now() > end {
            bail!("task {id} did not stop in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a task whose supervisor is gone: reclaims everything it left and records the end,
/// as the supervisor would have.
fn stop_orphan(root: &StateRoot, image_root: &Path, mut r: TaskRecord) -> Result<i32> {
    let paths = TaskPaths::new(&root.dir, &r.id);
    tracing::info!(
        task = r.id,
        "the task's supervisor is gone: cleaning up after it"
    );
    let stopped_by_user = r.last_status != TaskStatus::Stopped;
    task::reclaim::reclaim(&paths, &r, image_root)?;
    let now = berth::state::now_rfc3339();
    r.last_status = TaskStatus::Stopped;
    r.stopped_reason
        .get_or_insert_with(|| record::REASON_SUPERVISOR_GONE.into());
    if stopped_by_user {
        r.stop_code.get_or_insert_with(|| "UserInitiated".into());
    }
    r.stopped_at.get_or_insert_with(|| now.clone());
    for c in &mut r.containers {
        if c.last_status != "STOPPED" {
            c.last_status = "STOPPED".into();
            c.finished_at.get_or_insert_with(|| now.clone());
        }
        c.pid = None;
    }
    r.save(&paths)?;
    Ok(0)
}

fn logs(root: &StateRoot, id: &str, container: Option<&str>, follow: bool) -> Result<i32> {
    let r = load(root, id)?;
    let paths = TaskPaths::new(&root.dir, id);
    let names: Vec<String> = match container {
        Some(c) => {
            if r.container(c).is_none() {
                bail!("task {id} has no container named {c:?}");
            }
            vec![c.to_string()]
        }
        None => r.containers.iter().map(|c| c.name.clone()).collect(),
    };
    let prefixed = container.is_none();
    let root_dir = root.dir.clone();
    let mut threads = Vec::new();
    for name in names {
        let path = paths.log_file(&name);
        let (root_dir, id) = (root_dir.clone(), id.to_string());
        let work = move || -> std::io::Result<()> {
            let mut out = std::io::stdout();
            let done = || {
                TaskRecord::load(&TaskPaths::new(&root_dir, &id), &id)
                    .map(|r| r.last_status == TaskStatus::Stopped)
                    .unwrap_or(true)
            };
            match task::logs::print(
                &path,
                prefixed.then_some(name.as_str()),
                follow,
                &mut out,
                done,
            ) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        if follow {
            threads.push(std::thread::spawn(work));
        } else {
            work()?;
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(0)
}
