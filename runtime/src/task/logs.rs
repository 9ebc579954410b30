//! Container output: each container's stdout and stderr are pipes read by one thread each, which
//! append Docker json-file lines (`{"log":"…\n","stream":"stdout","time":"…"}`) to
//! `<task>/logs/<container>.log` and, in attached mode, print the line prefixed with the
//! container's name. One file per container across restarts, as Docker keeps one per container.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One line of a json-file log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Where attached-mode lines go (the CLI's stdout), shared so lines do not interleave mid-line.
pub type Console = Arc<Mutex<Box<dyn Write + Send>>>;

/// The writer side shared by a container's two streams; rotates at max-size keeping max-file files.
pub struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_size: Option<u64>,
    max_file: u32,
}

impl LogFile {
    pub fn open(path: &Path, max_size: Option<u64>, max_file: Option<u32>) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            written,
            max_size,
            max_file: max_file.unwrap_or(1).max(1),
        })
    }

    fn append(&mut self, line: &LogLine) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if let Some(max) = self.max_size {
            if self.written > 0 && self.written + bytes.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Docker's scheme: name.log → name.log.1 → … → name.log.<max-file - 1>.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file <= 1 {
            self.file.set_len(0)?;
            self.written = 0;
            return Ok(());
        }
        for n in (1..self.max_file - 1).rev() {
            let _ = fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Starts the reader thread of one stream. It ends when every writer of the pipe has closed it
/// (the container's processes are gone).
pub fn capture(
    container: String,
    stream: &'static str,
    pipe: OwnedFd,
    file: Arc<Mutex<LogFile>>,
    console: Option<Console>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("log-{container}-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(File::from(pipe));
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Bounded lines (Docker splits at 16 KiB too): a line without newline cannot grow
                // memory without limit.
                match reader.by_ref().take(16 * 1024).read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let line = LogLine {
                    log: text,
                    stream: stream.to_string(),
                    time: crate::state::now_rfc3339(),
                };
                if let Ok(mut f) = file.lock() {
                    if let Err(e) = f.append(&line) {
                        tracing::warn!(container, error = %e, "writing log");
                    }
                }
                if let Some(console) = &console {
                    if let Ok(mut out) = console.lock() {
                        let body = line.log.strip_suffix('\n').unwrap_or(&line.log);
                        let _ = writeln!(out, "{container} | {body}");
                        let _ = out.flush();
                    }
                }
            }
        })
}

/// Prints a container's log (the text, as `docker logs` does); with `follow`, keeps printing new
/// lines until `until_done` says the task has stopped and the file has been read to its end.
pub fn print(
    path: &Path,
    prefix: Option<&str>,
    follow: bool,
    out: &mut dyn Write,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut pending = String::new();
    let mut offset = 0u64;
    loop {
        // Asked before reading: once the task has stopped, one more read gets the last lines.
        let finished = follow && done();
        file.seek(SeekFrom::Start(offset))?;
        let mut chunk = String::new();
        let n = file.read_to_string(&mut chunk)?;
        offset += n as u64;
        pending.push_str(&chunk);
        while let Some(end) = pending.find('\n') {
            let raw: String = pending.drain(..=end).collect();
            if let Ok(line) = serde_json::from_str::<LogLine>(raw.trim_end()) {
                let body = line.log.strip_suffix('\n').unwrap_or(&line.log);
                match prefix {
                    Some(p) => writeln!(out, "{p} | {body}")?,
                    None => writeln!(out, "{body}")?,
                }
            }
        }
        out.flush()?;
        if !follow {
            return Ok(());
        }
        if n == 0 {
            if finished {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
