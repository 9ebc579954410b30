//! A process's stdio as containerd describes it: FIFO paths (ctr, CRI), `file://` and
//! `binary://` log URIs ([`crate::logger`]), or nothing.
//!
//! Without a terminal the output FIFOs are handed to the process itself — no pipes, no copy
//! loop, no shim wake-up per line of output. The shim keeps a read end of each open, so the
//! process never gets EPIPE/SIGPIPE when the client goes away (`ctr run -d`, a containerd
//! restart); output then waits in the FIFO.
//!
//! stdin cannot be passed that way: a FIFO read with no writer returns EOF at once, and the
//! client opens its end only after Create. So stdin goes through a pipe fed by
//! [`StdinPump`], which waits for the client's writer (epoll reports nothing on a FIFO until a
//! writer has come), forwards its data, and closes the pipe when the client closes its end
//! (ctr does not always send CloseIO) or on CloseIO.
//!
//! With a terminal the process gets the pty (set up by berth's init) and the shim copies
//! between the pty master and the FIFOs ([`crate::console`]).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::console::Console;
use crate::error::{Error, Result};
use crate::logger::{BinaryLogger, LogContext};
use crate::pollable::{self, Pollable};
use crate::reaper::Reaper;

/// What containerd asked for.
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's side of a running process's stdio.
#[derive(Default)]
pub struct Io {
    stdin: Option<StdinPump>,
    _out_keepalive: Vec<OwnedFd>,
    pub console: Option<Console>,
    /// A `binary://` logger; dropping the Io (Delete) ends it.
    _logger: Option<BinaryLogger>,
}

impl Io {
    /// CloseIO: the client is done writing stdin.
    pub fn close_stdin(&mut self) {
        if let Some(p) = &mut self.stdin {
            p.close();
        }
        if let Some(c) = &mut self.console {
            c.close_stdin();
        }
    }
}

/// Copies the stdin FIFO into the pipe the process reads, until the client closes its end
/// (or CloseIO), then closes the pipe: the process reads EOF.
pub struct StdinPump {
    close: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StdinPump {
    /// `fifo` is the FIFO opened O_RDONLY|O_NONBLOCK, `pipe` the write end of the process's
    /// stdin pipe. Must be called on the runtime.
    fn start(fifo: OwnedFd, pipe: OwnedFd) -> Result<StdinPump> {
        set_nonblocking(&pipe, true)?;
        let fifo = pollable::register(fifo).map_err(|e| Error::io("registering stdin", e))?;
        let pipe = pollable::register(pipe).map_err(|e| Error::io("registering stdin pipe", e))?;
        let (close, mut closed) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                tokio::select! {
                    n = read_some(&fifo, &mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(n) => if write_all(&pipe, &buf[..n]).await.is_err() { break },
                    },
                    _ = &mut closed => {
                        // CloseIO: what the client wrote before closing still goes through.
                        while let Ok(n) = nix::unistd::read(fifo.get_ref().0.as_raw_fd(), &mut buf) {
                            if n == 0 || write_all(&pipe, &buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        break;
                    }
                }
            }
            // Dropping the write end of the pipe is the process's EOF.
        });
        Ok(StdinPump {
            close: Some(close),
            task,
        })
    }

    fn close(&mut self) {
        if let Some(c) = self.close.take() {
            let _ = c.send(());
        }
    }
}

