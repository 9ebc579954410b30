//! The store end to end on generated images: import from layouts and archives, resolve,
//! unpack once, verification failures that keep nothing, concurrent unpackers, gc, and (as
//! root) an overlay rootfs whose whiteouts hide lower files.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use crate::image::cache::LayerCache;
use crate::image::digest::Digest;
use crate::image::error::{BlobProblem, Error};
use crate::image::layout;
use crate::image::source::BlobSource;
use crate::image::test_support::{
    is_root, tar, write_archive, write_layout, zstd, Entry, Scratch, TestLayer,
};
use crate::image::Store;

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn base_layer() -> TestLayer {
    TestLayer::gzip(&tar(&[
        Entry::Dir("etc", 0o755),
        Entry::File("etc/hostname", 0o644, b"base\n"),
        Entry::File("etc/old.conf", 0o644, b"old\n"),
        Entry::Dir("var/cache", 0o755),
        Entry::File("var/cache/stale", 0o644, b"stale\n"),
    ]))
}

#[test]
fn import_resolve_list_unpack_once_remove() {
    let s = Scratch::new("store");
    let layout_dir = s.path().join("layout");
    let digest = write_layout(&layout_dir, "v1", &[base_layer()]);
    let store = Store::open(s.path().join("store")).expect("open");

    let imported = store
        .import(&format!("oci:{}:v1", layout_dir.display()), Some("app"))
        .expect("import");
    assert_eq!(imported.record.name, "app:latest");
    assert_eq!(imported.record.digest, digest);
    assert_eq!(imported.unpacked_layers, 1);
    let listed = store.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "app:latest");

    // By name, with and without the tag; the stored copy does not need the layout.
    fs::remove_dir_all(&layout_dir).expect("remove layout");
    let image = store.resolve("app").expect("resolve app");
    assert_eq!(image.digest(), &digest);
    assert_eq!(
        store.resolve("app:latest").expect("resolve").digest(),
        &digest
    );
    assert_eq!(
        image.process_defaults().cmd,
        Some(vec!["/bin/sh".to_string()])
    );
    let layer_dir = &store.layer_dirs(&image)[0];
    assert_eq!(
        fs::read(layer_dir.join("etc/hostname")).expect("hostname"),
        b"base\n"
    );

    // Unpacked once: a second unpack (or import) finds the cache and does not touch it.
    let ino = fs::metadata(layer_dir).expect("layer").ino();
    assert_eq!(store.unpack(&image).expect("unpack"), 0);
    assert_eq!(fs::metadata(layer_dir).expect("layer").ino(), ino);

    // Not found is clear.
    let err = store.resolve("nope").expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope:latest"), "{err}");

    // rm + gc take the blobs and the layer.
    let gc = store.remove("app").expect("rm");
    assert_eq!((gc.blobs_removed, gc.layers_removed), (3, 1));
    assert!(store.list().expect("list").is_empty());
    assert_eq!(entries(&store.root().join("blobs/sha256")), 0);
    assert_eq!(entries(&store.root().join("layers/sha256")), 0);
    assert!(matches!(store.remove("app"), Err(Error::NotFound { .. })));
}

#[test]
fn gc_keeps_what_other_names_share() {
    let s = Scratch::new("share");
    let layout_dir = s.path().join("layout");
    write_layout(&layout_dir, "v1", &[base_layer()]);
    let store = Store::open(s.path().join("store")).expect("open");
    let src = format!("oci:{}", layout_dir.display());
    store.import(&src, Some("one")).expect("import one");
    let second = store.import(&src, Some("two:1.0")).expect("import two");
    assert_eq!(
        second.unpacked_layers, 0,
        "the shared layer was unpacked again"
    );
    let gc = store.remove("one").expect("rm one");
    assert_eq!((gc.blobs_removed, gc.layers_removed), (0, 0));
    assert!(store.resolve("two:1.0").is_ok());
}

