//! Runs a task: validates and plans it, makes the sandbox, starts each container once its
//! dependsOn conditions hold (START / COMPLETE / SUCCESS / HEALTHY, each bounded by the
//! dependency's startTimeout), watches exits and health, restarts per restartPolicy, and when an
//! essential container stops, stops the others in reverse dependency order (SIGTERM, then SIGKILL
//! after stopTimeout). Everything it made is removed at the end; task.json and the logs stay.
//!
//! The process that calls [`run`] is the parent of every container init (`container::create`
//! clones them as its children), so it reaps them itself: one waiter thread per container run.
//! Container state changes go into one mutex-protected [`State`]; the main loop wakes on its
//! condvar and makes every decision, so the rules live in one place.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};

use super::health::{self, Health, Tracker};
use super::logs::{self, Console, LogFile};
use super::ports::{self, Forwarders};
use super::record::{ContainerRecord, TaskRecord, TaskStatus};
use super::sandbox::Sandbox;
use super::{bundle, Error, TaskPaths};
use crate::container::{self, CreateOptions};
use crate::image::{Image, Rootfs, Store};
use crate::state::{self, StateRoot};
use berth_taskdef::plan::Condition;
use berth_taskdef::plan::ContainerPlan;
use berth_taskdef::{Process, TaskPlan};

pub const REASON_ESSENTIAL: &str = "Essential container in task exited";
pub const REASON_OOM: &str = "OutOfMemoryError: Container killed due to memory usage";
pub const REASON_USER: &str = "Task stopped by user";
pub const REASON_HEALTH: &str = "Task failed container health checks";

/// Called with the task id once the task runs (or has stopped).
pub type OnStarted = Box<dyn FnOnce(&str) + Send>;

pub struct RunOptions {
    pub berth_root: PathBuf,
    pub image_root: PathBuf,
    /// The task id (`--name`); None: `<family>-<random>`.
    pub id: Option<String>,
    pub detached: bool,
    /// Attached mode: where container output is streamed, prefixed with the container name.
    pub console: Option<Console>,
    pub taskdef: berth_taskdef::Options,
    /// Set (by a signal handler or `task stop`) to stop the task.
    pub stop: Arc<AtomicBool>,
    /// Called once every container of the first start level is up (or the task has stopped), with
    /// the task id: the detaching CLI waits for this through task.json instead.
    pub on_started: Option<OnStarted>,
}

#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub id: String,
    /// The exit code of the essential container that ended the task (or the first essential one);
    /// 1 when it never ran.
    pub exit_code: i32,
    pub record: TaskRecord,
}

/// Reads, validates and plans a definition without touching anything.
pub fn load_plan(path: &Path, opts: &berth_taskdef::Options) -> Result<TaskPlan, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let def = berth_taskdef::load(&text, opts)?;
    let plan = berth_taskdef::plan(&def, opts)?;
    bundle::check_supported(&plan)?;
    Ok(plan)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Stopped,
}

struct Ctr {
    phase: Phase,
    /// Set by the waiter thread; the main loop handles the exit and clears it.
    exited: bool,
    ever_started: bool,
    exit_code: Option<i32>,
    oom: bool,
    health: Option<Health>,
    reason: Option<String>,
    pid: Option<i32>,
    started: Option<Instant>,
    started_at: Option<String>,
    finished_at: Option<String>,
    restarts: u32,
}