impl Drop for StdinPump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One read once the fd is readable (or hung up).
pub async fn read_some(fd: &AsyncFd<Pollable<OwnedFd>>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut ready = fd.readable().await?;
        match ready
            .try_io(|f| nix::unistd::read(f.get_ref().0.as_raw_fd(), buf).map_err(Into::into))
        {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

pub async fn write_all(fd: &AsyncFd<Pollable<OwnedFd>>, buf: &[u8]) -> std::io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let mut ready = fd.writable().await?;
        match ready.try_io(|f| nix::unistd::write(&f.get_ref().0, &buf[off..]).map_err(Into::into))
        {
            Ok(Ok(n)) => off += n,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Opened stdio for a process about to be created.
pub struct Prepared {
    /// fds 0, 1, 2 of the new process; the shim closes its copies once the process exists.
    /// None for a terminal process (berth's init puts the pty there).
    pub child: Option<[OwnedFd; 3]>,
    pub io: Io,
}

impl Prepared {
    pub fn raw(&self) -> Option<[RawFd; 3]> {
        self.child
            .as_ref()
            .map(|c| [c[0].as_raw_fd(), c[1].as_raw_fd(), c[2].as_raw_fd()])
    }
}

enum Target<'a> {
    Null,
    Fifo(&'a str),
    File(&'a str),
    /// What follows `binary://`.
    Binary(&'a str),
}

fn target(uri: &str) -> Result<Target<'_>> {
    if uri.is_empty() {
        return Ok(Target::Null);
    }
    match uri.split_once("://") {
        None => Ok(Target::Fifo(uri)),
        Some(("file", path)) if path.starts_with('/') => Ok(Target::File(path)),
        Some(("binary", rest)) => Ok(Target::Binary(rest)),
        Some((scheme, _)) => Err(Error::Unimplemented(format!(
            "stdio {uri}: the {scheme}:// log scheme is not supported by berth's shim"
        ))),
    }
}

/// Opens (or starts) what the process's stdio goes to. `log` names the process for a
/// `binary://` logger, which the reaper then tracks.
pub async fn prepare(
    paths: &StdioPaths,
    log: &LogContext<'_>,
    reaper: &Reaper,
) -> Result<Prepared> {
    let mut io = Io::default();
    let binary = match target(&paths.stdout)? {
        Target::Binary(rest) => Some(rest),
        _ => None,
    };
    if binary.is_none() && matches!(target(&paths.stderr)?, Target::Binary(_)) {
        // containerd decides by the stdout URI and sends the same one for both.
        return Err(Error::InvalidArgument(format!(
            "stderr {}: a binary:// log URI must be the stdout URI too",
            paths.stderr
        )));
    }
    if paths.terminal {
        if binary.is_some() {
            return Err(Error::InvalidArgument(
                "a terminal cannot be logged through a binary:// log URI".into(),
            ));
        }
        // The console copy loops open the FIFOs once the pty master has arrived.
        return Ok(Prepared { child: None, io });
    }
    let stdin = match target(&paths.stdin)? {
        Target::Null => open("/dev/null", libc::O_RDONLY)?,
        Target::File(p) => open(p, libc::O_RDONLY)?,
        Target::Fifo(p) => {
            let fifo = open(p, libc::O_RDONLY | libc::O_NONBLOCK)?;
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| Error::io("creating the stdin pipe", e))?;
            io.stdin = Some(StdinPump::start(fifo, w)?);
            r
        }
        Target::Binary(_) => {
            return Err(Error::InvalidArgument(format!(
                "stdin {}: a binary:// log URI is for output only",
                paths.stdin
            )))
        }
    };
    if let Some(rest) = binary {
        // Both streams go to the logger, on their own pipes (its fds 3 and 4).
        let (logger, stdout, stderr) = BinaryLogger::start(rest, log, reaper).await?;
        io._logger = Some(logger);
        return Ok(Prepared {
            child: Some([stdin, stdout, stderr]),
            io,
        });
    }
    let stdout = open_output(&paths.stdout, &mut io)?;
    let stderr = if paths.stderr == paths.stdout && !paths.stdout.is_empty() {
        stdout
            .try_clone()
            .map_err(|e| Error::io("duplicating stdout", e))?
    } else {
        open_output(&paths.stderr, &mut io)?
    };
    Ok(Prepared {
        child: Some([stdin, stdout, stderr]),
        io,
    })
}

fn open_output(uri: &str, io: &mut Io) -> Result<OwnedFd> {
    match target(uri)? {
        Target::Null => open("/dev/null", libc::O_WRONLY),
        Target::File(p) => {
            // As runc's shim: the log file's directory is made if missing.
            if let Some(dir) = std::path::Path::new(p).parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            }
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(p)
                .map(OwnedFd::from)
                .map_err(|e| Error::io(format!("opening log file {p}"), e))
        }
        // prepare() handles a binary stdout; a binary stderr alone was refused there.
        Target::Binary(_) => Err(Error::InvalidArgument(format!(
            "{uri}: a binary:// log URI must be the stdout URI"
        ))),
        Target::Fifo(p) => {
            let (keep, writer) = open_fifo_writer(p)?;
            io._out_keepalive.push(keep);
            blocking(writer)
        }
    }
}

/// A read end kept by the shim (so writes never EPIPE), then the write end. Neither open
/// blocks: the first is non-blocking, the second finds a reader.
pub fn open_fifo_writer(path: &str) -> Result<(OwnedFd, OwnedFd)> {
    let keep = open(path, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let writer = open(path, libc::O_WRONLY | libc::O_NONBLOCK)?;
    Ok((keep, writer))
}

pub fn open(path: &str, flags: i32) -> Result<OwnedFd> {
    let f: File = OpenOptions::new()
        .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
        .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .custom_flags((flags & !libc::O_ACCMODE) | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(format!("opening {path}"), e))?;
    Ok(f.into())
}

/// Clears O_NONBLOCK: the process must see ordinary blocking stdio.
fn blocking(fd: OwnedFd) -> Result<OwnedFd> {
    set_nonblocking(&fd, false)?;
    Ok(fd)
}

pub fn set_nonblocking(fd: &impl AsFd, on: bool) -> Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL).map_err(|e| Error::io("F_GETFL", e))?;
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(raw, FcntlArg::F_SETFL(flags)).map_err(|e| Error::io("F_SETFL", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn fifo(dir: &std::path::Path, name: &str) -> String {
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).ok();
        p.display().to_string()
    }

    #[test]
    fn schemes() {
        assert!(matches!(target(""), Ok(Target::Null)));
        assert!(matches!(target("/run/x/stdout"), Ok(Target::Fifo(_))));
        assert!(matches!(
            target("file:///var/log/x"),
            Ok(Target::File("/var/log/x"))
        ));
        assert!(matches!(
            target("binary:///bin/logger?x=y"),
            Ok(Target::Binary("/bin/logger?x=y"))
        ));
        assert!(matches!(
            target("syslog://host"),
            Err(Error::Unimplemented(_))
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fifo_semantics() {
        let dir = std::env::temp_dir().join(format!("berth-shim-stdio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let paths = StdioPaths {
            stdin: fifo(&dir, "in"),
            stdout: fifo(&dir, "out"),
            stderr: String::new(),
            terminal: false,
        };
        let ctx = LogContext {
            container_id: "c",
            namespace: "ns",
        };
        let mut p = prepare(&paths, &ctx, &Reaper::default())
            .await
            .expect("prepare");
        let [cin, cout, _cerr] = p.child.take().expect("fds");
        // Output written before any client exists is kept, not lost to EPIPE.
        let mut cout = File::from(cout);
        cout.write_all(b"hello").expect("write without client");
        let mut client_out = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&paths.stdout)
            .expect("client opens stdout");
        let mut buf = [0u8; 5];
        client_out.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"hello");
        // stdin: no EOF before the client came; its data, then EOF when it closes.
        let cin = File::from(cin);
        set_nonblocking(&cin, true).expect("nonblocking");
        let mut one = [0u8; 1];
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            (&cin).read(&mut one).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "no EOF before the client opened stdin"
        );
        let mut client_in = OpenOptions::new()
            .write(true)
            .open(&paths.stdin)
            .expect("w");
        client_in.write_all(b"x").expect("client writes");
        drop(client_in);
        let mut got = Vec::new();
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            match (&cin).read(&mut one) {
                Ok(0) => break,
                Ok(_) => got.push(one[0]),
                Err(_) => continue,
            }
        }
        assert_eq!(got, b"x", "data, then EOF after the client closed");
        drop(p);
        std::fs::remove_dir_all(&dir).ok();
    }
}
