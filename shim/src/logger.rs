//! `binary://` log URIs: containerd's pluggable logging binaries (`ctr run --log-uri
//! binary:///path/to/logger?arg=value`, dockerd's and nerdctl's log drivers).
//!
//! The contract, as containerd's runc shim implements it (pkg/process/io.go, NewBinaryIO):
//! - the binary is `path` from the URI; each query parameter `k=v` becomes the arguments
//!   `k v` (just `k` when v is empty); containerd ≥ 2.0 turns `env.K=v` parameters into
//!   environment variables instead. The environment is only `CONTAINER_ID` and
//!   `CONTAINER_NAMESPACE` (plus those `env.` ones); stdin/stdout/stderr are /dev/null;
//! - fd 3 is the read end of the container's stdout pipe, fd 4 of its stderr pipe, fd 5 the
//!   write end of a "ready" pipe: the shim waits until the logger writes a byte to it or
//!   closes it before the container is created;
//! - when the process is deleted, the shim sends the logger SIGTERM, and SIGKILL if it is
//!   still there 12 s later.
//!
//! berth's shim hands the pipes' write ends to the process directly, like FIFOs (no copy
//! loop), and keeps the read ends open as runc's shim does, so a logger that dies early does
//! not kill the container with SIGPIPE. The logger is the shim's child: the reaper tracks it
//! (so its pid is never reused under a later signal) and ignores its exit.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::pollable;
use crate::process::Process;
use crate::reaper::Reaper;
use crate::stdio;

/// How long the logger may take to signal ready (containerd's CRI and hcsshim wait 10 s).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Between SIGTERM and SIGKILL when the process is deleted (containerd's runc shim: 12 s).
const TERM_GRACE: Duration = Duration::from_secs(12);
/// The fds the logger finds its pipes on.
const STDOUT_FD: RawFd = 3;
const STDERR_FD: RawFd = 4;
const READY_FD: RawFd = 5;
/// Query parameters with this prefix are environment variables (containerd ≥ 2.0).
const ENV_PREFIX: &str = "env.";

/// Whose output the logger receives.
#[derive(Debug, Clone, Copy)]
pub struct LogContext<'a> {
    pub container_id: &'a str,
    pub namespace: &'a str,
}

/// The logger command a `binary://` URI describes.
#[derive(Debug, PartialEq, Eq)]
pub struct LoggerCommand {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Parses what follows `binary://`: `/path/to/logger?k=v&flag`.
pub fn parse(rest: &str) -> Result<LoggerCommand> {
    let bad = |why: &str| Error::InvalidArgument(format!("log URI binary://{rest}: {why}"));
    // A fragment is not part of the command (Go's url.Parse drops it too).
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = decode(path, false).ok_or_else(|| bad("bad %-escape in the path"))?;
    if !path.starts_with('/') {
        return Err(bad(
            "the logger must be an absolute path (binary:///path/to/logger)",
        ));
    }
    let mut cmd = LoggerCommand {
        path,
        args: Vec::new(),
        env: Vec::new(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k, true).ok_or_else(|| bad("bad %-escape in the query"))?;
        let v = decode(v, true).ok_or_else(|| bad("bad %-escape in the query"))?;
        match k.strip_prefix(ENV_PREFIX) {
            Some(name) if !name.is_empty() => {
                // The two variables the contract defines cannot be overridden.
                if name != "CONTAINER_ID" && name != "CONTAINER_NAMESPACE" {
                    cmd.env.push((name.to_string(), v));
                }
            }
            _ => {
                cmd.args.push(k);
                if !v.is_empty() {
                    cmd.args.push(v);
                }
            }
        }
    }
    Ok(cmd)
}

/// URL percent-decoding (and `+` as space in a query), None on a malformed escape or
/// non-UTF-8 result.
fn decode(s: &str, query: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                // from_str_radix alone would take a sign ("%+1").
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A running logger. Dropping it ends the logger: SIGTERM, then SIGKILL after a grace.
pub struct BinaryLogger {
    process: Arc<Process>,
    /// The pipes' read ends, kept so the container never gets SIGPIPE (see the module doc).
    _keep: [OwnedFd; 2],
}

impl BinaryLogger {
    /// Starts the logger and waits until it is ready. Returns it with the write ends of the
    /// stdout and stderr pipes, for the container process.
    pub async fn start(
        rest: &str,
        ctx: &LogContext<'_>,
        reaper: &Reaper,
    ) -> Result<(BinaryLogger, OwnedFd, OwnedFd)> {
        let cmd = parse(rest)?;
        let pipe = |what: &str| {
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Error::io(format!("creating the logger's {what} pipe"), e))
        };
        let (out_r, out_w) = pipe("stdout")?;
        let (err_r, err_w) = pipe("stderr")?;
        let (ready_r, ready_w) = pipe("ready")?;

        let mut command = Command::new(&cmd.path);
        command
            .args(&cmd.args)
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .env("CONTAINER_ID", ctx.container_id)
            .env("CONTAINER_NAMESPACE", ctx.namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (fcntl, dup2) on integers; it allocates nothing and
        // touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || place_fds(fds));
        }
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("log URI binary://{rest}: starting {}", cmd.path), e))?;
        // Tracked before the next await: only a reap pass on this thread could collect it.
        let process = Arc::new(Process::logger(ctx.container_id));
        process.set_pid(child.id() as i32);
        reaper.track(process.clone());
        // The Child handle is not needed: the reaper collects the exit.
        drop(child);
        drop(ready_w);
        let logger = BinaryLogger {
            process,
            _keep: [out_r, err_r],
        };

