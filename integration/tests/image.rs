//! Images end to end, as root with real overlayfs: the busybox OCI archive built by
//! bundles/make-busybox-image.sh is imported with `berth image import`, listed, resolved by
//! name, mounted as rootfs for real containers run by the berth binary, torn down, removed.
//!
//! Timings: `cargo test --release -p berth-integration --test image -- --ignored --nocapture`
//! runs `measure_import_and_prepare`, whose figures docs/images.md records.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth::image::{Error, Store};
use berth_integration::*;
use serde_json::{json, Value};

/// The busybox archive, built once per test process by the project's own script.
fn busybox_archive() -> PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/make-busybox-image.sh");
            let out = scratch().join("busybox-oci.tar");
            let o = Command::new("bash")
                .arg(&script)
                .arg(&out)
                .output()
                .expect("run script");
            assert!(
                o.status.success(),
                "make-busybox-image.sh failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let printed = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert_eq!(
                Path::new(&printed),
                out,
                "the script prints the archive path"
            );
            out
        })
        .clone()
}

/// A store directory for one test, removed on drop.
struct StoreDir(PathBuf);

impl StoreDir {
    fn new(name: &str) -> StoreDir {
        let p = scratch().join(format!("images-{name}"));
        let _ = std::fs::remove_dir_all(&p);
        StoreDir(p)
    }
    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes config.json into `dir` (whose `rootfs` is the overlay mount) for `args`.
fn write_config(dir: &Path, id: &str, args: &[&str]) -> String {
    let mut config = default_config();
    config["process"]["args"] = json!(args);
    config["root"] = json!({"path": "rootfs", "readonly": false});
    let cgroup = format!("/berth-test/{id}");
    config["linux"]["cgroupsPath"] = json!(cgroup);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).expect("config"),
    )
    .expect("write config.json");
    cgroup
}

