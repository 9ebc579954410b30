//! The container side: what a freshly cloned process does once it has re-executed from a
//! sealed copy of berth ([`crate::linux::exe`]). It receives its [`InitPlan`] over the sync
//! channel, builds the container around itself, reports `Ready` (or the reason it could not)
//! and finally execs the container's program.
//!
//! Order matters and follows the runtime spec and runc's hard-won lessons:
//! namespaces → rlimits, oom score → mounts, devices → createContainer hooks → pivot_root →
//! sysctls → masked/read-only paths → read-only root → program lookup (so a missing binary
//! fails `create`) → Ready → wait for `start` → startContainer hooks → bounding set →
//! user/groups → capabilities → cwd → no_new_privs → seccomp → close fds → execve.
//! With the `berth.init` annotation the last step is a fork: the child execs, this process
//! stays as the container's pid 1 ([`reaper`]); with `berth.pause` it never execs at all.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::hooks;
use crate::linux::{
    capabilities, console, devices, exec, identity, namespaces, procfs, rlimits, rootfs, seccomp,
    sys, Context, SetupError,
};
use crate::sync::{Channel, FromChild, ToChild};

pub mod reaper;

/// The environment variable that tells berth's `main` it is a container process.
pub const INIT_ENV: &str = "_BERTH_INIT_FD";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The container's first process (create).
    Init,
    /// An additional process in a running container (exec).
    Exec,
}

/// Everything the container process needs to know, sent by the parent after clone.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitPlan {
    pub role: Role,
    pub id: String,
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// exec.fifo (init only): a read on it blocks until `start`.
    pub fifo: Option<PathBuf>,
    /// Inherited fd of the connected --console-socket.
    pub console_fd: Option<RawFd>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// exec: inherited pidfd of the container's init, and the namespaces to join through it.
    pub ns_pidfd: Option<RawFd>,
    pub join_flags: i32,
    /// The OCI state document given to createContainer/startContainer hooks.
    pub hook_state: String,
    pub unified_cgroups: bool,
    /// Inherited fd of berth-dmz when this process was not re-executed (see
    /// [`crate::linux::dmz`]): the final exec goes through it.
    pub dmz_fd: Option<RawFd>,
}

impl InitPlan {
    fn process(&self) -> Result<&Process, SetupError> {
        self.spec
            .process()
            .as_ref()
            .ok_or_else(|| SetupError::invalid("process: missing"))
    }
}

/// Entry point of a container process. Never returns.
pub fn main(sync_fd: RawFd) -> ! {
    // Nobody in the container may ptrace or open /proc/<pid>/exe of this process until it
    // execs the container's program (CVE-2016-9962).
    let _ = nix::sys::prctl::set_dumpable(false);
    // SAFETY: the parent passed this fd number for our exclusive use.
    let mut ch = unsafe { Channel::from_raw_fd(sync_fd) };
    let _ = nix::fcntl::fcntl(
        sync_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let plan = match ch.recv::<ToChild>() {
        Ok(ToChild::Plan(p)) => p,
        _ => sys::exit_now(120),
    };
    let result = match plan.role {
        Role::Init => run_init(&plan, &mut ch),
        Role::Exec => run_exec(&plan, &mut ch),
    };
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ch.send(&FromChild::Error(err.to_string()));
    sys::exit_now(121)
}

fn wait_go(ch: &mut Channel) -> Result<(), SetupError> {
    wait_for(ch, "Go", |m| matches!(m, ToChild::Go))
}

fn wait_for(ch: &mut Channel, what: &str, is: impl Fn(&ToChild) -> bool) -> Result<(), SetupError> {
    match ch.recv::<ToChild>() {
        Ok(m) if is(&m) => Ok(()),
        Ok(other) => Err(SetupError::invalid(format!(
            "expected {what}, got message {other:?}"
        ))),
        Err(e) => Err(SetupError::invalid(e.to_string())),
    }
}

/// Waits until the parent has the container's cgroup ready, and joins it where the parent
/// hands over the cgroup files to join through (cgroup v1, see `Cgroup::prepare_join`).
/// This process is still single-threaded here, so moving the calling thread moves it all.
fn join_cgroup(ch: &mut Channel) -> Result<(), SetupError> {
    let n = match ch.recv::<ToChild>() {
        Ok(ToChild::Cgroup { join_fds }) => join_fds,
        Ok(other) => {
            return Err(SetupError::invalid(format!(
                "expected Cgroup, got message {other:?}"
            )))
        }
        Err(e) => return Err(SetupError::invalid(e.to_string())),
    };
    if n == 0 {
        return Ok(());
    }
    let files = Channel::recv_fds(ch.fd(), n).ctx(|| "receiving the cgroup files".into())?;
    crate::cgroups::join_self(&files).ctx(|| "joining the container's cgroup".into())
}

/// Becomes root of a freshly entered user namespace (ids as mapped by the parent).
fn become_ns_root() -> Result<(), SetupError> {
    let root_u = nix::unistd::Uid::from_raw(0);
    let root_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g)
        .ctx(|| "setresgid 0 in the user namespace (is gid 0 mapped?)".into())?;
    nix::unistd::setresuid(root_u, root_u, root_u)
        .ctx(|| "setresuid 0 in the user namespace (is uid 0 mapped?)".into())
}

