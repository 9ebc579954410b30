//! The final step: find the program like execvp would, inside the container, and exec it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::SetupError;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `arg0` against PATH from the process's environment (not berth's), in the
/// current root. Run after pivot_root, so `create` fails when the program does not exist.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf, SetupError> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(SetupError::invalid(format!(
                "process.args[0]: {arg0} is a directory"
            ))),
            Ok(_) if is_exec(&p) => Ok(p),
            Ok(_) => Err(SetupError::invalid(format!(
                "process.args[0]: {arg0} is not executable"
            ))),
            Err(e) => Err(SetupError::invalid(format!("process.args[0]: {arg0}: {e}"))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if is_exec(&p) {
            return Ok(p);
        }
    }
    Err(SetupError::invalid(format!(
        "process.args[0]: {arg0:?} not found in $PATH ({path}) inside the container"
    )))
}

pub fn cstrings<I, S>(items: I) -> Result<Vec<CString>, SetupError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    items
        .into_iter()
        .map(|s| {
            CString::new(s.as_ref().to_vec())
                .map_err(|_| SetupError::invalid("process.args/env: contains a NUL byte"))
        })
        .collect()
}

/// execve, or with `dmz` (see [`super::dmz`]) execveat of berth-dmz, which then execs the
/// program. Returns only on failure.
pub fn exec(
    program: &Path,
    args: &[CString],
    env: &[CString],
    dmz: Option<BorrowedFd<'_>>,
) -> SetupError {
    let prog = match CString::new(program.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => return SetupError::invalid("program path contains a NUL byte"),
    };
    // Rust's runtime starts every program (berth's init included) with SIGPIPE ignored, and
    // an ignored signal stays ignored across execve: give the container the default.
    // SAFETY: installs SIG_DFL, no handler code; this process is single-threaded here.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let result = match dmz {
        None => nix::unistd::execve(&prog, args, env),
        Some(fd) => {
            // berth-dmz takes its own name, the program's path, then the program's argv.
            let argv: Vec<&std::ffi::CStr> = [c"berth-dmz", prog.as_c_str()]
                .into_iter()
                .chain(args.iter().map(|a| a.as_c_str()))
                .collect();
            nix::unistd::execveat(
                Some(fd.as_raw_fd()),
                c"",
                &argv,
                env,
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
        }
    };
    match result {
        Ok(never) => match never {},
        Err(e) => SetupError::Io {
            what: format!("exec {}", program.display()),
            source: e.into(),
        },
    }
}
