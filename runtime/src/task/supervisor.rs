//! Detached tasks. `berth task run --detach` re-executes berth as the task's supervisor: a process
//! in a session of its own that runs the task (so it is the parent of every container init) and
//! is a child subreaper, so processes orphaned inside the task are reparented to it rather than to
//! the host's init. Its state is task.json under the berth root; the CLI that started it exits
//! once the task runs, and `task ls/describe/logs/stop` find it there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::record::{TaskRecord, TaskStatus};
use super::{Error, TaskPaths};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM, SIGINT and SIGHUP ask the task to stop gracefully (a handler, not a blocked mask: a
/// blocked mask would be inherited by the containers, a handler is reset by their execve).
/// Returns a flag the runner polls.
pub fn install_stop_handlers() -> Result<Arc<AtomicBool>, Error> {
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .map_err(|e| Error::io(format!("installing a {sig} handler"), e.into()))?;
    }
    let flag = Arc::new(AtomicBool::new(false));
    let out = flag.clone();
    // Bridge the static into the runner's flag.
    std::thread::Builder::new()
        .name("stop-signal".into())
        .spawn(move || loop {
            if STOP.load(Ordering::SeqCst) {
                flag.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        })
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(out)
}

/// Makes this process a child subreaper.
pub fn become_subreaper() -> Result<(), Error> {
    // SAFETY: prctl with integer arguments; PR_SET_CHILD_SUBREAPER only sets a process flag.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        return Err(Error::io(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Starts `exe args…` as a detached supervisor (new session, stdio on /dev/null, stderr to
/// `log`) and waits until the task `id` is RUNNING or STOPPED, or the supervisor has exited.
pub fn spawn_detached(
    exe: &Path,
    args: &[String],
    berth_root: &Path,
    id: &str,
    timeout: Duration,
) -> Result<TaskRecord, Error> {
    use std::os::unix::process::CommandExt;
    // The supervisor's stderr, read back if it fails before the task runs; unlinked once the
    // task is up (the supervisor keeps writing to the unlinked file, which costs nothing).
    let tasks = super::tasks_dir(berth_root);
    crate::state::ensure_private_dir(&tasks)
        .map_err(|e| Error::io("creating the tasks directory", e))?;
    let err_path = tasks.join(format!(".{id}.stderr"));
    let err_file = std::fs::File::create(&err_path)
        .map_err(|e| Error::io(format!("creating {}", err_path.display()), e))?;
    let _ = std::fs::remove_file(&err_path);
    let mut err_reader = err_file
        .try_clone()
        .map_err(|e| Error::io("supervisor stderr", e))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err_file));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", exe.display()), e))?;
    let paths = TaskPaths::new(berth_root, id);
    let end = Instant::now() + timeout;
    loop {
        if let Ok(r) = TaskRecord::load(&paths, id) {
            if matches!(r.last_status, TaskStatus::Running | TaskStatus::Stopped) {
                return Ok(r);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            if let Ok(r) = TaskRecord::load(&paths, id) {
                return Ok(r);
            }
            use std::io::{Read, Seek};
            let mut text = String::new();
            let _ = err_reader.seek(std::io::SeekFrom::Start(0));
            let _ = err_reader.read_to_string(&mut text);
            let text = text.trim();
            return Err(Error::Invalid(if text.is_empty() {
                format!("the task supervisor exited ({status}) before task {id} started")
            } else {
                text.to_string()
            }));
        }
        if Instant::now() > end {
            return Err(Error::Invalid(format!(
                "task {id} did not start within {}s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
