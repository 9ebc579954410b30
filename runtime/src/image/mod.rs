//! OCI images without a registry: image layouts and archives on disk, a named store, a
//! content-addressed layer cache, and an overlayfs rootfs per container.
//!
//! ```text
//! reference ──▶ source (layout dir | archive tar | store) ──▶ layout: index → manifest → config
//!                                                                      │
//!                   cache: each layer verified + unpacked once ◀───────┘
//!                                    │
//!                   rootfs: overlay(lower = cached layers, upper/work = fresh) per container
//! ```
//!
//! - [`reference`]: `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]`, stored names
//! - [`source`]: reading blobs from a layout directory or in place from an archive
//! - [`layout`]: choosing and verifying manifest and config; [`Image`]
//! - [`manifest`], [`config`]: the JSON documents; config → `berth_taskdef::ImageConfig`
//! - [`digest`]: sha256 digests and hashing readers
//! - [`confined`], [`unpack`]: layer tar → directory, nothing escapes, whiteouts for overlayfs
//! - [`cache`]: unpack-once layer cache; [`lock`]: flock helpers
//! - [`rootfs`]: the overlay mount and its guard; [`store`]: import/list/remove/gc/resolve
//!
//! docs/images.md in the repository records the decisions and measurements.

pub mod cache;
pub mod config;
pub mod confined;
pub mod digest;
pub mod error;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod reference;
pub mod rootfs;
pub mod source;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod unpack;

pub use config::{ExecutionConfig, ImageConfiguration};
pub use digest::Digest;
pub use error::{BlobProblem, Error};
pub use layout::{Image, Layer};
pub use reference::{ImageName, Reference};
pub use rootfs::Rootfs;
pub use store::{GcReport, ImageRecord, Imported, Store, DEFAULT_ROOT};
