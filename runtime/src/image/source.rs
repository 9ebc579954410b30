//! Where an image's blobs come from: a directory in OCI layout form (`index.json` +
//! `blobs/sha256/<hex>`; berth's own store keeps its blobs the same way) or an OCI archive,
//! read in place: the outer tar is uncompressed, so each blob is a byte range of the file,
//! found by one pass over the tar headers, and nothing is copied out to a temp dir first.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::digest::{self, Digest, Hashing};
use super::error::{BlobProblem, Error, Result};
use super::manifest::Descriptor;

/// index.json is not content-addressed; bound what we read of it.
const INDEX_LIMIT: u64 = 4 << 20;

#[derive(Debug)]
enum Kind {
    Dir(PathBuf),
    Archive {
        path: PathBuf,
        /// Member path (normalised, no leading `./`) → (offset of its data, size).
        members: HashMap<String, (u64, u64)>,
    },
}

/// An image's blobs, with the reference they were named by (for error messages).
#[derive(Debug)]
pub struct BlobSource {
    reference: String,
    kind: Kind,
}

impl BlobSource {
    /// A directory holding `blobs/sha256/…` (and, for a layout, `index.json`).
    pub fn dir(reference: &str, dir: &Path) -> Result<BlobSource> {
        if !dir.is_dir() {
            return Err(Error::Invalid {
                reference: reference.to_string(),
                reason: format!("{} is not a directory", dir.display()),
            });
        }
        Ok(BlobSource {
            reference: reference.to_string(),
            kind: Kind::Dir(dir.to_path_buf()),
        })
    }

    /// An OCI archive: scans its tar headers once (seeking over member data).
    pub fn archive(reference: &str, path: &Path) -> Result<BlobSource> {
        let io_err = |what: &str, source| Error::Io {
            reference: reference.to_string(),
            what: format!("{what} {}", path.display()),
            source,
        };
        let file = File::open(path).map_err(|e| io_err("opening archive", e))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .map_err(|e| io_err("reading archive (not a tar?)", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("reading archive (not a tar?)", e))?;
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = name.trim_start_matches("./").to_string();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        if !members.contains_key("index.json") {
            return Err(Error::Invalid {
                reference: reference.to_string(),
                reason: format!(
                    "{} is not an OCI archive (no index.json in the tar; a `docker save` tarball is not supported: convert it with `skopeo copy docker-archive:FILE oci-archive:OUT`)",
                    path.display()
                ),
            });
        }
        Ok(BlobSource {
            reference: reference.to_string(),
            kind: Kind::Archive {
                path: path.to_path_buf(),
                members,
            },
        })
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The directory blobs live in, when they are plain files (layouts and the store).
    pub fn blob_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            Kind::Archive { .. } => None,
        }
    }

    /// Opens a member (`index.json`, `blobs/sha256/<hex>`): its reader and its actual size,
    /// or None when the image has no such member.
    fn open(&self, member: &str) -> io::Result<Option<(Box<dyn Read + Send>, u64)>> {
        match &self.kind {
            Kind::Dir(dir) => match File::open(dir.join(member)) {
                Ok(f) => {
                    let size = f.metadata()?.len();
                    Ok(Some((Box::new(f), size)))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Kind::Archive { path, members } => {
                let Some(&(offset, size)) = members.get(member) else {
                    return Ok(None);
                };
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(Some((Box::new(f.take(size)), size)))
            }
        }
    }

    /// index.json's bytes.
    pub fn read_index(&self) -> Result<Vec<u8>> {
        let what = "reading index.json";
        let io_err = |source| Error::Io {
            reference: self.reference.clone(),
            what: what.to_string(),
            source,
        };
        let (reader, size) =
            self.open("index.json")
                .map_err(io_err)?
                .ok_or_else(|| Error::Invalid {
                    reference: self.reference.clone(),
                    reason: "no index.json: not an OCI image layout".to_string(),
                })?;
        if size > INDEX_LIMIT {
            return Err(Error::Invalid {
                reference: self.reference.clone(),
                reason: format!("index.json is {size} bytes, more than {INDEX_LIMIT}"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        reader
            .take(INDEX_LIMIT)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
        Ok(buf)
    }

    /// Opens a blob after checking that it exists and has the descriptor's size. The reader
    /// hashes as it goes: the caller must call [`Hashing::finish`] and reject the result on a
    /// mismatch before committing anything derived from it.
    pub fn open_blob(
        &self,
        what: &str,
        desc: &Descriptor,
    ) -> Result<Hashing<Box<dyn Read + Send>>> {
        let blob_err = |problem| self.blob_error(what, &desc.digest, problem);
        let member = format!("blobs/sha256/{}", desc.digest.hex());
        let (reader, size) = self
            .open(&member)
            .map_err(|e| blob_err(BlobProblem::Read(e)))?
            .ok_or_else(|| blob_err(BlobProblem::Missing))?;
        if size != desc.size {
            return Err(blob_err(BlobProblem::Mismatch(digest::Mismatch::Size {
                expected: desc.size,
                actual: size,
            })));
        }
        Ok(Hashing::new(reader))
    }

    /// Reads a small blob (manifest, index, config) whole, verified before it is returned.
    pub fn read_blob(&self, what: &str, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        let blob_err = |problem| self.blob_error(what, &desc.digest, problem);
        if desc.size > limit {
            return Err(blob_err(BlobProblem::TooLarge {
                size: desc.size,
                limit,
            }));
        }
        let mut reader = self.open_blob(what, desc)?;
        let mut buf = Vec::with_capacity(desc.size as usize);
        (&mut reader)
            .take(desc.size)
            .read_to_end(&mut buf)
            .map_err(|e| blob_err(BlobProblem::Read(e)))?;
        reader
            .finish(&desc.digest, Some(desc.size))
            .map_err(|e| blob_err(BlobProblem::Read(e)))?
            .map_err(|m| blob_err(BlobProblem::Mismatch(m)))?;
        Ok(buf)
    }

    pub fn blob_error(&self, what: &str, digest: &Digest, problem: BlobProblem) -> Error {
        Error::Blob {
            reference: self.reference.clone(),
            what: what.to_string(),
            digest: digest.clone(),
            problem,
        }
    }
}
