use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::spawn::{raise_fd, spawn, spawn_in_cgroup, Start};
use super::start_mode;
use super::Error;
use crate::cgroups::{self, Cgroup};
use crate::init::{InitPlan, Role};
use crate::linux::namespaces;
use crate::spec;
use crate::state::{self, ContainerState, OciState, StateRoot, Status};
use crate::sync::{Channel, FromChild, SyncError, ToChild};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// stdin, stdout, stderr for the container process (default: berth's own). The
    /// shim passes containerd's FIFOs here.
    pub stdio: Option<[RawFd; 3]>,
    /// Replaces config.json's `linux.cgroupsPath`: the shim places a container of a pod or
    /// berth task below the group's task cgroup, whatever path containerd wrote.
    pub cgroups_path: Option<PathBuf>,
    /// `run`: the process goes on to exec as soon as it is set up, without exec.fifo and a
    /// separate `start`; `create` returns once it has exec'd (poststart hooks run).
    pub start: bool,
}

/// What `create` made, for `run` to go on with.
pub struct Created {
    pub state: ContainerState,
    /// The container's init is our child: `run` can wait for it.
    pub pid: Pid,
}

/// Undoes a half-made container unless disarmed: kills the process, removes the cgroup
/// and the state directory. Mounts need no undo: they live in the process's own mount
/// namespace and vanish with it.
struct Rollback<'a> {
    root: &'a StateRoot,
    id: String,
    child: Option<Pid>,
    cgroup: Option<Cgroup>,
    armed: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.remove() {
                tracing::warn!(error = %e, "rollback: removing cgroup");
            }
        }
        let _ = self.root.remove(&self.id);
    }
}

/// `berth create`: everything is validated before the host is touched.
pub fn create(root: &StateRoot, opts: &CreateOptions) -> Result<Created, Error> {
    state::validate_id(&opts.id)?;
    create_from(root, opts, spec::load_bundle(&opts.bundle)?)
}

