//! Unpacking: malicious paths are refused with nothing written outside the layer, whiteouts
//! and opaque markers become overlayfs's form, and attributes survive.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{unpack_tar, UnpackError};
use crate::image::test_support::{is_root, tar, tar_with, Entry, Scratch};

/// A layer dir and a sibling "outside" dir that no entry may touch.
fn setup(tag: &str) -> (Scratch, std::path::PathBuf, std::path::PathBuf) {
    let s = Scratch::new(tag);
    let layer = s.path().join("layer");
    let outside = s.path().join("outside");
    fs::create_dir(&layer).expect("layer");
    fs::create_dir(&outside).expect("outside");
    fs::write(outside.join("secret"), b"host data").expect("secret");
    (s, layer, outside)
}

/// Everything under `dir`, to prove nothing new appeared.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    out
}

fn assert_untouched(scratch: &Path, outside: &Path) {
    assert_eq!(
        listing(scratch),
        vec!["layer", "outside"],
        "something written beside the layer"
    );
    assert_eq!(
        listing(outside),
        vec!["secret"],
        "something written outside the layer"
    );
    let secret = outside.join("secret");
    assert_eq!(fs::read(&secret).expect("secret"), b"host data");
    assert_eq!(
        fs::metadata(&secret).expect("secret").nlink(),
        1,
        "secret got hardlinked"
    );
}

#[test]
fn dotdot_entry_is_refused() {
    let (s, layer, outside) = setup("dotdot");
    let t = tar(&[
        Entry::File("ok", 0o644, b"x"),
        Entry::File("../x", 0o644, b"evil"),
    ]);
    let err = unpack_tar(&t[..], &layer).expect_err("must refuse ..");
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("\"../x\""), "{err}");
    let t = tar(&[Entry::File("a/../../outside/secret", 0o644, b"evil")]);
    unpack_tar(&t[..], &layer).expect_err("must refuse nested ..");
    assert_untouched(s.path(), &outside);
}

#[test]
fn absolute_entry_is_refused() {
    let (s, layer, outside) = setup("abs");
    let target = outside.join("abs-written");
    let name = target.to_str().expect("utf8").to_string();
    let t = tar(&[Entry::File(&name, 0o644, b"evil")]);
    let err = unpack_tar(&t[..], &layer).expect_err("must refuse absolute");
    assert!(err.to_string().contains("absolute path"), "{err}");
    let t = tar(&[Entry::File(
        "/etc/berth-unit-test-must-not-exist",
        0o644,
        b"evil",
    )]);
    unpack_tar(&t[..], &layer).expect_err("must refuse absolute");
    assert!(!Path::new("/etc/berth-unit-test-must-not-exist").exists());
    assert_untouched(s.path(), &outside);
}

#[test]
fn symlinked_parent_is_not_followed() {
    let (s, layer, outside) = setup("symparent");
    let abs = outside.to_str().expect("utf8").to_string();
    for target in [abs.as_str(), "../outside", "/"] {
        let t = tar(&[
            Entry::Symlink("link", target),
            Entry::File("link/pwned", 0o644, b"evil"),
        ]);
        let err = unpack_tar(&t[..], &layer).expect_err("must not write through a symlink");
        assert!(err.to_string().contains("symlink"), "{err}");
        fs::remove_file(layer.join("link")).expect("cleanup link");
    }
    // A directory entry through the symlink, and a whiteout through it.
    let t = tar(&[Entry::Symlink("link", &abs), Entry::Dir("link/sub", 0o755)]);
    unpack_tar(&t[..], &layer).expect_err("must not mkdir through a symlink");
    let t = tar(&[
        Entry::Symlink("link2", &abs),
        Entry::File("link2/.wh.secret", 0o644, b""),
    ]);
    unpack_tar(&t[..], &layer).expect_err("must not whiteout through a symlink");
    assert_untouched(s.path(), &outside);
}

