use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::{validate, SpecError};

/// A bundle whose config.json parsed and validated.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Whether the container's process asks for a terminal (`process.terminal`).
    pub fn terminal(&self) -> bool {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false)
    }
}

/// Parses config.json text. Errors name the JSON path (`linux.namespaces[0].type`), because
/// serde's own messages only give a line and column.
pub fn parse_config(text: &str) -> Result<Spec, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        SpecError::Parse {
            path: if path == "." {
                "(document)".into()
            } else {
                path
            },
            message: inner.to_string(),
        }
    })
}

/// Loads and validates `<dir>/config.json`.
pub fn load_bundle(dir: &Path) -> Result<Bundle, SpecError> {
    let dir = std::path::absolute(dir).map_err(|source| SpecError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|source| SpecError::Read {
        path: config.display().to_string(),
        source,
    })?;
    let spec = parse_config(&text)?;
    let rootfs = validate(&spec, &dir)?;
    Ok(Bundle { dir, rootfs, spec })
}