        match tokio::time::timeout(READY_TIMEOUT, wait_ready(ready_r)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::io(format!("waiting for logger {}", cmd.path), e)),
            Err(_) => {
                return Err(Error::Other(format!(
                    "logger {} was not ready within {} s (it must write to or close fd {READY_FD})",
                    cmd.path,
                    READY_TIMEOUT.as_secs()
                )))
            }
        }
        tracing::debug!(pid = logger.process.pid(), path = %cmd.path, "binary logger ready");
        Ok((logger, out_w, err_w))
    }
}

/// In the child: the three pipe ends onto fds 3, 4, 5 (without close-on-exec). The sources
/// are first copied above 5 so that one dup2 cannot overwrite another's source.
fn place_fds(fds: [RawFd; 3]) -> std::io::Result<()> {
    let mut high = [0; 3];
    for (h, fd) in high.iter_mut().zip(fds) {
        // SAFETY: fcntl on an fd number with integer arguments; no memory is passed.
        *h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, READY_FD + 1) };
        if *h < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (h, target) in high.into_iter().zip([STDOUT_FD, STDERR_FD, READY_FD]) {
        // SAFETY: dup2 on fd numbers; the new fd has close-on-exec cleared, as wanted.
        if unsafe { libc::dup2(h, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One byte or EOF on the ready pipe.
async fn wait_ready(ready: OwnedFd) -> std::io::Result<()> {
    stdio::set_nonblocking(&ready, true).map_err(std::io::Error::other)?;
    let ready = pollable::register(ready)?;
    let mut byte = [0u8; 1];
    stdio::read_some(&ready, &mut byte).await.map(|_| ())
}

impl Drop for BinaryLogger {
    fn drop(&mut self) {
        let p = self.process.clone();
        if p.exit().is_some() {
            return;
        }
        // SIGTERM first, so the logger can flush and exit on its own.
        let _ = p.signal(Signal::SIGTERM);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(TERM_GRACE, p.wait()).await.is_err() {
                        tracing::warn!(pid = p.pid(), "logger ignored SIGTERM: killing it");
                        let _ = p.signal(Signal::SIGKILL);
                    }
                });
            }
            Err(_) => {
                let _ = p.signal(Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri() {
        let c = parse("/usr/bin/logger?tag=web&--flag&env.LEVEL=debug&env.CONTAINER_ID=x")
            .expect("valid");
        assert_eq!(c.path, "/usr/bin/logger");
        assert_eq!(c.args, ["tag", "web", "--flag"]);
        assert_eq!(c.env, [("LEVEL".to_string(), "debug".to_string())]);
        let c = parse("/opt/my%20log?msg=a+b%26c#frag").expect("valid");
        assert_eq!(c.path, "/opt/my log");
        assert_eq!(c.args, ["msg", "a b&c"]);
        assert!(parse("/x").expect("valid").args.is_empty());
        assert!(matches!(parse("host/x"), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse(""), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse("/x?a=%zz"), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse("/x?a=%+1"), Err(Error::InvalidArgument(_))));
        assert!(matches!(parse("/x%2"), Err(Error::InvalidArgument(_))));
    }

    /// A real logger script gets both streams on fds 3 and 4 and its environment; the shim
    /// waited for fd 5.
    #[tokio::test(flavor = "current_thread")]
    async fn logger_receives_both_streams() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("berth-shim-logger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let script = dir.join("logger.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE $*\" >\"$2.env\"\n\
             exec 5>&-\ncat <&3 >\"$2.out\"\ncat <&4 >\"$2.err\"\ntouch \"$2.done\"\n",
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let prefix = dir.join("log");
        let uri = format!("{}?out={}", script.display(), prefix.display());
        let ctx = LogContext {
            container_id: "c1",
            namespace: "ns1",
        };
        let reaper = Reaper::default();
        let (logger, out, err) = BinaryLogger::start(&uri, &ctx, &reaper)
            .await
            .expect("logger starts");
        std::fs::File::from(out)
            .write_all(b"to-out\n")
            .expect("stdout");
        std::fs::File::from(err)
            .write_all(b"to-err\n")
            .expect("stderr");
        let done = dir.join("log.done");
        for _ in 0..200 {
            if done.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let read =
            |ext: &str| std::fs::read_to_string(dir.join(format!("log.{ext}"))).unwrap_or_default();
        assert_eq!(read("out"), "to-out\n");
        assert_eq!(read("err"), "to-err\n");
        assert_eq!(read("env"), format!("c1 ns1 out {}\n", prefix.display()));
        drop(logger);
        std::fs::remove_dir_all(&dir).ok();
    }
}
