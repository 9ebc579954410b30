//! One function per subcommand: parse what the user gave into library calls, print results.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use berth::container::{self, CreateOptions, ExecOptions};
use berth::state::{OciState, StateRoot, Status};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    Process, UserBuilder,
};

use super::args::{Command, CreateArgs, ExecArgs, Format, UpdateArgs};
use super::{foreground, templates, terminal};

pub fn dispatch(root: &StateRoot, command: Command) -> Result<i32> {
    match command {
        Command::Create(a) => {
            container::create(root, &create_options(&a))?;
            Ok(0)
        }
        Command::Start { id } => {
            container::start(root, &id)?;
            Ok(0)
        }
        Command::State { id } => {
            let st = root.load(&id)?;
            let status = container::status(root, &st);
            println!(
                "{}",
                serde_json::to_string_pretty(&OciState::new(&st, status))?
            );
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = parse_signal(&signal)?;
            if all {
                container::kill_all(root, &id, sig)?;
            } else {
                container::kill(root, &id, sig)?;
            }
            Ok(0)
        }
        Command::Delete { force, id } => {
            container::delete(root, &id, force)?;
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
        } => run(root, &create, detach, keep),
        Command::Exec(a) => exec(root, a),
        Command::Ps { format, id, .. } => ps(root, &id, format),
        Command::List { format, quiet } => list(root, format, quiet),
        Command::Pause { id } => {
            container::pause(root, &id)?;
            Ok(0)
        }
        Command::Resume { id } => {
            container::resume(root, &id)?;
            Ok(0)
        }
        Command::Update(a) => update(root, a),
        Command::Events {
            stats,
            interval,
            id,
        } => events(root, &id, stats, &interval),
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&templates::features())?);
            Ok(0)
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists: remove it first", path.display());
            }
            let text = serde_json::to_string_pretty(&templates::default_spec(rootless))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        Command::Image(a) => super::image::run(a),
        Command::Task(a) => super::task::run(root, a),
        Command::Checkpoint { .. } | Command::Restore { .. } => {
            bail!("checkpoint/restore is not implemented in berth")
        }
    }
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        stdio: None,
        cgroups_path: None,
        start: false,
    }
}

pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| anyhow!("signal {s}: unknown signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| anyhow!("signal {s:?}: unknown signal name"))
}

fn run(root: &StateRoot, a: &CreateArgs, detach: bool, keep: bool) -> Result<i32> {
    let mut opts = create_options(a);
    berth::state::validate_id(&opts.id)?;
    let bundle = berth::spec::load_bundle(&opts.bundle)?;
    let terminal = bundle.terminal();
    // A foreground terminal without --console-socket: berth relays the pty itself.
    let console = if !detach && opts.console_socket.is_none() && terminal {
        let l = terminal::ConsoleListener::new(&root.dir)?;
        opts.console_socket = Some(l.path.clone());
        Some(l)
    } else {
        None
    };
    // Without a terminal to size first, the process starts straight from create: no
    // exec.fifo round trip through the state directory.
    opts.start = !terminal;
    let created = container::create_from(root, &opts, bundle)?;
    let master = match &console {
        Some(l) => match l.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = container::delete(root, &a.id, true);
                return Err(e);
            }
        },
        None => None,
    };
    if let Some(m) = &master {
        terminal::copy_winsize(m);
    }
    if !opts.start {
        if let Err(e) = container::start(root, &a.id) {
            let _ = container::delete(root, &a.id, true);
            return Err(e.into());
        }
    }
    if detach {
        return Ok(0);
    }
    let code = match master {
        Some(m) => terminal::relay(m, created.pid),
        None => foreground::wait_forwarding(created.pid),
    };
    if !keep {
        container::delete(root, &a.id, true)?;
    }
    Ok(code)
}

fn exec(root: &StateRoot, a: ExecArgs) -> Result<i32> {
    let process = match &a.process {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("--process {}", p.display()))?;
            let de = &mut serde_json::Deserializer::from_str(&text);
            let process: Process = serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow!("--process {}: {}: {}", p.display(), e.path(), e.inner()))?;
            process
        }
        None => process_from_args(root, &a)?,
    };
    let console = if !a.detach && a.console_socket.is_none() && process.terminal().unwrap_or(false)
    {
        Some(terminal::ConsoleListener::new(&root.dir)?)
    } else {
        None
    };
    let pid = container::exec(
        root,
        &ExecOptions {
            id: a.id.clone(),
            process: Some(process),
            console_socket: console
                .as_ref()
                .map(|c| c.path.clone())
                .or_else(|| a.console_socket.clone()),
            pid_file: a.pid_file.clone(),
            preserve_fds: a.preserve_fds,
            stdio: None,
        },
    )?;
    if a.detach {
        return Ok(0);
    }
    if let Some(c) = console {
        let master = c.receive_master()?;
        return Ok(terminal::relay(master, pid));
    }
    Ok(foreground::wait_forwarding(pid))
}

