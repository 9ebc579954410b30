//! process.capabilities: bounding set first (needs CAP_SETPCAP, so before the uid change),
//! the other four sets after it.

use std::collections::HashSet;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::SetupError;

fn convert(set: &Capabilities) -> CapsHashSet {
    // strum prints `SYS_ADMIN`; caps parses `CAP_SYS_ADMIN`. Capabilities this kernel
    // library does not know cannot be granted anyway.
    set.iter()
        .filter_map(|c: &Capability| format!("CAP_{c}").parse::<Cap>().ok())
        .collect()
}

fn sets(c: &LinuxCapabilities) -> [(CapSet, &'static str, CapsHashSet); 5] {
    let get = |s: &Option<Capabilities>| s.as_ref().map(convert).unwrap_or_default();
    [
        (CapSet::Bounding, "bounding", get(c.bounding())),
        (CapSet::Effective, "effective", get(c.effective())),
        (CapSet::Permitted, "permitted", get(c.permitted())),
        (CapSet::Inheritable, "inheritable", get(c.inheritable())),
        (CapSet::Ambient, "ambient", get(c.ambient())),
    ]
}

/// Refuses capabilities this host cannot give (not in our own bounding set), naming them,
/// instead of failing later with a bare EPERM.
pub fn check(c: &LinuxCapabilities) -> Result<(), SetupError> {
    let host: HashSet<Cap> = caps::read(None, CapSet::Bounding).unwrap_or_default();
    for (set, name, wanted) in sets(c) {
        if matches!(set, CapSet::Bounding) {
            continue;
        }
        let mut missing: Vec<String> = wanted.difference(&host).map(|c| c.to_string()).collect();
        if !missing.is_empty() {
            missing.sort();
            return Err(SetupError::invalid(format!(
                "process.capabilities.{name}: {} not available on this host (not in the runtime's bounding set)",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// Drops what is not in the bounding set. Called while still root.
pub fn apply_bounding(c: &LinuxCapabilities) -> Result<(), SetupError> {
    let keep = c.bounding().as_ref().map(convert).unwrap_or_default();
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                SetupError::invalid(format!("dropping {cap} from the bounding set: {e}"))
            })?;
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable and ambient exactly as the spec says (after the
/// uid change). An empty inheritable set is the default (CVE-2022-29162).
pub fn apply_sets(c: &LinuxCapabilities) -> Result<(), SetupError> {
    let [_, (_, _, eff), (_, _, perm), (_, _, inh), (_, _, amb)] = sets(c);
    let fail = |what: &str, e: caps::errors::CapsError| {
        SetupError::invalid(format!("setting {what} capabilities: {e}"))
    };
    if !eff.is_subset(&perm) {
        return Err(SetupError::invalid(
            "process.capabilities.effective: must be a subset of process.capabilities.permitted",
        ));
    }
    // Inheritable first, while CAP_SETPCAP is still effective; then effective shrinks, so
    // that permitted can shrink under it (the kernel demands effective ⊆ permitted).
    caps::set(None, CapSet::Inheritable, &inh).map_err(|e| fail("inheritable", e))?;
    caps::set(None, CapSet::Effective, &eff).map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &perm).map_err(|e| fail("permitted", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    for cap in amb {
        caps::raise(None, CapSet::Ambient, cap).map_err(|e| fail("ambient", e))?;
    }
    Ok(())
}
