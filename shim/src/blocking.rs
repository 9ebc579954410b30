//! Running the berth library's blocking calls off the tokio thread.
//!
//! Each call gets a fresh OS thread rather than one from tokio's blocking pool, because
//! `create` and `exec` may change per-thread kernel state that must not leak into later
//! calls: `setns(CLONE_NEWPID)` into a container's pid namespace (it applies to the
//! thread's future children), `unshare(CLONE_NEWTIME)`, and `unshare(CLONE_FS)` + chdir in
//! containerd-shim's overlay mount helper. A thread that dies takes that state with it; a
//! thread start costs tens of microseconds, nothing next to a container start. Pooled
//! threads would also stay around (and resident) long after a burst of requests.

use crate::error::{Error, Result};

/// Runs `f` on a new thread and waits for its result without blocking the runtime.
pub async fn run<T, F>(what: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(what.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Error::io(format!("starting a thread for {what}"), e))?;
    let r = rx
        .await
        .map_err(|_| Error::Other(format!("{what}: worker thread ended without a result")))?;
    crate::memory::trim();
    r
}
