//! Applying one layer tarball to an empty directory, in the form overlayfs reads as a lower
//! layer: OCI whiteouts (`.wh.NAME`) become 0:0 character devices, opaque markers
//! (`.wh..wh..opq`) become `trusted.overlay.opaque=y` on their directory. Modes, owners,
//! mtimes, symlinks, hardlinks (within the layer), device nodes and xattrs are preserved.
//!
//! Every entry is created relative to a directory fd reached through [`ConfinedDir`] (see
//! there why nothing can escape). Entries never overwrite through a symlink: a name that
//! already exists is unlinked first (unless both are directories, which merge).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};

use super::confined::{self, ConfinedDir, PathProblem, SafePath};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {entry:?} refused: {problem}")]
    UnsafePath { entry: String, problem: PathProblem },
    #[error("entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error("entry {entry:?}: {what}: {source}")]
    Entry {
        entry: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("reading the layer: {0}")]
    Read(io::Error),
    #[error("opening the unpack directory {dir}: {source}")]
    Destination { dir: String, source: io::Error },
}

/// Counts of what a layer held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
}

/// Decompresses a layer stream by its magic bytes (as containerd does), so an uncompressed
/// layer mislabelled `+gzip` or vice versa still unpacks; the media type only decided that
/// the blob is a layer at all. The digests of both streams are checked by the caller.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 << 10, reader);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: some tools write concatenated gzip members.
        Ok(Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::bufread::MultiGzDecoder::new(buf),
        )))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(BufReader::with_capacity(
            256 << 10,
            ZstdFrames {
                input: Some(buf),
                frame: None,
            },
        )))
    } else {
        Ok(Box::new(buf))
    }
}

/// A zstd stream of one or more frames (ruzstd's decoder reads one frame and takes its input
/// by value, so the input moves into each frame's decoder and back out at its end).
struct ZstdFrames<R: BufRead> {
    input: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.input = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut input) = self.input.take() else {
                return Ok(0);
            };
            let at_end = input.fill_buf().map(|b| b.is_empty());
            match at_end {
                Ok(false) => {}
                other => {
                    self.input = Some(input);
                    return other.map(|_| 0);
                }
            }
            let frame = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            self.frame = Some(frame);
        }
    }
}

