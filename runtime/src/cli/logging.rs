//! Logging for the CLI. containerd's runc shim reads the runtime's last error from the
//! --log file as JSON lines `{"level":"error","msg":...,"time":...}`, so errors are written
//! in exactly that shape (and to stderr).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::args::LogFormat;

pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
}

impl Logger {
    pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> Logger {
        let level = if debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        };
        let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(false);
        let opened = file.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        match (opened, format) {
            (Some(f), LogFormat::Json) => {
                let _ = builder.json().with_writer(std::sync::Mutex::new(f)).try_init();
            }
            (Some(f), LogFormat::Text) => {
                let _ = builder.with_writer(std::sync::Mutex::new(f)).try_init();
            }
            (None, _) => {
                let _ = builder.with_writer(std::io::stderr).try_init();
            }
        }
        Logger {
            file: file.map(Path::to_path_buf),
            format,
        }
    }

    pub fn error(&self, msg: &str) {
        if let Some(p) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(p) {
                let time = berth::state::now_rfc3339();
                let line = match self.format {
                    LogFormat::Json => serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string(),
                    LogFormat::Text => format!("time=\"{time}\" level=error msg={msg:?}"),
                };
                let _ = writeln!(f, "{line}");
            }
        }
        eprintln!("berth: {msg}");
    }
}