struct State {
    ctrs: Vec<Ctr>,
    stopping: Option<(String, &'static str)>,
    task_exit: Option<i32>,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread must not wedge the task: keep going with the data as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the runner holds per container between runs.
struct Slot {
    plan: ContainerPlan,
    process: Process,
    image: Image,
    bundle_dir: PathBuf,
    rootfs: Option<Rootfs>,
    log: Arc<Mutex<LogFile>>,
    threads: Vec<JoinHandle<()>>,
    health_stop: Option<Arc<AtomicBool>>,
    /// interactive without a pty: the write end of the container's stdin, held for the run so
    /// stdin stays open (never EOF), as `docker run -i` keeps it.
    stdin_keep: Option<OwnedFd>,
}

/// Runs the task definition at `path` to its end.
pub fn run(path: &Path, mut opts: RunOptions) -> Result<TaskOutcome, Error> {
    let plan = load_plan(path, &opts.taskdef)?;
    // Everything that can fail on input is checked before the host is touched.
    let store = Store::open(&opts.image_root).map_err(|e| Error::Image {
        container: String::new(),
        image: opts.image_root.display().to_string(),
        source: Box::new(e),
    })?;
    let mut images: HashMap<String, Image> = HashMap::new();
    let mut processes = Vec::new();
    for c in &plan.containers {
        if !images.contains_key(&c.image) {
            let image = store.resolve(&c.image).map_err(|e| Error::Image {
                container: c.name.clone(),
                image: c.image.clone(),
                source: Box::new(e),
            })?;
            images.insert(c.image.clone(), image);
        }
        let mut file_env = Vec::new();
        for f in &c.environment_files {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::io(
                    format!("containerDefinitions[{}].environmentFiles: {f}", c.index),
                    e,
                )
            })?;
            file_env.extend(berth_taskdef::parse_env_file(&text)?);
        }
        let image = images.get(&c.image).map(|i| i.process_defaults());
        processes.push(berth_taskdef::merge_process(
            &image.unwrap_or_default(),
            c,
            &file_env,
        )?);
    }
    let id = match opts.id.take() {
        Some(id) => id,
        None => super::new_id(&plan.family),
    };
    state::validate_id(&id).map_err(|e| Error::Invalid(format!("--name: {e}")))?;

    let paths = TaskPaths::new(&opts.berth_root, &id);
    state::ensure_private_dir(&super::tasks_dir(&opts.berth_root))
        .map_err(|e| Error::io("creating the tasks directory", e))?;
    match std::fs::create_dir(&paths.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Invalid(format!(
                "task {id} already exists (berth task rm {id} removes a stopped one)"
            )))
        }
        Err(e) => return Err(Error::io(format!("creating {}", paths.dir.display()), e)),
    }
    for d in [paths.logs(), paths.containers(), paths.bundles()] {
        std::fs::create_dir_all(&d)
            .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    }
    let mut record = TaskRecord {
        id: id.clone(),
        family: plan.family.clone(),
        definition: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        last_status: TaskStatus::Provisioning,
        supervisor_pid: std::process::id() as i32,
        supervisor_start_time: state::process_start_time(std::process::id() as i32),
        detached: opts.detached,
        created_at: state::now_rfc3339(),
        started_at: None,
        stopped_at: None,
        stopped_reason: None,
        stop_code: None,
        cgroup: super::cgroup_path(&id).display().to_string(),
        image_root: Some(opts.image_root.clone()),
        orphaned: false,
        containers: plan
            .containers
            .iter()
            .map(|c| ContainerRecord {
                name: c.name.clone(),
                image: c.image.clone(),
                essential: c.essential,
                last_status: "PENDING".into(),
                exit_code: None,
                health_status: c.health_check.as_ref().map(|_| "UNKNOWN".into()),
                reason: None,
                pid: None,
                started_at: None,
                finished_at: None,
                restart_count: 0,
                stop_timeout: Some(c.stop_timeout_secs),
            })
            .collect(),
    };
    record.save(&paths)?;

    let result = Runner::new(&plan, &paths, &id, &store, images, processes, &mut opts)
        .and_then(|mut r| r.run_to_end(&mut record, &mut opts));
    match result {
        Ok(exit_code) => Ok(TaskOutcome {
            id,
            exit_code,
            record,
        }),
        Err(e) => {
            // The task never ran: nothing of it should remain.
            let _ = std::fs::remove_dir_all(&paths.dir);
            Err(e)
        }
    }
}

