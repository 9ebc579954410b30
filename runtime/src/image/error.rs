//! The image module's error: every variant names the image reference (as the user wrote it,
//! or the store name) and, where one is involved, the blob, so a failure reads as
//! `image oci-archive:b.tar: layer sha256:ab…: entry "../x": path leaves the layer`.

use std::io;
use std::path::PathBuf;

use super::digest::{Digest, Mismatch};
use super::reference::ReferenceError;
use super::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error("image {name} is not in the image store {root} (import it with `berth image import FILE --name {name}`)")]
    NotFound { name: String, root: PathBuf },

    #[error("image {reference}: {what}: {source}")]
    Io {
        reference: String,
        what: String,
        source: io::Error,
    },

    #[error("image {reference}: {what} {digest}: {problem}")]
    Blob {
        reference: String,
        /// Which blob: "manifest", "config", "layer 2/5".
        what: String,
        digest: Digest,
        problem: BlobProblem,
    },

    /// index.json or a manifest that does not describe a usable image.
    #[error("image {reference}: {reason}")]
    Invalid { reference: String, reason: String },

    #[error("image {reference}: layer {digest}: {source}")]
    Layer {
        reference: String,
        digest: Digest,
        source: UnpackError,
    },

    #[error("rootfs in {dir}: overlayfs is not available on this host ({source}); berth needs it for image rootfs (modprobe overlay)")]
    OverlayUnavailable { dir: PathBuf, source: io::Error },

    #[error("rootfs in {dir}: {what}: {source}")]
    Rootfs {
        dir: PathBuf,
        what: String,
        source: io::Error,
    },

    #[error("image store {root}: {what}: {source}")]
    Store {
        root: PathBuf,
        what: String,
        source: io::Error,
    },
}

/// What is wrong with a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobProblem {
    #[error("not found in the image")]
    Missing,
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    #[error("is {size} bytes, more than the {limit} bytes allowed for this kind of blob")]
    TooLarge { size: u64, limit: u64 },
    #[error("media type {0:?} is not supported here")]
    MediaType(String),
    #[error("is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("reading: {0}")]
    Read(io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
