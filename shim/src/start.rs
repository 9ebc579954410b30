//! The `start` action: containerd runs `containerd-shim-berth-v2 … start` (cwd = bundle) for
//! every new task and reads the shim's address from stdout.
//!
//! The socket is bound here, in the short-lived `start` process, and handed to the server
//! as fd 3: binding is the lock that decides which `start` of a group spawns the server.
//! A second container of the same group finds the address in use, checks that a server
//! answers, and simply returns the same address — one shim per group. A socket nobody
//! listens on any more (a shim killed with -9) is replaced.
//!
//! containerd 1.6 reads stdout *and* stderr together as the address: nothing may be printed
//! on success except the reply.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use containerd_shim::Flags;

use crate::compat;
use crate::paths;

/// Environment variable telling the server that fd 3 is its listening socket.
pub const LISTENER_ENV: &str = "_BERTH_SHIM_LISTENER_FD";
const LISTENER_FD: RawFd = 3;
/// containerd caps the bootstrap payload at this size too.
const MAX_INPUT: u64 = 10 << 20;

pub fn run(flags: &Flags) -> Result<()> {
    let input = read_stdin()?;
    let ttrpc_env = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let (mut opts, protocol) = compat::start_params(flags, &input, ttrpc_env);
    if opts.socket_dir.is_none() {
        opts.socket_dir = paths::socket_dir(&opts.address);
    }
    if opts.ttrpc_address.is_empty() {
        anyhow::bail!("TTRPC_ADDRESS is not set: cannot publish events to containerd");
    }
    let bundle = std::env::current_dir().context("reading the bundle directory (cwd)")?;
    let group = paths::group_key(&bundle, &flags.id);
    let address = opts.socket_address(&group);
    let path = paths::socket_path(&address);

    if let Some(listener) = bind_or_join(path)? {
        spawn_server(flags, &opts, &address, &listener)
            .with_context(|| format!("starting the shim server for {}", flags.id))?;
    }
    write_address(&bundle, &address)?;
    let reply = compat::start_reply(protocol, &address)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply)?;
    out.flush()?;
    Ok(())
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut input = Vec::new();
    let stdin = std::io::stdin();
    // A shim started by hand from a terminal gets nothing piped in.
    if !stdin.is_terminal() {
        stdin
            .lock()
            .take(MAX_INPUT)
            .read_to_end(&mut input)
            .context("reading start parameters from stdin")?;
    }
    Ok(input)
}

/// Binds the group's socket, or returns None if a live shim of the group already has it.
fn bind_or_join(path: &Path) -> Result<Option<UnixListener>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => return Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(e).with_context(|| format!("binding {}", path.display())),
    }
    if UnixStream::connect(path).is_ok() {
        return Ok(None);
    }
    // Nobody listens: the shim that owned it is gone. Take the address over.
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path)
        .map(Some)
        .with_context(|| format!("binding {}", path.display()))
}

fn spawn_server(
    flags: &Flags,
    opts: &containerd_shim::StartOpts,
    address: &str,
    listener: &UnixListener,
) -> Result<()> {
    let exe = std::env::current_exe().context("locating the shim binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["-namespace", &flags.namespace, "-id", &flags.id])
        .args(["-address", &opts.address, "-socket", address])
        .stdin(Stdio::null())
        // Not containerd's pipes: containerd waits for EOF on them before reading the reply.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env("TTRPC_ADDRESS", &opts.ttrpc_address)
        .env(LISTENER_ENV, LISTENER_FD.to_string());
    if !opts.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &opts.publish_binary]);
    }
    if opts.debug {
        cmd.arg("-debug");
    }
    let fd = listener.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (setsid, dup2, fcntl) on integers; it touches no
    // memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            // Own session: containerd's process group signals must not reach the shim.
            libc::setsid();
            if fd == LISTENER_FD {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, LISTENER_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The server is not waited for: it outlives this process and is re-parented.
    cmd.spawn().context("spawning the server")?;
    Ok(())
}

/// containerd reads `address` in the bundle to reconnect after a restart.
fn write_address(bundle: &Path, address: &str) -> Result<()> {
    let tmp = bundle.join(".address.tmp");
    std::fs::write(&tmp, address)
        .and_then(|_| std::fs::rename(&tmp, bundle.join("address")))
        .context("writing the address file in the bundle")
}
