//! The task service containerd calls: every RPC of the task API, served for all containers
//! of the shim's group. The handlers live in [`crate::lifecycle`] (create, start, exec,
//! delete, exits) and [`crate::control`] (state, signals, pause, stats, stdio control);
//! this file holds the shared state and the ttrpc surface.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_shim_protos::api::{self, Empty};
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use containerd_shim_protos::ttrpc::Result as TtrpcResult;
use tokio::sync::Notify;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::group::TaskCgroups;
use crate::process::lock;
use crate::reaper::Reaper;

pub struct Service {
    pub root: berth::state::StateRoot,
    /// containerd's namespace (task cgroup paths, `binary://` loggers' environment).
    pub namespace: String,
    /// cgroup v2 only (v2 metrics and memory.events), else v1/hybrid.
    pub unified: bool,
    pub containers: Mutex<HashMap<String, Arc<Container>>>,
    pub reaper: Reaper,
    pub events: Arc<Publisher>,
    /// The task cgroups of this shim's group and their members. An async lock: it is held
    /// while a task cgroup is made or removed, so a Create and the Delete of the group's last
    /// container cannot interleave.
    pub tasks: tokio::sync::Mutex<TaskCgroups>,
    /// Notified when the shim should exit (Shutdown with no containers left).
    pub shutdown: Notify,
}

impl Service {
    pub fn new(root: berth::state::StateRoot, namespace: &str, events: Publisher) -> Service {
        Service {
            root,
            namespace: namespace.to_string(),
            unified: berth::cgroups::is_unified(),
            containers: Mutex::new(HashMap::new()),
            reaper: Reaper::default(),
            events: Arc::new(events),
            tasks: tokio::sync::Mutex::new(TaskCgroups::default()),
            shutdown: Notify::new(),
        }
    }

    pub fn container(&self, id: &str) -> Result<Arc<Container>> {
        lock(&self.containers)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id} not found")))
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.containers).is_empty()
    }
}

/// The ttrpc surface: each RPC delegates to its handler and maps the error.
#[async_trait]
impl Task for Service {
    async fn state(
        &self,
        _: &TtrpcContext,
        r: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        Ok(self.task_state(&r)?)
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        r: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        Ok(self.create_task(r).await?)
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        r: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        Ok(self.start_process(&r).await?)
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        r: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        Ok(self.delete_process(&r).await?)
    }

    async fn pids(&self, _: &TtrpcContext, r: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        Ok(self.list_pids(&r)?)
    }

    async fn pause(&self, _: &TtrpcContext, r: api::PauseRequest) -> TtrpcResult<Empty> {
        self.set_paused(&r.id, true).await?;
        Ok(Empty::new())
    }

    async fn resume(&self, _: &TtrpcContext, r: api::ResumeRequest) -> TtrpcResult<Empty> {
        self.set_paused(&r.id, false).await?;
        Ok(Empty::new())
    }

    async fn checkpoint(
        &self,
        _: &TtrpcContext,
        _: api::CheckpointTaskRequest,
    ) -> TtrpcResult<Empty> {
        Err(Error::Unimplemented("checkpoint is not implemented by berth".into()).into())
    }

    async fn kill(&self, _: &TtrpcContext, r: api::KillRequest) -> TtrpcResult<Empty> {
        self.signal(&r)?;
        Ok(Empty::new())
    }

    async fn exec(&self, _: &TtrpcContext, r: api::ExecProcessRequest) -> TtrpcResult<Empty> {
        self.add_exec(r).await?;
        Ok(Empty::new())
    }

    async fn resize_pty(&self, _: &TtrpcContext, r: api::ResizePtyRequest) -> TtrpcResult<Empty> {
        self.resize(&r)?;
        Ok(Empty::new())
    }

    async fn close_io(&self, _: &TtrpcContext, r: api::CloseIORequest) -> TtrpcResult<Empty> {
        self.close_stdin(&r)?;
        Ok(Empty::new())
    }

    async fn update(&self, _: &TtrpcContext, r: api::UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.update_resources(&r).await?;
        Ok(Empty::new())
    }

    async fn wait(&self, _: &TtrpcContext, r: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let p = self.container(&r.id)?.process(&r.exec_id)?;
        let exit = p.wait().await;
        Ok(api::WaitResponse {
            exit_status: exit.status,
            exited_at: Some(exit.timestamp()).into(),
            ..Default::default()
        })
    }

    async fn stats(
        &self,
        _: &TtrpcContext,
        r: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        Ok(self.collect_stats(&r).await?)
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        r: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = match self.container(&r.id) {
            Ok(c) => c.init.pid().max(0) as u32,
            Err(_) => 0,
        };
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _: &TtrpcContext, _: api::ShutdownRequest) -> TtrpcResult<Empty> {
        // Every container of the group gets its own Shutdown; only the last one ends us.
        if self.is_empty() {
            self.shutdown.notify_one();
        }
        Ok(Empty::new())
    }
}
