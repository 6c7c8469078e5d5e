//! Hostile images: each is a clear error naming the file and the structure, never a panic.

mod disk_support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use disk_support::*;
use graft::disk::{self, Access};

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

fn patched(src: &Path, dst: &Path, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = std::fs::read(src).unwrap();
    patch(&mut b);
    std::fs::write(dst, &b).unwrap();
    dst.to_path_buf()
}

fn open_err(img: &Path) -> String {
    match disk::open_image(img, Access::ReadOnly) {
        Ok(_) => panic!("{} opened, but it is broken", img.display()),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(img.to_str().unwrap()),
                "the error must name the file: {text}"
            );
            text
        }
    }
}

fn small_qcow2(d: &Path, name: &str, opts: &[&str]) -> PathBuf {
    // A 4 MiB raw disk with data scattered through it, so that L2 tables are populated.
    let raw = d.join(format!("{name}.raw"));
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(4 << 20).unwrap();
    for i in 0..16u64 {
        f.write_all_at(&[i as u8 + 1; 3000], i * 250_000).unwrap();
    }
    let q = d.join(name);
    convert(&raw, &q, "qcow2", opts);
    q
}

#[test]
fn broken_qcow2_headers_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = small_qcow2(d, "ok.qcow2", &[]);
    assert!(disk::open_image(&q, Access::ReadOnly).is_ok());

    let e = open_err(&patched(&q, &d.join("trunc.qcow2"), |b| b.truncate(60)));
    assert!(e.contains("shorter than a qcow2 header"), "{e}");
    let e = open_err(&patched(&q, &d.join("half.qcow2"), |b| {
        b.truncate(b.len() / 2)
    }));
    assert!(e.contains("past the end of the file"), "{e}");
    let e = open_err(&patched(&q, &d.join("v4.qcow2"), |b| {
        b[4..8].copy_from_slice(&4u32.to_be_bytes())
    }));
    assert!(e.contains("version 4 is not supported"), "{e}");
    let e = open_err(&patched(&q, &d.join("dirty.qcow2"), |b| b[79] |= 1));
    assert!(
        e.contains("dirty") && e.contains("qemu-img check -r all"),
        "{e}"
    );
    let e = open_err(&patched(&q, &d.join("corrupt.qcow2"), |b| b[79] |= 2));
    assert!(
        e.contains("corrupt") && e.contains("qemu-img check -r all"),
        "{e}"
    );
    let e = open_err(&patched(&q, &d.join("extdata.qcow2"), |b| b[79] |= 4));
    assert!(e.contains("external data file"), "{e}");
    let e = open_err(&patched(&q, &d.join("unknown.qcow2"), |b| b[74] |= 1));
    assert!(e.contains("unknown incompatible feature"), "{e}");
    let e = open_err(&patched(&q, &d.join("aes.qcow2"), |b| {
        b[32..36].copy_from_slice(&1u32.to_be_bytes())
    }));
    assert!(e.contains("encrypted"), "{e}");
    let e = open_err(&patched(&q, &d.join("bits.qcow2"), |b| {
        b[20..24].copy_from_slice(&40u32.to_be_bytes())
    }));
    assert!(e.contains("cluster_bits"), "{e}");
    let e = open_err(&patched(&q, &d.join("l1size.qcow2"), |b| {
        b[36..40].copy_from_slice(&u32::MAX.to_be_bytes())
    }));
    assert!(e.contains("l1_size") || e.contains("L1 table"), "{e}");
    let e = open_err(&patched(&q, &d.join("size.qcow2"), |b| {
        b[24..32].copy_from_slice(&u64::MAX.to_be_bytes())
    }));
    assert!(e.contains("l1_size"), "{e}");
}

#[test]
fn l1_and_l2_entries_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, opts) in [("plain.qcow2", &[][..]), ("comp.qcow2", &["-c"][..])] {
        let q = small_qcow2(d, name, opts);
        let bytes = std::fs::read(&q).unwrap();
        let l1 = be64(&bytes, 40) as usize;
        let l2 = (be64(&bytes, l1) & 0x00ff_ffff_ffff_fe00) as usize;
        assert_ne!(l2, 0);
        let e = open_err(&patched(&q, &d.join(format!("l1-{name}")), |b| {
            b[l1..l1 + 8].copy_from_slice(&((1u64 << 63) | (1 << 40)).to_be_bytes());
        }));
        assert!(e.contains("L1 entry") && e.contains("past the end"), "{e}");
        let first_data = (0..65536 / 8)
            .map(|i| l2 + i * 8)
            .find(|&o| be64(&bytes, o) != 0)
            .unwrap();
        let e = open_err(&patched(&q, &d.join(format!("l2-{name}")), |b| {
            let flags = be64(b, first_data) & (3u64 << 62);
            let huge = if flags & (1 << 62) != 0 {
                1u64 << 40
            } else {
                1u64 << 45
            };
            b[first_data..first_data + 8].copy_from_slice(&(flags | huge).to_be_bytes());
        }));
        assert!(e.contains("L2 entry") && e.contains("past the end"), "{e}");
    }
}