#[test]
fn hardlink_to_outside_is_refused() {
    let (s, layer, outside) = setup("hardlink");
    let abs = outside.join("secret").to_str().expect("utf8").to_string();
    let cases: Vec<Vec<Entry<'_>>> = vec![
        vec![Entry::Hardlink("hl", "../outside/secret")],
        vec![Entry::Hardlink("hl", &abs)],
        // Through a symlinked parent inside the layer.
        vec![
            Entry::Symlink("out", "../outside"),
            Entry::Hardlink("hl", "out/secret"),
        ],
    ];
    for entries in cases {
        let t = tar(&entries);
        let err = unpack_tar(&t[..], &layer).expect_err("must refuse hardlink out");
        assert!(err.to_string().contains("hl"), "{err}");
        let _ = fs::remove_file(layer.join("out"));
        assert!(!layer.join("hl").exists());
    }
    assert_untouched(s.path(), &outside);
}

#[test]
fn replacing_a_symlink_does_not_write_through_it() {
    let (s, layer, outside) = setup("replace");
    let abs = outside.join("secret").to_str().expect("utf8").to_string();
    // A later entry of the same name replaces the symlink itself.
    let t = tar(&[
        Entry::Symlink("f", &abs),
        Entry::File("f", 0o644, b"layer data"),
    ]);
    unpack_tar(&t[..], &layer).expect("replace symlink");
    assert_eq!(fs::read(layer.join("f")).expect("f"), b"layer data");
    assert!(!fs::symlink_metadata(layer.join("f"))
        .expect("f")
        .file_type()
        .is_symlink());
    assert_untouched(s.path(), &outside);
}