#[test]
fn archive_and_direct_references() {
    let s = Scratch::new("archive");
    let layout_dir = s.path().join("layout");
    let plain = tar(&[Entry::File("plain", 0o644, b"uncompressed layer")]);
    let zst = tar(&[Entry::File("zst", 0o644, b"zstd layer")]);
    let digest = write_layout(
        &layout_dir,
        "busybox:latest",
        &[
            base_layer(),
            TestLayer {
                blob: plain.clone(),
                media_type: "application/vnd.oci.image.layer.v1.tar",
                diff_id: Digest::of(&plain),
            },
            TestLayer {
                blob: zstd(&zst),
                media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
                diff_id: Digest::of(&zst),
            },
        ],
    );
    let archive = s.path().join("img.tar");
    write_archive(&layout_dir, &archive);
    let store = Store::open(s.path().join("store")).expect("open");

    // Direct references resolve without importing.
    let direct = store
        .resolve(&format!("oci-archive:{}", archive.display()))
        .expect("archive ref");
    assert_eq!(direct.digest(), &digest);
    assert_eq!(direct.layers.len(), 3);
    assert_eq!(store.unpack(&direct).expect("unpack"), 3);
    let dirs = store.layer_dirs(&direct);
    assert!(dirs[0].join("zst").is_file() && dirs[1].join("plain").is_file());
    let tagged = format!("oci-archive:{}:busybox:latest", archive.display());
    assert_eq!(store.resolve(&tagged).expect("tagged").digest(), &digest);
    let err = store
        .resolve(&format!("oci:{}:nope", layout_dir.display()))
        .expect_err("unknown tag");
    assert!(
        err.to_string().contains("busybox:latest"),
        "tags not listed: {err}"
    );

    // Import without --name takes the full name from the archive's index.
    let imported = store
        .import(&archive.display().to_string(), None)
        .expect("import");
    assert_eq!(imported.record.name, "busybox:latest");
    assert_eq!(imported.unpacked_layers, 0);
}

