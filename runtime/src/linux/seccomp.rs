//! linux.seccomp → a BPF filter through libseccomp, the library runc, crun and youki use,
//! so that a profile means the same thing under berth as under them.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::LinuxSeccomp;
use serde::Serialize;

use super::SetupError;

/// The serde name of an oci-spec enum value (`SCMP_ACT_ERRNO`, `SCMP_ARCH_X86_64`, ...).
fn name_of<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(name: &str, errno: Option<u32>, field: &str) -> Result<ScmpAction, SetupError> {
    let val = match name {
        "SCMP_ACT_ERRNO" => Some(errno.unwrap_or(libc::EPERM as u32) as i32),
        "SCMP_ACT_TRACE" => Some(errno.unwrap_or(libc::EPERM as u32) as i32),
        _ => None,
    };
    ScmpAction::from_str(name, val)
        .map_err(|e| SetupError::invalid(format!("{field}: {name}: {e}")))
}

/// Builds the filter; loading is separate so that it happens as late as possible.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext, SetupError> {
    let fail = |what: &str, e: libseccomp::error::SeccompError| {
        SetupError::invalid(format!("linux.seccomp: {what}: {e}"))
    };
    let default = action(
        &name_of(&s.default_action()),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| fail("init", e))?;
    // no_new_privs is process.noNewPrivileges' decision, not the filter's.
    ctx.set_ctl_nnp(false)
        .map_err(|e| fail("nnp attribute", e))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let n = name_of(a);
        let arch: ScmpArch = n
            .parse()
            .map_err(|e| fail(&format!("architectures[{i}] {n}"), e))?;
        match ctx.add_arch(arch) {
            Ok(_) => {}
            // The native architecture is already in the filter.
            Err(e) if e.errno() == Some(libseccomp::error::SeccompErrno::EEXIST) => {}
            Err(e) => return Err(fail(&format!("architectures[{i}] {n}"), e)),
        }
    }
    for f in s.flags().iter().flatten() {
        match name_of(f).as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => {
                ctx.set_ctl_log(true).map_err(|e| fail("flag LOG", e))?;
            }
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => {
                ctx.set_ctl_ssb(true)
                    .map_err(|e| fail("flag SPEC_ALLOW", e))?;
            }
            "SECCOMP_FILTER_FLAG_TSYNC" => {
                ctx.set_ctl_tsync(true).map_err(|e| fail("flag TSYNC", e))?;
            }
            other => {
                return Err(SetupError::invalid(format!(
                    "linux.seccomp.flags: {other} is not supported"
                )))
            }
        }
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(&name_of(&rule.action()), rule.errno_ret(), &field)?;
        if act == default {
            // libseccomp refuses rules equal to the default action; they change nothing.
            continue;
        }
        let mut conds = Vec::new();
        for (j, a) in rule.args().iter().flatten().enumerate() {
            let op_name = name_of(&a.op());
            let op: ScmpCompareOp = op_name
                .parse()
                .map_err(|e| fail(&format!("syscalls[{i}].args[{j}].op"), e))?;
            let (op, datum) = match op {
                ScmpCompareOp::MaskedEqual(_) => (
                    ScmpCompareOp::MaskedEqual(a.value()),
                    a.value_two().unwrap_or(0),
                ),
                other => (other, a.value()),
            };
            conds.push(ScmpArgCompare::new(a.index() as u32, op, datum));
        }
        for name in rule.names() {
            // Names unknown to this libseccomp (newer syscalls) are skipped, as runc does:
            // a profile written for a newer kernel must still load.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown syscall skipped");
                continue;
            };
            let r = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            r.map_err(|e| fail(&format!("syscalls[{i}] {name}"), e))?;
        }
    }
    Ok(ctx)
}

pub fn load(ctx: &ScmpFilterContext) -> Result<(), SetupError> {
    ctx.load()
        .map_err(|e| SetupError::invalid(format!("loading the seccomp filter: {e}")))
}
