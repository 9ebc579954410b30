//! Namespaces: clone flags for the ones a container creates, setns for the ones it joins.

use std::fs::File;
use std::os::fd::AsFd;

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{Context, SetupError};

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME has the value of CSIGNAL's top bit; nix lacks a constant.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(0x80),
    }
}

/// Namespaces the container creates (no `path`) as clone flags.
pub fn new_flags(spec: &Spec) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    for ns in spec
        .linux()
        .iter()
        .flat_map(|l| l.namespaces().iter().flatten())
    {
        if ns.path().is_none() {
            flags |= flag(ns.typ());
        }
    }
    flags
}

pub fn has(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .iter()
        .flat_map(|l| l.namespaces().iter().flatten())
        .any(|n| n.typ() == t)
}

/// Namespaces joined by path, in the order that works: user first (it grants the
/// privileges for the rest), mount last (paths stop resolving on the host after it).
pub fn joins(spec: &Spec) -> Vec<(LinuxNamespaceType, std::path::PathBuf)> {
    let mut out: Vec<_> = spec
        .linux()
        .iter()
        .flat_map(|l| l.namespaces().iter().flatten())
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect();
    let rank = |t: &LinuxNamespaceType| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    };
    out.sort_by_key(|(t, _)| rank(t));
    out
}

/// Joins one namespace by path, checking it is a namespace of the expected type.
pub fn join(t: LinuxNamespaceType, path: &std::path::Path) -> Result<(), SetupError> {
    let f = File::open(path).ctx(|| format!("opening namespace {}", path.display()))?;
    setns(f.as_fd(), flag(t)).ctx(|| format!("joining namespace {}", path.display()))
}
