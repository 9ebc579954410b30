//! process.rlimits → setrlimit.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::SetupError;

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Applies every rlimit. Raising a hard limit needs CAP_SYS_RESOURCE, which some hosts'
/// root lacks: that case gets an error that says so instead of a bare EPERM.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), SetupError> {
    for (i, l) in limits.iter().enumerate() {
        let res = resource(l.typ());
        let new = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit reads a struct that lives for the call.
        let r = unsafe { libc::setrlimit(res, &new) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into a struct we own.
            unsafe { libc::getrlimit(res, &mut cur) };
            let hint = if err.raw_os_error() == Some(libc::EPERM) && l.hard() > cur.rlim_max {
                format!(
                    " (the hard limit {} exceeds the current {} and raising it needs CAP_SYS_RESOURCE, which this host does not grant)",
                    l.hard(),
                    cur.rlim_max
                )
            } else {
                String::new()
            };
            return Err(SetupError::invalid(format!(
                "process.rlimits[{i}] ({:?} soft {} hard {}): {err}{hint}",
                l.typ(),
                l.soft(),
                l.hard()
            )));
        }
    }
    Ok(())
}