/// Builds the exec process from flags, starting from the container's own process.
fn process_from_args(root: &StateRoot, a: &ExecArgs) -> Result<Process> {
    if a.args.is_empty() {
        bail!("exec: give the command to run after the container id, or --process FILE");
    }
    let st = root.load(&a.id)?;
    let bundle = berth::spec::load_bundle(&st.bundle)?;
    let mut p = bundle.spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.args.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if !a.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &a.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.set_env(Some(env));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>()?, g.parse::<u32>()?),
            None => (u.parse::<u32>().with_context(|| format!("--user {u}"))?, 0),
        };
        let user = UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .additional_gids(a.additional_gids.clone())
            .build()?;
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let name = c.trim_start_matches("CAP_");
            let cap =
                Capability::from_str(name).map_err(|_| anyhow!("--cap {c}: unknown capability"))?;
            let add = |s: &Option<std::collections::HashSet<Capability>>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

fn ps(root: &StateRoot, id: &str, format: Format) -> Result<i32> {
    let pids = container::pids(root, id)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            println!("{:>8} CMD", "PID");
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .split('\0')
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                println!("{pid:>8} {cmd}");
            }
        }
    }
    Ok(0)
}

fn list(root: &StateRoot, format: Format, quiet: bool) -> Result<i32> {
    let all = container::list(root)?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string(&all)?),
        Format::Table => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")?;
            for s in &all {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    s.owner
                )?;
            }
        }
    }
    Ok(0)
}

/// "100m", "1g", "512k", "1048576", "-1" → bytes.
fn parse_size(field: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("--{field} {s:?}: not a size (e.g. 512m, 1g, 1048576)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("--{field} {s:?}: too large"))
}

fn update(root: &StateRoot, a: UpdateArgs) -> Result<i32> {
    let mut res: LinuxResources = match &a.resources {
        Some(p) => {
            let mut text = String::new();
            if p == Path::new("-") {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(p)
                    .with_context(|| format!("--resources {}", p.display()))?;
            }
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow!("--resources: {}: {}", e.path(), e.inner()))?
        }
        None => LinuxResourcesBuilder::default().build()?,
    };
    let mut mem = res.memory().unwrap_or_default();
    let mut mem_set = false;
    if let Some(m) = &a.memory {
        mem.set_limit(Some(parse_size("memory", m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_reservation {
        mem.set_reservation(Some(parse_size("memory-reservation", m)?));
        mem_set = true;
    }
    if let Some(m) = &a.memory_swap {
        mem.set_swap(Some(parse_size("memory-swap", m)?));
        mem_set = true;
    }
    if a.kernel_memory.is_some() {
        bail!("--kernel-memory: not supported (deprecated by the kernel)");
    }
    if mem_set {
        res.set_memory(Some(mem));
    }
    let mut cpu = res.cpu().clone().unwrap_or_default();
    let mut cpu_set = false;
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_shares {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        res.set_cpu(Some(cpu));
    }
    if let Some(p) = a.pids_limit {
        res.set_pids(Some(LinuxPidsBuilder::default().limit(p).build()?));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    container::update(root, &a.id, &res)?;
    Ok(0)
}

fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow!("--interval {s:?}: not a duration (e.g. 5s, 500ms)"))?;
    if v <= 0.0 {
        bail!("--interval {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// OOM kills so far, from memory.events (v2) or memory.oom_control (v1).
fn oom_kills(cgroup: &Path) -> u64 {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let candidates = if berth::cgroups::is_unified() {
        vec![Path::new("/sys/fs/cgroup").join(rel).join("memory.events")]
    } else {
        vec![Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control")]
    };
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(c) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("oom_kill ") {
                    return v.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    0
}

fn events(root: &StateRoot, id: &str, once: bool, interval: &str) -> Result<i32> {
    let interval = parse_duration(interval)?;
    let st = root.load(id)?;
    let emit = |kind: &str, data: serde_json::Value| -> Result<()> {
        let line = serde_json::json!({"type": kind, "id": id, "data": data});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    if once {
        emit("stats", serde_json::to_value(container::stats(root, id)?)?)?;
        return Ok(0);
    }
    let mut ooms = oom_kills(&st.cgroup_path);
    let mut next_stats = std::time::Instant::now();
    loop {
        // The status first, the OOM count after it: an OOM kill that stopped the container
        // is already counted when its death is seen, so it is reported before we return.
        let stopped = container::status(root, &st) == Status::Stopped;
        let now_ooms = oom_kills(&st.cgroup_path);
        if now_ooms > ooms {
            emit("oom", serde_json::Value::Null)?;
            ooms = now_ooms;
        }
        if stopped {
            return Ok(0);
        }
        if std::time::Instant::now() >= next_stats {
            if let Ok(s) = container::stats(root, id) {
                emit("stats", serde_json::to_value(s)?)?;
            }
            next_stats += interval;
        }
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("m", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("m", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("m", "1048576").unwrap(), 1048576);
        assert_eq!(parse_size("m", "-1").unwrap(), -1);
        assert!(parse_size("m", "lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("0s").is_err());
    }
}
