//! Logging for the CLI. containerd's runc shim reads the runtime's last error from the
//! --log file as JSON lines `{"level":"error","msg":...,"time":...}`, so errors are written
//! in exactly that shape (and to stderr).

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing_subscriber::layer::SubscriberExt;

use super::args::LogFormat;

pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
}

impl Logger {
    pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> Logger {
        let logger = Logger {
            file: file.map(Path::to_path_buf),
            format,
        };
        // Without --log or --debug nothing below WARN is wanted, and berth's own warnings
        // are rare: skip the subscriber (its code and allocations are a measurable part of
        // a short CLI call's time and memory) and print errors directly.
        if file.is_none() && !debug {
            return logger;
        }
        let level = if debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        };
        // libcgroups warns about every v1 controller a host lacks; that is noise to a user.
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(level)
            .with_target(
                "libcgroups",
                if debug { level } else { tracing::Level::ERROR },
            );
        let builder = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false);
        let opened = file.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        match (opened, format) {
            (Some(f), LogFormat::Json) => {
                let s = builder
                    .json()
                    .with_writer(std::sync::Mutex::new(f))
                    .finish();
                let _ = tracing::subscriber::set_global_default(s.with(filter));
            }
            (Some(f), LogFormat::Text) => {
                let s = builder.with_writer(std::sync::Mutex::new(f)).finish();
                let _ = tracing::subscriber::set_global_default(s.with(filter));
            }
            (None, _) => {
                let s = builder.with_writer(std::io::stderr).finish();
                let _ = tracing::subscriber::set_global_default(s.with(filter));
            }
        }
        logger
    }

    pub fn error(&self, msg: &str) {
        if let Some(p) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let time = berth::state::now_rfc3339();
                let line = match self.format {
                    LogFormat::Json => {
                        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
                    }
                    LogFormat::Text => format!("time=\"{time}\" level=error msg={msg:?}"),
                };
                let _ = writeln!(f, "{line}");
            }
        }
        eprintln!("berth: {msg}");
    }
}
