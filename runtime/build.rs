//! Assembles berth-dmz (src/linux/dmz.S), the tiny program a container process directly
//! set up by `berth run` execs last (see src/linux/dmz.rs). x86_64 only; elsewhere berth
//! always re-executes itself from a sealed view instead (cfg `berth_dmz` unset).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(berth_dmz)");
    println!("cargo::rerun-if-changed=src/linux/dmz.S");
    println!("cargo::rerun-if-env-changed=CC");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64")
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bin = out.join("berth-dmz");
    // The C compiler is there wherever Rust links for Linux (rustc's default linker is cc).
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-nostdlib",
            "-static",
            "-no-pie",
            "-s",
            "-Wl,--build-id=none",
            "-Wl,-n",
            "-o",
        ])
        .arg(&bin)
        .arg("src/linux/dmz.S")
        .status();
    // Without berth-dmz berth still works: `run` then always re-executes (say, a cross
    // build whose `cc` targets another architecture).
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=berth_dmz"),
        Ok(s) => println!(
            "cargo::warning={cc} failed to assemble src/linux/dmz.S ({s}): built without berth-dmz"
        ),
        Err(e) => println!(
            "cargo::warning=running {cc} for src/linux/dmz.S: {e}: built without berth-dmz"
        ),
    }
}
