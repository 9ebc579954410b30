//! Where the shim keeps things, and which shim serves a container (its group).
//!
//! - berth's state root: `<dir of containerd's socket>/berth/<namespace>`, so
//!   `/run/containerd/berth/<ns>` for the system containerd and a private directory for a
//!   private containerd (tests). It never collides with the CLI's default `/run/berth`.
//! - the shim socket: `<dir of containerd's socket>/s/<sha256>` (the directory containerd ≥
//!   2.3 asks for, if it does), hashed from containerd's address, the namespace and the group
//!   key. For the system containerd that is containerd's own convention,
//!   `/run/containerd/s/<sha256>`; a private containerd keeps its shims' sockets to itself.
//! - the group key: the CRI sandbox id or berth's task annotation, else the container id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Annotations that put containers into one shim, in order of precedence.
pub const GROUP_ANNOTATIONS: [&str; 2] = ["io.kubernetes.cri.sandbox-id", "berth.task.id"];

/// containerd's socket directory when no address was given (a shim started by hand).
const DEFAULT_CONTAINERD_DIR: &str = "/run/containerd";

pub fn state_root(containerd_address: &str, namespace: &str) -> Result<PathBuf> {
    if namespace.is_empty()
        || namespace.contains('/')
        || namespace == "."
        || namespace == ".."
        || namespace.contains('\0')
    {
        return Err(Error::InvalidArgument(format!(
            "namespace {namespace:?} cannot name a directory"
        )));
    }
    let sock = containerd_address
        .strip_prefix("unix://")
        .unwrap_or(containerd_address);
    let dir = match Path::new(sock).parent() {
        Some(d) if !sock.is_empty() && d.is_absolute() => d.to_path_buf(),
        _ => PathBuf::from(DEFAULT_CONTAINERD_DIR),
    };
    Ok(dir.join("berth").join(namespace))
}

/// Longest unix socket path (sun_path holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// `/` + hex sha256.
const SOCKET_NAME_LEN: usize = 65;

/// The directory for shim sockets next to containerd's socket, None (containerd-shim's
/// `/run/containerd/s`) where that would make the path too long for a unix socket.
pub fn socket_dir(containerd_address: &str) -> Option<String> {
    let sock = socket_path(containerd_address);
    let dir = sock.parent().filter(|d| d.is_absolute())?.join("s");
    let dir = dir.to_str()?.to_string();
    (dir.len() + SOCKET_NAME_LEN <= MAX_SOCKET_PATH).then_some(dir)
}

/// The group key of a bundle: read from its config.json annotations.
pub fn group_key(bundle: &Path, id: &str) -> String {
    group_from(&annotations(bundle)).unwrap_or(id).to_string()
}

/// A bundle's config.json annotations; empty if it cannot be read (the library reports a
/// broken config.json properly, at Create).
pub fn annotations(bundle: &Path) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: HashMap<String, String>,
    }
    // Only the annotations are read: a full spec parse is the library's job, at Create.
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Annotated>(&b).ok())
        .map(|a| a.annotations)
        .unwrap_or_default()
}

/// The group annotation that is set, and its value.
pub fn group_annotation(annotations: &HashMap<String, String>) -> Option<(&'static str, &str)> {
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k).map(|v| (*k, v.as_str())))
        .filter(|(_, v)| !v.is_empty())
}

fn group_from(annotations: &HashMap<String, String>) -> Option<&str> {
    group_annotation(annotations).map(|(_, v)| v)
}

/// A `unix://` address as a filesystem path.
pub fn socket_path(address: &str) -> &Path {
    Path::new(address.strip_prefix("unix://").unwrap_or(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_root_follows_containerd_socket() {
        assert_eq!(
            state_root("/run/containerd/containerd.sock", "default").ok(),
            Some(PathBuf::from("/run/containerd/berth/default"))
        );
        assert_eq!(
            state_root("/tmp/x/containerd.sock", "k8s.io").ok(),
            Some(PathBuf::from("/tmp/x/berth/k8s.io"))
        );
        assert_eq!(
            state_root("", "ns").ok(),
            Some(PathBuf::from("/run/containerd/berth/ns"))
        );
        assert!(state_root("/run/c.sock", "../x").is_err());
        assert!(state_root("/run/c.sock", "..").is_err());
    }

    #[test]
    fn socket_dir_is_next_to_containerd() {
        assert_eq!(
            socket_dir("/run/containerd/containerd.sock").as_deref(),
            Some("/run/containerd/s")
        );
        assert_eq!(socket_dir("").as_deref(), None);
        let long = format!("/{}/containerd.sock", "d".repeat(60));
        assert_eq!(socket_dir(&long), None);
    }

    #[test]
    fn group_precedence() {
        let mut a = HashMap::new();
        assert_eq!(group_from(&a), None);
        a.insert("berth.task.id".to_string(), "task1".to_string());
        assert_eq!(group_from(&a), Some("task1"));
        a.insert("io.kubernetes.cri.sandbox-id".to_string(), "sb".to_string());
        assert_eq!(group_from(&a), Some("sb"));
    }
}
