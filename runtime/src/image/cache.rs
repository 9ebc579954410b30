//! The layer cache: each layer unpacked once, into `layers/sha256/<diffID>` under the store
//! root, and shared read-only by every rootfs that stacks it.
//!
//! A layer is unpacked into a private temp dir next to the cache, both of its digests (the
//! blob's and the uncompressed diffID) are checked, the tree is synced, and only then is it
//! renamed into place: a reader sees a complete, verified layer or none. A per-layer flock
//! makes concurrent preparers of one image wait for the first unpacker instead of repeating
//! its work; should two still race (a lock file removed under them), the second rename fails
//! with ENOTEMPTY and that unpacker discards its copy.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::{Digest, Hashing, Mismatch};
use super::error::{BlobProblem, Error, Result};
use super::layout::Layer;
use super::lock::FileLock;
use super::source::BlobSource;
use super::unpack::{self, UnpackError};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct LayerCache {
    /// `layers/sha256`
    dir: PathBuf,
    /// `locks`: one lock file per layer.
    locks: PathBuf,
    /// `tmp`: on the same filesystem as `dir`, so the final rename is atomic.
    tmp: PathBuf,
}

impl LayerCache {
    pub fn new(dir: PathBuf, locks: PathBuf, tmp: PathBuf) -> LayerCache {
        LayerCache { dir, locks, tmp }
    }

    /// Where the layer with this diffID is (or would be) unpacked.
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(diff_id.hex())
    }

    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    pub fn lock_path(&self, diff_id: &Digest) -> PathBuf {
        self.locks.join(format!("{}.lock", diff_id.hex()))
    }

    /// Makes sure the layer is in the cache; true if this call unpacked it.
    /// `what` names the layer in errors ("layer 2/5"). The caller holds the store lock
    /// shared ([`super::Store`] does), so gc cannot remove lock files or temp dirs under it.
    pub fn ensure(&self, source: &BlobSource, what: &str, layer: &Layer) -> Result<bool> {
        let final_dir = self.path(&layer.diff_id);
        if final_dir.is_dir() {
            return Ok(false);
        }
        let io_err = |what: String| {
            let reference = source.reference().to_string();
            move |e: io::Error| Error::Io {
                reference,
                what,
                source: e,
            }
        };
        let lock_path = self.lock_path(&layer.diff_id);
        let _lock = FileLock::exclusive(&lock_path)
            .map_err(io_err(format!("locking {}", lock_path.display())))?;
        if final_dir.is_dir() {
            // Another process unpacked it while we waited for the lock.
            return Ok(false);
        }
        let tmp = self.tmp.join(format!(
            "layer-{}-{}-{}",
            layer.diff_id.short(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .map_err(io_err(format!("creating {}", tmp.display())))?;
        match self.unpack_verified(source, what, layer, &tmp) {
            Ok(()) => {}
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        match fs::rename(&tmp, &final_dir) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(io_err(format!(
                    "moving unpacked layer into {}",
                    final_dir.display()
                ))(e))
            }
        }
    }

    /// Unpacks into `tmp`, hashing both the blob and the uncompressed tar on the way; any
    /// mismatch is an error (and the caller discards `tmp`). The tar stream is parsed before
    /// its digest is known (hashing first would mean reading every layer twice); that is safe
    /// because nothing leaves `tmp` unless both digests match, and the unpacker is confined
    /// to `tmp` whatever the bytes say.
    fn unpack_verified(
        &self,
        source: &BlobSource,
        what: &str,
        layer: &Layer,
        tmp: &Path,
    ) -> Result<()> {
        let mut blob = source.open_blob(what, &layer.blob)?;
        let tar_result = (|| -> std::result::Result<Option<Mismatch>, UnpackError> {
            let decompressed = unpack::decompress(&mut blob).map_err(UnpackError::Read)?;
            let mut tar_stream = Hashing::new(decompressed);
            unpack::unpack_tar(&mut tar_stream, tmp)?;
            let checked = tar_stream
                .finish(&layer.diff_id, None)
                .map_err(UnpackError::Read)?;
            Ok(checked.err())
        })();
        // Judge the blob whatever happened: a corrupt blob is the root cause of a tar error
        // or a diffID mismatch, and the more useful thing to report.
        match blob.finish(&layer.blob.digest, Some(layer.blob.size)) {
            Ok(Err(m)) => {
                return Err(source.blob_error(what, &layer.blob.digest, BlobProblem::Mismatch(m)))
            }
            Err(e) if tar_result.is_ok() => {
                return Err(source.blob_error(what, &layer.blob.digest, BlobProblem::Read(e)))
            }
            _ => {}
        }
        match tar_result {
            Err(e) => Err(Error::Layer {
                reference: source.reference().to_string(),
                digest: layer.blob.digest.clone(),
                source: e,
            }),
            Ok(Some(m)) => Err(source.blob_error(
                &format!("{what} uncompressed (diffID)"),
                &layer.diff_id,
                BlobProblem::Mismatch(m),
            )),
            Ok(None) => {
                // Durable before it becomes visible: after a crash the cache must not hold
                // a layer whose files were never written back.
                let sync = fs::File::open(tmp)
                    .and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from));
                sync.map_err(|e| Error::Io {
                    reference: source.reference().to_string(),
                    what: format!("syncing unpacked {what}"),
                    source: e,
                })
            }
        }
    }
}
