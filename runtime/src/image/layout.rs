//! From an image's blobs to one runnable image: index.json → (nested index, by platform) →
//! manifest (by its `org.opencontainers.image.ref.name` tag, or the only one) → config and
//! layers. Every manifest, index and config is read whole and verified before it is parsed.

use std::sync::Arc;

use super::config::ImageConfiguration;
use super::digest::Digest;
use super::error::{BlobProblem, Error, Result};
use super::manifest::{self, Descriptor, Index, Kind, Manifest};
use super::source::BlobSource;

/// Manifests and indexes are small; a bound keeps a hostile image from making us buffer a
/// huge blob as JSON.
const MANIFEST_LIMIT: u64 = 4 << 20;
const CONFIG_LIMIT: u64 = 16 << 20;
/// An index may point at an index (a multi-platform image inside a layout); no deeper.
const MAX_INDEX_DEPTH: usize = 2;

/// One layer of an image: the blob as stored and the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Descriptor,
    pub diff_id: Digest,
}

/// A resolved image: verified manifest and config, the layers to stack (bottom first), and
/// where their blobs are.
#[derive(Debug, Clone)]
pub struct Image {
    /// The reference as the user gave it (or the store name).
    pub reference: String,
    /// The manifest's descriptor; its digest identifies the image.
    pub manifest: Descriptor,
    /// The config blob's descriptor (from the manifest).
    pub config_blob: Descriptor,
    pub config: ImageConfiguration,
    pub layers: Vec<Layer>,
    /// The name the image index gave the manifest (ref.name annotation), if any.
    pub annotated_name: Option<String>,
    pub(crate) source: Arc<BlobSource>,
}

impl Image {
    pub fn digest(&self) -> &Digest {
        &self.manifest.digest
    }

    /// The process defaults (Entrypoint/Cmd/Env/WorkingDir/User) for the task planner.
    pub fn process_defaults(&self) -> berth_taskdef::ImageConfig {
        self.config.process_defaults()
    }

    /// Sum of the layer blob sizes (compressed, as stored).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.size).sum()
    }

    pub fn source(&self) -> &BlobSource {
        &self.source
    }
}

fn invalid(source: &BlobSource, reason: impl Into<String>) -> Error {
    Error::Invalid {
        reference: source.reference().to_string(),
        reason: reason.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    source: &BlobSource,
    what: &str,
    desc: &Descriptor,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| source.blob_error(what, &desc.digest, BlobProblem::Json(e)))
}

/// Loads the image a layout or archive holds, choosing the manifest by `tag`.
pub fn load(source: Arc<BlobSource>, tag: Option<&str>) -> Result<Image> {
    let index: Index = serde_json::from_slice(&source.read_index()?)
        .map_err(|e| invalid(&source, format!("index.json is not valid JSON: {e}")))?;
    let chosen = choose_by_tag(&source, &index, tag)?;
    let annotated_name = chosen
        .ref_name()
        .or_else(|| {
            chosen
                .annotations
                .get(manifest::CONTAINERD_NAME)
                .map(String::as_str)
        })
        .map(str::to_string);
    let mut image = load_manifest(source, chosen)?;
    image.annotated_name = annotated_name;
    Ok(image)
}

/// Loads the image whose manifest is `desc` (the store knows its manifest digest by name).
pub fn load_manifest(source: Arc<BlobSource>, desc: Descriptor) -> Result<Image> {
    let desc = descend_to_manifest(&source, desc)?;
    let bytes = source.read_blob("manifest", &desc, MANIFEST_LIMIT)?;
    let m: Manifest = parse(&source, "manifest", &desc, &bytes)?;
    if let Some(mt) = &m.media_type {
        if manifest::kind_of(mt) != Kind::Manifest {
            return Err(source.blob_error(
                "manifest",
                &desc.digest,
                BlobProblem::MediaType(mt.clone()),
            ));
        }
    }
    if !m.config.media_type.is_empty() && !manifest::is_config(&m.config.media_type) {
        // An artifact (Helm chart, signature, …) rather than a container image.
        return Err(source.blob_error(
            "config",
            &m.config.digest,
            BlobProblem::MediaType(m.config.media_type.clone()),
        ));
    }
    let config_bytes = source.read_blob("config", &m.config, CONFIG_LIMIT)?;
    let config: ImageConfiguration = parse(&source, "config", &m.config, &config_bytes)?;
    check_platform(&source, &config)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(invalid(
            &source,
            format!(
                "the manifest lists {} layers but the config {} diffIDs",
                m.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    for (i, (blob, diff_id)) in m.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        if manifest::layer_compression(&blob.media_type).is_none() {
            return Err(source.blob_error(
                &format!("layer {}/{}", i + 1, m.layers.len()),
                &blob.digest,
                BlobProblem::MediaType(blob.media_type.clone()),
            ));
        }
        layers.push(Layer {
            blob: blob.clone(),
            diff_id: diff_id.clone(),
        });
    }
    Ok(Image {
        reference: source.reference().to_string(),
        manifest: desc,
        config_blob: m.config.clone(),
        config,
        layers,
        annotated_name: None,
        source,
    })
}

fn choose_by_tag(source: &BlobSource, index: &Index, tag: Option<&str>) -> Result<Descriptor> {
    let tags = || {
        let t: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(Descriptor::ref_name)
            .collect();
        if t.is_empty() {
            "none".to_string()
        } else {
            t.join(", ")
        }
    };
    match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some(tag))
            .cloned()
            .ok_or_else(|| {
                invalid(
                    source,
                    format!(
                        "no manifest tagged {tag:?} in index.json (tags: {})",
                        tags()
                    ),
                )
            }),
        None => match index.manifests.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(invalid(source, "index.json lists no manifests")),
            many => Err(invalid(
                source,
                format!(
                    "index.json lists {} manifests: choose one with :TAG (tags: {})",
                    many.len(),
                    tags()
                ),
            )),
        },
    }
}

/// Follows image indexes (multi-platform images) down to the manifest for this host.
fn descend_to_manifest(source: &BlobSource, mut desc: Descriptor) -> Result<Descriptor> {
    for _ in 0..MAX_INDEX_DEPTH {
        if manifest::kind_of(&desc.media_type) != Kind::Index {
            return Ok(desc);
        }
        let bytes = source.read_blob("image index", &desc, MANIFEST_LIMIT)?;
        let index: Index = parse(source, "image index", &desc, &bytes)?;
        let arch = manifest::host_architecture();
        let matching = |d: &&Descriptor| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        };
        desc = match index.manifests.iter().find(matching) {
            Some(d) => d.clone(),
            None if index.manifests.len() == 1 && index.manifests[0].platform.is_none() => {
                index.manifests[0].clone()
            }
            None => {
                return Err(invalid(
                    source,
                    format!(
                        "image index {} has no manifest for linux/{arch}",
                        desc.digest
                    ),
                ))
            }
        };
    }
    Err(invalid(source, "image indexes nested too deeply"))
}

fn check_platform(source: &BlobSource, config: &ImageConfiguration) -> Result<()> {
    let arch = manifest::host_architecture();
    if !config.os.is_empty() && config.os != "linux" {
        return Err(invalid(
            source,
            format!(
                "the image is for os {:?}; berth runs linux images",
                config.os
            ),
        ));
    }
    if !config.architecture.is_empty() && config.architecture != arch {
        return Err(invalid(
            source,
            format!(
                "the image is for architecture {:?}; this host is {arch}",
                config.architecture
            ),
        ));
    }
    Ok(())
}