/// [`create`] of a bundle already loaded (and validated) from `opts.bundle`.
pub fn create_from(
    root: &StateRoot,
    opts: &CreateOptions,
    bundle: spec::Bundle,
) -> Result<Created, Error> {
    state::validate_id(&opts.id)?;
    check_host_support(&bundle.spec)?;
    let console = match &opts.console_socket {
        Some(p) => Some(
            UnixStream::connect(p)
                .map_err(|e| Error::io(format!("--console-socket {}", p.display()), e))?,
        ),
        None => None,
    };
    if bundle.terminal() && console.is_none() {
        return Err(Error::Invalid(
            "process.terminal is true: --console-socket is required".into(),
        ));
    }

    tracing::debug!("create: spec validated");
    let dir = root.create_dir(&opts.id)?;
    let mut rb = Rollback {
        root,
        id: opts.id.clone(),
        child: None,
        cgroup: None,
        armed: true,
    };
    let fifo = if opts.start {
        None
    } else {
        Some(make_exec_fifo(&dir, &bundle.spec)?)
    };

    let cg_path = match &opts.cgroups_path {
        Some(p) => p.clone(),
        None => cgroups::path_for(&bundle.spec, &opts.id),
    };
    let cg = Cgroup::open(&cg_path, &opts.id)?;
    rb.cgroup = Some(cg);

    let min_fd = 3 + opts.preserve_fds as RawFd;
    let console = match console {
        Some(c) => Some(raise_fd(OwnedFd::from(c), min_fd)?),
        None => None,
    };
    let _pid_ns = enter_namespaces_for_children(&bundle.spec)?;
    // Not at clone: a new time namespace is entered above, and a new cgroup namespace is
    // made by the child once it is in its cgroup (see init), so that the cgroup becomes
    // the namespace's root.
    let flags = namespaces::new_flags(&bundle.spec)
        & !(CloneFlags::from_bits_retain(0x80) | CloneFlags::CLONE_NEWCGROUP);
    let mut inherit: Vec<RawFd> = (3..min_fd).collect();
    if let Some(c) = &console {
        inherit.push(c.as_raw_fd());
    }
    let mut start = start_mode::choose(&bundle.spec, opts.start);
    // berth-dmz is made here, before clone, like the sealed view: its pages are berth's.
    // Where memfds may not be executed (vm.memfd_noexec=2), the re-exec path it is.
    let dmz = match start {
        Start::Direct => match crate::linux::dmz::sealed() {
            Ok(fd) => Some(raise_fd(fd, min_fd)?),
            Err(e) => {
                tracing::debug!(error = %e, "berth-dmz unavailable: re-executing instead");
                start = Start::Sealed;
                None
            }
        },
        Start::Sealed => None,
    };
    let target = match &rb.cgroup {
        Some(cg) => cg.clone_target(true)?,
        None => None,
    };
    let (spawned, cloned_in) = spawn_in_cgroup(target, |target| {
        spawn(
            flags,
            start,
            target,
            &inherit,
            min_fd,
            opts.stdio,
            flags.contains(CloneFlags::CLONE_NEWUSER),
        )
    })?;
    let pid = spawned.pid;
    tracing::debug!(pid = pid.as_raw(), ?start, cloned_in, "create: cloned");
    rb.child = Some(pid);
    let mut ch = spawned.channel;
    drop(console);
    // Read while the child certainly lives (it waits for its plan): with `opts.start` its
    // program may have run and exited by the time `create` returns.
    let start_time = state::process_start_time(pid.as_raw());

    let mut st = ContainerState {
        id: opts.id.clone(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: pid.as_raw(),
        pid_start_time: 0,
        cgroup_path: cg_path.clone(),
        created: state::now_rfc3339(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: "root".into(),
        own_pid_ns: flags.contains(CloneFlags::CLONE_NEWPID),
        use_systemd: false,
        hooks: bundle.spec.hooks().clone(),
    };
    let hook_state = serde_json::to_string(&OciState::new(&st, Status::Creating))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let plan = InitPlan {
        role: Role::Init,
        id: opts.id.clone(),
        spec: bundle.spec.clone(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        fifo,
        console_fd: opts
            .console_socket
            .as_ref()
            .map(|_| *inherit.last().unwrap_or(&-1)),
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        ns_pidfd: None,
        join_flags: 0,
        hook_state: hook_state.clone(),
        unified_cgroups: cgroups::is_unified(),
        dmz_fd: dmz.as_ref().map(|d| d.as_raw_fd()),
    };
    let fail = |e: SyncError| Error::Setup(format!("container init: {e}"));
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        write_id_maps(pid, &bundle.spec)?;
        ch.send_byte().map_err(fail)?;
    }
    ch.send(&ToChild::Plan(Box::new(plan))).map_err(fail)?;
    // The child mounts its rootfs while we make its cgroup and set the limits and device
    // rules; it waits for `Cgroup` only where the cgroup matters (see init::run_init), and
    // the cgroup is complete before the child is in it.
    let join = match &rb.cgroup {
        Some(cg) => {
            let files = cg.prepare_join(pid, cloned_in)?;
            cg.apply_spec(&bundle.spec)?;
            files
        }
        None => Vec::new(),
    };
    send_cgroup(&mut ch, &join).map_err(|e| child_error(&mut ch, e))?;
    drop(join);
    tracing::debug!("create: cgroup ready");
    let hooks = bundle.spec.hooks().as_ref().filter(|h| {
        #[allow(deprecated)]
        let prestart = h.prestart().as_ref().is_some_and(|l| !l.is_empty());
        prestart || h.create_runtime().as_ref().is_some_and(|l| !l.is_empty())
    });
    if let Some(h) = hooks {
        // Hooks run on the finished environment: wait for the mounts.
        expect(&mut ch, "Mounted", |m| matches!(m, FromChild::Mounted))?;
        #[allow(deprecated)]
        crate::hooks::run_all(
            "prestart",
            h.prestart().as_deref().unwrap_or_default(),
            &hook_state,
        )?;
        crate::hooks::run_all(
            "createRuntime",
            h.create_runtime().as_deref().unwrap_or_default(),
            &hook_state,
        )?;
        tracing::debug!("create: hooks run");
        ch.send(&ToChild::Go).map_err(|e| child_error(&mut ch, e))?;
    } else {
        ch.send(&ToChild::Go).map_err(|e| child_error(&mut ch, e))?;
        expect(&mut ch, "Mounted", |m| matches!(m, FromChild::Mounted))?;
    }
    expect(&mut ch, "Ready", |m| matches!(m, FromChild::Ready))?;
    tracing::debug!("create: container ready");
    if opts.start {
        // The sync socket is close-on-exec: its end of file is the exec. Anything else is
        // the child's report of what failed after `Ready` (hooks, the exec itself).
        match ch.recv::<FromChild>() {
            Err(SyncError::Closed) => {}
            Ok(FromChild::Error(msg)) => return Err(Error::Setup(msg)),
            Ok(m) => {
                return Err(Error::Setup(format!(
                    "container init: expected the exec, got {m:?}"
                )))
            }
            Err(e) => return Err(Error::Setup(format!("container init: {e}"))),
        }
        tracing::debug!("create: container started");
    }
    let alive_now = state::process_start_time(pid.as_raw());
    st.pid_start_time = match (start_time, alive_now) {
        (Some(t), Some(now)) if t == now => t,
        (Some(t), None) if opts.start => t,
        _ => {
            return Err(Error::Setup(
                "container init exited right after setting up".into(),
            ))
        }
    };
    root.save(&st)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    rb.armed = false;
    if opts.start {
        super::ops::run_poststart(&st);
    }
    Ok(Created { state: st, pid })
}

/// exec.fifo in the state directory: the init blocks on it until `start`.
fn make_exec_fifo(dir: &Path, spec: &Spec) -> Result<PathBuf, Error> {
    let fifo = dir.join(state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::io("creating exec.fifo", e.into()))?;
    // In a user namespace, init runs as the host id mapped to its root.
    if let Some((uid, gid)) = mapped_root(spec) {
        nix::unistd::chown(
            &fifo,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| Error::io("chown exec.fifo", e.into()))?;
    }
    Ok(fifo)
}

/// Tells a child its cgroup is ready, passing the files it joins through, if any.
pub(crate) fn send_cgroup(ch: &mut Channel, join: &[File]) -> Result<(), SyncError> {
    ch.send(&ToChild::Cgroup {
        join_fds: join.len(),
    })?;
    if !join.is_empty() {
        let fds: Vec<_> = join.iter().map(|f| f.as_fd()).collect();
        Channel::send_fds(ch.fd(), &fds)?;
    }
    Ok(())
}

/// The child's own report when talking to it failed: a child that hits an error sends it
/// and exits, so a send can fail (EPIPE) while the real reason waits to be read.
fn child_error(ch: &mut Channel, e: SyncError) -> Error {
    match ch.recv::<FromChild>() {
        Ok(FromChild::Error(msg)) => Error::Setup(msg),
        _ => Error::Setup(format!("container init: {e}")),
    }
}

/// Receives the next message from the child, which must be `what`.
fn expect(ch: &mut Channel, what: &str, is: impl Fn(&FromChild) -> bool) -> Result<(), Error> {
    match ch.recv::<FromChild>() {
        Ok(FromChild::Error(msg)) => Err(Error::Setup(msg)),
        Ok(m) if is(&m) => Ok(()),
        Ok(m) => Err(Error::Setup(format!(
            "container init: expected {what}, got {m:?}"
        ))),
        Err(e) => Err(Error::Setup(format!("container init: {e}"))),
    }
}

/// Refuses what this build of berth cannot honour, before anything is created.
fn check_host_support(spec: &Spec) -> Result<(), Error> {
    if let Some(linux) = spec.linux() {
        if linux.personality().is_some() {
            return Err(Error::Invalid(
                "config.json: linux.personality: not supported by berth".into(),
            ));
        }
        if linux.intel_rdt().is_some() {
            return Err(Error::Invalid(
                "config.json: linux.intelRdt: not supported by berth".into(),
            ));
        }
    }
    Ok(())
}

/// Namespaces that apply to children (pid, time) are entered by this process before clone.
/// Returns the fd kept open for the duration.
fn enter_namespaces_for_children(spec: &Spec) -> Result<Option<File>, Error> {
    let mut kept = None;
    for (t, path) in namespaces::joins(spec) {
        if t == LinuxNamespaceType::Pid || t == LinuxNamespaceType::Time {
            let f = File::open(&path)
                .map_err(|e| Error::io(format!("opening namespace {}", path.display()), e))?;
            nix::sched::setns(f.as_fd(), namespaces::flag(t)).map_err(|e| {
                Error::io(format!("joining namespace {}", path.display()), e.into())
            })?;
            kept = Some(f);
        }
    }
    if namespaces::new_flags(spec).contains(CloneFlags::from_bits_retain(0x80)) {
        // A new time namespace takes its offsets before its first process enters it.
        nix::sched::unshare(CloneFlags::from_bits_retain(0x80))
            .map_err(|e| Error::io("unshare(CLONE_NEWTIME)", e.into()))?;
        if let Some(offsets) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
        {
            let mut text = String::new();
            for (clock, off) in offsets {
                text.push_str(&format!(
                    "{clock} {} {}\n",
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0)
                ));
            }
            std::fs::write("/proc/self/timens_offsets", text)
                .map_err(|e| Error::io("linux.timeOffsets", e))?;
        }
    }
    Ok(kept)
}

/// Host uid and gid of the container's root, when it has a user namespace of its own.
fn mapped_root(spec: &Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    if !namespaces::new_flags(spec).contains(CloneFlags::CLONE_NEWUSER) {
        return None;
    }
    let find = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    Some((find(linux.uid_mappings())?, find(linux.gid_mappings())?))
}

fn write_id_maps(pid: Pid, spec: &Spec) -> Result<(), Error> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (file, field, maps) in [
        ("uid_map", "linux.uidMappings", linux.uid_mappings()),
        ("gid_map", "linux.gidMappings", linux.gid_mappings()),
    ] {
        let text: String = maps
            .iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        if text.is_empty() {
            continue;
        }
        std::fs::write(format!("/proc/{}/{file}", pid.as_raw()), text)
            .map_err(|e| Error::io(format!("{field}: writing {file}"), e))?;
    }
    Ok(())
}

pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), Error> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.as_raw().to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("--pid-file {}", path.display()), e))
}
