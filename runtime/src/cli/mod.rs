//! The `berth` command line: argument parsing, logging, and one handler per subcommand.

pub mod args;
pub mod commands;
pub mod foreground;
pub mod image;
pub mod logging;
pub mod task;
pub mod templates;
pub mod terminal;
