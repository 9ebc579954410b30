//! The `berth` command line: argument parsing, logging, and one handler per subcommand.

pub mod args;
pub mod commands;
pub mod foreground;
pub mod image;
pub mod logging;
pub mod task;
pub mod templates;
pub mod terminal;

/// Fails unless fds 3 .. 3+`n` are all open (`--preserve-fds n`).
pub fn preserved_fds_open(n: u32) -> Result<(), String> {
    for fd in 3..3 + n as i32 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err(format!(
                "--preserve-fds {n}: fd {fd} is not open (every fd from 3 to {} must be)",
                2 + n as i32
            ));
        }
    }
    Ok(())
}