#[test]
fn attributes_links_and_nodes_are_preserved() {
    let (_s, layer, _outside) = setup("attrs");
    let t = tar_with(
        &[
            Entry::Dir("./", 0o755),
            Entry::Dir("bin", 0o751),
            Entry::File("bin/tool", 0o4755, b"#!/bin/sh\n"),
            Entry::Hardlink("bin/tool2", "bin/tool"),
            Entry::Symlink("bin/sh", "busybox"),
            Entry::Symlink("abs", "/etc/passwd"),
            Entry::Fifo("fifo"),
            Entry::File("deep/er/file", 0o600, b"parents made on demand"),
        ],
        |i, h| {
            if i == 2 && is_root() {
                h.set_uid(1234);
                h.set_gid(5678);
            }
            h.set_mtime(1_500_000_000 + i as u64);
        },
    );
    let stats = unpack_tar(&t[..], &layer).expect("unpack");
    assert_eq!(stats.entries, 8);
    let tool = fs::metadata(layer.join("bin/tool")).expect("tool");
    // chown before chmod: the set-uid bit survives.
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    if is_root() {
        assert_eq!((tool.uid(), tool.gid()), (1234, 5678));
    }
    assert_eq!(tool.mtime(), 1_500_000_002);
    assert_eq!(tool.nlink(), 2);
    assert_eq!(
        fs::metadata(layer.join("bin/tool2")).expect("tool2").ino(),
        tool.ino()
    );
    assert_eq!(
        fs::metadata(layer.join("bin")).expect("bin").mode() & 0o7777,
        0o751
    );
    // Directory mtimes are set after their contents landed.
    assert_eq!(
        fs::metadata(layer.join("bin")).expect("bin").mtime(),
        1_500_000_001
    );
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).expect("sh").to_str(),
        Some("busybox")
    );
    // Symlink targets are stored verbatim, never resolved.
    assert_eq!(
        fs::read_link(layer.join("abs")).expect("abs").to_str(),
        Some("/etc/passwd")
    );
    assert!(fs::symlink_metadata(layer.join("fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::read(layer.join("deep/er/file")).expect("deep"),
        b"parents made on demand"
    );
}

#[test]
fn xattrs_from_pax_records() {
    let (_s, layer, _outside) = setup("xattr");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(u64::from(nix::unistd::geteuid().as_raw()));
    h.set_gid(u64::from(nix::unistd::getegid().as_raw()));
    h.set_size(2);
    b.append_pax_extensions([
        ("SCHILY.xattr.user.berth", &b"kept"[..]),
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
    ])
    .expect("pax");
    b.append_data(&mut h, "f", &b"hi"[..]).expect("append");
    let t = b.into_inner().expect("tar");
    unpack_tar(&t[..], &layer).expect("unpack");
    let f = layer.join("f");
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(&f, "user.berth", &mut buf[..]).expect("user xattr kept");
    assert_eq!(&buf[..n], b"kept");
    // A layer cannot forge overlayfs metadata.
    assert!(rustix::fs::getxattr(&f, "trusted.overlay.redirect", &mut buf[..]).is_err());
}

#[test]
fn whiteouts_and_opaque_dirs_become_overlayfs_form() {
    if !is_root() {
        eprintln!("skipped: whiteouts need CAP_MKNOD and trusted xattrs (run as root)");
        return;
    }
    let (_s, layer, _outside) = setup("whiteout");
    let t = tar(&[
        Entry::Dir("etc", 0o755),
        Entry::File("etc/.wh.removed.conf", 0o644, b""),
        Entry::Dir("var/cache", 0o755),
        Entry::File("var/cache/.wh..wh..opq", 0o644, b""),
        Entry::File("var/cache/fresh", 0o644, b"new"),
        Entry::File(".wh..wh.plnk", 0o644, b""),
        Entry::File("gone/.wh.deep", 0o644, b""),
    ]);
    let stats = unpack_tar(&t[..], &layer).expect("unpack");
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 1));
    for w in ["etc/removed.conf", "gone/deep"] {
        let m = fs::symlink_metadata(layer.join(w)).expect("whiteout exists");
        assert!(m.file_type().is_char_device(), "{w} is not a char device");
        assert_eq!(m.rdev(), 0, "{w} is not 0:0");
    }
    // No .wh. names remain: they are markers, not files.
    assert!(!layer.join("etc/.wh.removed.conf").exists());
    assert!(!layer.join("var/cache/.wh..wh..opq").exists());
    assert!(!layer.join(".wh..wh.plnk").exists());
    let mut buf = [0u8; 4];
    let n = rustix::fs::getxattr(
        layer.join("var/cache"),
        "trusted.overlay.opaque",
        &mut buf[..],
    )
    .expect("opaque xattr");
    assert_eq!(&buf[..n], b"y");
    assert_eq!(
        fs::read(layer.join("var/cache/fresh")).expect("fresh"),
        b"new"
    );
}

#[test]
fn device_nodes_are_created() {
    if !is_root() {
        eprintln!("skipped: device nodes need CAP_MKNOD (run as root)");
        return;
    }
    let (_s, layer, _outside) = setup("dev");
    let t = tar(&[Entry::Char("dev/null", 1, 3)]);
    unpack_tar(&t[..], &layer).expect("unpack");
    let m = fs::symlink_metadata(layer.join("dev/null")).expect("dev/null");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(m.mode() & 0o7777, 0o666);
}

#[test]
fn invalid_whiteouts_are_refused() {
    let (s, layer, outside) = setup("badwh");
    for name in ["a/.wh..", "a/.wh..."] {
        let t = tar(&[Entry::File(name, 0o644, b"")]);
        unpack_tar(&t[..], &layer).expect_err("invalid whiteout");
    }
    assert_untouched(s.path(), &outside);
}

#[test]
fn multi_frame_zstd_and_multi_member_gzip() {
    use std::io::Read;

    use crate::image::test_support::{gzip, zstd};
    let (a, b) = (vec![b'a'; 70_000], vec![b'b'; 5]);
    for stream in [
        [zstd(&a), zstd(&b)].concat(),
        [gzip(&a), gzip(&b)].concat(),
        [a.clone(), b.clone()].concat(),
    ] {
        let mut out = Vec::new();
        super::decompress(&stream[..])
            .expect("decompress")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, [a.clone(), b.clone()].concat());
    }
}
