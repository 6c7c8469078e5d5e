//! Hostile filesystems: mke2fs images with metadata bytes flipped (deterministically),
//! handed to the writer. Errors are expected; a panic, hang or runaway allocation fails.
//! The same body runs under libFuzzer as fuzz/fuzz_targets/ext4_writer.rs.

use std::process::Command;

use graft::disk::MemDevice;
use graft::fs::ext4::{Ext4Writer, Meta};

fn image(args: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("etc/os-release"), b"ID=x\n").unwrap();
    for i in 0..150 {
        std::fs::write(src.join("d").join(format!("entry-{i}")), b"").unwrap();
    }
    let img = tmp.path().join("img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let ok = Command::new("mke2fs")
        .args(["-q", "-F", "-b", "1024", "-N", "256"])
        .args(args)
        .arg("-d")
        .arg(&src)
        .arg(&img)
        .status()
        .unwrap();
    assert!(ok.success());
    // Index /d so htree code paths see hostile bytes too.
    let _ = Command::new("e2fsck")
        .args(["-fyD"])
        .arg(&img)
        .output()
        .unwrap();
    std::fs::read(&img).unwrap()
}

fn exercise(bytes: Vec<u8>) {
    let mut dev = MemDevice::new(bytes);
    let Ok(mut w) = Ext4Writer::open(&mut dev) else {
        return;
    };
    let m = Meta::new(0o644, 0, 0, 0);
    let _ = w.lookup("/etc/os-release");
    let _ = w.mkdir_p("/d/new", &m);
    for i in 0..40 {
        let _ = w.create_file(
            &format!("/d/f{i}-{}", "x".repeat(i)),
            &m,
            3000,
            &mut &[1u8; 3000][..],
            false,
        );
    }
    let _ = w.symlink("/d/l", &[b'y'; 200], &m, false);
    let _ = w.create_file("/etc/os-release", &m, 1, &mut &b"z"[..], true);
    let _ = w.commit();
}

#[test]
fn flipped_metadata_bytes_never_panic() {
    for args in [
        &["-t", "ext4", "-O", "^metadata_csum"][..],
        &["-t", "ext3"],
        &["-t", "ext4"],
    ] {
        let base = image(args);
        let mut state = 0x9E3779B97F4A7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..250 {
            let mut b = base.clone();
            let flips = 1 + next() % 8;
            for _ in 0..flips {
                // Metadata lives in the first 300 KiB of these images.
                let at = (next() % (300 << 10)) as usize;
                b[at] ^= 1 << (next() % 8);
            }
            exercise(b);
        }
    }
}
