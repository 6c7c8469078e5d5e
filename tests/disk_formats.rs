//! Containers against qemu-img: every qcow2 variant, VHD fixed and dynamic, raw. Reads must
//! match `qemu-img convert -O raw`; writes made through graft must leave `qemu-img check`
//! clean and give the same content (`qemu-img compare`) as the same writes to a raw copy.

mod disk_support;

use std::path::Path;

use disk_support::*;
use graft::disk::{self, copy, qcow2, vhd, Access, ImageFormat};

/// Opens `img` with graft, checks it reads like the raw original, writes the pattern, and
/// checks the result with qemu-img against the same writes made to a raw copy.
fn roundtrip(dir: &Path, raw: &Path, img: &Path, expect: ImageFormat, qemu_checkable: bool) {
    let info = disk::image_info(img).unwrap();
    assert_eq!(info.format, expect, "{}", img.display());
    {
        let dev = disk::open_image(img, Access::ReadOnly).unwrap();
        let raw_dev = disk::open_image(raw, Access::ReadOnly).unwrap();
        assert!(dev.len() >= raw_dev.len());
        assert!(
            read_all(&*dev)[..raw_dev.len() as usize] == read_all(&*raw_dev)[..],
            "{} reads differently from the raw original",
            img.display()
        );
    }
    let writes = write_pattern(std::fs::metadata(raw).unwrap().len());
    let expected = dir.join(format!(
        "{}.expected.raw",
        img.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(raw, &expected).unwrap();
    apply_writes_raw(&expected, &writes);
    {
        let mut dev = disk::open_image(img, Access::ReadWrite).unwrap();
        apply_writes(&mut *dev, &writes);
    }
    if qemu_checkable {
        assert_qemu_check_clean(img);
    }
    let (same, text) = qemu_compare(img, &expected);
    assert!(
        same,
        "qemu-img compare {} after graft's writes: {text}",
        img.display()
    );
    // And graft reads back what it wrote.
    let dev = disk::open_image(img, Access::ReadOnly).unwrap();
    let want = std::fs::read(&expected).unwrap();
    assert!(read_all(&*dev)[..want.len()] == want[..]);
}

#[test]
fn qcow2_variants_read_and_write_like_raw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let variants: &[(&str, &[&str])] = &[
        ("v2.qcow2", &["-o", "compat=0.10"]),
        ("v3.qcow2", &["-o", "compat=1.1"]),
        ("c4k.qcow2", &["-o", "cluster_size=4096"]),
        ("c2m.qcow2", &["-o", "cluster_size=2M"]),
        ("compressed.qcow2", &["-c"]),
        ("compressed-v2.qcow2", &["-c", "-o", "compat=0.10"]),
        ("lazy.qcow2", &["-o", "lazy_refcounts=on"]),
    ];
    for (name, opts) in variants {
        let img = d.join(name);
        convert(&raw, &img, "qcow2", opts);
        let compressed = opts.contains(&"-c");
        // Sector 0 (the protective MBR) is data; in a compressed image qemu-img map shows
        // no host offset for it until a write turns the cluster into a normal one.
        assert_eq!(qemu_map_offset(&img, 0).is_none(), compressed, "{name}");
        roundtrip(d, &raw, &img, ImageFormat::Qcow2, true);
        assert!(
            qemu_map_offset(&img, 0).is_some(),
            "{name}: the written cluster is a normal one now"
        );
    }
    let info = disk::image_info(&d.join("v2.qcow2")).unwrap();
    assert_eq!(info.qcow2_version, Some(2));
    assert_eq!(
        disk::image_info(&d.join("c2m.qcow2")).unwrap().cluster_size,
        Some(2 << 20)
    );
}

#[test]
fn vhd_and_raw_read_and_write_like_raw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Mbr);
    let fixed = d.join("fixed.vhd");
    convert(
        &raw,
        &fixed,
        "vpc",
        &["-o", "subformat=fixed,force_size=on"],
    );
    roundtrip(d, &raw, &fixed, ImageFormat::VhdFixed, false);
    let dynamic = d.join("dynamic.vhd");
    convert(
        &raw,
        &dynamic,
        "vpc",
        &["-o", "subformat=dynamic,force_size=on"],
    );
    roundtrip(d, &raw, &dynamic, ImageFormat::VhdDynamic, false);
    // qemu's own reading of the dynamic VHD graft wrote into agrees on every sector, and
    // graft's BAT/footer changes still satisfy qemu-img's vpc driver (it re-reads them).
    assert_eq!(qemu_info(&dynamic)["format"], "vpc");
    let plain = d.join("plain.raw");
    std::fs::copy(&raw, &plain).unwrap();
    roundtrip(d, &raw, &plain, ImageFormat::Raw, false);
}