#[test]
fn tampered_layer_is_refused_and_nothing_kept() {
    let s = Scratch::new("tamper");
    let layout_dir = s.path().join("layout");
    let layer = base_layer();
    let blob_digest = Digest::of(&layer.blob);
    write_layout(&layout_dir, "v1", &[layer]);
    // Flip one byte, keeping the size: only the digest can tell.
    let blob_path = layout_dir.join("blobs/sha256").join(blob_digest.hex());
    let mut bytes = fs::read(&blob_path).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob_path, &bytes).expect("tamper");

    let store = Store::open(s.path().join("store")).expect("open");
    let err = store
        .import(&format!("oci:{}", layout_dir.display()), Some("bad"))
        .expect_err("tampered blob accepted");
    match &err {
        Error::Blob {
            digest,
            problem: BlobProblem::Mismatch(_),
            ..
        } => assert_eq!(digest, &blob_digest),
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains(&blob_digest.to_string()), "{err}");
    for d in ["names", "blobs/sha256", "layers/sha256", "tmp"] {
        assert_eq!(entries(&store.root().join(d)), 0, "{d} is not empty");
    }

    // Direct use of the layout fails the same way at unpack time, keeping nothing.
    let image = store
        .resolve(&format!("oci:{}", layout_dir.display()))
        .expect("manifest ok");
    let err = store.unpack(&image).expect_err("tampered blob unpacked");
    assert!(
        matches!(
            err,
            Error::Blob {
                problem: BlobProblem::Mismatch(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(entries(&store.root().join("layers/sha256")), 0);
    assert_eq!(entries(&store.root().join("tmp")), 0);
}

#[test]
fn wrong_diff_id_is_refused() {
    let s = Scratch::new("diffid");
    let layout_dir = s.path().join("layout");
    let mut layer = base_layer();
    layer.diff_id = Digest::of(b"not this tar");
    write_layout(&layout_dir, "v1", &[layer]);
    let store = Store::open(s.path().join("store")).expect("open");
    let err = store
        .import(&format!("oci:{}", layout_dir.display()), Some("bad"))
        .expect_err("wrong diffID accepted");
    assert!(err.to_string().contains("diffID"), "{err}");
    assert_eq!(entries(&store.root().join("layers/sha256")), 0);
    assert_eq!(entries(&store.root().join("blobs/sha256")), 0);
}

#[test]
fn tampered_manifest_is_refused() {
    let s = Scratch::new("manifest");
    let layout_dir = s.path().join("layout");
    let digest = write_layout(&layout_dir, "v1", &[base_layer()]);
    let path = layout_dir.join("blobs/sha256").join(digest.hex());
    let text = fs::read_to_string(&path).expect("manifest");
    fs::write(
        &path,
        text.replace("schemaVersion\":2", "schemaVersion\":3"),
    )
    .expect("tamper");
    let store = Store::open(s.path().join("store")).expect("open");
    let err = store
        .resolve(&format!("oci:{}", layout_dir.display()))
        .expect_err("tampered manifest");
    assert!(err.to_string().contains("manifest"), "{err}");
}

#[test]
fn concurrent_unpackers_of_one_layer() {
    let s = Scratch::new("race");
    let layout_dir = s.path().join("layout");
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("d/f{i}"), vec![b'x'; 4096 + i]))
        .collect();
    let entries_list: Vec<Entry<'_>> = files
        .iter()
        .map(|(n, d)| Entry::File(n, 0o644, d))
        .collect();
    write_layout(&layout_dir, "v1", &[TestLayer::gzip(&tar(&entries_list))]);
    let store = Store::open(s.path().join("store")).expect("open");
    let image = Arc::new(
        layout::load(
            Arc::new(BlobSource::dir("race", &layout_dir).expect("source")),
            None,
        )
        .expect("load"),
    );
    let root = store.root().to_path_buf();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let image = Arc::clone(&image);
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread has its own cache handle and so its own lock file description.
                let cache = LayerCache::new(
                    root.join("layers/sha256"),
                    root.join("locks"),
                    root.join("tmp"),
                );
                cache.ensure(image.source(), "layer 1/1", &image.layers[0])
            })
        })
        .collect();
    let results: Vec<bool> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").expect("ensure"))
        .collect();
    assert_eq!(results.iter().filter(|&&u| u).count(), 1, "{results:?}");
    let dir = store.layer_dirs(&image)[0].clone();
    assert_eq!(entries(&dir.join("d")), 200);
    assert_eq!(entries(&root.join("tmp")), 0);
}

