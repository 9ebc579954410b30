//! The shim server: the long-lived process behind the address `start` printed. It serves
//! the task API for every container of its group on a current-thread tokio runtime (one
//! thread: the shim's memory stays small and flat), reaps its children, and exits after
//! containerd's Shutdown once no container is left — or on its own if containerd never
//! comes back for it.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use containerd_shim::Flags;
use containerd_shim_protos::ttrpc::r#async::transport::Listener;
use containerd_shim_protos::ttrpc::r#async::Server;
use tokio::signal::unix::{signal, SignalKind};

use crate::events::Publisher;
use crate::service::Service;
use crate::start::LISTENER_ENV;
use crate::{compat, logging, memory, paths, reaper};

/// With no container for this long, the shim exits without waiting for a Shutdown.
const IDLE_EXIT: Duration = Duration::from_secs(60);

pub fn run(flags: Flags) -> Result<()> {
    memory::tune();
    reaper::set_subreaper().context("becoming a child subreaper")?;
    logging::init(flags.debug);
    let root = berth::state::StateRoot::new(paths::state_root(&flags.address, &flags.namespace)?);
    let listener = listener(&flags)?;
    // The first bundle may be deleted while the group's shim lives on: hold no cwd there.
    let _ = std::env::set_current_dir("/");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .context("starting the runtime")?;
    let r = rt.block_on(serve(&flags, root, listener));
    if let Err(e) = &r {
        tracing::error!(error = %format!("{e:#}"), "shim failed");
    }
    r
}

/// The socket `start` bound and passed as fd 3, or (started by hand) a fresh bind.
fn listener(flags: &Flags) -> Result<UnixListener> {
    if let Some(fd) = std::env::var(LISTENER_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::env::remove_var(LISTENER_ENV);
        // SAFETY: `start` dup'ed its bound, listening socket onto this fd for us alone, and
        // nothing else in this process has used it.
        return Ok(unsafe { UnixListener::from_raw_fd(fd) });
    }
    if flags.socket.is_empty() {
        anyhow::bail!("no -socket given and no inherited listener");
    }
    let path = paths::socket_path(&flags.socket);
    UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

async fn serve(flags: &Flags, root: berth::state::StateRoot, listener: UnixListener) -> Result<()> {
    let ttrpc = std::env::var("TTRPC_ADDRESS").context("TTRPC_ADDRESS is not set")?;
    let events = Publisher::start(&ttrpc, &flags.namespace);
    let service = Arc::new(Service::new(root, &flags.namespace, events));
    let mut server = Server::new()
        .add_listener(Listener::try_from(listener).context("listening")?)
        .register_service(compat::task_services(service.clone()));
    server.start().await.context("starting the ttrpc server")?;
    tracing::info!(pid = std::process::id(), socket = %flags.socket, "berth shim serving");

    let mut sigchld = signal(SignalKind::child())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut idle = tokio::time::interval(IDLE_EXIT / 2);
    let mut idle_ticks = 0;
    loop {
        tokio::select! {
            _ = sigchld.recv() => reap(&service),
            _ = service.reaper.kicked() => reap(&service),
            _ = service.shutdown.notified() => break,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = idle.tick() => {
                idle_ticks = if service.is_empty() { idle_ticks + 1 } else { 0 };
                // The first tick fires at once: three in a row span IDLE_EXIT.
                if idle_ticks >= 3 {
                    tracing::info!("no containers left and no Shutdown: exiting");
                    break;
                }
            }
        }
    }
    tracing::info!("shutting down");
    // The last TaskExit/TaskDelete must reach containerd before we go.
    service.events.flush(Duration::from_secs(5)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown()).await;
    let _ = std::fs::remove_file(paths::socket_path(&flags.socket));
    Ok(())
}

fn reap(service: &Service) {
    for p in service.reaper.reap() {
        service.process_exited(p);
    }
}
