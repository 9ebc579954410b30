//! The `delete` action: containerd runs `containerd-shim-berth-v2 -id X … delete` (cwd =
//! bundle) whenever its connection to a shim closes — after every normal task delete as well
//! as after a shim crash — and publishes the exit it prints.
//!
//! So it must be idempotent and fast: a container the shim already deleted has no state
//! and costs one failed open. After a crash (shim killed -9) it does what the shim would
//! have done: kill the container, remove its cgroup and state, unmount its rootfs, and
//! remove the shim socket nobody listens on any more — and the group's task cgroup once no
//! container cgroup is left in it. No tokio runtime is started here.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use containerd_shim::Flags;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::shim::DeleteResponse;

use crate::group::{self, PlacementLock};
use crate::{paths, rootfs, time};

/// What runc's shim reports for a container it had to kill: 128 + SIGKILL.
const KILLED_STATUS: u32 = 137;
/// How long the action waits for Creates in flight before it leaves an empty task cgroup.
const PLACEMENT_WAIT: Duration = Duration::from_secs(2);

pub fn run(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().context("reading the bundle directory (cwd)")?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let root = berth::state::StateRoot::new(paths::state_root(&flags.address, &flags.namespace)?);
    let pid = root.load(&flags.id).map(|s| s.pid).unwrap_or(0);
    if pid != 0 {
        // Only a container whose shim died still has state here.
        if let Err(e) = berth::container::delete(&root, &flags.id, true) {
            eprintln!("berth shim delete {}: {e}", flags.id);
        }
    }
    if let Err(e) = rootfs::unmount(&bundle) {
        eprintln!("berth shim delete {}: {e}", flags.id);
    }
    if !remove_dead_socket(&bundle) {
        remove_task_cgroup(&bundle, flags, &root.dir);
    }

    let resp = DeleteResponse {
        pid: pid.max(0) as u32,
        exit_status: KILLED_STATUS,
        exited_at: Some(time::now()).into(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&resp.write_to_bytes()?)?;
    out.flush()?;
    Ok(())
}

/// Removes the socket named in the bundle's `address` file if no shim listens on it. True
/// if a shim still serves it (the group's other containers, or a new shim of the group).
fn remove_dead_socket(bundle: &Path) -> bool {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return false;
    };
    let path = paths::socket_path(address.trim());
    match UnixStream::connect(path) {
        Ok(_) => true,
        Err(e) => {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                let _ = std::fs::remove_file(path);
            }
            false
        }
    }
}

/// The group's task cgroup, if no shim serves the group any more and no container cgroup is
/// left in it. A live shim owns it (and may be creating a container in it right now); a new
/// shim of the group is kept out by the placement lock.
fn remove_task_cgroup(bundle: &Path, flags: &Flags, state_dir: &Path) {
    let Ok(Some(p)) = group::placement(&paths::annotations(bundle), &flags.namespace, &flags.id)
    else {
        return;
    };
    let Some(_lock) = PlacementLock::exclusive(state_dir, PLACEMENT_WAIT) else {
        // A Create is placing a container (in some group of this namespace) right now:
        // leave the task cgroup; an empty one costs nothing and goes with the group's next
        // last container.
        eprintln!(
            "berth shim delete {}: task cgroup {} left (a create was in flight)",
            flags.id,
            p.task_cgroup.display()
        );
        return;
    };
    berth::task::task_cgroup::remove_if_empty(&p.task_cgroup);
}
