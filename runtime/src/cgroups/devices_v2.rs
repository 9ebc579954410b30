//! The device controller on cgroup v2. v2 has no devices.allow/devices.deny files: the
//! kernel asks a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup instead, and
//! a cgroup without one may open and mknod every device. libcgroups only builds that program
//! behind a feature (and a heavy dependency) berth does not enable, so without this module a
//! container on a v2 host could mknod and open any host device.
//!
//! Semantics follow runc (libcontainer/specconv + cgroups/devices): the spec's
//! `linux.resources.devices`, then runc's default allow list appended (so a spec cannot lock
//! a container out of /dev/null). Evaluation is default deny and last match wins, decided
//! per requested access bit (an O_RDWR open asks for read and write; both must be allowed).
//! Deciding per bit is what the v1 kernel's exception list does and what runc's emulator
//! reproduces: `allow c 1:3 rwm` followed by `deny c 1:3 w` leaves read allowed and write
//! denied.

use std::ffi::CStr;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn};

/// Access bits as the kernel passes them in `bpf_cgroup_dev_ctx.access_type >> 16`.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device types as the kernel passes them in the low 16 bits of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("linux.resources.devices[{index}]: {message}")]
    Rule { index: usize, message: String },
    #[error("device rules: {0}")]
    TooLarge(String),
    #[error("device filter for {path}: {what}: {source}")]
    Bpf {
        path: String,
        what: &'static str,
        source: io::Error,
    },
    #[error(
        "device filter for {path}: the kernel rejected the program: {source}; verifier log: {log}"
    )]
    Rejected {
        path: String,
        source: io::Error,
        log: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Char,
    Block,
}

/// One device rule, validated: `None` major/minor means any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u8,
}

impl Rule {
    /// `a *:* rwm` denied: what a device list starts from.
    pub const DENY_ALL: Rule = Rule {
        allow: false,
        kind: Kind::All,
        major: None,
        minor: None,
        access: ACC_ALL,
    };

    const fn allow_char(major: u32, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind: Kind::Char,
            major: Some(major),
            minor,
            access,
        }
    }

    /// Matches every device for every access it names.
    fn is_unconditional(&self) -> bool {
        self.kind == Kind::All && self.major.is_none() && self.minor.is_none()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        let verdict = if self.allow { "allow" } else { "deny" };
        write!(
            f,
            "{verdict} {kind} {}:{} {access}",
            num(self.major),
            num(self.minor)
        )
    }
}

/// runc's `AllowedDevices`, with the path each entry stands for (a spec device at the same
/// path replaces the default entry, as in runc).
const DEFAULTS: [(Option<&str>, Rule); 10] = [
    // mknod of any node: creating a node grants nothing, opening it is what is checked.
    (
        None,
        Rule {
            allow: true,
            kind: Kind::Char,
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
    ),
    (
        None,
        Rule {
            allow: true,
            kind: Kind::Block,
            major: None,
            minor: None,
            access: ACC_MKNOD,
        },
    ),
    (Some("/dev/null"), Rule::allow_char(1, Some(3), ACC_ALL)),
    (Some("/dev/random"), Rule::allow_char(1, Some(8), ACC_ALL)),
    (Some("/dev/full"), Rule::allow_char(1, Some(7), ACC_ALL)),
    (Some("/dev/tty"), Rule::allow_char(5, Some(0), ACC_ALL)),
    (Some("/dev/zero"), Rule::allow_char(1, Some(5), ACC_ALL)),
    (Some("/dev/urandom"), Rule::allow_char(1, Some(9), ACC_ALL)),
    // /dev/pts/* and /dev/ptmx: the container's own devpts instance.
    (None, Rule::allow_char(136, None, ACC_ALL)),
    (None, Rule::allow_char(5, Some(2), ACC_ALL)),
];

fn number(index: usize, what: &str, n: Option<i64>) -> Result<Option<u32>, DeviceError> {
    match n {
        None | Some(-1) => Ok(None),
        // Immediates in the program are signed 32-bit: larger numbers cannot be compared.
        Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(DeviceError::Rule {
            index,
            message: format!("{what} {v} is out of range (-1 means any)"),
        }),
    }
}

/// One spec rule, checked the way runc checks it (type a/b/c, access non-empty rwm).
pub fn rule_from_spec(index: usize, d: &LinuxDeviceCgroup) -> Result<Rule, DeviceError> {
    let bad = |message: String| DeviceError::Rule { index, message };
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => Kind::All,
        Some(LinuxDeviceType::C) => Kind::Char,
        Some(LinuxDeviceType::B) => Kind::Block,
        Some(other) => {
            return Err(bad(format!(
                "type {:?} is not a cgroup device type (use a, b or c)",
                other.as_str()
            )))
        }
    };
    let access_str = d.access().as_deref().unwrap_or_default();
    if access_str.is_empty() {
        return Err(bad("access is empty (give some of r, w, m)".into()));
    }
    let mut access = 0;
    for c in access_str.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => return Err(bad(format!("access {access_str:?}: unknown {other:?}"))),
        };
    }
    Ok(Rule {
        allow: d.allow(),
        kind,
        major: number(index, "major", d.major())?,
        minor: number(index, "minor", d.minor())?,
        access,
    })
}

