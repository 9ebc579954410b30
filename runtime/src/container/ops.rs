use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::Error;
use crate::cgroups::{self, Cgroup};
use crate::linux::sys;
use crate::state::{self, ContainerState, OciState, StateRoot, Status};

/// The live status of a container, derived from its process, fifo and freezer.
pub fn status(root: &StateRoot, st: &ContainerState) -> Status {
    if !state::is_alive(st) {
        return Status::Stopped;
    }
    if root.exec_fifo(&st.id).exists() {
        return Status::Created;
    }
    if cgroups::is_frozen(&st.cgroup_path) {
        return Status::Paused;
    }
    Status::Running
}

fn cgroup_of(st: &ContainerState) -> Result<Cgroup, Error> {
    Ok(Cgroup::open(&st.cgroup_path, &st.id)?)
}

/// `start`: releases the init waiting on exec.fifo, then runs poststart hooks.
pub fn start(root: &StateRoot, id: &str) -> Result<(), Error> {
    let st = root.load(id)?;
    let status = status(root, &st);
    if status != Status::Created {
        return Err(Error::WrongState {
            id: id.into(),
            status,
            hint: "only a created container can be started".into(),
        });
    }
    let fifo = root.exec_fifo(id);
    // Non-blocking: if init died, open fails with ENXIO instead of hanging.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => {
                Error::Setup(format!("container {id}: init is not waiting for start"))
            }
            _ => Error::io("opening exec.fifo", e),
        })?;
    f.write_all(b"0")
        .map_err(|e| Error::io("writing exec.fifo", e))?;
    // Removing the fifo is what makes the container "running" (see `status`): nothing
    // else about it is written again.
    let _ = std::fs::remove_file(&fifo);
    wait_for_exec(&f);
    drop(f);
    run_poststart(&st);
    Ok(())
}

/// poststart hooks, once the container's program runs. A failing one is logged, not fatal
/// (runtime spec).
pub(crate) fn run_poststart(st: &ContainerState) {
    let Some(h) = &st.hooks else { return };
    let list = h.poststart().as_deref().unwrap_or_default();
    if list.is_empty() {
        return;
    }
    let state_json = serde_json::to_string(&OciState::new(st, Status::Running)).unwrap_or_default();
    if let Err(e) = crate::hooks::run_all("poststart", list, &state_json) {
        tracing::warn!(error = %e, "poststart hook failed");
    }
}

/// Waits (bounded) until init has exec'd the container's program: init's end of the fifo
/// is close-on-exec, so our write end sees POLLERR once no reader is left. `start` then
/// means started, and poststart hooks run after the program began, as the spec says.
fn wait_for_exec(fifo: &std::fs::File) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLOUT)];
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let ms = left.as_millis().min(1000) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {
                let r = fds[0].revents().unwrap_or(PollFlags::empty());
                if r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                    return;
                }
                // Writable but a reader remains: init has not exec'd yet.
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Signals the container's init (through a pidfd: no pid-reuse races).
pub fn kill(root: &StateRoot, id: &str, sig: Signal) -> Result<(), Error> {
    let st = root.load(id)?;
    if !state::is_alive(&st) {
        return Err(Error::WrongState {
            id: id.into(),
            status: Status::Stopped,
            hint: "cannot signal a stopped container".into(),
        });
    }
    let pidfd = sys::pidfd_open(Pid::from_raw(st.pid)).map_err(|e| Error::io("pidfd_open", e))?;
    if !state::is_alive(&st) {
        return Err(Error::WrongState {
            id: id.into(),
            status: Status::Stopped,
            hint: "cannot signal a stopped container".into(),
        });
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig as i32).map_err(|e| Error::io("kill", e))
}

/// Signals every process in the container's cgroup.
pub fn kill_all(root: &StateRoot, id: &str, sig: Signal) -> Result<(), Error> {
    let st = root.load(id)?;
    let cg = cgroup_of(&st)?;
    // A frozen process cannot act on a signal; SIGKILL works, others wait for resume.
    for pid in cg.pids().unwrap_or_default() {
        let _ = nix::sys::signal::kill(pid, sig);
    }
    if sig == Signal::SIGKILL && cgroups::is_frozen(&st.cgroup_path) {
        let _ = cg.freeze(false);
    }
    Ok(())
}

