//! The few bpf(2) commands the cgroup v2 device controller needs: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, attach it to a cgroup, list the programs attached
//! there and detach one. Raw syscalls rather than libbpf: four commands do not justify a C
//! library. Each attr struct below mirrors the prefix of the kernel's `union bpf_attr` that
//! its command reads; the kernel zero-fills whatever lies past the size we pass, so newer
//! kernels with longer unions accept these as they are.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One eBPF instruction (`struct bpf_insn`): `regs` holds dst_reg in the low nibble and
/// src_reg in the high nibble (the bitfield layout on little-endian machines).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may be attached to one cgroup; all of them must allow an access.
pub const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `_pad` makes the trailing padding explicit: the kernel rejects non-zero bytes past the
/// fields it knows, and implicit padding is not guaranteed to be zero.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Issues bpf(`cmd`, `attr`, sizeof `attr`) and returns its non-negative result.
///
/// # Safety
/// `attr` must be the attr layout `cmd` reads, and every address stored in it must point
/// to memory valid (and writable where the kernel writes) for the duration of the call.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees that `attr` matches `cmd` and that the addresses in it
    // are valid; the size passed is exactly that of `*attr`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Wraps a descriptor the kernel just returned to us.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a successful bpf() that returns a descriptor hands us its only reference.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a cgroup device program. With `log`, the verifier writes its log there (used to
/// explain a rejection).
pub fn load_device_program(
    insns: &[Insn],
    license: &CStr,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    let insn_cnt =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..5].copy_from_slice(b"berth");
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: PROG_LOAD attr; `insns`, `license` (NUL-terminated) and the log buffer (of
    // the size given) are borrowed for the whole call.
    let fd = unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr)? };
    owned(fd)
}

/// Attaches `prog` to the cgroup directory `cgroup` as its device program.
pub fn attach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: PROG_ATTACH attr holding plain integers only.
    unsafe { sys_bpf(BPF_PROG_ATTACH, &mut attr)? };
    Ok(())
}

/// Detaches `prog` from the cgroup directory `cgroup`.
pub fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: PROG_DETACH uses the PROG_ATTACH attr layout; plain integers only.
    unsafe { sys_bpf(BPF_PROG_DETACH, &mut attr)? };
    Ok(())
}

/// The device programs attached directly to `cgroup` (not inherited ones), and the flags
/// they were attached with.
pub fn query(cgroup: BorrowedFd<'_>) -> io::Result<(Vec<u32>, u32)> {
    // More than a handful would mean someone else manages this cgroup; 64 is plenty.
    let mut ids = [0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: PROG_QUERY attr; `ids` is writable for `prog_cnt` entries during the call.
    unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr)? };
    let n = (attr.prog_cnt as usize).min(ids.len());
    Ok((ids[..n].to_vec(), attr.attach_flags))
}

/// A descriptor for the loaded program with kernel id `id`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: GET_FD_BY_ID attr holding plain integers only.
    let fd = unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)? };
    owned(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts must match the kernel's: offsets are ABI.
    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
    }
}