/// The rules the container's cgroup enforces: the spec's, then the defaults runc appends
/// (minus those whose path `linux.devices` redefines).
pub fn effective_rules(
    spec_rules: &[LinuxDeviceCgroup],
    spec_devices: &[LinuxDevice],
) -> Result<Vec<Rule>, DeviceError> {
    let mut out = spec_rules
        .iter()
        .enumerate()
        .map(|(i, d)| rule_from_spec(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    for (path, rule) in DEFAULTS {
        if path.is_some_and(|p| spec_devices.iter().any(|d| d.path() == Path::new(p))) {
            continue;
        }
        out.push(rule);
    }
    Ok(out)
}

/// Instruction encodings (the subset the generator uses).
mod op {
    use super::Insn;

    const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
    /// dst = *(u32 *)(src + off)
    pub const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        insn(0x61, dst, src, off, 0)
    }
    /// dst = (u32)dst & imm
    pub const fn and32(dst: u8, imm: i32) -> Insn {
        insn(0x54, dst, 0, 0, imm)
    }
    /// dst = (u32)dst >> imm
    pub const fn rsh32(dst: u8, imm: i32) -> Insn {
        insn(0x74, dst, 0, 0, imm)
    }
    /// dst = (u32)imm
    pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
        insn(0xb4, dst, 0, 0, imm)
    }
    /// dst = (u32)src
    pub const fn mov32_reg(dst: u8, src: u8) -> Insn {
        insn(0xbc, dst, src, 0, 0)
    }
    /// if dst == imm goto +off
    pub const fn jeq(dst: u8, imm: i32) -> Insn {
        insn(0x15, dst, 0, 0, imm)
    }
    /// if dst != imm goto +off
    pub const fn jne(dst: u8, imm: i32) -> Insn {
        insn(0x55, dst, 0, 0, imm)
    }
    /// goto +off
    pub const fn ja() -> Insn {
        insn(0x05, 0, 0, 0, 0)
    }
    pub const fn exit() -> Insn {
        insn(0x95, 0, 0, 0, 0)
    }
}

/// A forward-jump assembler: jumps name labels, offsets are filled in at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    fixups: Vec<(usize, usize)>,
    labels: Vec<usize>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn bind(&mut self, label: usize) {
        self.labels[label] = self.insns.len();
    }
    fn emit(&mut self, i: Insn) {
        self.insns.push(i);
    }
    fn jump(&mut self, i: Insn, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(i);
    }
    fn finish(mut self) -> Result<Vec<Insn>, DeviceError> {
        for (at, label) in self.fixups {
            let target = self.labels[label];
            // Every label is bound before finish (by construction); jumps only go forward.
            debug_assert!(target != usize::MAX && target > at);
            self.insns[at].off = i16::try_from(target - at - 1).map_err(|_| {
                DeviceError::TooLarge(format!(
                    "the device program would need a jump over {} instructions; use fewer rules",
                    target - at - 1
                ))
            })?;
        }
        Ok(self.insns)
    }
}

