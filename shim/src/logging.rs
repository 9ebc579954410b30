//! The shim server's log: containerd opens a FIFO named `log` in the bundle and copies what
//! the shim writes there into its own log. The FIFO is opened non-blocking so a containerd
//! that stops reading (restart) costs dropped lines, never a stalled shim; the write end
//! stays valid across the restart, when containerd reopens its reading end.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use tracing::Level;

pub fn init(debug: bool) {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let sink: Arc<File> = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("log")
    {
        Ok(f) => Arc::new(f),
        // Started by hand, or containerd is not reading: log nowhere rather than fail.
        Err(_) => match File::options().write(true).open("/dev/null") {
            Ok(f) => Arc::new(f),
            Err(_) => return,
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(sink)
        .with_target(false)
        .try_init();
}
