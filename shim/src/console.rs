//! Terminal processes (`ctr run -t`, `ctr task exec -t`): berth's init allocates a pty inside
//! the container and sends its master over a console socket (SCM_RIGHTS); the shim then
//! copies stdin FIFO → master and master → stdout FIFO, and applies ResizePty to the master.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::pollable::{self, Pollable};
use crate::stdio::{self, StdioPaths};

/// The listening socket a terminal process's init connects to during create/exec.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds a fresh socket in `dir`. Names stay short: unix socket paths end at 108 bytes.
    pub fn bind(dir: &Path) -> Result<ConsoleSocket> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        berth::state::ensure_private_dir(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".pty-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::io(format!("binding console socket {}", path.display()), e))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// The pty master, sent while the process was being set up: by the time create/exec
    /// returned, the connection and the fd are queued, so nothing here blocks.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("console socket", e))?;
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| Error::io("the container did not connect to the console socket", e))?;
        berth::sync::Channel::recv_fd(conn.as_fd())
            .map_err(|e| Error::io("receiving the pty master", e))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A running console: the master and the two copy tasks.
pub struct Console {
    master: Arc<AsyncFd<Pollable<OwnedFd>>>,
    stdin_task: Option<JoinHandle<()>>,
    stdout_task: Option<JoinHandle<()>>,
    stdout_done: watch::Receiver<bool>,
}

impl Console {
    /// Starts copying between `master` and the FIFOs in `paths`.
    pub fn start(master: OwnedFd, paths: &StdioPaths) -> Result<Console> {
        stdio::set_nonblocking(&master, true)?;
        let master = Arc::new(
            pollable::register(master).map_err(|e| Error::io("registering the pty master", e))?,
        );
        let (done_tx, stdout_done) = watch::channel(false);
        let stdout_task = if paths.stdout.is_empty() {
            let _ = done_tx.send(true);
            None
        } else {
            let (keep, writer) = stdio::open_fifo_writer(&paths.stdout)?;
            let writer =
                pollable::register(writer).map_err(|e| Error::io("registering stdout", e))?;
            let m = master.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = copy(&m, &writer).await {
                    tracing::debug!(error = %e, "console output copy ended");
                }
                // Closing the writer is what gives the client EOF.
                drop(writer);
                drop(keep);
                let _ = done_tx.send(true);
            }))
        };
        let stdin_task = if paths.stdin.is_empty() {
            None
        } else {
            // Read-write: a FIFO with a writer (us) never reports EOF when the client's
            // end closes, and the open never waits for the client.
            let fifo = stdio::open(&paths.stdin, libc::O_RDWR | libc::O_NONBLOCK)?;
            let fifo = pollable::register(fifo).map_err(|e| Error::io("registering stdin", e))?;
            let m = master.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = copy(&fifo, &m).await {
                    tracing::debug!(error = %e, "console input copy ended");
                }
            }))
        };
        Ok(Console {
            master,
            stdin_task,
            stdout_task,
            stdout_done,
        })
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let clamp = |v: u32| v.min(u16::MAX as u32) as u16;
        berth::linux::sys::set_window_size(
            self.master.get_ref().0.as_fd(),
            clamp(height),
            clamp(width),
        )
        .map_err(|e| Error::io("resizing the console", e))
    }

    pub fn close_stdin(&mut self) {
        if let Some(t) = self.stdin_task.take() {
            t.abort();
        }
    }

    /// Waits (bounded) until all output reached the FIFO, so a client reading to EOF after
    /// the exit gets everything.
    pub async fn drain(&mut self, timeout: std::time::Duration) {
        let mut rx = self.stdout_done.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|d| *d)).await;
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        for t in [self.stdin_task.take(), self.stdout_task.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
    }
}

/// Copies until EOF (or EIO: a pty master reads EIO once every peer fd is closed).
async fn copy(
    from: &AsyncFd<Pollable<OwnedFd>>,
    to: &AsyncFd<Pollable<OwnedFd>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stdio::read_some(from, &mut buf).await {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        stdio::write_all(to, &buf[..n]).await?;
    }
}
