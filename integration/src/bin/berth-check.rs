//! berth-check: runs inside a container and reports what the container sees, so the
//! integration tests assert from the inside (like youki's runtimetest).
//!
//! `berth-check report` prints one JSON object; the other subcommands probe one thing and
//! print a one-line JSON result. Exit code 0 unless the probe itself could not run.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;

use serde_json::{json, Value};

fn status_field(name: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn rlimits() -> Value {
    let names = [
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ];
    let mut out = BTreeMap::new();
    for (n, r) in names {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into a struct we own.
        unsafe { libc::getrlimit(r, &mut l) };
        out.insert(n.to_string(), json!([l.rlim_cur, l.rlim_max]));
    }
    json!(out)
}

fn mounts() -> Value {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((l, r)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = l.split(' ').collect();
        let r: Vec<&str> = r.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(json!({
            "target": l[4], "options": l[5], "fstype": r[0], "source": r[1], "super": r[2]
        }));
    }
    json!(out)
}

fn fds() -> Value {
    let mut out: Vec<i64> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    // The directory listing itself used one fd: drop the highest if it no longer exists.
    out.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    json!(out)
}

fn namespaces() -> Value {
    let mut out = BTreeMap::new();
    for n in ["pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/self/ns/{n}")) {
            out.insert(n.to_string(), l.display().to_string());
        }
    }
    json!(out)
}

