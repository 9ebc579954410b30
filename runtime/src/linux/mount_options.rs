//! OCI mount `options` → mount(2) flags, propagation and filesystem data.

use nix::mount::MsFlags;

/// What the options of one OCI mount mean to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE (with MS_REC) applied after mounting.
    pub propagation: MsFlags,
    /// Options the kernel does not know as flags: passed to the filesystem as data.
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive_bind: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: Vec::new(),
            bind: false,
            recursive_bind: false,
        }
    }
}

impl MountOptions {
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// Flags that a bind mount only gets on the remount that follows it.
    pub fn needs_remount(&self) -> bool {
        self.flags.intersects(
            MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_RELATIME
                | MsFlags::MS_STRICTATIME,
        )
    }
}

enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    Bind { recursive: bool },
    Ignore,
}

fn effect(option: &str) -> Option<Effect> {
    use Effect::*;
    Some(match option {
        "defaults" | "tmpcopyup" => Ignore,
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "nolazytime" => Clear(MsFlags::MS_LAZYTIME),
        "silent" => Set(MsFlags::MS_SILENT),
        "loud" => Clear(MsFlags::MS_SILENT),
        "bind" => Bind { recursive: false },
        "rbind" => Bind { recursive: true },
        "private" => Propagation(MsFlags::MS_PRIVATE),
        "rprivate" => Propagation(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        "shared" => Propagation(MsFlags::MS_SHARED),
        "rshared" => Propagation(MsFlags::MS_SHARED | MsFlags::MS_REC),
        "slave" => Propagation(MsFlags::MS_SLAVE),
        "rslave" => Propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        "unbindable" => Propagation(MsFlags::MS_UNBINDABLE),
        "runbindable" => Propagation(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        _ => return None,
    })
}

/// Parses OCI mount options; unknown words are filesystem data (`mode=755`, `newinstance`).
pub fn parse<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    for o in options {
        let o = o.as_ref();
        match effect(o) {
            Some(Effect::Set(f)) => out.flags |= f,
            Some(Effect::Clear(f)) => out.flags &= !f,
            Some(Effect::Propagation(f)) => out.propagation = f,
            Some(Effect::Bind { recursive }) => {
                out.bind = true;
                out.recursive_bind |= recursive;
            }
            Some(Effect::Ignore) => {}
            None => out.data.push(o.to_string()),
        }
    }
    out
}

/// Maps `rootfsPropagation` to mount flags.
pub fn propagation(name: &str) -> Option<MsFlags> {
    match effect(name) {
        Some(Effect::Propagation(f)) => Some(f),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_bind_are_separated() {
        let o = parse(&["rbind", "ro", "nosuid", "mode=755", "rslave", "size=1k"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=1k"));
        assert!(o.needs_remount());
    }

    #[test]
    fn later_option_wins() {
        let o = parse(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.needs_remount());
    }
}