#[test]
fn backing_chain_three_deep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let base = d.join("base.qcow2");
    convert(&raw, &base, "qcow2", &["-c"]);
    let mid = d.join("mid.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            p(&mid),
        ],
    );
    let top = d.join("top.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            p(&top),
        ],
    );
    // Data in every layer: mid written through graft (its backing stays untouched).
    let base_bytes = std::fs::read(&base).unwrap();
    let expected = d.join("expected.raw");
    std::fs::copy(&raw, &expected).unwrap();
    // Writes inside the ESP and the unused end of the root filesystem: the GPT and the
    // ext4 metadata stay intact so that inspect can still read the guest.
    let esp = 2048 * 512;
    let w1 = vec![
        (esp + 4096, vec![1u8; 5000]),
        (ROOT_START + (24 << 20), vec![2u8; 70_000]),
    ];
    let w2 = vec![
        (esp + 6000, vec![3u8; 100]),
        (ROOT_START + (24 << 20) + 65536 - 100, vec![4u8; 4096]),
    ];
    apply_writes_raw(&expected, &w1);
    apply_writes_raw(&expected, &w2);
    apply_writes(
        &mut *disk::open_image(&mid, Access::ReadWrite).unwrap(),
        &w1,
    );
    apply_writes(
        &mut *disk::open_image(&top, Access::ReadWrite).unwrap(),
        &w2,
    );
    assert_eq!(
        std::fs::read(&base).unwrap(),
        base_bytes,
        "the backing file must not change"
    );
    for img in [&mid, &top] {
        assert_qemu_check_clean(img);
    }
    let (same, text) = qemu_compare(&top, &expected);
    assert!(same, "{text}");
    let info = disk::image_info(&top).unwrap();
    let chain: Vec<String> = info
        .backing_chain
        .iter()
        .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(chain, ["mid.qcow2", "base.qcow2"]);
    let j = inspect_json(&top);
    assert_eq!(j["image"]["backing_chain"].as_array().unwrap().len(), 2);
    assert_eq!(j["image"]["backing_chain"][1]["format"], "qcow2");
    assert_eq!(j["os"]["id"], "debian");
}

