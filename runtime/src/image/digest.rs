//! Content digests (`sha256:<64 hex>`) and readers that hash and count what flows through them,
//! so a blob is checked against its descriptor in the same pass that reads it.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A sha256 content digest. Other algorithms are refused when parsing: every blob berth uses
/// is verified, and sha256 is the only algorithm OCI requires (sha512 images are vanishingly rare).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// 64 lowercase hex characters, validated: safe to use as a file name.
    hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest {0:?} is not sha256:<64 lowercase hex characters>")]
pub struct DigestParseError(pub String);

impl Digest {
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as `docker images` shows them.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: to_hex(&h.finalize()),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| DigestParseError(s.to_string()))?;
        Ok(Digest {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// How a blob failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("size is {actual} bytes, the descriptor says {expected}")]
    Size { expected: u64, actual: u64 },
    #[error("content digest is {actual}, expected {expected}")]
    Digest { expected: Digest, actual: Digest },
}

/// A reader that hashes and counts every byte read through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads whatever is left (trailing padding after a tar's end marker still belongs to the
    /// blob), then checks size and digest.
    pub fn finish(
        mut self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> io::Result<Result<(), Mismatch>> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(check(
            expected,
            expected_size,
            &Digest::from_hasher(self.hasher),
            self.count,
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Compares what was read with what a descriptor promised.
pub fn check(
    expected: &Digest,
    expected_size: Option<u64>,
    actual: &Digest,
    size: u64,
) -> Result<(), Mismatch> {
    if let Some(expected) = expected_size {
        if expected != size {
            return Err(Mismatch::Size {
                expected,
                actual: size,
            });
        }
    }
    if expected != actual {
        return Err(Mismatch::Digest {
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sha256() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .expect("valid");
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d.to_string().len(), 71);
    }

    #[test]
    fn refuses_other_forms() {
        for s in [
            "sha512:e3b0",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../etc/passwd",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "",
        ] {
            assert!(s.parse::<Digest>().is_err(), "{s} accepted");
        }
    }

    #[test]
    fn hashing_reader_detects_mismatch() {
        let good = Digest::of(b"hello");
        let r = Hashing::new(&b"hello"[..]);
        assert_eq!(r.finish(&good, Some(5)).expect("io"), Ok(()));
        let r = Hashing::new(&b"hellO"[..]);
        assert!(matches!(
            r.finish(&good, Some(5)).expect("io"),
            Err(Mismatch::Digest { .. })
        ));
        let r = Hashing::new(&b"hello!"[..]);
        assert!(matches!(
            r.finish(&good, Some(5)).expect("io"),
            Err(Mismatch::Size { .. })
        ));
    }
}
