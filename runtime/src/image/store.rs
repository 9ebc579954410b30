//! berth's image store: named images imported from OCI layouts or archives, their blobs, the
//! layer cache, and leases that keep in-use layers from garbage collection.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>    verified blobs (manifests, configs, layer tarballs)
//! ROOT/layers/sha256/<hex>/  unpacked layers, keyed by diffID (see cache.rs)
//! ROOT/names/<name>          one JSON record per name → manifest digest
//! ROOT/leases/<hex>          one per mounted rootfs: its dir and the layers it stacks
//! ROOT/locks/, ROOT/tmp/     per-layer locks; scratch space on the store's filesystem
//! ROOT/lock                  shared: import, unpack, prepare; exclusive: gc
//! ```
//!
//! Every directory berth creates here is mode 0700: unpacked layers hold set-uid binaries and
//! device nodes that must not be reachable by unprivileged host users (overlayfs reads lower
//! layers with the mounter's credentials, so containers are unaffected).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::cache::LayerCache;
use super::digest::Digest;
use super::error::{BlobProblem, Error, Result};
use super::layout::{self, Image};
use super::lock::FileLock;
use super::manifest::Descriptor;
use super::reference::{ImageName, Reference};
use super::rootfs::{self, Rootfs};
use super::source::BlobSource;

pub const DEFAULT_ROOT: &str = "/var/lib/berth/images";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What the store remembers about a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    pub name: String,
    /// The manifest's digest: the image's identity.
    pub digest: Digest,
    pub media_type: String,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    pub layers: usize,
    /// Sum of the layer blob sizes.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Seconds since the epoch.
    pub imported: u64,
}

#[derive(Debug, Clone)]
pub struct Imported {
    pub record: ImageRecord,
    /// Layers this import unpacked (the others were in the cache already).
    pub unpacked_layers: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub stale_leases_removed: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    dir: PathBuf,
    layers: Vec<Digest>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    cache: LayerCache,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let store = Store {
            cache: LayerCache::new(
                root.join("layers/sha256"),
                root.join("locks"),
                root.join("tmp"),
            ),
            root,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&store.root)
            .map_err(store.err("creating the store"))?;
        // The root's own mode is left alone when it exists (it may be a shared directory a
        // user pointed at): what needs protecting lives in the 0700 subdirectories.
        for d in [
            "blobs/sha256",
            "layers/sha256",
            "names",
            "leases",
            "locks",
            "tmp",
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(store.root.join(d))
                .map_err(store.err(format!("creating {d}")))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let root = self.root.clone();
        let what = what.into();
        move |source| Error::Store { root, what, source }
    }

    fn lock_shared(&self) -> Result<FileLock> {
        FileLock::shared(&self.root.join("lock")).map_err(self.err("locking the store"))
    }

    fn lock_exclusive(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.root.join("lock")).map_err(self.err("locking the store"))
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    fn name_path(&self, name: &ImageName) -> PathBuf {
        self.root.join("names").join(name.file_name())
    }