// Registers: r1 = context on entry, then scratch; r2 = device type; r3 = requested
// access bits; r4 = major; r5 = minor; r0 = verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// Compiles `rules` into a cgroup device program (returns 1 = allow, 0 = deny). For each
/// access bit the kernel asks for, the rules naming that bit are tested last to first; the
/// first match decides that bit, no match denies. The access is allowed if every
/// requested bit is.
pub fn program(rules: &[Rule]) -> Result<Vec<Insn>, DeviceError> {
    let mut a = Asm::default();
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    a.emit(op::ldx_w(R2, R1, 0));
    a.emit(op::and32(R2, 0xffff));
    a.emit(op::ldx_w(R3, R1, 0));
    a.emit(op::rsh32(R3, 16));
    a.emit(op::ldx_w(R4, R1, 4));
    a.emit(op::ldx_w(R5, R1, 8));
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        let next_bit = a.label();
        a.emit(op::mov32_reg(R1, R3));
        a.emit(op::and32(R1, i32::from(bit)));
        a.jump(op::jeq(R1, 0), next_bit);
        let mut decided = false;
        for rule in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let next_rule = a.label();
            match rule.kind {
                Kind::All => {}
                Kind::Char => a.jump(op::jne(R2, DEV_CHAR), next_rule),
                Kind::Block => a.jump(op::jne(R2, DEV_BLOCK), next_rule),
            }
            if let Some(major) = rule.major {
                a.jump(op::jne(R4, major as i32), next_rule);
            }
            if let Some(minor) = rule.minor {
                a.jump(op::jne(R5, minor as i32), next_rule);
            }
            if rule.allow {
                a.jump(op::ja(), next_bit);
            } else {
                a.emit(op::mov32_imm(R0, 0));
                a.emit(op::exit());
            }
            a.bind(next_rule);
            if rule.is_unconditional() {
                // Earlier rules can never be reached for this bit (and the verifier
                // rejects unreachable instructions).
                decided = true;
                break;
            }
        }
        if !decided {
            a.emit(op::mov32_imm(R0, 0));
            a.emit(op::exit());
        }
        a.bind(next_bit);
    }
    a.emit(op::mov32_imm(R0, 1));
    a.emit(op::exit());
    a.finish()
}

/// What the program would answer, computed from the rules directly (the reference the
/// generated program is tested against).
pub fn decide(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    [ACC_MKNOD, ACC_READ, ACC_WRITE]
        .into_iter()
        .filter(|bit| access & bit != 0)
        .all(|bit| {
            rules
                .iter()
                .rev()
                .find(|r| {
                    r.access & bit != 0
                        && (r.kind == Kind::All || r.kind == kind)
                        && r.major.is_none_or(|m| m == major)
                        && r.minor.is_none_or(|m| m == minor)
                })
                .is_some_and(|r| r.allow)
        })
}

const LICENSE: &CStr = c"Apache-2.0";

