//! The handlers that observe or steer existing processes: State, Kill, Pids, Pause/Resume,
//! ResizePty, CloseIO, Update, Stats.

use std::sync::atomic::Ordering;

use containerd_shim_protos::api;
use containerd_shim_protos::events::task::{TaskPaused, TaskResumed};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use nix::sys::signal::Signal;

use crate::blocking;
use crate::error::{Error, Result};
use crate::metrics;
use crate::oom;
use crate::process::lock;
use crate::service::Service;

impl Service {
    pub fn task_state(&self, req: &api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let exit = p.exit();
        let status = match exit {
            Some(_) => Status::STOPPED,
            None if p.pid() == 0 => Status::CREATED,
            None if req.exec_id.is_empty() && !c.started.load(Ordering::SeqCst) => Status::CREATED,
            None if c.is_paused() => Status::PAUSED,
            None => Status::RUNNING,
        };
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() {
                c.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.display().to_string(),
            pid: p.pid().max(0) as u32,
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| e.timestamp()).into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    pub fn signal(&self, req: &api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let sig = Signal::try_from(req.signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("invalid signal {}", req.signal)))?;
        if req.all && req.exec_id.is_empty() {
            return Ok(berth::container::kill_all(&self.root, &c.id, sig)?);
        }
        let p = c.process(&req.exec_id)?;
        p.signal(sig)?;
        if sig == Signal::SIGKILL && c.is_paused() {
            // A frozen process cannot die: thaw the cgroup so the kill takes effect.
            berth::cgroups::Cgroup::open(&c.cgroup_path, &c.id)
                .and_then(|cg| cg.freeze(false))
                .map_err(|e| Error::Other(e.to_string()))?;
        }
        Ok(())
    }

    pub fn list_pids(&self, req: &api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = berth::container::pids(&self.root, &c.id)?;
        let execs: Vec<(i32, String)> = lock(&c.execs)
            .values()
            .map(|p| (p.pid(), p.exec_id.clone()))
            .collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                // containerd shows which exec a pid belongs to, as runc's shim reports it.
                let info = execs
                    .iter()
                    .find(|(p, _)| *p == pid)
                    .and_then(|(_, exec_id)| {
                        pack(
                            PROCESS_DETAILS,
                            &ProcessDetails {
                                exec_id: exec_id.clone(),
                                ..Default::default()
                            },
                        )
                    });
                ProcessInfo {
                    pid: pid as u32,
                    info: info.into(),
                    ..Default::default()
                }
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let c = self.container(id)?;
        let (root, cid) = (self.root.clone(), c.id.clone());
        blocking::run("pause", move || {
            if paused {
                berth::container::pause(&root, &cid)
            } else {
                berth::container::resume(&root, &cid)
            }
            .map_err(Error::from)
        })
        .await?;
        if paused {
            self.events
                .publish(TaskPaused {
                    container_id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        } else {
            self.events
                .publish(TaskResumed {
                    container_id: c.id.clone(),
                    ..Default::default()
                })
                .await;
        }
        Ok(())
    }

    pub fn resize(&self, req: &api::ResizePtyRequest) -> Result<()> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        match p.with_io(|io| io.console.as_ref().map(|c| c.resize(req.width, req.height))) {
            Some(Some(r)) => r,
            _ => Err(Error::FailedPrecondition(format!(
                "process {} has no terminal",
                if req.exec_id.is_empty() {
                    &req.id
                } else {
                    &req.exec_id
                }
            ))),
        }
    }

    pub fn close_stdin(&self, req: &api::CloseIORequest) -> Result<()> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if req.stdin {
            p.with_io(|io| io.close_stdin());
        }
        Ok(())
    }

    pub async fn update_resources(&self, req: &api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let any = req
            .resources
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("update: no resources".into()))?;
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("update: resources: {e}")))?;
        let (root, id) = (self.root.clone(), c.id.clone());
        blocking::run("update", move || {
            berth::container::update(&root, &id, &resources).map_err(Error::from)
        })
        .await
    }

    pub async fn collect_stats(&self, req: &api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let (root, id, unified) = (self.root.clone(), c.id.clone(), self.unified);
        let memory_dir = oom::memory_dir(&c.cgroup_path, unified);
        let any = blocking::run("stats", move || {
            let stats = berth::container::stats(&root, &id)?;
            let events = unified.then(|| oom::memory_events(&memory_dir));
            metrics::to_any(&stats, events.as_ref())
        })
        .await?;
        Ok(api::StatsResponse {
            stats: Some(any).into(),
            ..Default::default()
        })
    }
}

/// runc's shim reports exec pids with this message; written out to spare the shim
/// protobuf's reflection descriptors.
const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";

fn pack<M: Message>(type_url: &str, m: &M) -> Option<Any> {
    Some(Any {
        type_url: type_url.to_string(),
        value: m.write_to_bytes().ok()?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_details_type_url() {
        use containerd_shim_protos::protobuf::MessageFull;
        assert_eq!(
            super::PROCESS_DETAILS,
            super::ProcessDetails::descriptor().full_name()
        );
    }
}
