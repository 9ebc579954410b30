//! Create, Start, Exec, Delete and process exits: the handlers that make and unmake
//! processes through the berth library, and the events that report them.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::container::{CreateOptions, ExecOptions};
use containerd_shim_protos::api;
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskStart,
};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

use crate::blocking;
use crate::console::{Console, ConsoleSocket};
use crate::container::{Container, NewContainer};
use crate::error::{Error, Result};
use crate::group::{self, Join, Placement, PlacementLock};
use crate::logger::LogContext;
use crate::paths;
use crate::process::{lock, Process};
use crate::rootfs;
use crate::service::Service;
use crate::stdio::{self, StdioPaths};
use berth::task::task_cgroup;

/// How long Delete waits for a killed, never-started init to be reaped, and for a console
/// to flush its last output.
const EXIT_GRACE: Duration = Duration::from_secs(5);
const DRAIN_GRACE: Duration = Duration::from_secs(2);

impl Service {
    pub async fn create_task(
        &self,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        let id = req.id.clone();
        berth::state::validate_id(&id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if self.container(&id).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "container {id} already exists"
            )));
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented(
                "restoring from a checkpoint is not implemented by berth".into(),
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        // Checked before anything is made: a bad annotation leaves nothing behind.
        let placement = group::placement(&paths::annotations(&bundle), &self.namespace, &id)?;
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let log = LogContext {
            container_id: &id,
            namespace: &self.namespace,
        };
        let mut prepared = stdio::prepare(&paths, &log, &self.reaper).await?;
        let console = match req.terminal {
            true => Some(ConsoleSocket::bind(&self.root.dir)?),
            false => None,
        };
        // Held until the container's cgroup exists below the task cgroup (see PlacementLock).
        let placing = match &placement {
            Some(p) => {
                let dir = self.root.dir.clone();
                let lock =
                    blocking::run("placement lock", move || PlacementLock::shared(&dir)).await?;
                self.join_task_cgroup(&id, p).await?;
                Some(lock)
            }
            None => None,
        };
        let opts = CreateOptions {
            id: id.clone(),
            bundle: bundle.clone(),
            console_socket: console.as_ref().map(|c| c.path.clone()),
            no_pivot: runc_options(&req).is_some_and(|o| o.no_pivot_root),
            stdio: prepared.raw(),
            cgroups_path: placement.as_ref().map(|p| p.container_cgroup(&id)),
            ..Default::default()
        };
        let mounts = req.rootfs.clone();
        let root = self.root.clone();
        let busy = self.reaper.busy();
        let created = blocking::run("create", move || {
            let t = Instant::now();
            rootfs::mount(&opts.bundle, &mounts)?;
            let mounted = t.elapsed();
            let r = berth::container::create(&root, &opts).map_err(|e| {
                // A failed create leaves nothing: the library rolled back the rest.
                if !mounts.is_empty() {
                    let _ = rootfs::unmount(&opts.bundle);
                }
                Error::from(e)
            });
            tracing::debug!(id = %opts.id, ?mounted, total = ?t.elapsed(), "create");
            r
        })
        .await;
        // The process has its own copies of its stdio now (or never will).
        prepared.child = None;
        drop(placing);
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                if let Some(p) = &placement {
                    self.leave_task_cgroup(&id, &p.task_cgroup).await;
                }
                return Err(e);
            }
        };

        let init = Arc::new(Process::new(&id, "", paths.clone()));
        init.set_pid(created.pid.as_raw());
        self.reaper.track(init.clone());
        drop(busy);

        let container = Arc::new(Container::new(NewContainer {
            id: id.clone(),
            bundle: bundle.clone(),
            cgroup_path: created.state.cgroup_path.clone(),
            own_pid_ns: created.state.own_pid_ns,
            rootfs_mounted: !req.rootfs.is_empty(),
            task_cgroup: placement.map(|p| p.task_cgroup),
            init: init.clone(),
            unified: self.unified,
        }));
        if let Some(cs) = &console {
            match cs.receive_master().and_then(|m| Console::start(m, &paths)) {
                Ok(c) => prepared.io.console = Some(c),
                Err(e) => {
                    self.discard(&container).await;
                    return Err(e);
                }
            }
        }
        *lock(&init.io) = Some(prepared.io);
        container.watch_oom(self.events.clone());
        // Taken before the container becomes visible to the reaper's exit task, so an init
        // that dies at once is reported after its TaskCreate. A new mutex: never contended.
        let order = container.lifecycle.clone().try_lock_owned();
        lock(&self.containers).insert(id.clone(), container);

        self.events
            .publish(TaskCreate {
                container_id: id,
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                checkpoint: req.checkpoint,
                pid: created.pid.as_raw() as u32,
                ..Default::default()
            })
            .await;
        drop(order);
        Ok(api::CreateTaskResponse {
            pid: created.pid.as_raw() as u32,
            ..Default::default()
        })
    }

    /// Undoes a container that was created but cannot be served.
    async fn discard(&self, c: &Arc<Container>) {
        let (root, id, bundle, mounted) = (
            self.root.clone(),
            c.id.clone(),
            c.bundle.clone(),
            c.rootfs_mounted,
        );
        let _busy = self.reaper.busy();
        let _ = blocking::run("discard", move || {
            let r = berth::container::delete(&root, &id, true);
            if mounted {
                let _ = rootfs::unmount(&bundle);
            }
            r.map_err(Error::from)
        })
        .await;
        if let Some(tc) = &c.task_cgroup {
            self.leave_task_cgroup(&c.id, tc).await;
        }
    }

    /// Makes `id` a member of its task cgroup: the first member (re)makes the cgroup with its
    /// limits; a later one that carries different limits updates them.
    async fn join_task_cgroup(&self, id: &str, p: &Placement) -> Result<()> {
        let mut tasks = self.tasks.lock().await;
        let (path, group) = (p.task_cgroup.clone(), p.group.clone());
        let done = match tasks.join(id, p) {
            Join::Nothing => return Ok(()),
            Join::Create(limits) => {
                let resources = limits.resources()?;
                blocking::run("task cgroup", move || {
                    // A leftover of a shim that was killed may still carry old limits: start
                    // afresh if nothing lives in it.
                    task_cgroup::remove_if_empty(&path);
                    Ok(task_cgroup::create(&path, &group, &resources)?)
                })
                .await
            }
            Join::Update(limits) => {
                let resources = limits.resources()?;
                blocking::run("task cgroup", move || {
                    Ok(task_cgroup::update(&path, &group, &resources)?)
                })
                .await
            }
        };
        match done {
            Ok(()) => {
                tasks.applied(&p.task_cgroup, &p.limits);
                tracing::debug!(%id, cgroup = %p.task_cgroup.display(), limits = ?p.limits, "joined task cgroup");
                Ok(())
            }
            Err(e) => {
                if tasks.leave(id, &p.task_cgroup) {
                    let path = p.task_cgroup.clone();
                    let _ = blocking::run("task cgroup", move || {
                        task_cgroup::remove_if_empty(&path);
                        Ok(())
                    })
                    .await;
                }
                Err(e)
            }
        }
    }

    /// `id` is gone: the last member of a task cgroup removes it.
    async fn leave_task_cgroup(&self, id: &str, task_cgroup: &std::path::Path) {
        let mut tasks = self.tasks.lock().await;
        if !tasks.leave(id, task_cgroup) {
            return;
        }
        let path = task_cgroup.to_path_buf();
        let _ = blocking::run("task cgroup", move || {
            if !task_cgroup::remove_if_empty(&path) {
                tracing::warn!(cgroup = %path.display(), "task cgroup not empty after its last container: kept");
            }
            Ok(())
        })
        .await;
    }

    pub async fn start_process(&self, req: &api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let pid = if req.exec_id.is_empty() {
            self.start_init(&c).await?
        } else {
            self.start_exec(&c, &req.exec_id).await?
        };
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn start_init(&self, c: &Arc<Container>) -> Result<i32> {
        let _order = c.lifecycle.lock().await;
        if c.init.exit().is_some() || c.started.load(Ordering::SeqCst) {
            return Err(Error::FailedPrecondition(format!(
                "container {} cannot be started: it already ran",
                c.id
            )));
        }
        let (root, id) = (self.root.clone(), c.id.clone());
        let busy = self.reaper.busy();
        blocking::run("start", move || {
            berth::container::start(&root, &id).map_err(Error::from)
        })
        .await?;
        drop(busy);
        c.started.store(true, Ordering::SeqCst);
        let pid = c.init.pid();
        self.events
            .publish(TaskStart {
                container_id: c.id.clone(),
                pid: pid as u32,
                ..Default::default()
            })
            .await;
        Ok(pid)
    }

    async fn start_exec(&self, c: &Arc<Container>, exec_id: &str) -> Result<i32> {
        let p = c.process(exec_id)?;
        let _order = c.lifecycle.lock().await;
        if p.pid() != 0 {
            return Err(Error::FailedPrecondition(format!(
                "exec {exec_id} was already started"
            )));
        }
        if c.init.exit().is_some() {
            return Err(Error::FailedPrecondition(format!(
                "container {} has stopped",
                c.id
            )));
        }
        let spec = lock(&p.spec).take();
        let log = LogContext {
            container_id: &c.id,
            namespace: &self.namespace,
        };
        let mut prepared = stdio::prepare(&p.stdio, &log, &self.reaper).await?;
        let console = match p.stdio.terminal {
            true => Some(ConsoleSocket::bind(&self.root.dir)?),
            false => None,
        };
        let opts = ExecOptions {
            id: c.id.clone(),
            process: spec,
            console_socket: console.as_ref().map(|c| c.path.clone()),
            stdio: prepared.raw(),
            ..Default::default()
        };
        let root = self.root.clone();
        let busy = self.reaper.busy();
        let pid = blocking::run("exec", move || {
            berth::container::exec(&root, &opts).map_err(Error::from)
        })
        .await;
        prepared.child = None;
        let pid = pid?.as_raw();
        p.set_pid(pid);
        self.reaper.track(p.clone());
        drop(busy);
        if let Some(cs) = &console {
            match cs
                .receive_master()
                .and_then(|m| Console::start(m, &p.stdio))
            {
                Ok(con) => prepared.io.console = Some(con),
                Err(e) => {
                    let _ = p.signal(nix::sys::signal::Signal::SIGKILL);
                    return Err(e);
                }
            }
        }
        *lock(&p.io) = Some(prepared.io);
        self.events
            .publish(TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            })
            .await;
        Ok(pid)
    }

    /// Exec registers a process to be started by a later Start with its exec id.
    pub async fn add_exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        if c.init.exit().is_some() {
            return Err(Error::FailedPrecondition(format!(
                "container {} has stopped",
                c.id
            )));
        }
        let spec_any = req
            .spec
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("exec: no process spec".into()))?;
        let mut spec: oci_spec::runtime::Process = serde_json::from_slice(&spec_any.value)
            .map_err(|e| Error::InvalidArgument(format!("exec: process spec: {e}")))?;
        spec.set_terminal(Some(req.terminal));
        let p = Arc::new(Process::new(
            &c.id,
            &req.exec_id,
            StdioPaths {
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
                terminal: req.terminal,
            },
        ));
        *lock(&p.spec) = Some(spec);
        {
            let mut execs = lock(&c.execs);
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!(
                    "exec {} already exists",
                    req.exec_id
                )));
            }
            execs.insert(req.exec_id.clone(), p);
        }
        self.events
            .publish(TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id,
                ..Default::default()
            })
            .await;
        Ok(())
    }

    pub async fn delete_process(&self, req: &api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            return self.delete_exec(&c, &req.exec_id).await;
        }
        let order = c.lifecycle.lock().await;
        if c.started.load(Ordering::SeqCst) && c.init.exit().is_none() {
            return Err(Error::FailedPrecondition(format!(
                "container {} is running: kill it first",
                c.id
            )));
        }
        let (root, id, bundle, mounted) = (
            self.root.clone(),
            c.id.clone(),
            c.bundle.clone(),
            c.rootfs_mounted,
        );
        let busy = self.reaper.busy();
        // force: a created, never started init is killed (containerd deletes such tasks).
        let deleted = blocking::run("delete", move || {
            let t = Instant::now();
            berth::container::delete(&root, &id, true)?;
            if mounted {
                rootfs::unmount_in_background(&bundle)?;
            }
            tracing::debug!(%id, took = ?t.elapsed(), "delete");
            Ok(())
        })
        .await;
        drop(busy);
        deleted?;
        let _ = tokio::time::timeout(EXIT_GRACE, c.init.wait()).await;
        c.publish_exit(&c.init, &self.events).await;
        c.stop_oom_watch();
        if let Some(mut io) = c.init.take_io() {
            if let Some(con) = &mut io.console {
                con.drain(DRAIN_GRACE).await;
            }
        }
        lock(&self.containers).remove(&c.id);
        drop(order);
        if let Some(tc) = &c.task_cgroup {
            self.leave_task_cgroup(&c.id, tc).await;
        }

        let exit = c.init.exit();
        let pid = c.init.pid().max(0) as u32;
        let (status, at) = match exit {
            Some(e) => (e.status, Some(e.timestamp())),
            None => (0, None),
        };
        self.events
            .publish(TaskDelete {
                container_id: c.id.clone(),
                id: c.id.clone(),
                pid,
                exit_status: status,
                exited_at: at.clone().into(),
                ..Default::default()
            })
            .await;
        Ok(api::DeleteResponse {
            pid,
            exit_status: status,
            exited_at: at.into(),
            ..Default::default()
        })
    }

    async fn delete_exec(&self, c: &Arc<Container>, exec_id: &str) -> Result<api::DeleteResponse> {
        let p = c.process(exec_id)?;
        if p.pid() != 0 && p.exit().is_none() {
            return Err(Error::FailedPrecondition(format!(
                "exec {exec_id} is running"
            )));
        }
        {
            let _order = c.lifecycle.lock().await;
            c.publish_exit(&p, &self.events).await;
        }
        if let Some(mut io) = p.take_io() {
            if let Some(con) = &mut io.console {
                con.drain(DRAIN_GRACE).await;
            }
        }
        lock(&c.execs).remove(exec_id);
        let exit = p.exit();
        Ok(api::DeleteResponse {
            pid: p.pid().max(0) as u32,
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| e.timestamp()).into(),
            ..Default::default()
        })
    }

    /// The reaper collected `p`: finish the container's side and report the exit.
    pub fn process_exited(&self, p: Arc<Process>) {
        if p.logger {
            tracing::debug!(pid = p.pid(), id = %p.container_id, "binary logger exited");
            return;
        }
        let Ok(c) = self.container(&p.container_id) else {
            // A container still being created (its init died at once): Create's caller
            // learns of it from Wait; nothing to publish yet.
            return;
        };
        if p.exec_id.is_empty() && !c.own_pid_ns {
            // Without its own pid namespace, init's death does not end the container's other
            // processes: end them as runc's shim does.
            let _ =
                berth::container::kill_all(&self.root, &c.id, nix::sys::signal::Signal::SIGKILL);
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            let _order = c.lifecycle.lock().await;
            c.publish_exit(&p, &events).await;
        });
    }
}

/// runc's options (`ctr run --runc-*`, CRI runtime options), where containerd sent them.
/// The type is compared by name: protobuf's reflection would build descriptors to keep.
fn runc_options(req: &api::CreateTaskRequest) -> Option<RuncOptions> {
    const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
    let any = req.options.as_ref()?;
    if any.type_url.rsplit('/').next() != Some(RUNC_OPTIONS) {
        return None;
    }
    RuncOptions::parse_from_bytes(&any.value).ok()
}