/// The container's init. Everything up to the first step that depends on the cgroup runs
/// while the parent is still making the cgroup and writing its limits (and, on v2, moving
/// this process in); the rootfs mounts fill that time. The parent's prestart and
/// createRuntime hooks still see the finished mounts.
fn run_init(plan: &InitPlan, ch: &mut Channel) -> Result<std::convert::Infallible, SetupError> {
    let spec = &plan.spec;
    let process = plan.process()?;
    let user_ns = namespaces::has(spec, LinuxNamespaceType::User);
    for (t, path) in namespaces::joins(spec) {
        if t == LinuxNamespaceType::Pid || t == LinuxNamespaceType::Time {
            continue; // joined by the parent before clone: they apply to children
        }
        namespaces::join(t, &path)?;
    }
    if user_ns {
        become_ns_root()?;
    }
    let new_cgroup_ns =
        namespaces::new_flags(spec).contains(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    let mut joined = false;
    let mut wait_cgroup = |ch: &mut Channel| -> Result<(), SetupError> {
        if joined {
            return Ok(());
        }
        join_cgroup(ch)?;
        joined = true;
        if new_cgroup_ns {
            // Only once in the container's cgroup: a cgroup namespace takes its creator's
            // cgroup as its root. Made at clone time, it would be rooted at berth's cgroup
            // and show the container the host's tree.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .ctx(|| "unshare(CLONE_NEWCGROUP)".into())?;
        }
        Ok(())
    };
    if namespaces::has(spec, LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            procfs::write_sysctl("kernel.domainname", d)?;
        }
    }
    apply_process_limits(process)?;

    let has_mount_ns = namespaces::has(spec, LinuxNamespaceType::Mount);
    if !has_mount_ns {
        return Err(SetupError::invalid(
            "linux.namespaces: berth needs a mount namespace for the container",
        ));
    }
    let ctx = rootfs::MountContext {
        bundle: &plan.bundle,
        rootfs: &plan.rootfs,
        cgroup_ns: namespaces::has(spec, LinuxNamespaceType::Cgroup),
        unified: plan.unified_cgroups,
    };
    rootfs::prepare(spec, &ctx, &mut || wait_cgroup(ch))?;
    wait_cgroup(ch)?;
    // After the join: the device cgroup decides which nodes may be made.
    devices::create_all(&plan.rootfs, &devices::wanted(spec), user_ns)?;
    ch.send(&FromChild::Mounted)
        .map_err(|e| SetupError::invalid(e.to_string()))?;
    wait_go(ch)?;
    run_hooks_in_container("createContainer", spec, plan)?;

    // The fifo lives on the host: open it before the host disappears from view.
    let fifo = match &plan.fifo {
        Some(p) => Some(
            File::options()
                .read(true)
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
                .ctx(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    rootfs::pivot(&plan.rootfs, plan.no_pivot)?;
    for (k, v) in spec
        .linux()
        .iter()
        .flat_map(|l| l.sysctl().iter().flatten())
    {
        procfs::write_sysctl(k, v)
            .map_err(|e| SetupError::invalid(format!("linux.sysctl.{k}: {e}")))?;
    }
    rootfs::protect_paths(spec)?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        rootfs::readonly_root()?;
    }
    let prepared = prepare_exec(plan, process)?;
    let peer = open_console(plan, process)?;

    ch.send(&FromChild::Ready)
        .map_err(|e| SetupError::invalid(e.to_string()))?;
    // Read through a borrow: our end stays open until execve closes it (O_CLOEXEC), which is
    // what `start` waits for before it runs poststart hooks. Dropped here, startContainer
    // hooks would race with poststart.
    if let Some(f) = fifo.as_ref() {
        let mut b = [0u8; 1];
        let mut reader: &File = f;
        reader
            .read_exact(&mut b)
            .ctx(|| "waiting for start on exec.fifo".into())?;
    }
    run_hooks_in_container("startContainer", spec, plan)?;
    if peer.is_none() {
        // Our own session, so the container never shares the caller's controlling tty.
        let _ = nix::unistd::setsid();
    }
    finish(plan, process, prepared, peer)
}

/// rlimits and oom_score_adj while still privileged, and the capability check, so that an
/// impossible request fails `create`/`exec` with its own message.
fn apply_process_limits(process: &Process) -> Result<(), SetupError> {
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("process.oomScoreAdj {adj}"))?;
    }
    if let Some(c) = process.capabilities() {
        capabilities::check(c)?;
    }
    Ok(())
}

