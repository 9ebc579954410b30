//! Operations confined to one directory: paths from a layer tarball are split into validated
//! components and walked one `openat(O_NOFOLLOW | O_DIRECTORY)` at a time from a directory fd,
//! so no entry can reach outside it — not by an absolute path or `..` (refused before any
//! syscall), nor through a symlink planted by an earlier entry (the walk fails with ELOOP or
//! ENOTDIR instead of following it). Nothing here ever resolves a path string from the root.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

/// Why a path from a tarball is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("absolute path")]
    Absolute,
    #[error("'..' component (path leaves the layer)")]
    DotDot,
    #[error("NUL byte in path")]
    Nul,
}

/// A relative path split into components, with `.` and empty components dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath<'a> {
    components: Vec<&'a [u8]>,
}

impl<'a> SafePath<'a> {
    /// Validates a path exactly as the tar stores it. Refusing (rather than cleaning) `..` and
    /// absolute paths: no legitimate layer has them, and a cleaned path would silently land
    /// the entry somewhere the image author did not name.
    /// The one absolute path accepted is `/` itself: umoci names the layer root that way.
    pub fn parse(raw: &'a [u8]) -> Result<SafePath<'a>, PathProblem> {
        if raw.first() == Some(&b'/') && raw.iter().any(|&b| b != b'/' && b != b'.') {
            return Err(PathProblem::Absolute);
        }
        if raw.contains(&0) {
            return Err(PathProblem::Nul);
        }
        let mut components = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(PathProblem::DotDot),
                c => components.push(c),
            }
        }
        Ok(SafePath { components })
    }

    /// True for the layer root itself (`./`).
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The parent components and the final name (None for the root).
    pub fn split_last(&self) -> Option<(&[&'a [u8]], &'a OsStr)> {
        let (last, parent) = self.components.split_last()?;
        Some((parent, OsStr::from_bytes(last)))
    }

    pub fn components(&self) -> &[&'a [u8]] {
        &self.components
    }
}

/// The directory a layer is unpacked into, held by fd.
pub struct ConfinedDir {
    root: OwnedFd,
}

/// Opens an existing directory below `dir` without following a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

impl ConfinedDir {
    /// Opens `path` (a directory berth itself created; it is trusted, its contents are not).
    pub fn open(path: &Path) -> io::Result<ConfinedDir> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ConfinedDir { root })
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the directory `components` names below the root. With `create`, missing
    /// directories are made (mode 0755: tar streams may omit parents, and the entry for
    /// the parent, if it comes later, sets the real mode). A symlink or non-directory on
    /// the way is an error, never followed.
    pub fn open_dir(&self, components: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
        let mut fd = self.root.try_clone()?;
        for c in components {
            let name = OsStr::from_bytes(c);
            let next = match open_subdir(fd.as_fd(), name) {
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(fd.as_fd(), name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_subdir(fd.as_fd(), name)?
                }
                other => other.map_err(|e| explain_walk_error(fd.as_fd(), e, c))?,
            };
            fd = next;
        }
        Ok(fd)
    }
}

/// O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP): say which it was.
fn explain_walk_error(dir: BorrowedFd<'_>, e: io::Error, component: &[u8]) -> io::Error {
    if !matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
        return e;
    }
    let name = String::from_utf8_lossy(component);
    let is_symlink = matches!(
        existing_type(dir, OsStr::from_bytes(component)),
        Ok(Some(FileType::Symlink))
    );
    let what = if is_symlink {
        "is a symlink (never followed while unpacking)"
    } else {
        "is not a directory"
    };
    io::Error::new(e.kind(), format!("{name:?} on the path {what}"))
}

/// What sits at `name` in `dir` now (without following a symlink), if anything.
pub fn existing_type(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` whatever it is; a directory is removed with its contents, each
/// level opened with O_NOFOLLOW so a symlink inside is unlinked, never descended into.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match existing_type(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = open_subdir(dir, name)?;
            let mut names = Vec::new();
            for entry in Dir::read_from(&sub)? {
                let entry = entry?;
                let n = entry.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            for n in names {
                remove_all_at(sub.as_fd(), OsStr::from_bytes(&n))?;
            }
            Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_validation() {
        assert_eq!(SafePath::parse(b"../x"), Err(PathProblem::DotDot));
        assert_eq!(SafePath::parse(b"a/../../x"), Err(PathProblem::DotDot));
        assert_eq!(SafePath::parse(b"/etc/x"), Err(PathProblem::Absolute));
        assert_eq!(SafePath::parse(b"a\0b"), Err(PathProblem::Nul));
        let p = SafePath::parse(b"./usr//bin/./sh").expect("valid");
        assert_eq!(p.components(), &[&b"usr"[..], b"bin", b"sh"]);
        assert!(SafePath::parse(b"./").expect("valid").is_root());
        assert!(SafePath::parse(b"/").expect("valid").is_root());
        assert_eq!(SafePath::parse(b"/./x"), Err(PathProblem::Absolute));
        // A name that merely starts with dots is an ordinary name.
        assert_eq!(
            SafePath::parse(b"..a/...")
                .expect("valid")
                .components()
                .len(),
            2
        );
    }
}
