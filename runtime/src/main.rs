//! `berth`: the runc-compatible command line over the berth library.

mod cli;

use clap::Parser;

use cli::args::Cli;
use cli::logging::Logger;

fn main() {
    // A container process re-executed from the sealed copy: not a CLI invocation.
    if let Some(fd) = std::env::var_os(berth::init::INIT_ENV) {
        if let Some(fd) = fd.to_str().and_then(|s| s.parse().ok()) {
            berth::init::main(fd);
        }
        eprintln!("berth: malformed {}", berth::init::INIT_ENV);
        std::process::exit(125);
    }
    let cli = Cli::parse();
    // Before berth opens any fd of its own: a closed fd among the preserved ones would be
    // filled by one of berth's (the log file, a cgroup directory) and handed on into the
    // container (the CVE-2024-21626 pattern).
    if let Err(msg) = cli::preserved_fds_open(cli.command.preserve_fds()) {
        eprintln!("berth: {msg}");
        std::process::exit(1);
    }
    let logger = Logger::init(cli.log.as_deref(), cli.log_format, cli.debug);
    if cli.systemd_cgroup {
        logger.error("--systemd-cgroup: berth has no systemd cgroup driver (and needs none on hosts without systemd); drop the flag to use cgroupfs");
        std::process::exit(1);
    }
    let root = berth::state::StateRoot::new(&cli.root);
    match cli::commands::dispatch(&root, cli.command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            logger.error(&error_chain(&e));
            std::process::exit(1);
        }
    }
}

/// The error and its causes, skipping a cause whose text the message already contains
/// (library errors embed their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