fn run_hooks_in_container(
    kind: &'static str,
    spec: &Spec,
    plan: &InitPlan,
) -> Result<(), SetupError> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let list = match kind {
        "createContainer" => h.create_container(),
        _ => h.start_container(),
    };
    hooks::run_all(kind, list.as_deref().unwrap_or_default(), &plan.hook_state)
        .map_err(|e| SetupError::invalid(e.to_string()))
}

fn open_console(plan: &InitPlan, process: &Process) -> Result<Option<OwnedFd>, SetupError> {
    if !process.terminal().unwrap_or(false) {
        return Ok(None);
    }
    let Some(fd) = plan.console_fd else {
        return Err(SetupError::invalid(
            "process.terminal is true but no --console-socket was given",
        ));
    };
    // SAFETY: the parent passed this connected socket for our exclusive use.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let size = process
        .console_size()
        .as_ref()
        .map(|b| (b.height() as u16, b.width() as u16));
    let peer = console::create(sock.as_fd(), size)?;
    drop(sock);
    Ok(Some(peer))
}

/// What is resolved before `Ready`, so that errors fail `create`.
struct Prepared {
    program: PathBuf,
    args: Vec<std::ffi::CString>,
    env: Vec<std::ffi::CString>,
    cwd: File,
    seccomp: Option<libseccomp::ScmpFilterContext>,
}

fn prepare_exec(plan: &InitPlan, process: &Process) -> Result<Prepared, SetupError> {
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| SetupError::invalid("process.args: empty"))?;
    // cwd is resolved inside the container's root by fd: a cwd such as /proc/self/fd/N
    // cannot reach a leaked host fd (CVE-2024-21626).
    let root = pathrs::Root::open("/").ctx(|| "opening container root".into())?;
    let cwd_path = process.cwd();
    let cwd = match root.resolve(cwd_path) {
        Ok(h) => h,
        Err(_) if plan.role == Role::Init => root
            .mkdir_all(
                cwd_path,
                &std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .ctx(|| format!("process.cwd {}: creating", cwd_path.display()))?,
        Err(e) => return Err(e).ctx(|| format!("process.cwd {}", cwd_path.display())),
    };
    let cwd = cwd
        .reopen(
            pathrs::flags::OpenFlags::O_RDONLY
                | pathrs::flags::OpenFlags::O_DIRECTORY
                | pathrs::flags::OpenFlags::O_CLOEXEC,
        )
        .ctx(|| {
            format!(
                "process.cwd {}: not a directory in the container",
                cwd_path.display()
            )
        })?;
    nix::unistd::fchdir(cwd.as_raw_fd()).ctx(|| "fchdir to process.cwd".into())?;
    let program = if plan.role == Role::Init && reaper::pause_wanted(&plan.spec) {
        PathBuf::new() // a pause container execs nothing
    } else {
        exec::find_program(arg0, &env)?
    };
    let seccomp = match plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
    {
        Some(s) => Some(seccomp::build(s)?),
        None => None,
    };
    Ok(Prepared {
        program,
        args: exec::cstrings(args)?,
        env: exec::cstrings(&env)?,
        cwd,
        seccomp,
    })
}