struct Runner<'a> {
    plan: &'a TaskPlan,
    paths: &'a TaskPaths,
    id: String,
    store: &'a Store,
    slots: Vec<Slot>,
    shared: Arc<Shared>,
    containers: StateRoot,
    sandbox: Option<Sandbox>,
    forwarders: Option<Forwarders>,
    console: Option<Console>,
    /// A dependency that has not started yet is timed (startTimeout) from here.
    began: Instant,
}

impl<'a> Runner<'a> {
    fn new(
        plan: &'a TaskPlan,
        paths: &'a TaskPaths,
        id: &str,
        store: &'a Store,
        images: HashMap<String, Image>,
        processes: Vec<Process>,
        opts: &mut RunOptions,
    ) -> Result<Runner<'a>, Error> {
        let mut slots = Vec::new();
        for (c, process) in plan.containers.iter().zip(processes) {
            let image = images
                .get(&c.image)
                .cloned()
                .ok_or_else(|| Error::Invalid(format!("image {} not resolved", c.image)))?;
            let log = LogFile::open(
                &paths.log_file(&c.name),
                c.log.max_size_bytes,
                c.log.max_file,
            )
            .map_err(|e| Error::io(format!("opening the log of {}", c.name), e))?;
            slots.push(Slot {
                plan: c.clone(),
                process,
                image,
                bundle_dir: paths.bundles().join(&c.name),
                rootfs: None,
                log: Arc::new(Mutex::new(log)),
                threads: Vec::new(),
                health_stop: None,
                stdin_keep: None,
            });
        }
        let ctrs = plan
            .containers
            .iter()
            .map(|c| Ctr {
                phase: Phase::Pending,
                exited: false,
                ever_started: false,
                exit_code: None,
                oom: false,
                health: c.health_check.as_ref().map(|_| Health::Unknown),
                reason: None,
                pid: None,
                started: None,
                started_at: None,
                finished_at: None,
                restarts: 0,
            })
            .collect();
        Ok(Runner {
            plan,
            paths,
            id: id.to_string(),
            store,
            slots,
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    ctrs,
                    stopping: None,
                    task_exit: None,
                }),
                cv: Condvar::new(),
            }),
            containers: StateRoot::new(paths.containers()),
            sandbox: None,
            forwarders: None,
            console: opts.console.clone(),
            began: Instant::now(),
        })
    }

    fn run_to_end(&mut self, record: &mut TaskRecord, opts: &mut RunOptions) -> Result<i32, Error> {
        let sandbox = Sandbox::create(self.paths, &self.id, self.plan)?;
        let tcp = ports::host_ports(self.plan, "tcp");
        let udp = ports::host_ports(self.plan, "udp");
        if !tcp.is_empty() || !udp.is_empty() {
            let netns = sandbox
                .namespace("network")
                .ok_or_else(|| Error::Invalid("task has no network namespace".into()))?;
            self.forwarders = Some(Forwarders::start(netns, &tcp, &udp)?);
        }
        self.sandbox = Some(sandbox);
        record.last_status = TaskStatus::Pending;
        self.sync_record(record);

        let mut on_started = opts.on_started.take();
        loop {
            if opts.stop.load(Ordering::SeqCst) {
                let mut st = self.shared.lock();
                st.stopping
                    .get_or_insert_with(|| (REASON_USER.to_string(), "UserInitiated"));
            }
            self.handle_exits();
            if self.shared.lock().stopping.is_some() {
                break;
            }
            self.start_ready();
            let (all_done, any_running) = {
                let st = self.shared.lock();
                (
                    st.ctrs
                        .iter()
                        .all(|c| c.phase == Phase::Stopped && !c.exited),
                    st.ctrs.iter().any(|c| c.phase == Phase::Running),
                )
            };
            if any_running && record.last_status == TaskStatus::Pending {
                record.last_status = TaskStatus::Running;
                record.started_at = Some(state::now_rfc3339());
            }
            self.sync_record(record);
            if record.last_status == TaskStatus::Running {
                if let Some(f) = on_started.take() {
                    f(&self.id);
                }
            }
            if all_done {
                break;
            }
            let st = self.shared.lock();
            let _ = self
                .shared
                .cv
                .wait_timeout(st, Duration::from_millis(200))
                .map_err(|_| ());
        }
        record.last_status = TaskStatus::Stopping;
        self.sync_record(record);
        self.stop_all();
        self.handle_exits();
        self.finish(record);
        if let Some(f) = on_started.take() {
            f(&self.id);
        }
        let st = self.shared.lock();
        let code = st.task_exit.unwrap_or_else(|| {
            // The first essential container's code when the task ended otherwise.
            self.plan
                .containers
                .iter()
                .zip(&st.ctrs)
                .find(|(p, _)| p.essential)
                .and_then(|(_, c)| c.exit_code)
                .unwrap_or(1)
        });
        Ok(code)
    }

    /// Exits the waiter threads reported: restart, or stop the task for an essential container.
    fn handle_exits(&mut self) {
        let mut to_delete = Vec::new();
        {
            let mut st = self.shared.lock();
            for i in 0..st.ctrs.len() {
                if !st.ctrs[i].exited {
                    continue;
                }
                st.ctrs[i].exited = false;
                to_delete.push(i);
                let slot = &self.slots[i];
                let code = st.ctrs[i].exit_code.unwrap_or(-1);
                let ran_for = st.ctrs[i].started.map(|s| s.elapsed()).unwrap_or_default();
                let restart = st.stopping.is_none()
                    && slot.plan.restart_policy.as_ref().is_some_and(|r| {
                        !r.ignored_exit_codes.contains(&i64::from(code))
                            && ran_for >= Duration::from_secs(r.attempt_period_secs)
                    });
                if st.ctrs[i].oom {
                    st.ctrs[i].reason = Some(REASON_OOM.into());
                }
                if restart {
                    tracing::info!(
                        container = slot.plan.name,
                        code,
                        "restarting per restartPolicy"
                    );
                    st.ctrs[i].phase = Phase::Pending;
                    st.ctrs[i].restarts += 1;
                    continue;
                }
                if slot.plan.essential && st.stopping.is_none() {
                    let reason = if st.ctrs[i].oom {
                        REASON_OOM.to_string()
                    } else {
                        REASON_ESSENTIAL.to_string()
                    };
                    st.stopping = Some((reason, "EssentialContainerExited"));
                    st.task_exit = Some(code);
                }
            }
        }
        for i in to_delete {
            self.reap_run(i);
        }
        // An essential container that turns UNHEALTHY stops the task, as ECS does.
        let mut st = self.shared.lock();
        if st.stopping.is_none() {
            let unhealthy = self.slots.iter().zip(&st.ctrs).any(|(slot, c)| {
                slot.plan.essential
                    && c.phase == Phase::Running
                    && c.health == Some(Health::Unhealthy)
            });
            if unhealthy {
                st.stopping = Some((REASON_HEALTH.to_string(), "ServiceSchedulerInitiated"));
            }
        }
    }

    /// Cleans up after one run of a container: its berth container record and cgroup, its
    /// health checker; the rootfs stays for a restart.
    fn reap_run(&mut self, i: usize) {
        let name = self.slots[i].plan.name.clone();
        if let Some(stop) = self.slots[i].health_stop.take() {
            stop.store(true, Ordering::SeqCst);
        }
        self.slots[i].stdin_keep = None;
        if let Err(e) = container::delete(&self.containers, &name, true) {
            tracing::warn!(container = name, error = %e, "deleting container");
        }
    }

    /// Starts every pending container whose dependencies hold; fails those whose never will.
    fn start_ready(&mut self) {
        for i in 0..self.slots.len() {
            let verdict = {
                let st = self.shared.lock();
                if st.ctrs[i].phase != Phase::Pending || st.stopping.is_some() {
                    continue;
                }
                self.dependencies(&st, i)
            };
            match verdict {
                Deps::Wait => {}
                Deps::Fail(why) => self.fail_start(i, why),
                Deps::Ready => {
                    if let Err(e) = self.launch(i) {
                        self.fail_start(i, format!("CannotStartContainerError: {e}"));
                    }
                }
            }
        }
    }

    fn dependencies(&self, st: &State, i: usize) -> Deps {
        let mut verdict = Deps::Ready;
        for dep in &self.slots[i].plan.depends_on {
            let Some(j) = self.slots.iter().position(|s| s.plan.name == dep.container) else {
                return Deps::Fail(format!("dependency {} does not exist", dep.container));
            };
            let d = &st.ctrs[j];
            let stopped = d.phase == Phase::Stopped;
            let cond = match dep.condition {
                Condition::Start => {
                    if d.ever_started {
                        Deps::Ready
                    } else if stopped {
                        Deps::Fail(format!("dependency {} did not start", dep.container))
                    } else {
                        Deps::Wait
                    }
                }
                Condition::Complete => {
                    if stopped && d.ever_started {
                        Deps::Ready
                    } else if stopped {
                        Deps::Fail(format!("dependency {} did not start", dep.container))
                    } else {
                        Deps::Wait
                    }
                }
                Condition::Success => match (stopped, d.exit_code) {
                    (true, Some(0)) => Deps::Ready,
                    (true, code) => Deps::Fail(format!(
                        "dependency {} did not reach SUCCESS (exit code {})",
                        dep.container,
                        code.map_or("none".to_string(), |c| c.to_string())
                    )),
                    _ => Deps::Wait,
                },
                Condition::Healthy => match d.health {
                    Some(Health::Healthy) => Deps::Ready,
                    Some(Health::Unhealthy) => {
                        Deps::Fail(format!("dependency {} is UNHEALTHY", dep.container))
                    }
                    _ if stopped => Deps::Fail(format!(
                        "dependency {} stopped before it was HEALTHY",
                        dep.container
                    )),
                    _ => Deps::Wait,
                },
            };
            if matches!(cond, Deps::Wait) {
                if let (Some(limit), Some(since)) = (
                    self.slots[j].plan.start_timeout_secs,
                    Some(d.started.unwrap_or(self.began)),
                ) {
                    if since.elapsed() > Duration::from_secs(limit) {
                        return Deps::Fail(format!(
                            "dependency {} did not reach {:?} within its startTimeout of {limit}s",
                            dep.container, dep.condition
                        ));
                    }
                }
            }
            match cond {
                Deps::Fail(_) => return cond,
                Deps::Wait => verdict = Deps::Wait,
                Deps::Ready => {}
            }
        }
        verdict
    }

    fn fail_start(&mut self, i: usize, why: String) {
        let name = self.slots[i].plan.name.clone();
        tracing::warn!(container = name, reason = why, "container not started");
        let mut st = self.shared.lock();
        let c = &mut st.ctrs[i];
        c.phase = Phase::Stopped;
        c.reason = Some(why.clone());
        c.finished_at = Some(state::now_rfc3339());
        if self.slots[i].plan.essential && st.stopping.is_none() {
            st.stopping = Some((
                format!("TaskFailedToStart: container {name}: {why}"),
                "TaskFailedToStart",
            ));
        }
        self.shared.cv.notify_all();
    }

    /// Creates and starts one run of container `i`.
    fn launch(&mut self, i: usize) -> Result<(), Error> {
        let sandbox = self
            .sandbox
            .as_ref()
            .ok_or_else(|| Error::Invalid("no sandbox".into()))?;
        let slot = &mut self.slots[i];
        let name = slot.plan.name.clone();
        let cerr = |e| Error::Container {
            container: name.clone(),
            source: Box::new(e),
        };
        if slot.rootfs.is_none() {
            let rootfs = self
                .store
                .prepare_rootfs(&slot.image, &slot.bundle_dir.join("fs"))
                .map_err(|e| Error::Image {
                    container: name.clone(),
                    image: slot.plan.image.clone(),
                    source: Box::new(e),
                })?;
            let etc = bundle::etc_files(&slot.bundle_dir, &self.id, &slot.plan)?;
            let etc: Vec<(PathBuf, &str)> = etc.into_iter().collect();
            let spec = bundle::spec(
                self.plan,
                &slot.plan,
                &slot.process,
                rootfs.path(),
                sandbox,
                &etc,
            )?;
            let bytes = serde_json::to_vec_pretty(&spec)
                .map_err(|e| Error::Invalid(format!("encoding config.json: {e}")))?;
            std::fs::write(slot.bundle_dir.join("config.json"), bytes)
                .map_err(|e| Error::io("writing config.json", e))?;
            slot.rootfs = Some(rootfs);
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let devnull = std::fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
        let mut stdin = OwnedFd::from(devnull);
        slot.stdin_keep = None;
        if slot.plan.interactive && !slot.plan.pseudo_terminal {
            let (r, w) = pipe()?;
            stdin = r;
            slot.stdin_keep = Some(w);
        }
        let console = if slot.plan.pseudo_terminal {
            Some(ConsoleSocket::bind(&slot.bundle_dir)?)
        } else {
            None
        };
        let opts = CreateOptions {
            id: name.clone(),
            bundle: slot.bundle_dir.clone(),
            stdio: Some([stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]),
            console_socket: console.as_ref().map(|c| c.path.clone()),
            ..Default::default()
        };
        let root = self.containers.clone();
        // create() may enter namespaces on the calling thread (pid, time): a thread of its own
        // keeps the runner's threads where they are.
        let created = std::thread::spawn(move || container::create(&root, &opts))
            .join()
            .map_err(|_| Error::Invalid("create thread panicked".into()))?
            .map_err(cerr)?;
        drop((out_w, err_w, stdin));
        let pid = created.pid;
        let mut streams = vec![("stdout", out_r), ("stderr", err_r)];
        if let Some(console) = console {
            // The container sent its pty master during create. Its output (both of the
            // program's streams, as Docker logs a tty) is the log's stdout.
            match console.receive_master() {
                Ok(master) => streams = vec![("stdout", master)],
                Err(e) => {
                    let _ = container::delete(&self.containers, &name, true);
                    let _ = waitpid(pid, None);
                    return Err(e);
                }
            }
        }
        for (stream, pipe) in streams {
            let t = logs::capture(
                name.clone(),
                stream,
                pipe,
                slot.log.clone(),
                self.console.clone(),
            )
            .map_err(|e| Error::io("starting a log reader", e))?;
            slot.threads.push(t);
        }
        let cgroup = created.state.cgroup_path.clone();
        if let Err(e) = container::start(&self.containers, &name) {
            let _ = container::delete(&self.containers, &name, true);
            let _ = waitpid(pid, None);
            return Err(cerr(e));
        }
        {
            let mut st = self.shared.lock();
            let c = &mut st.ctrs[i];
            c.phase = Phase::Running;
            c.ever_started = true;
            c.exit_code = None;
            c.oom = false;
            c.pid = Some(pid.as_raw());
            c.started = Some(Instant::now());
            c.started_at = Some(state::now_rfc3339());
            c.finished_at = None;
            c.reason = None;
            if c.health.is_some() {
                c.health = Some(Health::Unknown);
            }
        }
        tracing::info!(container = name, pid = pid.as_raw(), "container started");
        let shared = self.shared.clone();
        let waiter = std::thread::Builder::new()
            .name(format!("wait-{name}"))
            .spawn(move || {
                let code = match waitpid(pid, None) {
                    Ok(WaitStatus::Exited(_, code)) => code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                    _ => -1,
                };
                let oom = oom_kills(&cgroup) > 0;
                let mut st = shared.lock();
                let c = &mut st.ctrs[i];
                c.phase = Phase::Stopped;
                c.exited = true;
                c.exit_code = Some(code);
                c.oom = oom;
                c.pid = None;
                c.finished_at = Some(state::now_rfc3339());
                shared.cv.notify_all();
            })
            .map_err(|e| Error::io("starting a waiter thread", e))?;
        slot.threads.push(waiter);
        if let Some(hc) = slot.plan.health_check.clone() {
            let stop = Arc::new(AtomicBool::new(false));
            slot.health_stop = Some(stop.clone());
            let shared = self.shared.clone();
            let root = self.containers.clone();
            let process = health::container_process(&slot.bundle_dir);
            let t = std::thread::Builder::new()
                .name(format!("health-{name}"))
                .spawn(move || {
                    let Some(process) = process else { return };
                    let mut tracker = Tracker::new(hc.clone(), Instant::now());
                    loop {
                        if sleep_unless(&stop, Duration::from_secs(hc.interval_secs)) {
                            return;
                        }
                        let passed = health::check_once(&root, &name, &process, &hc);
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let status = tracker.record(passed, Instant::now());
                        let mut st = shared.lock();
                        if st.ctrs[i].health != Some(status) {
                            tracing::info!(
                                container = name,
                                health = status.ecs(),
                                "health changed"
                            );
                            st.ctrs[i].health = Some(status);
                            shared.cv.notify_all();
                        }
                    }
                })
                .map_err(|e| Error::io("starting a health checker", e))?;
            slot.threads.push(t);
        }
        Ok(())
    }

    /// Stops running containers level by level in stop order: SIGTERM, stopTimeout, SIGKILL.
    fn stop_all(&mut self) {
        for level in &self.plan.stop_order {
            let mut deadlines = Vec::new();
            for name in level {
                let Some(i) = self.slots.iter().position(|s| &s.plan.name == name) else {
                    continue;
                };
                if self.shared.lock().ctrs[i].phase != Phase::Running {
                    continue;
                }
                let _ = container::kill(&self.containers, name, Signal::SIGTERM);
                let grace = Duration::from_secs(self.slots[i].plan.stop_timeout_secs);
                deadlines.push((i, Instant::now() + grace));
            }
            for (i, deadline) in deadlines {
                let name = self.slots[i].plan.name.clone();
                if !self.wait_stopped(i, deadline) {
                    tracing::info!(container = name, "stopTimeout passed: SIGKILL");
                    let _ = container::kill_all(&self.containers, &name, Signal::SIGKILL);
                    self.wait_stopped(i, Instant::now() + Duration::from_secs(10));
                }
            }
        }
        // Containers that never started are stopped without having run.
        let mut st = self.shared.lock();
        for c in st.ctrs.iter_mut() {
            if c.phase == Phase::Pending {
                c.phase = Phase::Stopped;
                c.reason
                    .get_or_insert_with(|| "Task stopped before the container started".into());
            }
        }
    }

    fn wait_stopped(&self, i: usize, deadline: Instant) -> bool {
        let mut st = self.shared.lock();
        loop {
            if st.ctrs[i].phase == Phase::Stopped {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self
                .shared
                .cv
                .wait_timeout(st, left.min(Duration::from_millis(200)))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Everything made for the task goes; task.json (STOPPED) and the logs stay.
    fn finish(&mut self, record: &mut TaskRecord) {
        for slot in &mut self.slots {
            if let Some(stop) = slot.health_stop.take() {
                stop.store(true, Ordering::SeqCst);
            }
            for t in slot.threads.drain(..) {
                let _ = t.join();
            }
            let _ = container::delete(&self.containers, &slot.plan.name, true);
            if let Some(rootfs) = slot.rootfs.take() {
                if let Err(e) = rootfs.teardown() {
                    tracing::warn!(container = slot.plan.name, error = %e, "tearing down rootfs");
                }
            }
        }
        if let Some(f) = self.forwarders.take() {
            f.stop();
        }
        if let Some(s) = self.sandbox.take() {
            s.destroy();
        }
        let _ = std::fs::remove_dir_all(self.paths.bundles());
        let _ = std::fs::remove_dir_all(self.paths.containers());
        let st = self.shared.lock();
        let (reason, code) = st.stopping.clone().unwrap_or_else(|| {
            (
                "All containers exited".to_string(),
                "EssentialContainerExited",
            )
        });
        drop(st);
        record.stopped_reason = Some(reason);
        record.stop_code = Some(code.to_string());
        record.stopped_at = Some(state::now_rfc3339());
        record.last_status = TaskStatus::Stopped;
        self.sync_record(record);
    }

    fn sync_record(&self, record: &mut TaskRecord) {
        {
            let st = self.shared.lock();
            for (r, c) in record.containers.iter_mut().zip(&st.ctrs) {
                r.last_status = match c.phase {
                    Phase::Pending => "PENDING",
                    Phase::Running => "RUNNING",
                    Phase::Stopped => "STOPPED",
                }
                .into();
                r.exit_code = c.exit_code;
                r.health_status = health::describe(c.health);
                r.reason = c.reason.clone();
                r.pid = c.pid;
                r.started_at = c.started_at.clone();
                r.finished_at = c.finished_at.clone();
                r.restart_count = c.restarts;
            }
            if let Some((reason, _)) = &st.stopping {
                if record.last_status != TaskStatus::Stopped {
                    record.stopped_reason = Some(reason.clone());
                }
            }
        }
        if let Err(e) = record.save(self.paths) {
            tracing::warn!(error = %e, "saving task.json");
        }
    }
}

enum Deps {
    Ready,
    Wait,
    Fail(String),
}

fn sleep_unless(stop: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.load(Ordering::SeqCst)
}

/// The --console-socket of a pseudoTerminal container. Bound and connected (by
/// `container::create`, in this process) as `/proc/self/fd/<dir>/console.sock`: the bundle path
/// may be longer than a unix socket path can be.
struct ConsoleSocket {
    path: PathBuf,
    listener: std::os::unix::net::UnixListener,
    _dir: std::fs::File,
}

impl ConsoleSocket {
    fn bind(bundle_dir: &Path) -> Result<ConsoleSocket, Error> {
        let dir = std::fs::File::open(bundle_dir)
            .map_err(|e| Error::io(format!("opening {}", bundle_dir.display()), e))?;
        let _ = std::fs::remove_file(bundle_dir.join("console.sock"));
        let path = PathBuf::from(format!("/proc/self/fd/{}/console.sock", dir.as_raw_fd()));
        let listener = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| Error::io("binding the console socket", e))?;
        Ok(ConsoleSocket {
            path,
            listener,
            _dir: dir,
        })
    }

    /// The pty master the container sent; never blocks (it was sent before create returned).
    fn receive_master(&self) -> Result<OwnedFd, Error> {
        use std::os::fd::AsFd;
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("console socket", e))?;
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| Error::io("console socket: accept", e))?;
        conn.set_nonblocking(false)
            .map_err(|e| Error::io("console socket", e))?;
        crate::sync::Channel::recv_fd(conn.as_fd())
            .map_err(|e| Error::io("console socket: receiving the pty master", e))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe", e.into()))
}

/// OOM kills charged to a container's own cgroup (v1 memory.oom_control, v2 memory.events). The
/// kernel counts a kill in the victim's memory cgroup whichever ancestor's limit was hit, so this
/// also sees kills caused by the task's limit.
pub fn oom_kills(cgroup: &Path) -> u64 {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let (file, key) = if crate::cgroups::is_unified() {
        (
            Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
            "oom_kill",
        )
    } else {
        (
            Path::new("/sys/fs/cgroup/memory")
                .join(rel)
                .join("memory.oom_control"),
            "oom_kill",
        )
    };
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}