#[test]
fn backing_chain_loops_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a.qcow2");
    let b = d.join("b.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", p(&a), "16M"]);
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "a.qcow2",
            "-F",
            "qcow2",
            p(&b),
        ],
    );
    // Re-create a on top of b without qemu-img's own check (-u): a -> b -> a.
    std::fs::remove_file(&a).unwrap();
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "b.qcow2",
            "-F",
            "qcow2",
            p(&a),
            "16M",
        ],
    );
    let e = open_err(&a);
    assert!(e.contains("loop"), "{e}");
    // A missing backing file names the file.
    let c = d.join("c.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "gone.qcow2",
            "-F",
            "qcow2",
            p(&c),
            "16M",
        ],
    );
    let e = disk::open_image(&c, Access::ReadOnly)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("gone.qcow2"), "{e}");
}

#[test]
fn broken_vhds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("r.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(8 << 20).unwrap();
    f.write_all_at(&[7u8; 100_000], 3 << 20).unwrap();
    let v = d.join("dyn.vhd");
    convert(&raw, &v, "vpc", &["-o", "subformat=dynamic"]);
    assert!(disk::open_image(&v, Access::ReadOnly).is_ok());
    let bytes = std::fs::read(&v).unwrap();
    let n = bytes.len();
    let e = open_err(&patched(&v, &d.join("sum.vhd"), |b| {
        b[n - 512 + 50] ^= 0x40
    }));
    assert!(e.contains("VHD footer") && e.contains("checksum"), "{e}");
    let hoff = be64(&bytes, n - 512 + 16) as usize;
    let bat = be64(&bytes, hoff + 16) as usize;
    let used = (0..be32(&bytes, hoff + 28) as usize)
        .map(|i| bat + i * 4)
        .find(|&o| be32(&bytes, o) != u32::MAX)
        .unwrap();
    let e = open_err(&patched(&v, &d.join("bat.vhd"), |b| {
        b[used..used + 4].copy_from_slice(&0x7fff_0000u32.to_be_bytes())
    }));
    assert!(
        e.contains("BAT entry") && e.contains("past the footer"),
        "{e}"
    );
    let e = open_err(&patched(&v, &d.join("hdr.vhd"), |b| b[hoff + 30] ^= 1));
    assert!(
        e.contains("dynamic header") && e.contains("checksum"),
        "{e}"
    );
    let e = open_err(&patched(&v, &d.join("short.vhd"), |b| {
        let footer = b[n - 512..].to_vec();
        b.truncate(1024);
        b.extend_from_slice(&footer);
    }));
    assert!(e.contains("BAT") || e.contains("dynamic header"), "{e}");
    let e = open_err(&patched(&v, &d.join("cut.vhd"), |b| b.truncate(n - 512)));
    assert!(e.contains("truncated"), "{e}");
    // A footer claiming an enormous size (checksum kept right) is refused.
    let e = open_err(&patched(&v, &d.join("huge.vhd"), |b| {
        let f = n - 512;
        b[f + 48..f + 56].copy_from_slice(&(u64::MAX - 511).to_be_bytes());
        let sum: u32 = b[f..f + 512]
            .iter()
            .enumerate()
            .filter(|(i, _)| !(64..68).contains(i))
            .map(|(_, &x)| x as u32)
            .sum();
        b[f + 64..f + 68].copy_from_slice(&(!sum).to_be_bytes());
    }));
    assert!(e.contains("max table entries"), "{e}");
}

#[test]
fn partition_tables_overlapping_and_with_a_bad_gpt_crc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Overlapping MBR partitions (sfdisk would not make them; written by hand).
    let raw = d.join("ov.raw");
    let mut b = vec![0u8; 8 << 20];
    b[510] = 0x55;
    b[511] = 0xAA;
    for (k, (start, len)) in [(2048u32, 8192u32), (6000, 4000)].iter().enumerate() {
        let e = 446 + k * 16;
        b[e + 4] = 0x83;
        b[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
        b[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    }
    std::fs::write(&raw, &b).unwrap();
    let out = graft(&["inspect", p(&raw)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("overlap") && err.contains("ov.raw"), "{err}");

    // A damaged primary GPT header: the backup is used, and the report says so.
    let disk = raw_disk(d, Table::Gpt);
    let good = inspect_json(&disk);
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.write_all_at(&[0xEE; 4], 512 + 60).unwrap(); // inside the disk GUID: CRC now wrong
    drop(f);
    let j = inspect_json(&disk);
    let notes = j["partition_table"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    let note = notes[0].as_str().unwrap();
    assert!(
        note.contains("backup header") && note.contains("CRC32"),
        "{note}"
    );
    assert_eq!(j["partitions"], good["partitions"]);
    assert_eq!(j["os"]["id"], "debian");
    // sgdisk, an independent reader, also sees the primary as damaged.
    let v = std::process::Command::new("sgdisk")
        .args(["-v", p(&disk)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.to_lowercase().contains("crc") || text.to_lowercase().contains("corrupt"),
        "{text}"
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for (i, size) in [0usize, 1, 511, 512, 513, 4096, 70_000, 1 << 20]
        .iter()
        .enumerate()
    {
        let mut b: Vec<u8> = (0..*size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        // Half of them get a real magic in front of the noise.
        if i % 2 == 1 && b.len() >= 8 {
            b[..4].copy_from_slice(b"QFI\xfb");
        }
        let path = d.join(format!("g{i}.img"));
        std::fs::write(&path, &b).unwrap();
        let _ = disk::open_image(&path, Access::ReadOnly);
        let out = graft(&["inspect", "--json", p(&path)]);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "inspect of garbage crashed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
