//! The process's user: supplementary groups, gid, uid, umask.

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::User;

use super::{Context, SetupError};

/// Switches to the spec's user. Capabilities survive the uid change through
/// PR_SET_KEEPCAPS; [`super::capabilities::apply`] then sets the final sets.
pub fn switch(user: &User, allow_setgroups: bool) -> Result<(), SetupError> {
    if allow_setgroups {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        setgroups(&groups).ctx(|| "setgroups (process.user.additionalGids)".into())?;
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setresgid {} (process.user.gid)", user.gid()))?;
    nix::sys::prctl::set_keepcaps(true).ctx(|| "PR_SET_KEEPCAPS".into())?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setresuid {} (process.user.uid)", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "PR_SET_KEEPCAPS".into())?;
    if let Some(mask) = user.umask() {
        super::sys::set_umask(mask);
    }
    Ok(())
}
