//! Builders for unit tests: scratch dirs, tarballs with arbitrary (also malicious) entries,
//! and OCI layouts / archives around them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::digest::Digest;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "berth-image-unit-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One tar entry as tests describe it.
pub enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
}

/// Builds a tar from entries, writing names raw into the header so that `..` and absolute
/// paths (which the tar crate's builder refuses) can be produced.
pub fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    tar_with(entries, |_, _| {})
}

/// Like [`tar`], with a hook to adjust each header (owner, mtime) before it is written.
pub fn tar_with(entries: &[Entry<'_>], mut adjust: impl FnMut(usize, &mut tar::Header)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, e) in entries.iter().enumerate() {
        let mut h = tar::Header::new_gnu();
        h.set_uid(u64::from(nix::unistd::geteuid().as_raw()));
        h.set_gid(u64::from(nix::unistd::getegid().as_raw()));
        h.set_mtime(1_600_000_000);
        let (name, data): (&str, &[u8]) = match e {
            Entry::Dir(n, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (n, b"")
            }
            Entry::File(n, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (n, data)
            }
            Entry::Symlink(n, target) | Entry::Hardlink(n, target) => {
                h.set_entry_type(if matches!(e, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                set_raw(&mut h.as_old_mut().linkname, target.as_bytes());
                (n, b"")
            }
            Entry::Char(n, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(*major).expect("major");
                h.set_device_minor(*minor).expect("minor");
                (n, b"")
            }
            Entry::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (n, b"")
            }
        };
        set_raw(&mut h.as_old_mut().name, name.as_bytes());
        h.set_size(data.len() as u64);
        adjust(i, &mut h);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

fn set_raw(field: &mut [u8], value: &[u8]) {
    assert!(value.len() < field.len(), "test name too long");
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A layer for [`write_layout`]: the blob as stored, its media type, and its diffID.
pub struct TestLayer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: Digest,
}

impl TestLayer {
    pub fn gzip(tar: &[u8]) -> TestLayer {
        TestLayer {
            blob: gzip(tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            diff_id: Digest::of(tar),
        }
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::of(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs dir");
    std::fs::write(blobs.join(d.hex()), bytes).expect("write blob");
    d
}

/// Writes an OCI layout with one image (tag `tag`) made of `layers`; returns the manifest
/// digest.
pub fn write_layout(dir: &Path, tag: &str, layers: &[TestLayer]) -> Digest {
    let config = json!({
        "architecture": super::manifest::host_architecture(), "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).expect("config");
    let config_digest = write_blob(dir, &config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| {
            let d = write_blob(dir, &l.blob);
            json!({"mediaType": l.media_type, "digest": d.to_string(), "size": l.blob.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": super::manifest::OCI_MANIFEST,
        "config": {"mediaType": super::manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layer_descs,
    }))
    .expect("manifest");
    let manifest_digest = write_blob(dir, &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": super::manifest::OCI_MANIFEST, "digest": manifest_digest.to_string(),
                       "size": manifest.len(), "annotations": {super::manifest::REF_NAME: tag}}],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    manifest_digest
}

/// Tars a layout directory into an OCI archive at `out`.
pub fn write_archive(layout: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).expect("archive"));
    b.append_dir_all(".", layout).expect("append layout");
    b.finish().expect("finish archive");
}