#[test]
fn overlay_copy_and_vhd_creation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let base = d.join("base.qcow2");
    convert(&raw, &base, "qcow2", &["-c"]);

    // A standalone copy is byte-identical (compressed clusters included).
    let copied = d.join("copy.qcow2");
    copy::copy_image(&base, &copied).unwrap();
    assert_eq!(
        std::fs::read(&base).unwrap(),
        std::fs::read(&copied).unwrap()
    );

    // An overlay: qemu-img sees the backing file and a clean image; writes land in it only.
    let overlay = d.join("overlay.qcow2");
    qcow2::create_qcow2_overlay(&base, &overlay).unwrap();
    assert_qemu_check_clean(&overlay);
    let info = qemu_info(&overlay);
    assert_eq!(info["backing-filename"], "base.qcow2");
    assert_eq!(info["virtual-size"], DISK_MB << 20);
    let writes = write_pattern(DISK_MB << 20);
    let expected = d.join("expected.raw");
    std::fs::copy(&raw, &expected).unwrap();
    apply_writes_raw(&expected, &writes);
    let base_bytes = std::fs::read(&base).unwrap();
    apply_writes(
        &mut *disk::open_image(&overlay, Access::ReadWrite).unwrap(),
        &writes,
    );
    assert_eq!(std::fs::read(&base).unwrap(), base_bytes);
    assert_qemu_check_clean(&overlay);
    let (same, text) = qemu_compare(&overlay, &expected);
    assert!(same, "{text}");

    // An overlay over a raw base works the same way.
    let raw_overlay = d.join("raw-overlay.qcow2");
    qcow2::create_qcow2_overlay(&raw, &raw_overlay).unwrap();
    assert_eq!(qemu_info(&raw_overlay)["backing-filename-format"], "raw");
    apply_writes(
        &mut *disk::open_image(&raw_overlay, Access::ReadWrite).unwrap(),
        &writes,
    );
    assert_qemu_check_clean(&raw_overlay);
    let (same, text) = qemu_compare(&raw_overlay, &expected);
    assert!(same, "{text}");
    assert_eq!(
        disk::image_info(&raw_overlay).unwrap().backing_chain[0].format,
        ImageFormat::Raw
    );

    // VHDs created from a device: 1 MiB-rounded exact size, same content, derived identity.
    let odd = d.join("odd.raw");
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes.truncate(bytes.len() - 12345);
    std::fs::write(&odd, &bytes).unwrap();
    let src = disk::open_image(&odd, Access::ReadOnly).unwrap();
    for (name, dynamic) in [("f.vhd", false), ("d.vhd", true)] {
        let out = d.join(name);
        let id = vhd::VhdIdentity {
            epoch: Some(1_700_000_000),
            uuid_seed: None,
        };
        if dynamic {
            vhd::create_dynamic(&*src, &out, &id).unwrap();
        } else {
            vhd::create_fixed(&*src, &out, &id).unwrap();
        }
        let info = qemu_info(&out);
        assert_eq!(info["format"], "vpc");
        assert_eq!(
            info["virtual-size"],
            DISK_MB << 20,
            "{name}: size rounded up to 1 MiB, exact"
        );
        let (same, text) = qemu_compare(&out, &odd);
        assert!(same, "{name}: {text}");
        let again = d.join(format!("again-{name}"));
        if dynamic {
            vhd::create_dynamic(&*src, &again, &id).unwrap();
        } else {
            vhd::create_fixed(&*src, &again, &id).unwrap();
        }
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&again).unwrap(),
            "{name} is reproducible"
        );
        let dev = disk::open_image(&out, Access::ReadOnly).unwrap();
        assert_eq!(dev.len(), DISK_MB << 20);
    }
}

#[test]
fn writes_keep_internal_snapshots_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = raw_disk(d, Table::Gpt);
    let img = d.join("snap.qcow2");
    convert(&raw, &img, "qcow2", &["-c"]);
    run("qemu-img", &["snapshot", "-c", "before", p(&img)]);
    // Clusters shared with the snapshot (refcount 2) must be copied, not overwritten.
    let writes = write_pattern(DISK_MB << 20);
    let expected = d.join("expected.raw");
    std::fs::copy(&raw, &expected).unwrap();
    apply_writes_raw(&expected, &writes);
    apply_writes(
        &mut *disk::open_image(&img, Access::ReadWrite).unwrap(),
        &writes,
    );
    assert_qemu_check_clean(&img);
    let (same, text) = qemu_compare(&img, &expected);
    assert!(same, "{text}");
    run("qemu-img", &["snapshot", "-a", "before", p(&img)]);
    let (same, text) = qemu_compare(&img, &raw);
    assert!(same, "the snapshot changed: {text}");
}