fn run_in(root: &Root, dir: &Path, id: &str) -> (i32, String, String) {
    let out = root.berth(&["run", "--bundle", &dir.display().to_string(), id]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mounted_under(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    mounts.lines().any(|l| l.contains(&d))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn import_list_run_teardown_remove() {
    let id = unique("img");
    let root = Root::new(&id);
    let store_dir = StoreDir::new(&id);
    let s = store_dir.arg();
    let archive = busybox_archive();

    // Import (name from the archive's index annotation), list, resolve by name.
    let out = root.ok(&[
        "image",
        "--image-root",
        &s,
        "import",
        &archive.display().to_string(),
    ]);
    assert!(out.starts_with("imported busybox:latest sha256:"), "{out}");
    assert!(out.contains("1 layers, 1 unpacked"), "{out}");
    let table = root.ok(&["image", "ls", "--image-root", &s]);
    assert!(
        table.lines().any(|l| l.starts_with("busybox:latest ")),
        "{table}"
    );
    let listed: Value =
        serde_json::from_str(&root.ok(&["image", "ls", "--image-root", &s, "--format", "json"]))
            .expect("ls json");
    let digest = listed[0]["digest"].as_str().expect("digest").to_string();

    let store = Store::open(&store_dir.0).expect("open store");
    let image = store.resolve("busybox").expect("resolve busybox");
    assert_eq!(image.digest().to_string(), digest);
    assert_eq!(
        store
            .resolve("busybox:latest")
            .expect("tagged")
            .digest()
            .to_string(),
        digest
    );
    let defaults = image.process_defaults();
    assert_eq!(defaults.cmd, Some(vec!["/bin/sh".to_string()]));
    assert!(defaults.env.iter().any(|e| e.starts_with("PATH=")));

    // Unpacked once, at import: preparing rootfs finds every layer cached.
    let layer = store.layer_dirs(&image)[0].clone();
    let before = std::fs::metadata(&layer).expect("layer dir");
    let dir1 = scratch().join(format!("{id}-c1"));
    let dir2 = scratch().join(format!("{id}-c2"));
    let rootfs1 = store
        .prepare_rootfs(&image, &dir1)
        .expect("prepare rootfs 1");
    let rootfs2 = store
        .prepare_rootfs(&image, &dir2)
        .expect("prepare rootfs 2");
    assert_eq!(
        (rootfs1.unpacked_layers(), rootfs2.unpacked_layers()),
        (0, 0)
    );
    let after = std::fs::metadata(&layer).expect("layer dir");
    assert_eq!(
        (before.ino(), before.mtime()),
        (after.ino(), after.mtime()),
        "layer re-extracted"
    );

    // Real containers on the overlay: the first writes, the second does not see it.
    let c1 = format!("{id}-a");
    let cg1 = write_config(
        &dir1,
        &c1,
        &[
            "sh",
            "-c",
            "echo one > /root/marker && cat /etc/passwd | head -1 && busybox | head -1",
        ],
    );
    let (code, out, err) = run_in(&root, &dir1, &c1);
    assert_eq!(code, 0, "container 1 failed: {out} {err}");
    assert!(out.contains("root:x:0:0"), "{out}");
    assert!(out.contains("BusyBox"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir1.join("upper/root/marker")).expect("upper"),
        "one\n"
    );
    assert!(
        !layer.join("root/marker").exists(),
        "a container wrote into the shared layer"
    );
    let c2 = format!("{id}-b");
    let cg2 = write_config(
        &dir2,
        &c2,
        &["sh", "-c", "test ! -e /root/marker && echo clean"],
    );
    let (code, out, err) = run_in(&root, &dir2, &c2);
    assert_eq!((code, out.trim()), (0, "clean"), "container 2: {err}");

    // Teardown leaves no mount and no upper/work.
    rootfs1.teardown().expect("teardown 1");
    drop(rootfs2);
    for (dir, c, cg) in [(&dir1, &c1, &cg1), (&dir2, &c2, &cg2)] {
        assert!(!mounted_under(dir), "mount left under {}", dir.display());
        assert!(
            !dir.join("upper").exists()
                && !dir.join("work").exists()
                && !dir.join("rootfs").exists()
        );
        assert_no_leftovers(&root, c, cg, dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    // rm + gc: name, blobs, layers all gone.
    let out = root.ok(&["image", "rm", "--image-root", &s, "busybox"]);
    assert!(
        out.contains("removed busybox (3 blobs, 1 layers freed)"),
        "{out}"
    );
    assert_eq!(
        root.ok(&["image", "ls", "--image-root", &s, "-q"]).trim(),
        ""
    );
    assert_eq!(count(&store_dir.0.join("blobs/sha256")), 0);
    assert_eq!(count(&store_dir.0.join("layers/sha256")), 0);
    assert!(matches!(
        store.resolve("busybox"),
        Err(Error::NotFound { .. })
    ));
    let out = root.berth(&["image", "rm", "--image-root", &s, "busybox"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("busybox:latest is not in the image store")
    );
}

#[test]
fn direct_archive_reference_and_gc_with_live_rootfs() {
    let id = unique("imgref");
    let store_dir = StoreDir::new(&id);
    let store = Store::open(&store_dir.0).expect("open store");
    let reference = format!("oci-archive:{}", busybox_archive().display());
    let image = store.resolve(&reference).expect("resolve archive");
    let dir = scratch().join(format!("{id}-c"));
    let rootfs = store.prepare_rootfs(&image, &dir).expect("prepare");
    assert_eq!(rootfs.unpacked_layers(), 1, "first use unpacks");
    assert!(rootfs.path().join("bin/busybox").is_file());
    // A mounted rootfs holds a lease: gc keeps its layer although no name refers to it.
    assert_eq!(store.gc().expect("gc").layers_removed, 0);
    let again = store
        .prepare_rootfs(&image, &scratch().join(format!("{id}-d")))
        .expect("again");
    assert_eq!(again.unpacked_layers(), 0, "second use re-extracted");
    // keep() + teardown_rootfs: the path for a supervisor that outlives the preparer.
    let kept = again.keep();
    assert!(kept.join("bin/busybox").is_file());
    store
        .teardown_rootfs(kept.parent().expect("dir"))
        .expect("teardown kept");
    rootfs.teardown().expect("teardown");
    assert!(!mounted_under(&dir));
    let gc = store.gc().expect("gc");
    assert_eq!(gc.layers_removed, 1);
    assert_eq!(count(&store_dir.0.join("leases")), 0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(scratch().join(format!("{id}-d")));
}

#[test]
fn tampered_archive_is_refused_and_nothing_kept() {
    let id = unique("imgbad");
    let root = Root::new(&id);
    let store_dir = StoreDir::new(&id);
    // Corrupt the last byte of the layer blob inside a copy of the archive: same size, so
    // only the digest check can catch it.
    let copy = scratch().join(format!("{id}.tar"));
    std::fs::copy(busybox_archive(), &copy).expect("copy archive");
    let mut ar = tar_members(&copy);
    ar.sort_by_key(|(_, _, size)| std::cmp::Reverse(*size));
    let (name, offset, size) = ar[0].clone();
    let mut bytes = std::fs::read(&copy).expect("read copy");
    let at = usize::try_from(offset + size - 1).expect("offset");
    bytes[at] ^= 0xff;
    std::fs::write(&copy, &bytes).expect("write copy");
    let out = root.berth(&[
        "image",
        "--image-root",
        &store_dir.arg(),
        "import",
        &copy.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tampered archive imported");
    let digest = name.rsplit('/').next().expect("hex");
    assert!(
        err.contains(digest) && err.contains("content digest is"),
        "{err}"
    );
    for d in ["names", "blobs/sha256", "layers/sha256", "tmp"] {
        assert_eq!(count(&store_dir.0.join(d)), 0, "{d} kept something");
    }
    let _ = std::fs::remove_file(&copy);
}

/// (name, data offset, size) of each regular member of an uncompressed tar.
fn tar_members(path: &Path) -> Vec<(String, u64, u64)> {
    let bytes = std::fs::read(path).expect("read tar");
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 512 <= bytes.len() && bytes[pos] != 0 {
        let h = &bytes[pos..pos + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_field = String::from_utf8_lossy(&h[124..136])
            .trim_matches(|c| c == '\0' || c == ' ')
            .to_string();
        let size = u64::from_str_radix(&size_field, 8).expect("size");
        if h[156] == b'0' || h[156] == 0 {
            out.push((name, (pos + 512) as u64, size));
        }
        pos += 512 + usize::try_from(size.div_ceil(512) * 512).expect("size");
    }
    out
}

/// Import time and per-container rootfs prepare/teardown time; run with --ignored.
#[test]
#[ignore = "measurement, not a test: run with --ignored --nocapture"]
fn measure_import_and_prepare() {
    let id = unique("imgbench");
    let root = Root::new(&id);
    let archive = busybox_archive().display().to_string();
    let mut imports = Vec::new();
    for i in 0..5 {
        let store_dir = StoreDir::new(&format!("{id}-{i}"));
        let t = Instant::now();
        root.ok(&[
            "image",
            "--image-root",
            &store_dir.arg(),
            "import",
            &archive,
        ]);
        imports.push(t.elapsed());
    }
    // Direct use of the archive, first time: resolve + unpack + mount in one call.
    let mut cold = Vec::new();
    for i in 0..5 {
        let store_dir = StoreDir::new(&format!("{id}-cold{i}"));
        let store = Store::open(&store_dir.0).expect("open");
        let dir = scratch().join(format!("{id}-cold{i}-r"));
        let t = Instant::now();
        let image = store
            .resolve(&format!("oci-archive:{archive}"))
            .expect("resolve");
        let rootfs = store.prepare_rootfs(&image, &dir).expect("prepare");
        cold.push(t.elapsed());
        rootfs.teardown().expect("teardown");
        let _ = std::fs::remove_dir_all(&dir);
    }
    let store_dir = StoreDir::new(&id);
    root.ok(&[
        "image",
        "--image-root",
        &store_dir.arg(),
        "import",
        &archive,
    ]);
    let store = Store::open(&store_dir.0).expect("open");
    let mut prepares = Vec::new();
    let mut teardowns = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let image = store.resolve("busybox").expect("resolve");
        let rootfs = store
            .prepare_rootfs(&image, &scratch().join(format!("{id}-r{i}")))
            .expect("prepare");
        prepares.push(t.elapsed());
        let t = Instant::now();
        rootfs.teardown().expect("teardown");
        teardowns.push(t.elapsed());
        let _ = std::fs::remove_dir_all(scratch().join(format!("{id}-r{i}")));
    }
    let ms = |v: &[Duration]| {
        let mut v: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.2} ms, min {:.2}, max {:.2} (n={})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1],
            v.len()
        )
    };
    eprintln!(
        "berth image import (busybox, 1 layer, CLI process): {}",
        ms(&imports)
    );
    eprintln!(
        "resolve oci-archive + prepare_rootfs, layer not cached (unpack + mount): {}",
        ms(&cold)
    );
    eprintln!(
        "resolve name + prepare_rootfs (cached layer, overlay mount): {}",
        ms(&prepares)
    );
    eprintln!(
        "rootfs teardown (unmount, remove upper/work): {}",
        ms(&teardowns)
    );
}
