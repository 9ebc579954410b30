//! The image configuration blob (`application/vnd.oci.image.config.v1+json`, or Docker's
//! `container.image.v1`): the platform, the layer diffIDs, and the execution parameters that
//! shape a container's process (Entrypoint/Cmd/Env/WorkingDir/User), handed to the task
//! planner as [`berth_taskdef::ImageConfig`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Execution parameters; absent in some minimal images.
    #[serde(default)]
    pub config: Option<ExecutionConfig>,
    pub rootfs: RootFs,
}

/// `rootfs` of the configuration: one diffID (digest of the *uncompressed* tar) per layer,
/// bottom first. The layer cache is keyed by these, so one layer shipped gzip'd in one image
/// and uncompressed in another is unpacked once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The `config` object: the process defaults a container inherits from its image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `{"8080/tcp": {}}` in the JSON; the values carry nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl From<&ExecutionConfig> for berth_taskdef::ImageConfig {
    fn from(c: &ExecutionConfig) -> Self {
        berth_taskdef::ImageConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: c.env.clone().unwrap_or_default(),
            // An empty string means "not set" in image configs written by Docker and buildah.
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            user: c.user.clone().filter(|u| !u.is_empty()),
        }
    }
}

impl ImageConfiguration {
    /// The process defaults in the task planner's form (all empty for an image without them).
    pub fn process_defaults(&self) -> berth_taskdef::ImageConfig {
        self.config
            .as_ref()
            .map(berth_taskdef::ImageConfig::from)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_taskdef_image_config() {
        let c: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"","User":"1000:1000",
                      "ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .expect("parse");
        let t = c.process_defaults();
        assert_eq!(t.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(t.entrypoint, None);
        assert_eq!(t.env, vec!["PATH=/bin".to_string()]);
        assert_eq!(t.working_dir, None);
        assert_eq!(t.user.as_deref(), Some("1000:1000"));
    }

    #[test]
    fn config_without_execution_parameters() {
        let c: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .expect("parse");
        assert_eq!(c.process_defaults(), berth_taskdef::ImageConfig::default());
    }
}
