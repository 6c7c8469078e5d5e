//! Fixtures for the disk tests, built with the real tools (mkfs.ext4 -d, sfdisk, qemu-img)
//! under a temporary directory; nothing binary is committed.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft::disk::BlockDevice;

pub const DISK_MB: u64 = 48;
/// Where the root filesystem starts in every partitioned fixture (sector 10240 = 5 MiB).
pub const ROOT_START: u64 = 10240 * 512;
pub const ROOT_MB: u64 = 32;

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn run_stdin(cmd: &str, args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A fake guest: os-release (via the usual /etc -> /usr/lib symlink), merged /usr, a real
/// ELF /bin/sh (the host's), python3 -> python3.11, a libc banner, systemd as init,
/// cloud-init metadata, SELinux config.
pub fn guest_tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    for d in [
        "etc/selinux",
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/python3.11",
        "usr/lib/python3/dist-packages/cloud_init-22.4.2.egg-info",
        "usr/lib/systemd",
        "sbin",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::write(
        t.join("usr/lib/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", t.join("etc/os-release")).unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    std::fs::copy(&sh, t.join("usr/bin/dash")).unwrap();
    std::os::unix::fs::symlink("dash", t.join("usr/bin/sh")).unwrap();
    std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
    std::fs::write(t.join("usr/bin/python3.11"), "not really python\n").unwrap();
    std::os::unix::fs::symlink("python3.11", t.join("usr/bin/python3")).unwrap();
    std::fs::write(
        t.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
        b"\x7fELF...GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n",
    )
    .unwrap();
    std::fs::write(t.join("usr/lib/systemd/systemd"), "systemd\n").unwrap();
    std::os::unix::fs::symlink("/usr/lib/systemd/systemd", t.join("sbin/init")).unwrap();
    std::fs::write(
        t.join("etc/selinux/config"),
        "# comment\nSELINUX=disabled\nSELINUXTYPE=targeted\n",
    )
    .unwrap();
    // Links that try to leave the root: they must stay inside the guest.
    std::os::unix::fs::symlink("../../../../etc/hostname", t.join("etc/escape")).unwrap();
    std::fs::write(t.join("etc/hostname"), "guest-host\n").unwrap();
    std::os::unix::fs::symlink("loop-b", t.join("etc/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", t.join("etc/loop-b")).unwrap();
    t
}

/// An ext4 image of the guest tree.
pub fn root_fs(dir: &Path) -> PathBuf {
    let tree = guest_tree(dir);
    let img = dir.join("root.ext4");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(ROOT_MB << 20)
        .unwrap();
    run(
        "mkfs.ext4",
        &["-q", "-F", "-L", "groot", "-d", p(&tree), p(&img)],
    );
    img
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Gpt,
    /// Primary 1 (empty), extended 2, logical 5 (the root) and 6 (swap).
    Mbr,
    /// The filesystem is the whole disk.
    None,
}

/// A raw disk with the root filesystem placed per `table`.
pub fn raw_disk(dir: &Path, table: Table) -> PathBuf {
    let root = root_fs(dir);
    if table == Table::None {
        return root;
    }
    let disk = dir.join("disk.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(DISK_MB << 20)
        .unwrap();
    let root_sectors = (ROOT_MB << 20) / 512;
    let script = match table {
        Table::Gpt => format!(
            "label: gpt\nstart=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\nstart=10240, size={root_sectors}, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n"
        ),
        Table::Mbr => format!(
            "label: dos\nstart=2048, size=4096, type=83\nstart=8192, size={}, type=5\nstart=10240, size={root_sectors}, type=83\nstart={}, size=4096, type=82\n",
            (DISK_MB << 20) / 512 - 8192,
            10240 + root_sectors + 2048
        ),
        Table::None => unreachable!(),
    };
    run_stdin("sfdisk", &["-q", p(&disk)], &script);
    let bytes = std::fs::read(&root).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.write_all_at(&bytes, ROOT_START).unwrap();
    if table == Table::Gpt {
        let esp = dir.join("esp.vfat");
        run("mkfs.vfat", &["-C", p(&esp), "4096"]);
        f.write_all_at(&std::fs::read(&esp).unwrap(), 2048 * 512)
            .unwrap();
    }
    if table == Table::Mbr {
        let swap = dir.join("swap.img");
        std::fs::File::create(&swap)
            .unwrap()
            .set_len(4096 * 512)
            .unwrap();
        run("mkswap", &["-L", "sw", p(&swap)]);
        f.write_all_at(
            &std::fs::read(&swap).unwrap(),
            (10240 + root_sectors + 2048) * 512,
        )
        .unwrap();
    }
    disk
}

pub fn convert(src: &Path, dst: &Path, fmt: &str, extra: &[&str]) {
    let mut args = vec!["convert", "-O", fmt];
    args.extend_from_slice(extra);
    args.push(p(src));
    args.push(p(dst));
    run("qemu-img", &args);
}

/// `qemu-img check` exits 0 and reports no errors or leaks.
pub fn assert_qemu_check_clean(img: &Path) {
    let out = Command::new("qemu-img")
        .args(["check", p(img)])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("No errors were found"),
        "qemu-img check {}: {text}",
        img.display()
    );
}

/// `qemu-img compare` (exit 0 = same content).
/// Formats are given explicitly: qemu probes a fixed VHD (no header copy) as raw.
pub fn qemu_compare(a: &Path, b: &Path) -> (bool, String) {
    let fmt = |x: &Path| {
        if x.extension().is_some_and(|e| e == "vhd") {
            "vpc"
        } else if x.extension().is_some_and(|e| e == "qcow2") {
            "qcow2"
        } else {
            "raw"
        }
    };
    let out = Command::new("qemu-img")
        .args(["compare", "-f", fmt(a), "-F", fmt(b), p(a), p(b)])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn qemu_info(img: &Path) -> serde_json::Value {
    let mut args = vec!["info", "--output=json"];
    if img.extension().is_some_and(|e| e == "vhd") {
        args.extend(["-f", "vpc"]);
    }
    args.push(p(img));
    let out = run("qemu-img", &args);
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .unwrap()
}

pub fn inspect_json(img: &Path) -> serde_json::Value {
    let out = graft(&["inspect", "--json", p(img)]);
    assert!(
        out.status.success(),
        "graft inspect {}: {}",
        img.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A deterministic set of writes: small and large, unaligned, crossing 4 KiB, 64 KiB and
/// 2 MiB boundaries, into data already there (the root filesystem) and into holes.
pub fn write_pattern(size: u64) -> Vec<(u64, Vec<u8>)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut writes = vec![
        (0u64, vec![0xAB; 17]),
        (ROOT_START + 1024 + 300, vec![0x5A; 9000]),
        ((2 << 20) - 100, vec![0x11; 200]),
        ((4 << 20) - 65536 + 7, vec![0x22; 140_000]),
        (size - 513, vec![0x33; 513]),
    ];
    for _ in 0..24 {
        let len = 1 + (next() % 70_000) as usize;
        let off = next() % (size - len as u64);
        let fill = (next() & 0xff) as u8;
        let data: Vec<u8> = (0..len)
            .map(|i| fill.wrapping_add((i % 253) as u8))
            .collect();
        writes.push((off, data));
    }
    writes
}

pub fn apply_writes(dev: &mut dyn BlockDevice, writes: &[(u64, Vec<u8>)]) {
    for (off, data) in writes {
        dev.write_at(data, *off)
            .unwrap_or_else(|e| panic!("write of {} bytes at {off}: {e}", data.len()));
    }
    dev.flush().unwrap();
}

pub fn apply_writes_raw(path: &Path, writes: &[(u64, Vec<u8>)]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for (off, data) in writes {
        f.write_all_at(data, *off).unwrap();
    }
}

/// Every byte of the device.
pub fn read_all(dev: &dyn BlockDevice) -> Vec<u8> {
    let mut v = vec![0u8; dev.len() as usize];
    dev.read_at(&mut v, 0).unwrap();
    v
}

/// The host offset `qemu-img map` gives for the data at `guest`: `None` for holes and for
/// compressed clusters (which qemu-img map lists without an offset).
pub fn qemu_map_offset(img: &Path, guest: u64) -> Option<u64> {
    let out = run("qemu-img", &["map", "--output=json", p(img)]);
    let map: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = map.as_array().unwrap().iter().find(|e| {
        let start = e["start"].as_u64().unwrap();
        start <= guest && guest < start + e["length"].as_u64().unwrap()
    })?;
    // Newer qemu-img also says `"compressed": true`; older ones just omit the offset.
    if entry["data"] != true || entry["compressed"] == true {
        return None;
    }
    entry["offset"]
        .as_u64()
        .map(|o| o + guest - entry["start"].as_u64().unwrap())
}