#[test]
fn overlay_rootfs_stacks_layers_with_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay mounts need root");
        return;
    }
    let s = Scratch::new("overlay");
    let layout_dir = s.path().join("layout");
    let top = TestLayer::gzip(&tar(&[
        Entry::File("etc/.wh.old.conf", 0o644, b""),
        Entry::File("var/cache/.wh..wh..opq", 0o644, b""),
        Entry::File("var/cache/fresh", 0o644, b"fresh\n"),
        Entry::File("etc/hostname", 0o644, b"top\n"),
    ]));
    write_layout(&layout_dir, "v1", &[base_layer(), top]);
    let store = Store::open(s.path().join("store")).expect("open");
    let image = store
        .resolve(&format!("oci:{}", layout_dir.display()))
        .expect("resolve");
    let ctr = s.path().join("ctr");
    let rootfs = store.prepare_rootfs(&image, &ctr).expect("prepare");
    assert_eq!(rootfs.unpacked_layers(), 2);
    let root = rootfs.path().to_path_buf();
    assert_eq!(
        fs::read(root.join("etc/hostname")).expect("hostname"),
        b"top\n"
    );
    assert!(
        !root.join("etc/old.conf").exists(),
        "whiteout did not hide the lower file"
    );
    assert!(
        !root.join("var/cache/stale").exists(),
        "opaque dir did not hide the lower dir"
    );
    assert!(root.join("var/cache/fresh").exists());
    // Writes land in the upper dir, never in the shared layers.
    fs::write(root.join("etc/hostname"), b"changed\n").expect("write");
    assert_eq!(
        fs::read(ctr.join("upper/etc/hostname")).expect("upper"),
        b"changed\n"
    );
    assert_eq!(
        fs::read(store.layer_dirs(&image)[0].join("etc/hostname")).expect("layer"),
        b"top\n"
    );
    // A second rootfs of the same image: nothing unpacked, its own upper.
    let second = store
        .prepare_rootfs(&image, &s.path().join("ctr2"))
        .expect("second");
    assert_eq!(second.unpacked_layers(), 0);
    assert_eq!(
        fs::read(second.path().join("etc/hostname")).expect("second"),
        b"top\n"
    );
    // Preparing the same dir twice is refused, and the first rootfs keeps its lease.
    let err = store
        .prepare_rootfs(&image, &ctr)
        .expect_err("second prepare in one dir");
    assert!(err.to_string().contains("already prepared"), "{err}");
    assert_eq!(entries(&store.root().join("leases")), 2);
    // gc while mounted keeps the layers (leases); after teardown they go.
    assert_eq!(store.gc().expect("gc").layers_removed, 0);
    rootfs.teardown().expect("teardown");
    drop(second);
    assert!(!ctr.join("upper").exists() && !ctr.join("rootfs").exists());
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&ctr.display().to_string()),
        "mount left behind"
    );
    let gc = store.gc().expect("gc");
    assert_eq!(gc.layers_removed, 2);
    assert_eq!(entries(&store.root().join("leases")), 0);
}

#[test]
fn overlay_options_fall_back_to_fd_paths() {
    if !is_root() {
        eprintln!("skipped: overlay mounts need root");
        return;
    }
    // ':' and ',' separate overlayfs options: such paths are passed as /proc/self/fd/N.
    let s = Scratch::new("fdpaths");
    let layout_dir = s.path().join("layout");
    write_layout(&layout_dir, "v1", &[base_layer()]);
    let store = Store::open(s.path().join("st:o,re")).expect("open");
    let image = store
        .resolve(&format!("oci:{}", layout_dir.display()))
        .expect("resolve");
    let rootfs = store
        .prepare_rootfs(&image, &s.path().join("c:t,r"))
        .expect("prepare");
    assert_eq!(
        fs::read(rootfs.path().join("etc/hostname")).expect("hostname"),
        b"base\n"
    );
    rootfs.teardown().expect("teardown");
}

#[test]
fn multi_platform_index_picks_the_host_manifest() {
    use serde_json::json;
    let s = Scratch::new("index");
    let layout_dir = s.path().join("layout");
    let manifest = write_layout(&layout_dir, "v1", &[base_layer()]);
    let size = fs::metadata(layout_dir.join("blobs/sha256").join(manifest.hex()))
        .expect("manifest")
        .len();
    let host = crate::image::manifest::host_architecture();
    let other = Digest::of(b"manifest for another platform");
    // An image index (as docker buildx writes) with a foreign platform listed first.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": crate::image::manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": crate::image::manifest::OCI_MANIFEST, "digest": other.to_string(), "size": 1,
             "platform": {"architecture": "s390x", "os": "linux"}},
            {"mediaType": crate::image::manifest::OCI_MANIFEST, "digest": manifest.to_string(), "size": size,
             "platform": {"architecture": host, "os": "linux"}},
        ],
    }))
    .expect("index");
    let index_digest = Digest::of(&index);
    fs::write(
        layout_dir.join("blobs/sha256").join(index_digest.hex()),
        &index,
    )
    .expect("index blob");
    let top = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": crate::image::manifest::OCI_INDEX, "digest": index_digest.to_string(),
        "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(
        layout_dir.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("index.json");
    let store = Store::open(s.path().join("store")).expect("open");
    let image = store
        .resolve(&format!("oci:{}:multi", layout_dir.display()))
        .expect("resolve through the index");
    assert_eq!(image.digest(), &manifest);
}