/// Unpacks the (decompressed) tar stream `reader` into the empty directory `dest`.
pub fn unpack_tar<R: Read>(reader: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let root = ConfinedDir::open(dest).map_err(|source| UnpackError::Destination {
        dir: dest.display().to_string(),
        source,
    })?;
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    // Directory mtimes change as entries land inside them: set them after the last entry.
    let mut dir_times: Vec<(Vec<Vec<u8>>, Timestamps)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        stats.entries += 1;
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let path = SafePath::parse(&raw_path).map_err(|problem| UnpackError::UnsafePath {
            entry: name.clone(),
            problem,
        })?;
        let meta = Metadata::of(&mut entry).map_err(|reason| UnpackError::Invalid {
            entry: name.clone(),
            reason,
        })?;
        let kind = entry.header().entry_type();
        let ctx = |what: &'static str| {
            let entry = name.clone();
            move |source: io::Error| UnpackError::Entry {
                entry,
                what,
                source,
            }
        };

        let Some((parent, file_name)) = path.split_last() else {
            // `./`: the layer root itself.
            if kind.is_dir() {
                meta.apply_fd(root.root())
                    .map_err(ctx("setting attributes"))?;
                dir_times.push((Vec::new(), meta.times()));
            }
            continue;
        };
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let dir = root
            .open_dir(parent, true)
            .map_err(ctx("opening parent directory"))?;
        let dir = dir.as_fd();
        let fname = file_name.as_bytes();

        if fname == OPAQUE_MARKER {
            rustix::fs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(io::Error::from)
                .map_err(ctx("marking directory opaque (needs CAP_SYS_ADMIN)"))?;
            stats.opaque_dirs += 1;
            continue;
        }
        if fname.starts_with(b".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless for overlayfs.
            continue;
        }
        if let Some(hidden) = fname.strip_prefix(WHITEOUT_PREFIX) {
            if matches!(hidden, b"" | b"." | b"..") {
                return Err(UnpackError::Invalid {
                    entry: name,
                    reason: "whiteout of an invalid name".to_string(),
                });
            }
            let hidden = OsStr::from_bytes(hidden);
            confined::remove_all_at(dir, hidden).map_err(ctx("replacing with a whiteout"))?;
            // overlayfs's whiteout: a character device 0:0.
            rustix::fs::mknodat(dir, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(io::Error::from)
                .map_err(ctx("creating whiteout (needs CAP_MKNOD)"))?;
            stats.whiteouts += 1;
            continue;
        }

        match kind {
            tar::EntryType::Directory => {
                match confined::existing_type(dir, file_name).map_err(ctx("inspecting"))? {
                    Some(FileType::Directory) => {}
                    other => {
                        if other.is_some() {
                            confined::remove_all_at(dir, file_name).map_err(ctx("replacing"))?;
                        }
                        rustix::fs::mkdirat(dir, file_name, Mode::from_raw_mode(0o700))
                            .map_err(io::Error::from)
                            .map_err(ctx("creating directory"))?;
                    }
                }
                let fd = confined::open_subdir(dir, file_name).map_err(ctx("opening directory"))?;
                meta.apply_fd(fd.as_fd())
                    .map_err(ctx("setting attributes"))?;
                dir_times.push((
                    path.components().iter().map(|c| c.to_vec()).collect(),
                    meta.times(),
                ));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                confined::remove_all_at(dir, file_name).map_err(ctx("replacing"))?;
                let fd = rustix::fs::openat(
                    dir,
                    file_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io::Error::from)
                .map_err(ctx("creating file"))?;
                let mut file = File::from(fd);
                stats.bytes += io::copy(&mut entry, &mut file).map_err(ctx("writing file"))?;
                meta.apply_fd(file.as_fd())
                    .map_err(ctx("setting attributes"))?;
                rustix::fs::futimens(&file, &meta.times())
                    .map_err(io::Error::from)
                    .map_err(ctx("setting mtime"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Invalid {
                        entry: name.clone(),
                        reason: "symlink without a target".to_string(),
                    })?;
                confined::remove_all_at(dir, file_name).map_err(ctx("replacing"))?;
                // The target is stored, never followed by berth: any text is harmless here.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), dir, file_name)
                    .map_err(io::Error::from)
                    .map_err(ctx("creating symlink"))?;
                meta.apply_at(dir, file_name, false)
                    .map_err(ctx("setting attributes"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Invalid {
                        entry: name.clone(),
                        reason: "hardlink without a target".to_string(),
                    })?;
                let target_path =
                    SafePath::parse(&target).map_err(|problem| UnpackError::UnsafePath {
                        entry: format!("{name} (hardlink to {})", String::from_utf8_lossy(&target)),
                        problem,
                    })?;
                let Some((tparent, tname)) = target_path.split_last() else {
                    return Err(UnpackError::Invalid {
                        entry: name,
                        reason: "hardlink to the layer root".to_string(),
                    });
                };
                // The target is reached by the same confined walk, so it is inside the layer.
                let tdir = root
                    .open_dir(tparent, false)
                    .map_err(ctx("opening hardlink target's directory"))?;
                confined::remove_all_at(dir, file_name).map_err(ctx("replacing"))?;
                // Flags 0: linkat does not follow a symlink target (links the symlink itself).
                rustix::fs::linkat(&tdir, tname, dir, file_name, AtFlags::empty())
                    .map_err(io::Error::from)
                    .map_err(ctx("creating hardlink"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ftype, dev) = match kind {
                    tar::EntryType::Char => (FileType::CharacterDevice, meta.device),
                    tar::EntryType::Block => (FileType::BlockDevice, meta.device),
                    _ => (FileType::Fifo, 0),
                };
                confined::remove_all_at(dir, file_name).map_err(ctx("replacing"))?;
                rustix::fs::mknodat(dir, file_name, ftype, Mode::from_raw_mode(0o600), dev)
                    .map_err(io::Error::from)
                    .map_err(ctx("creating device node"))?;
                meta.apply_at(dir, file_name, true)
                    .map_err(ctx("setting attributes"))?;
            }
            other => {
                return Err(UnpackError::Invalid {
                    entry: name,
                    reason: format!("unsupported tar entry type {other:?}"),
                })
            }
        }
    }
    for (components, times) in dir_times.iter().rev() {
        let parts: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
        let entry = String::from_utf8_lossy(&components.join(&b'/')).into_owned();
        let fd = root
            .open_dir(&parts, false)
            .map_err(|source| UnpackError::Entry {
                entry: entry.clone(),
                what: "opening directory",
                source,
            })?;
        rustix::fs::futimens(&fd, times).map_err(|e| UnpackError::Entry {
            entry,
            what: "setting mtime",
            source: e.into(),
        })?;
    }
    Ok(stats)
}

/// The attributes of one tar entry, PAX records taking precedence over the ustar header.
struct Metadata {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: (i64, u32),
    device: rustix::fs::Dev,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Metadata {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Metadata, String> {
        let h = entry.header();
        let bad = |what: &str, e: io::Error| format!("bad {what} in header: {e}");
        let mut uid = h.uid().map_err(|e| bad("uid", e))?;
        let mut gid = h.gid().map_err(|e| bad("gid", e))?;
        let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let mut mtime = (
            i64::try_from(h.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX),
            0u32,
        );
        let kind = h.entry_type();
        let device = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let major = h
                .device_major()
                .map_err(|e| bad("device major", e))?
                .unwrap_or(0);
            let minor = h
                .device_minor()
                .map_err(|e| bad("device minor", e))?
                .unwrap_or(0);
            rustix::fs::makedev(major, minor)
        } else {
            0
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| bad("PAX records", e))? {
            for ext in pax {
                let ext = ext.map_err(|e| bad("PAX record", e))?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                match key {
                    "uid" => uid = parse_pax_number(key, value)?,
                    "gid" => gid = parse_pax_number(key, value)?,
                    "mtime" => mtime = parse_pax_time(value)?,
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            // overlayfs's own xattrs would let a layer forge redirects, opaque
                            // dirs or metacopy: only berth's whiteout conversion sets them.
                            if !name.starts_with("trusted.overlay.")
                                && !name.starts_with("user.overlay.")
                            {
                                xattrs.push((name.to_string(), value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| format!("{what} {v} is out of range"))
        };
        Ok(Metadata {
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mode,
            mtime,
            device,
            xattrs,
        })
    }

    fn times(&self) -> Timestamps {
        let t = Timespec {
            tv_sec: self.mtime.0,
            tv_nsec: self.mtime.1.into(),
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }

    /// Owner, then mode (chown clears set-id bits), then xattrs (chown also drops
    /// security.capability), on an open file or directory.
    fn apply_fd(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        for (name, value) in &self.xattrs {
            tolerate_unsupported(
                rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()),
                name,
            )?;
        }
        Ok(())
    }

    /// The same for a symlink or device node, which cannot be opened for fd operations.
    /// `chmod`: false for symlinks (their mode is meaningless and cannot be set on Linux).
    fn apply_at(&self, dir: BorrowedFd<'_>, name: &OsStr, chmod: bool) -> io::Result<()> {
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if chmod {
            // The node was just created by us in a directory only berth writes to, so the
            // name still refers to it (chmodat cannot refuse to follow a symlink).
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(self.mode), AtFlags::empty())?;
        }
        if !self.xattrs.is_empty() {
            // lsetxattr through our own directory fd's /proc entry: the directory is pinned by
            // the fd and the final name is not followed.
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(name.as_bytes());
            let path = OsStr::from_bytes(&path);
            for (xname, value) in &self.xattrs {
                tolerate_unsupported(
                    rustix::fs::lsetxattr(path, xname.as_str(), value, XattrFlags::empty()),
                    xname,
                )?;
            }
        }
        rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// An xattr the filesystem cannot hold (security.selinux without SELinux, say) is skipped
/// with a warning rather than failing the image.
fn tolerate_unsupported(r: rustix::io::Result<()>, name: &str) -> io::Result<()> {
    match r {
        Err(rustix::io::Errno::NOTSUP) => {
            tracing::warn!(
                "xattr {name} is not supported by the layer store's filesystem: skipped"
            );
            Ok(())
        }
        other => Ok(other?),
    }
}

fn parse_pax_number(key: &str, value: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "PAX {key} {:?} is not a number",
                String::from_utf8_lossy(value)
            )
        })
}

/// PAX mtime: decimal seconds with an optional fraction (`1700000000.123456789`).
fn parse_pax_time(value: &[u8]) -> Result<(i64, u32), String> {
    let s = std::str::from_utf8(value).map_err(|_| "PAX mtime is not text".to_string())?;
    let (secs, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let secs: i64 = secs
        .parse()
        .map_err(|_| format!("PAX mtime {s:?} is not a number"))?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        let n: u32 = digits
            .parse()
            .map_err(|_| format!("PAX mtime {s:?} is not a number"))?;
        n * 10u32.pow(9 - digits.len() as u32)
    };
    Ok((secs, nanos))
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