    fn temp_path(&self, kind: &str) -> PathBuf {
        self.root.join("tmp").join(format!(
            "{kind}-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Writes `bytes` to `dest` atomically (temp file, fsync, rename).
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.temp_path("file");
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Resolves `oci:PATH[:TAG]`, `oci-archive:PATH[:TAG]` or a stored name.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        match Reference::parse(reference)? {
            Reference::Layout { path, tag } => {
                layout::load(Arc::new(BlobSource::dir(reference, &path)?), tag.as_deref())
            }
            Reference::Archive { path, tag } => layout::load(
                Arc::new(BlobSource::archive(reference, &path)?),
                tag.as_deref(),
            ),
            Reference::Name(name) => {
                let record = self.record(&name)?;
                let source = Arc::new(BlobSource::dir(&record.name, &self.root)?);
                layout::load_manifest(
                    source,
                    Descriptor {
                        media_type: record.media_type,
                        digest: record.digest,
                        size: record.manifest_size,
                        annotations: Default::default(),
                        platform: None,
                    },
                )
            }
        }
    }

    fn record(&self, name: &ImageName) -> Result<ImageRecord> {
        let path = self.name_path(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                    root: self.root.clone(),
                })
            }
            Err(e) => return Err(self.err(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!("record {}", path.display()))(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            ))
        })
    }

    /// Imports the image in a layout or archive (`FILE`, `oci:…`, `oci-archive:…`) under
    /// `name`, or under the full name its index annotates. Blobs are copied into the store
    /// (verified) and the layers unpacked into the cache, so the first container is fast.
    pub fn import(&self, source: &str, name: Option<&str>) -> Result<Imported> {
        let image = match Reference::for_import(source)? {
            Reference::Layout { path, tag } => {
                layout::load(Arc::new(BlobSource::dir(source, &path)?), tag.as_deref())?
            }
            Reference::Archive { path, tag } => layout::load(
                Arc::new(BlobSource::archive(source, &path)?),
                tag.as_deref(),
            )?,
            // for_import never yields a name; a stored image needs no import either way.
            Reference::Name(n) => {
                return Err(Error::Invalid {
                    reference: source.to_string(),
                    reason: format!("{n} is a stored name, not a layout or archive to import"),
                })
            }
        };
        let name = match name {
            Some(n) => ImageName::parse(n)?,
            // A layout's ref.name is usually just a tag ("latest"): only a full name will do.
            None => match image.annotated_name.as_deref() {
                Some(n) if n.contains(':') || n.contains('/') => ImageName::parse(n)?,
                other => {
                    return Err(Error::Invalid {
                        reference: source.to_string(),
                        reason: format!(
                            "the image has no full name in its index ({}): give one with --name",
                            other.map_or("no ref.name annotation".to_string(), |n| format!(
                                "ref.name {n:?}"
                            ))
                        ),
                    })
                }
            },
        };
        let _lock = self.lock_shared()?;
        // Stage every blob (verified while copied), unpack every layer (verified again, with
        // its diffID), and only then commit the blobs and the name: an image that fails
        // anywhere leaves no blob and no name behind. (A layer it fully verified and unpacked
        // before a later one failed stays in the cache until the next gc: it may already be
        // shared with another image, and only gc, under the exclusive lock, can tell.)
        let staging = self.temp_path("import");
        let result = self.stage_and_unpack(&image, &staging);
        let committed = result.and_then(|unpacked| {
            self.commit_staged(&staging)?;
            Ok(unpacked)
        });
        let _ = fs::remove_dir_all(&staging);
        let unpacked_layers = committed?;
        let n = image.layers.len();
        let record = ImageRecord {
            name: name.to_string(),
            digest: image.manifest.digest.clone(),
            media_type: image.manifest.media_type.clone(),
            manifest_size: image.manifest.size,
            layers: n,
            size: image.size(),
            created: image.config.created.clone(),
            imported: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| {
            self.err("encoding the record")(io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        let path = self.name_path(&name);
        self.write_atomic(&path, &bytes)
            .map_err(self.err(format!("writing {}", path.display())))?;
        Ok(Imported {
            record,
            unpacked_layers,
        })
    }

    /// Copies the image's blobs that the store lacks into `staging` (verifying each), then
    /// unpacks its layers from the source; returns how many layers were unpacked.
    fn stage_and_unpack(&self, image: &Image, staging: &Path) -> Result<usize> {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(staging)
            .map_err(self.err(format!("creating {}", staging.display())))?;
        let n = image.layers.len();
        let mut blobs = vec![
            ("manifest".to_string(), &image.manifest),
            ("config".to_string(), &image.config_blob),
        ];
        for (i, layer) in image.layers.iter().enumerate() {
            blobs.push((format!("layer {}/{n}", i + 1), &layer.blob));
        }
        for (what, desc) in blobs {
            if !self.blob_path(&desc.digest).is_file() {
                self.stage_blob(
                    image.source(),
                    &what,
                    desc,
                    &staging.join(desc.digest.hex()),
                )?;
            }
        }
        self.unpack_locked(image)
    }

    /// Copies one blob to `dest`, verifying size and digest on the way.
    fn stage_blob(
        &self,
        source: &BlobSource,
        what: &str,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<()> {
        let mut reader = source.open_blob(what, desc)?;
        let copy = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)?;
            io::copy(&mut reader, &mut f)?;
            f.sync_all()
        })();
        copy.map_err(self.err(format!("copying {what} {}", desc.digest)))?;
        reader
            .finish(&desc.digest, Some(desc.size))
            .map_err(|e| source.blob_error(what, &desc.digest, BlobProblem::Read(e)))?
            .map_err(|m| source.blob_error(what, &desc.digest, BlobProblem::Mismatch(m)))
    }

    /// Moves verified staged blobs (named by their hex digest) into blobs/.
    fn commit_staged(&self, staging: &Path) -> Result<()> {
        for entry in fs::read_dir(staging).map_err(self.err("listing staged blobs"))? {
            let entry = entry.map_err(self.err("listing staged blobs"))?;
            let dest = self.root.join("blobs/sha256").join(entry.file_name());
            fs::rename(entry.path(), &dest)
                .map_err(self.err(format!("storing {}", dest.display())))?;
        }
        Ok(())
    }

    /// The names in the store, sorted.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("names");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(self.err("listing names"))? {
            let entry = entry.map_err(self.err("listing names"))?;
            let path = entry.path();
            let bytes = fs::read(&path).map_err(self.err(format!("reading {}", path.display())))?;
            match serde_json::from_slice::<ImageRecord>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!("skipping unreadable image record {}: {e}", path.display())
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a name, then collects what no name or mounted rootfs uses any more.
    pub fn remove(&self, name: &str) -> Result<GcReport> {
        let name = ImageName::parse(name)?;
        let path = self.name_path(&name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                    root: self.root.clone(),
                })
            }
            Err(e) => return Err(self.err(format!("removing {}", path.display()))(e)),
        }
        self.gc()
    }

    /// Removes blobs and unpacked layers that no stored name and no live rootfs lease
    /// references, leases whose rootfs is no longer mounted, and leftover temp files.
    /// Runs under the exclusive store lock, so no import or prepare is half-way.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        let mut report = GcReport::default();
        let mut live_blobs: HashSet<String> = HashSet::new();
        let mut live_layers: HashSet<String> = HashSet::new();
        for record in self.list()? {
            // A name whose image no longer loads aborts the collection: without its manifest
            // we cannot tell which blobs it needs, and deleting nothing is the safe answer.
            let image = self.resolve(&record.name)?;
            live_blobs.insert(image.manifest.digest.hex().to_string());
            live_blobs.insert(image.config_blob.digest.hex().to_string());
            for l in &image.layers {
                live_blobs.insert(l.blob.digest.hex().to_string());
                live_layers.insert(l.diff_id.hex().to_string());
            }
        }
        let leases = self.root.join("leases");
        for entry in fs::read_dir(&leases).map_err(self.err("listing leases"))? {
            let path = entry.map_err(self.err("listing leases"))?.path();
            let lease: Option<Lease> = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match lease {
                Some(l) if rootfs::is_mounted(&l.dir.join(rootfs::MOUNT_DIR)) => {
                    live_layers.extend(l.layers.iter().map(|d| d.hex().to_string()));
                }
                _ => {
                    fs::remove_file(&path)
                        .map_err(self.err(format!("removing stale lease {}", path.display())))?;
                    report.stale_leases_removed += 1;
                }
            }
        }
        report.blobs_removed =
            self.remove_unlisted(&self.root.join("blobs/sha256"), &live_blobs)?;
        report.layers_removed =
            self.remove_unlisted(&self.root.join("layers/sha256"), &live_layers)?;
        let lock_names: HashSet<String> = live_layers.iter().map(|h| format!("{h}.lock")).collect();
        self.remove_unlisted(&self.root.join("locks"), &lock_names)?;
        self.remove_unlisted(&self.root.join("tmp"), &HashSet::new())?;
        Ok(report)
    }

    /// Removes every entry of `dir` whose name is not in `keep`; returns how many.
    fn remove_unlisted(&self, dir: &Path, keep: &HashSet<String>) -> Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(dir).map_err(self.err(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(self.err(format!("listing {}", dir.display())))?;
            if keep.contains(entry.file_name().to_string_lossy().as_ref()) {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let r = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            r.map_err(self.err(format!("removing {}", path.display())))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Unpacks the image's layers into the cache (those not there yet); returns how many
    /// were unpacked.
    pub fn unpack(&self, image: &Image) -> Result<usize> {
        let _lock = self.lock_shared()?;
        self.unpack_locked(image)
    }

    fn unpack_locked(&self, image: &Image) -> Result<usize> {
        let n = image.layers.len();
        let mut unpacked = 0;
        for (i, layer) in image.layers.iter().enumerate() {
            if self
                .cache
                .ensure(image.source(), &format!("layer {}/{n}", i + 1), layer)?
            {
                unpacked += 1;
            }
        }
        Ok(unpacked)
    }

    /// The cached layer directories of an unpacked image, top layer first (overlayfs order).
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.cache.path(&l.diff_id))
            .collect()
    }

    fn lease_path(&self, dir: &Path) -> PathBuf {
        let id = Digest::of(dir.as_os_str().as_encoded_bytes());
        self.root.join("leases").join(id.hex())
    }

    /// Prepares a container rootfs for `image` in `dir` (see [`rootfs`]): unpacks missing
    /// layers, records a lease so GC keeps them, and mounts the overlay.
    ///
    /// `dir` is created mode 0700 if missing: the merged view holds the image's set-uid
    /// binaries, which unprivileged host users must not reach through it.
    pub fn prepare_rootfs(&self, image: &Image, dir: &Path) -> Result<Rootfs> {
        let rootfs_err = |what: &str| {
            let (dir, what) = (dir.to_path_buf(), what.to_string());
            move |source| Error::Rootfs { dir, what, source }
        };
        // Shared until the lease is written: gc (exclusive) cannot remove the layers between
        // their unpacking and the lease that protects them.
        let _lock = self.lock_shared()?;
        let unpacked = self.unpack_locked(image)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(rootfs_err("creating the directory"))?;
        // Absolute, so gc can check the mount from any working directory.
        let dir = fs::canonicalize(dir).map_err(rootfs_err("resolving the directory"))?;
        // Mount first: a `dir` that already holds a rootfs is refused there, before its
        // lease (the same file, named after `dir`) could be overwritten or removed.
        let path = rootfs::mount(&dir, &self.layer_dirs(image))?;
        let lease_path = self.lease_path(&dir);
        let lease = Lease {
            dir: dir.clone(),
            layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
        };
        let written = serde_json::to_vec(&lease)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            .and_then(|bytes| self.write_atomic(&lease_path, &bytes));
        let rootfs = Rootfs::new(dir, path, lease_path.clone(), unpacked);
        match written {
            Ok(()) => Ok(rootfs),
            // Dropping `rootfs` unmounts it again.
            Err(e) => Err(self.err(format!("writing lease {}", lease_path.display()))(
                e,
            )),
        }
    }

    /// Tears down a rootfs prepared in `dir` by an earlier process (see [`Rootfs::keep`]).
    pub fn teardown_rootfs(&self, dir: &Path) -> Result<()> {
        let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        rootfs::teardown_with_lease(&dir, &self.lease_path(&dir))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