/// From here on the process turns into the container's program.
fn finish(
    plan: &InitPlan,
    process: &Process,
    prepared: Prepared,
    peer: Option<OwnedFd>,
) -> Result<std::convert::Infallible, SetupError> {
    if let Some(peer) = &peer {
        console::attach_stdio(peer)?;
    }
    drop(peer);
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it goes in before the
    // capabilities drop (runc does the same); with it, the filter is the very last step.
    if !nnp {
        if let Some(f) = &prepared.seccomp {
            seccomp::load(f)?;
        }
    }
    if let Some(c) = process.capabilities() {
        capabilities::apply_bounding(c)?;
    }
    let allow_setgroups = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    identity::switch(process.user(), allow_setgroups)?;
    match process.capabilities() {
        Some(c) => capabilities::apply_sets(c)?,
        None => capabilities::apply_sets(&Default::default())?,
    }
    nix::unistd::fchdir(prepared.cwd.as_raw_fd()).ctx(|| "fchdir to process.cwd".into())?;
    drop(prepared.cwd);
    if nnp {
        nix::sys::prctl::set_no_new_privs().ctx(|| "PR_SET_NO_NEW_PRIVS".into())?;
    }
    // Every fd but stdio and the preserved ones is gone at exec (CVE-2024-21626).
    sys::close_range_cloexec(3 + plan.preserve_fds).ctx(|| "close_range".into())?;
    if nnp {
        if let Some(f) = &prepared.seccomp {
            seccomp::load(f)?;
        }
    }
    if plan.role == Role::Init {
        if reaper::pause_wanted(&plan.spec) {
            return reaper::hold();
        }
        if reaper::init_wanted(&plan.spec) {
            // Everything above applies to both sides of the fork: init has exactly the
            // program's credentials, capabilities, no_new_privs and seccomp filter.
            return reaper::fork_and_exec(|| {
                exec::exec(&prepared.program, &prepared.args, &prepared.env, None)
            });
        }
    }
    // SAFETY: the parent passed berth-dmz's fd for our exclusive use; it stays open (close-on-
    // exec) until the exec below.
    let dmz = plan.dmz_fd.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    Err(exec::exec(
        &prepared.program,
        &prepared.args,
        &prepared.env,
        dmz,
    ))
}

fn run_exec(plan: &InitPlan, ch: &mut Channel) -> Result<std::convert::Infallible, SetupError> {
    join_cgroup(ch)?;
    let process = plan.process()?;
    if let Some(fd) = plan.ns_pidfd {
        // SAFETY: the parent passed this pidfd for our exclusive use.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        if plan.join_flags != 0 {
            nix::sched::setns(
                pidfd.as_fd(),
                nix::sched::CloneFlags::from_bits_retain(plan.join_flags),
            )
            .ctx(|| "joining the container's namespaces".into())?;
        }
        if plan.join_flags & libc::CLONE_NEWUSER != 0 {
            become_ns_root()?;
        }
    }
    apply_process_limits(process)?;
    let prepared = prepare_exec(plan, process)?;
    let peer = open_console(plan, process)?;
    // Success is the channel closing on exec (it is close-on-exec); errors are sent.
    finish(plan, process, prepared, peer)
}