/// Enforces `rules` on the cgroup directory `dir`: loads the program, attaches it, then
/// detaches whatever device programs were attached there before (on update). The new
/// program is attached first, so there is never a moment without a filter; while both are
/// attached, an access needs both to allow it, which is never more than either allows.
pub fn install(dir: &Path, rules: &[Rule]) -> Result<(), DeviceError> {
    let path = dir.display().to_string();
    let bpf_err = |what: &'static str| {
        let path = path.clone();
        move |source: io::Error| DeviceError::Bpf { path, what, source }
    };
    let insns = program(rules)?;
    let cgroup = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(bpf_err("opening the cgroup"))?;
    let (old, old_flags) =
        bpf::query(cgroup.as_fd()).map_err(bpf_err("listing attached programs"))?;
    let prog = match bpf::load_device_program(&insns, LICENSE, None) {
        Ok(p) => p,
        Err(source)
            if source.raw_os_error() == Some(libc::EACCES)
                || source.raw_os_error() == Some(libc::EINVAL) =>
        {
            // The verifier said no: load again with a log to say why.
            let mut log = vec![0u8; 64 * 1024];
            let _ = bpf::load_device_program(&insns, LICENSE, Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            return Err(DeviceError::Rejected {
                path,
                source,
                log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
            });
        }
        Err(e) => return Err(bpf_err("loading the program")(e)),
    };
    if old.len() == 1 && old_flags & bpf::BPF_F_ALLOW_MULTI == 0 {
        // A single program attached without ALLOW_MULTI (not by berth): attaching the same
        // way replaces it atomically.
        return bpf::attach(cgroup.as_fd(), prog.as_fd(), 0)
            .map_err(bpf_err("attaching the program"));
    }
    bpf::attach(cgroup.as_fd(), prog.as_fd(), bpf::BPF_F_ALLOW_MULTI)
        .map_err(bpf_err("attaching the program"))?;
    for id in old {
        let old_prog = match bpf::prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Gone already (detached by someone else meanwhile).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("opening the previous program")(e)),
        };
        match bpf::detach(cgroup.as_fd(), old_prog.as_fd()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("detaching the previous program")(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceCgroupBuilder};

    fn spec_rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(t) = typ {
            b = b.typ(t);
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("rule")
    }

    fn deny_all() -> LinuxDeviceCgroup {
        spec_rule(false, None, None, None, "rwm")
    }

    const PROLOGUE: [Insn; 6] = [
        op::ldx_w(R2, R1, 0),
        op::and32(R2, 0xffff),
        op::ldx_w(R3, R1, 0),
        op::rsh32(R3, 16),
        op::ldx_w(R4, R1, 4),
        op::ldx_w(R5, R1, 8),
    ];

    fn with_off(mut i: Insn, off: i16) -> Insn {
        i.off = off;
        i
    }

    /// The bit test that opens each access block, skipping `skip` instructions if the
    /// access does not ask for `bit`.
    fn bit_test(bit: u8, skip: i16) -> [Insn; 3] {
        [
            op::mov32_reg(R1, R3),
            op::and32(R1, i32::from(bit)),
            with_off(op::jeq(R1, 0), skip),
        ]
    }

    #[test]
    fn no_rules_denies_everything() {
        let p = program(&[]).expect("program");
        let mut want = PROLOGUE.to_vec();
        for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
            want.extend(bit_test(bit, 2));
            want.extend([op::mov32_imm(R0, 0), op::exit()]);
        }
        want.extend([op::mov32_imm(R0, 1), op::exit()]);
        assert_eq!(p, want);
    }

    #[test]
    fn one_char_rule_is_checked_for_each_of_its_bits() {
        // allow c 1:3 rw: mknod has no rule (deny); read and write test type, major, minor.
        let rules = [Rule::allow_char(1, Some(3), ACC_READ | ACC_WRITE)];
        let p = program(&rules).expect("program");
        let mut want = PROLOGUE.to_vec();
        want.extend(bit_test(ACC_MKNOD, 2));
        want.extend([op::mov32_imm(R0, 0), op::exit()]);
        for bit in [ACC_READ, ACC_WRITE] {
            want.extend(bit_test(bit, 6));
            want.extend([
                with_off(op::jne(R2, DEV_CHAR), 3),
                with_off(op::jne(R4, 1), 2),
                with_off(op::jne(R5, 3), 1),
                with_off(op::ja(), 2), // allowed: on to the next bit
                op::mov32_imm(R0, 0),
                op::exit(),
            ]);
        }
        want.extend([op::mov32_imm(R0, 1), op::exit()]);
        assert_eq!(p, want);
    }

    #[test]
    fn a_trailing_wildcard_hides_earlier_rules() {
        // deny c 1:3 rwm, then allow a *:* rwm: the wildcard decides every bit, the
        // earlier rule is never emitted, and no default deny follows (it would be
        // unreachable, which the verifier rejects).
        let rules = [
            Rule {
                allow: false,
                ..Rule::allow_char(1, Some(3), ACC_ALL)
            },
            Rule {
                allow: true,
                kind: Kind::All,
                major: None,
                minor: None,
                access: ACC_ALL,
            },
        ];
        let p = program(&rules).expect("program");
        let mut want = PROLOGUE.to_vec();
        for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
            want.extend(bit_test(bit, 1));
            want.push(with_off(op::ja(), 0));
        }
        want.extend([op::mov32_imm(R0, 1), op::exit()]);
        assert_eq!(p, want);
    }

    #[test]
    fn deny_rule_exits_with_zero_and_wildcard_major_is_not_compared() {
        // allow a *:* m, then deny b *:* m: for mknod the block deny is tested first.
        let rules = [
            Rule {
                allow: true,
                kind: Kind::All,
                major: None,
                minor: None,
                access: ACC_MKNOD,
            },
            Rule {
                allow: false,
                kind: Kind::Block,
                major: None,
                minor: None,
                access: ACC_MKNOD,
            },
        ];
        let p = program(&rules).expect("program");
        let mut want = PROLOGUE.to_vec();
        want.extend(bit_test(ACC_MKNOD, 4));
        want.extend([
            with_off(op::jne(R2, DEV_BLOCK), 2),
            op::mov32_imm(R0, 0),
            op::exit(),
            with_off(op::ja(), 0),
        ]);
        for bit in [ACC_READ, ACC_WRITE] {
            want.extend(bit_test(bit, 2));
            want.extend([op::mov32_imm(R0, 0), op::exit()]);
        }
        want.extend([op::mov32_imm(R0, 1), op::exit()]);
        assert_eq!(p, want);
    }

    /// Runs a generated program on one access: a tiny interpreter of exactly the opcodes
    /// the generator emits, so every rule set below is checked end to end.
    fn run(p: &[Insn], dev_type: i32, major: u32, minor: u32, access: u8) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [((access as u32) << 16) | dev_type as u32, major, minor];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                0x74 => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                0xb4 => r[dst] = i.imm as u32 as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0x15 if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                0x55 if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                0x15 | 0x55 => {}
                0x05 => pc += i.off as usize,
                0x95 => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn check_against_reference(rules: &[Rule]) {
        let p = program(rules).expect("program");
        for (kind, t) in [(Kind::Char, DEV_CHAR), (Kind::Block, DEV_BLOCK)] {
            for (major, minor) in [
                (1, 3),
                (1, 5),
                (1, 11),
                (5, 2),
                (136, 4),
                (7, 0),
                (10, 200),
                (4095, 1_048_575),
            ] {
                for access in 1..=ACC_ALL {
                    let want = decide(rules, kind, major, minor, access);
                    let got = run(&p, t, major, minor, access) == 1;
                    assert_eq!(
                        got,
                        want,
                        "{kind:?} {major}:{minor} access {access:#b} with rules {:?}",
                        rules.iter().map(|r| r.to_string()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    #[test]
    fn programs_agree_with_the_reference_semantics() {
        let sets: Vec<Vec<LinuxDeviceCgroup>> = vec![
            vec![],
            vec![deny_all()],
            // runc/containerd/docker: deny all, explicit defaults listed in the spec too.
            vec![
                deny_all(),
                spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
                spec_rule(true, Some(LinuxDeviceType::C), Some(136), None, "rwm"),
                spec_rule(true, Some(LinuxDeviceType::C), Some(10), Some(200), "rwm"),
            ],
            // privileged
            vec![spec_rule(true, None, None, None, "rwm")],
            // partial deny after allow: read stays, write goes.
            vec![
                deny_all(),
                spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(11), "rwm"),
                spec_rule(false, Some(LinuxDeviceType::C), Some(1), Some(11), "w"),
            ],
            // allow all, then deny block devices entirely.
            vec![
                spec_rule(true, None, None, None, "rwm"),
                spec_rule(false, Some(LinuxDeviceType::B), None, None, "rwm"),
            ],
            // access split across rules: read and write allowed separately.
            vec![
                deny_all(),
                spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(11), "r"),
                spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(11), "w"),
            ],
        ];
        for set in sets {
            let rules = effective_rules(&set, &[]).expect("rules");
            check_against_reference(&rules);
            // and the bare spec rules, without the appended defaults
            let bare: Vec<Rule> = set
                .iter()
                .enumerate()
                .map(|(i, d)| rule_from_spec(i, d).expect("rule"))
                .collect();
            check_against_reference(&bare);
        }
    }

    /// The programs the generator emits pass the kernel's verifier (loading attaches
    /// nothing, so this is harmless on the host). Needs root (CAP_BPF).
    #[test]
    fn the_kernel_verifier_accepts_the_programs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        let sets = [
            vec![],
            vec![deny_all()],
            vec![spec_rule(true, None, None, None, "rwm")],
            vec![
                deny_all(),
                spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(11), "rwm"),
                spec_rule(false, Some(LinuxDeviceType::C), Some(1), Some(11), "r"),
                spec_rule(true, Some(LinuxDeviceType::B), Some(7), None, "rw"),
            ],
        ];
        for set in sets {
            let rules = effective_rules(&set, &[]).expect("rules");
            let insns = program(&rules).expect("program");
            let mut log = vec![0u8; 64 * 1024];
            if let Err(e) = bpf::load_device_program(&insns, LICENSE, Some(&mut log)) {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                panic!("{e}: {}", String::from_utf8_lossy(&log[..end]));
            }
        }
    }

    #[test]
    fn defaults_are_appended_and_honoured() {
        let rules = effective_rules(&[deny_all()], &[]).expect("rules");
        assert_eq!(rules.len(), 1 + DEFAULTS.len());
        let rw = ACC_READ | ACC_WRITE;
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 0),
            (136, 7),
        ] {
            assert!(
                decide(&rules, Kind::Char, major, minor, rw),
                "c {major}:{minor}"
            );
        }
        // mknod of anything, but no access to what is not listed.
        assert!(decide(&rules, Kind::Block, 7, 0, ACC_MKNOD));
        assert!(decide(&rules, Kind::Char, 1, 1, ACC_MKNOD));
        assert!(!decide(&rules, Kind::Char, 1, 1, ACC_READ));
        assert!(!decide(&rules, Kind::Block, 8, 0, rw));
        assert!(
            !decide(&rules, Kind::Char, 10, 200, rw),
            "tun is not a default (runc >= 1.2)"
        );
        // A spec cannot deny a default device: defaults come last.
        let rules = effective_rules(
            &[spec_rule(
                false,
                Some(LinuxDeviceType::C),
                Some(1),
                Some(3),
                "rwm",
            )],
            &[],
        )
        .expect("rules");
        assert!(decide(&rules, Kind::Char, 1, 3, ACC_READ));
    }

    #[test]
    fn a_spec_device_at_a_default_path_replaces_its_default_rule() {
        let dev = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .build()
            .expect("device");
        let rules = effective_rules(&[deny_all()], &[dev]).expect("rules");
        assert_eq!(rules.len(), DEFAULTS.len());
        assert!(!decide(&rules, Kind::Char, 1, 3, ACC_READ));
    }

    #[test]
    fn invalid_spec_rules_are_refused() {
        let empty = spec_rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "");
        assert!(matches!(
            effective_rules(&[empty], &[]),
            Err(DeviceError::Rule { index: 0, .. })
        ));
        let bad_access = spec_rule(true, None, None, None, "rwx");
        let e = effective_rules(&[deny_all(), bad_access], &[]).expect_err("x");
        assert!(e.to_string().contains("devices[1]"), "{e}");
        let fifo = spec_rule(true, Some(LinuxDeviceType::P), None, None, "rwm");
        assert!(effective_rules(&[fifo], &[]).is_err());
        let huge = spec_rule(true, Some(LinuxDeviceType::C), Some(1 << 40), None, "r");
        assert!(effective_rules(&[huge], &[]).is_err());
        let neg = spec_rule(true, Some(LinuxDeviceType::C), Some(-2), None, "r");
        assert!(effective_rules(&[neg], &[]).is_err());
        // -1 and absent both mean any.
        let any = spec_rule(true, Some(LinuxDeviceType::C), Some(-1), None, "r");
        let r = rule_from_spec(0, &any).expect("rule");
        assert_eq!((r.major, r.minor), (None, None));
    }

    #[test]
    fn display_reads_like_the_v1_files() {
        let r = rule_from_spec(
            0,
            &spec_rule(true, Some(LinuxDeviceType::C), Some(136), None, "rwm"),
        )
        .expect("rule");
        assert_eq!(r.to_string(), "allow c 136:* rwm");
    }
}