fn report() -> Value {
    let mut host = [0u8; 256];
    // SAFETY: gethostname writes at most len bytes into our buffer.
    unsafe { libc::gethostname(host.as_mut_ptr() as *mut libc::c_char, host.len()) };
    let hostname = String::from_utf8_lossy(&host)
        .trim_end_matches('\0')
        .to_string();
    // SAFETY: umask is always safe; set it back right away.
    let umask = unsafe {
        let m = libc::umask(0);
        libc::umask(m);
        m
    };
    let mut groups = vec![0 as libc::gid_t; 64];
    // SAFETY: getgroups writes at most 64 entries into our buffer.
    let n = unsafe { libc::getgroups(64, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    // SAFETY: these getters take no arguments and cannot fail.
    let (ppid, uid, gid, euid) = unsafe {
        (
            libc::getppid(),
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
        )
    };
    json!({
        "pid": std::process::id(),
        "ppid": ppid,
        "uid": uid,
        "gid": gid,
        "euid": euid,
        "groups": groups,
        "hostname": hostname,
        "cwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "umask": umask,
        "caps": {
            "inh": status_field("CapInh"), "prm": status_field("CapPrm"),
            "eff": status_field("CapEff"), "bnd": status_field("CapBnd"),
            "amb": status_field("CapAmb"),
        },
        "no_new_privs": status_field("NoNewPrivs"),
        "seccomp": status_field("Seccomp"),
        "rlimits": rlimits(),
        "mounts": mounts(),
        "fds": fds(),
        "namespaces": namespaces(),
        "cgroup": std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        "oom_score_adj": std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default().trim(),
        "sigmask": status_field("SigBlk"),
        "sigign": status_field("SigIgn"),
    })
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Tries one syscall and reports its errno (0 = success).
fn syscall(name: &str) -> Value {
    let err = match name {
        "getpid" => {
            // SAFETY: no arguments.
            unsafe { libc::getpid() };
            0
        }
        "mkdir" => {
            let p = CString::new("/tmp/berth-check-mkdir").unwrap_or_default();
            // SAFETY: valid C string.
            let r = unsafe { libc::mkdir(p.as_ptr(), 0o755) };
            if r == 0 {
                // SAFETY: valid C string.
                unsafe { libc::rmdir(p.as_ptr()) };
                0
            } else {
                errno()
            }
        }
        "uname" => {
            // SAFETY: uname writes into the struct we own.
            let mut u: libc::utsname = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            if unsafe { libc::uname(&mut u) } == 0 {
                0
            } else {
                errno()
            }
        }
        "sethostname" => {
            // SAFETY: valid buffer and length.
            if unsafe { libc::sethostname(b"x".as_ptr() as *const libc::c_char, 1) } == 0 {
                0
            } else {
                errno()
            }
        }
        "mount" => {
            let t = CString::new("tmpfs").unwrap_or_default();
            let d = CString::new("/tmp").unwrap_or_default();
            // SAFETY: valid C strings, null data.
            let r = unsafe { libc::mount(t.as_ptr(), d.as_ptr(), t.as_ptr(), 0, std::ptr::null()) };
            if r == 0 {
                0
            } else {
                errno()
            }
        }
        _ => return json!({"error": format!("unknown syscall {name}")}),
    };
    json!({"syscall": name, "errno": err})
}

/// Allocates and touches `mb` MiB, printing progress, to trigger a memory limit.
fn alloc(mb: usize) -> Value {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    for i in 0..mb {
        keep.push(vec![1u8; 1 << 20]);
        if i % 16 == 0 {
            print!("{i} ");
            let _ = std::io::stdout().flush();
        }
    }
    json!({"allocated_mb": keep.len()})
}

/// Forks up to `n` children that sleep, counting how many forks succeeded.
fn fork(n: usize) -> Value {
    let mut ok = 0;
    let mut children = Vec::new();
    let mut last_err = 0;
    for _ in 0..n {
        // SAFETY: the child only sleeps and exits with async-signal-safe calls.
        let pid = unsafe { libc::fork() };
        match pid {
            0 => {
                // SAFETY: async-signal-safe in the child.
                unsafe {
                    libc::sleep(5);
                    libc::_exit(0);
                }
            }
            p if p > 0 => {
                ok += 1;
                children.push(p);
            }
            _ => {
                last_err = errno();
                break;
            }
        }
    }
    for c in children {
        // SAFETY: signalling and reaping our own children.
        unsafe {
            libc::kill(c, libc::SIGKILL);
            libc::waitpid(c, std::ptr::null_mut(), 0);
        }
    }
    json!({"forked": ok, "errno": last_err})
}

fn write_file(path: &str) -> Value {
    match std::fs::write(path, b"x") {
        Ok(()) => json!({"path": path, "errno": 0}),
        Err(e) => json!({"path": path, "errno": e.raw_os_error().unwrap_or(-1)}),
    }
}

/// Opens `path` for `mode` (r, w or rw) and reports the errno: the device cgroup answers
/// EPERM for a denied device.
fn open_path(path: &str, mode: &str) -> Value {
    let (read, write) = match mode {
        "r" => (true, false),
        "w" => (false, true),
        "rw" => (true, true),
        other => return json!({"error": format!("open: mode {other:?} is not r, w or rw")}),
    };
    let r = std::fs::OpenOptions::new()
        .read(read)
        .write(write)
        .open(path);
    let errno = r.err().map_or(0, |e| e.raw_os_error().unwrap_or(-1));
    json!({"open": path, "mode": mode, "errno": errno})
}

/// mknod `path` as a character (c) or block (b) device `major`:`minor`, mode 0666.
fn mknod(path: &str, kind: &str, major: &str, minor: &str) -> Value {
    let fmt = match kind {
        "c" => libc::S_IFCHR,
        "b" => libc::S_IFBLK,
        other => return json!({"error": format!("mknod: type {other:?} is not c or b")}),
    };
    let (Ok(maj), Ok(min)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return json!({"error": format!("mknod: bad device number {major}:{minor}")});
    };
    let Ok(c) = CString::new(path) else {
        return json!({"error": "mknod: path contains NUL"});
    };
    let _ = std::fs::remove_file(path);
    // SAFETY: valid C string; mknod only reads its arguments.
    let r = unsafe { libc::mknod(c.as_ptr(), fmt | 0o666, libc::makedev(maj, min)) };
    json!({"mknod": path, "errno": if r == 0 { 0 } else { errno() }})
}

/// Spins on the CPU for `ms` milliseconds of wall time (to be throttled by cpu.max).
fn burn(ms: u64) -> Value {
    let start = std::time::Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        for _ in 0..10_000 {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    json!({"burned_ms": start.elapsed().as_millis() as u64, "n": n & 1})
}

/// CVE-2019-5736: tries to open every /proc/<pid>/exe of processes that are not ours for
/// writing, for `secs` seconds; reports any success.
fn exe_attack(secs: u64) -> Value {
    let me = std::process::id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut opened = Vec::new();
    let mut seen = 0u64;
    while std::time::Instant::now() < deadline {
        if let Ok(d) = std::fs::read_dir("/proc") {
            for e in d.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.chars().all(|c| c.is_ascii_digit()) || name == me || name == "1" {
                    continue;
                }
                seen += 1;
                if std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/{name}/exe"))
                    .is_ok()
                {
                    opened.push(name);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    json!({"opened_for_write": opened, "probes": seen})
}

/// A UDP echo server on 127.0.0.1:PORT: replies `echo:<sender port>:<datagram>` to each
/// sender, forever (the sender's port tells which forwarder session a datagram came through).
/// busybox's nc has no UDP mode, so the task tests' UDP mapping talks to this.
fn udp_echo(port: u16) -> Value {
    let sock = match std::net::UdpSocket::bind(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return json!({"udp_echo": port, "error": e.to_string()}),
    };
    println!("{}", json!({"udp_echo": port, "listening": true}));
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let mut reply = format!("echo:{}:", from.port()).into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, from);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).map(String::as_str).unwrap_or("report");
    let arg = args.get(2).cloned().unwrap_or_default();
    let out = match cmd {
        "report" => report(),
        "syscall" => syscall(&arg),
        "alloc" => alloc(arg.parse().unwrap_or(64)),
        "fork" => fork(arg.parse().unwrap_or(10)),
        "write" => write_file(&arg),
        "exe-attack" => exe_attack(arg.parse().unwrap_or(3)),
        "open" => open_path(&arg, args.get(3).map(String::as_str).unwrap_or("r")),
        "mknod" => {
            let a = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
            mknod(&arg, a(3), a(4), a(5))
        }
        "burn" => burn(arg.parse().unwrap_or(1000)),
        "ptrace" => {
            let pid: i32 = arg.parse().unwrap_or(1);
            // SAFETY: PTRACE_ATTACH with integer arguments; detached right away on success.
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            let err = if r == 0 { 0 } else { errno() };
            if r == 0 {
                // SAFETY: as above.
                unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
            }
            json!({"ptrace": pid, "errno": err})
        }
        "udp-echo" => udp_echo(arg.parse().unwrap_or(9000)),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(arg.parse().unwrap_or(3600)));
            json!({})
        }
        other => {
            eprintln!("berth-check: unknown command {other}");
            std::process::exit(2);
        }
    };
    println!("{out}");
}
