//! containerd-shim-berth-v2: the containerd shim (runtime v2, ttrpc task API) for berth.
//!
//! One process serves a whole group of containers (a CRI pod or a berth task) by driving
//! the berth library in-process — no runtime binary is executed per request. containerd
//! runs this binary in three ways:
//! - `start`: find or spawn the group's server, print its address ([`start`]);
//! - `delete`: clean up after a task whose shim connection closed ([`cleanup`]);
//! - no action: be the server ([`serve`]).
//!
//! The same binary is also the container process between clone and the container's exec:
//! berth re-executes itself (from a sealed copy) to set the container up.

mod blocking;
mod cleanup;
mod compat;
mod console;
mod container;
mod control;
mod error;
mod events;
mod group;
mod lifecycle;
mod logger;
mod logging;
mod memory;
mod metrics;
mod oom;
mod paths;
mod pollable;
mod process;
mod reaper;
mod rootfs;
mod serve;
mod service;
mod start;
mod stdio;
mod time;

use std::io::Write;

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

const RUNTIME_NAME: &str = "io.containerd.berth.v2";

fn main() {
    // A container process re-executed by the berth library: not a shim invocation.
    if let Some(fd) = std::env::var_os(berth::init::INIT_ENV) {
        if let Some(fd) = fd.to_str().and_then(|s| s.parse().ok()) {
            berth::init::main(fd);
        }
        eprintln!(
            "containerd-shim-berth-v2: malformed {}",
            berth::init::INIT_ENV
        );
        std::process::exit(125);
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let flags = match containerd_shim::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-berth-v2: {e}");
            std::process::exit(2);
        }
    };
    if flags.version {
        println!("containerd-shim-berth-v2 {}", env!("CARGO_PKG_VERSION"));
        println!("runtime: {RUNTIME_NAME}");
        return;
    }
    let result = if flags.info {
        print_info()
    } else {
        match flags.action.as_str() {
            "start" => start::run(&flags),
            "delete" => cleanup::run(&flags),
            "" => serve::run(flags),
            other => Err(anyhow::anyhow!("unknown action {other:?}")),
        }
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-berth-v2: {e:#}");
        std::process::exit(1);
    }
}

/// `-info` (containerd ≥ 2.0 introspection): who we are, as protobuf on stdout.
fn print_info() -> anyhow::Result<()> {
    let info = RuntimeInfo {
        name: RUNTIME_NAME.to_string(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&info.write_to_bytes()?)?;
    out.flush()?;
    Ok(())
}