/// Waits until the container's init has exited (or `timeout` passes); true if it did.
pub fn wait_exit(st: &ContainerState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let pidfd = match sys::pidfd_open(Pid::from_raw(st.pid)) {
        Ok(fd) => fd,
        Err(_) => return !state::is_alive(st),
    };
    loop {
        if !state::is_alive(st) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let ms = left.as_millis().min(100) as u16;
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }
}

/// `delete`: removes a stopped (or, with `force`, any) container.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<(), Error> {
    let st = match root.load(id) {
        Ok(st) => st,
        Err(crate::state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let status = status(root, &st);
    match status {
        Status::Stopped => {}
        // A created container never ran user code: deleting it is what undoes `create`.
        Status::Created => {}
        _ if force => {}
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status,
                hint: "stop it first or use delete --force".into(),
            })
        }
    }
    if status != Status::Stopped {
        let cg = cgroup_of(&st)?;
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
        for pid in cg.pids().unwrap_or_default() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        if cgroups::is_frozen(&st.cgroup_path) {
            let _ = cg.freeze(false);
        }
        if !wait_exit(&st, Duration::from_secs(10)) {
            return Err(Error::Setup(format!(
                "container {id}: init did not exit after SIGKILL"
            )));
        }
    }
    destroy(root, &st)
}

fn destroy(root: &StateRoot, st: &ContainerState) -> Result<(), Error> {
    let cg = cgroup_of(st)?;
    // Processes that escaped init's death (no own pid namespace) are killed by remove().
    cg.remove()?;
    root.remove(&st.id)?;
    if let Some(h) = st.hooks.clone() {
        let state_json =
            serde_json::to_string(&OciState::new(st, Status::Stopped)).unwrap_or_default();
        if let Err(e) = crate::hooks::run_all(
            "poststop",
            h.poststop().as_deref().unwrap_or_default(),
            &state_json,
        ) {
            tracing::warn!(error = %e, "poststop hook failed");
        }
    }
    Ok(())
}

pub fn pause(root: &StateRoot, id: &str) -> Result<(), Error> {
    let st = root.load(id)?;
    let status = status(root, &st);
    if status != Status::Running {
        return Err(Error::WrongState {
            id: id.into(),
            status,
            hint: "only a running container can be paused".into(),
        });
    }
    Ok(cgroup_of(&st)?.freeze(true)?)
}

pub fn resume(root: &StateRoot, id: &str) -> Result<(), Error> {
    let st = root.load(id)?;
    let status = status(root, &st);
    if status != Status::Paused {
        return Err(Error::WrongState {
            id: id.into(),
            status,
            hint: "only a paused container can be resumed".into(),
        });
    }
    Ok(cgroup_of(&st)?.freeze(false)?)
}

pub fn pids(root: &StateRoot, id: &str) -> Result<Vec<i32>, Error> {
    let st = root.load(id)?;
    let mut pids: Vec<i32> = cgroup_of(&st)?
        .pids()?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

pub fn list(root: &StateRoot) -> Result<Vec<OciState>, Error> {
    let ids = root
        .list()
        .map_err(|e| Error::io(format!("reading {}", root.dir.display()), e))?;
    let mut out = Vec::new();
    for id in ids {
        if let Ok(st) = root.load(&id) {
            let s = status(root, &st);
            out.push(OciState::new(&st, s));
        }
    }
    Ok(out)
}

pub fn update(root: &StateRoot, id: &str, resources: &LinuxResources) -> Result<(), Error> {
    let st = root.load(id)?;
    let status = status(root, &st);
    if status == Status::Stopped {
        return Err(Error::WrongState {
            id: id.into(),
            status,
            hint: "cannot update a stopped container".into(),
        });
    }
    // The container's linux.devices decide which default device rules apply (as at
    // create); a bundle that has gone away just means none are dropped.
    let devices = crate::spec::load_bundle(&st.bundle)
        .ok()
        .and_then(|b| b.spec.linux().as_ref().and_then(|l| l.devices().clone()))
        .unwrap_or_default();
    Ok(cgroup_of(&st)?.apply(resources, &devices)?)
}

pub fn stats(root: &StateRoot, id: &str) -> Result<libcgroups::stats::Stats, Error> {
    let st = root.load(id)?;
    Ok(cgroup_of(&st)?.stats()?)
}
