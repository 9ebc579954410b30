//! Image references as users write them: `oci:PATH[:TAG]` (an OCI image layout directory),
//! `oci-archive:PATH[:TAG]` (a tar of one, as `skopeo copy … oci-archive:` writes), or the name
//! of an image in berth's store (`busybox`, `busybox:latest`, `localhost/lab/busybox:1`).
//!
//! As in skopeo, PATH ends at the first `:` after the transport, so a TAG may itself contain
//! colons (`oci-archive:img.tar:busybox:latest`) and a PATH may not.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Layout { path: PathBuf, tag: Option<String> },
    Archive { path: PathBuf, tag: Option<String> },
    Name(ImageName),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

fn invalid(reference: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = split_path_tag(s, rest)?;
            return Ok(Reference::Layout { path, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = split_path_tag(s, rest)?;
            return Ok(Reference::Archive { path, tag });
        }
        ImageName::parse(s).map(Reference::Name)
    }

    /// What `berth image import ARG` means: an explicit `oci:`/`oci-archive:` reference, else
    /// a path (a directory is a layout, anything else an archive).
    pub fn for_import(arg: &str) -> Result<Reference, ReferenceError> {
        if arg.starts_with("oci:") || arg.starts_with("oci-archive:") {
            return Reference::parse(arg);
        }
        let path = PathBuf::from(arg);
        if arg.is_empty() {
            return Err(invalid(arg, "empty path"));
        }
        if path.is_dir() {
            Ok(Reference::Layout { path, tag: None })
        } else {
            Ok(Reference::Archive { path, tag: None })
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, tag) = match self {
            Reference::Name(n) => return n.fmt(f),
            Reference::Layout { path, tag } => ("oci", path, tag),
            Reference::Archive { path, tag } => ("oci-archive", path, tag),
        };
        write!(f, "{transport}:{}", path.display())?;
        if let Some(t) = tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

fn split_path_tag(whole: &str, rest: &str) -> Result<(PathBuf, Option<String>), ReferenceError> {
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(whole, "no path after the transport"));
    }
    if tag.is_some_and(str::is_empty) {
        return Err(invalid(whole, "empty tag after ':'"));
    }
    Ok((PathBuf::from(path), tag.map(str::to_string)))
}

/// A name in berth's store: `REPOSITORY:TAG`, the tag defaulting to `latest`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageName {
    repository: String,
    tag: String,
}

impl ImageName {
    pub fn parse(s: &str) -> Result<ImageName, ReferenceError> {
        if s.contains('@') {
            return Err(invalid(
                s,
                "digest references (NAME@sha256:…) are not supported; use NAME[:TAG]",
            ));
        }
        // The tag follows the last ':' that has no '/' after it (`localhost:5000/x` has none).
        let (repository, tag) = match s.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (s, "latest"),
        };
        if repository.is_empty() || repository.len() > 255 {
            return Err(invalid(s, "the name must have 1-255 characters"));
        }
        for (i, part) in repository.split('/').enumerate() {
            // Only a registry host (first of several components) may carry a :port.
            let host = i == 0 && repository.contains('/');
            let ok = part
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
                && part.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b"._-".contains(&b) || (host && b == b':')
                });
            if !ok {
                return Err(invalid(
                    s,
                    "name components are letters, digits, '.', '_' and '-', separated by '/', each starting with a letter or digit",
                ));
            }
        }
        let tag_ok = tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !tag_ok {
            return Err(invalid(
                s,
                "a tag has 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
            ));
        }
        Ok(ImageName {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A file name for this name: `/` and `:` (the only characters of a valid name that a file
    /// name cannot hold or that would read ambiguously) are percent-encoded.
    pub fn file_name(&self) -> String {
        self.to_string().replace('/', "%2F").replace(':', "%3A")
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(
            Reference::parse("oci:/srv/img:v1").expect("ok"),
            Reference::Layout {
                path: "/srv/img".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Reference::parse("oci-archive:/tmp/b.tar:busybox:latest").expect("ok"),
            Reference::Archive {
                path: "/tmp/b.tar".into(),
                tag: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            Reference::parse("oci-archive:b.tar").expect("ok"),
            Reference::Archive {
                path: "b.tar".into(),
                tag: None
            }
        );
        assert!(Reference::parse("oci:").is_err());
        assert!(Reference::parse("oci:/x:").is_err());
    }

    #[test]
    fn names_default_to_latest() {
        let n = ImageName::parse("busybox").expect("ok");
        assert_eq!(n.to_string(), "busybox:latest");
        assert_eq!(n, ImageName::parse("busybox:latest").expect("ok"));
        let n = ImageName::parse("localhost:5000/lab/busybox").expect("ok");
        assert_eq!(n.tag(), "latest");
        assert_eq!(n.repository(), "localhost:5000/lab/busybox");
        assert_eq!(n.file_name(), "localhost%3A5000%2Flab%2Fbusybox%3Alatest");
    }

    #[test]
    fn bad_names() {
        for s in [
            "",
            ":x",
            "a b",
            "../etc",
            "a//b",
            "busybox@sha256:00",
            "x:-t",
            "/abs",
            "host:1:2",
        ] {
            assert!(ImageName::parse(s).is_err(), "{s:?} accepted");
        }
    }
}
