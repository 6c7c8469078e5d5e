//! Writing into filesystems made by mke2fs, checked by e2fsprogs: `e2fsck -fn` must find
//! nothing, and `debugfs` must read back every file, mode, owner and link target.
//!
//! The matrix follows issue 5. Sizes are full for the default mkfs case in release builds
//! (CI) and reduced elsewhere so the whole file runs in a few minutes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use graft::commands::copy_in::{copy_tree, needs, scan_tree};
use graft::disk::{BlockDevice, RawFile};
use graft::fs::ext4::superblock::Superblock;
use graft::fs::ext4::{Ext4Error, Ext4Writer, Meta};

const UID: u32 = 1000;
const GID: u32 = 1001;
const EPOCH: i64 = 1_700_000_000;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

#[derive(Clone, Copy)]
struct TreeSpec {
    small_files: usize,
    big_file: u64,
    big_dir: usize,
    depth: usize,
}

fn full() -> bool {
    !cfg!(debug_assertions)
}

/// A host tree: small files of assorted sizes, one big file, deep directories, short,
/// long and absolute symlinks, and one directory with many entries.
fn make_host_tree(root: &Path, spec: TreeSpec, seed: u64) {
    let mut rng = Lcg(seed);
    let files = root.join("files");
    fs::create_dir_all(&files).unwrap();
    let edge = [0usize, 1, 1023, 1024, 1025, 4095, 4096, 4097, 12 * 4096 + 1];
    for i in 0..spec.small_files {
        let size = if i < edge.len() {
            edge[i]
        } else {
            (rng.next() % 20000) as usize
        };
        let p = files.join(format!("f{i:05}.dat"));
        fs::write(&p, rng.bytes(size)).unwrap();
        let mode = [0o644, 0o600, 0o755, 0o444][i % 4];
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    if spec.big_file > 0 {
        let mut data = Vec::with_capacity(spec.big_file as usize);
        while (data.len() as u64) < spec.big_file {
            let chunk = rng.bytes(1 << 16);
            data.extend_from_slice(&chunk);
        }
        data.truncate(spec.big_file as usize);
        fs::write(root.join("big.bin"), data).unwrap();
    }
    let mut d = root.join("deep");
    for i in 0..spec.depth {
        d = d.join(format!("level-{i}"));
    }
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("bottom.txt"), b"the bottom\n").unwrap();
    let links = root.join("links");
    fs::create_dir_all(&links).unwrap();
    symlink("../files/f00001.dat", links.join("short")).unwrap();
    symlink("x".repeat(59), links.join("fast-59")).unwrap();
    symlink("y".repeat(60), links.join("slow-60")).unwrap();
    symlink(
        format!("/{}", "long-component/".repeat(20)),
        links.join("long"),
    )
    .unwrap();
    symlink("/etc/passwd", links.join("absolute")).unwrap();
    let private = root.join("private");
    fs::create_dir_all(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(private.join("secret"), b"s").unwrap();
    if spec.big_dir > 0 {
        let bd = root.join("bigdir");
        fs::create_dir_all(&bd).unwrap();
        for i in 0..spec.big_dir {
            // Varying name lengths so leaves split at different byte counts.
            let name = format!("entry-{i:06}-{}", "n".repeat(i % 23));
            fs::write(bd.join(name), b"").unwrap();
        }
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn mkfs(img: &Path, size_mb: u64, args: &[&str], populate: Option<&Path>) {
    let f = fs::File::create(img).unwrap();
    f.set_len(size_mb << 20).unwrap();
    drop(f);
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-F", "-E", "root_owner=0:0"]);
    let has_type = args.contains(&"-t");
    if !has_type {
        cmd.args(["-t", "ext4"]);
    }
    cmd.args(args);
    if let Some(p) = populate {
        cmd.arg("-d").arg(p);
    }
    cmd.arg(img);
    let (ok, text) = run(&mut cmd);
    assert!(ok, "mke2fs {args:?} failed: {text}");
}

fn e2fsck_clean(img: &Path, what: &str) {
    let (ok, text) = run(Command::new("e2fsck").args(["-fn"]).arg(img));
    assert!(
        ok && !text.contains("Fix?") && !text.contains("? no"),
        "{what}: e2fsck -fn found problems:\n{text}"
    );
}

fn debugfs(img: &Path, request: &str) -> String {
    let (ok, text) = run(Command::new("debugfs").args(["-R", request]).arg(img));
    assert!(ok, "debugfs -R {request:?}: {text}");
    text
}

/// Mode, uid, gid of every entry under `dir` in the image, by relative path, from
/// `debugfs ls -p` (one debugfs run per directory level, batched with -f).
fn guest_listing(img: &Path, dir: &str, work: &Path) -> BTreeMap<String, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![String::new()];
    while !pending.is_empty() {
        let cmds: String = pending
            .iter()
            .map(|rel| format!("ls -p \"{dir}/{rel}\"\n"))
            .collect();
        let cmdfile = work.join("cmds");
        fs::write(&cmdfile, &cmds).unwrap();
        let (ok, text) = run(Command::new("debugfs").arg("-f").arg(&cmdfile).arg(img));
        assert!(ok, "{text}");
        let mut next = Vec::new();
        let mut idx = 0usize;
        for line in text.lines() {
            if line.starts_with("debugfs:") {
                idx = pending
                    .iter()
                    .position(|r| line.ends_with(&format!("ls -p \"{dir}/{r}\"")))
                    .unwrap_or(idx);
                continue;
            }
            let f: Vec<&str> = line.split('/').collect();
            if f.len() < 7 || !f[0].is_empty() {
                continue;
            }
            let name = f[5];
            // Interior htree nodes look like one empty entry (inode 0); debugfs lists them.
            if name == "." || name == ".." || f[1] == "0" {
                continue;
            }
            let mode = u32::from_str_radix(f[2], 8).unwrap();
            let rel = if pending[idx].is_empty() {
                name.to_string()
            } else {
                format!("{}/{name}", pending[idx])
            };
            if mode & 0o170000 == 0o040000 {
                next.push(rel.clone());
            }
            out.insert(rel, (mode, f[3].parse().unwrap(), f[4].parse().unwrap()));
        }
        pending = next;
    }
    out
}

fn sha(p: &Path) -> String {
    graft::util::sha256_file(p).unwrap().0
}

/// Host tree as path -> (type+mode, content hash or link target).
fn host_view(root: &Path) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let md = e.path().symlink_metadata().unwrap();
        let ft = md.file_type();
        let mode = md.permissions().mode();
        let v = if ft.is_symlink() {
            (
                0o120777,
                fs::read_link(e.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string(),
            )
        } else if ft.is_dir() {
            (mode, String::new())
        } else {
            (mode, sha(e.path()))
        };
        out.insert(rel, v);
    }
    out
}

/// Dumps `dir` of the image with `debugfs rdump` and views it like the host tree.
fn dumped_view(img: &Path, dir: &str, work: &Path) -> BTreeMap<String, (u32, String)> {
    let out = work.join(format!("dump-{}", dir.replace('/', "_")));
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    debugfs(img, &format!("rdump \"{dir}\" {}", out.display()));
    let name = Path::new(dir).file_name().unwrap();
    host_view(&out.join(name))
}

fn copy_in(img: &Path, host: &Path, guest: &str) -> graft::fs::ext4::Report {
    let items = scan_tree(host).unwrap();
    let mut dev = RawFile::open(img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let n = needs(&mut w, &items, guest).unwrap();
    w.check_space(&n).unwrap();
    copy_tree(&mut w, &items, guest, UID, GID, EPOCH, false, None).unwrap();
    w.commit().unwrap()
}

/// Checks that everything under `host` is at `guest` in the image, with the right
/// contents, link targets, modes and owners.
fn verify(img: &Path, host: &Path, guest: &str, work: &Path) {
    let want = host_view(host);
    let got = dumped_view(img, guest, work);
    assert_eq!(got.len(), want.len(), "entry count under {guest}");
    for (rel, (mode, v)) in &want {
        let g = got
            .get(rel)
            .unwrap_or_else(|| panic!("{guest}/{rel} missing in the image"));
        assert_eq!(&g.1, v, "{guest}/{rel}: content or link target differs");
        if mode & 0o170000 != 0o120000 {
            assert_eq!(g.0 & 0o7777, mode & 0o7777, "{guest}/{rel}: mode as dumped");
        }
    }
    let listing = guest_listing(img, guest, work);
    let extra: Vec<_> = listing.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty() && listing.len() == want.len(),
        "ls -p under {guest}: unexpected {extra:?}"
    );
    for (rel, (mode, _)) in &want {
        let (m, u, g) = listing[rel];
        let want_mode = if mode & 0o170000 == 0o120000 {
            0o120777
        } else {
            *mode & 0o177777
        };
        assert_eq!(m, want_mode, "{guest}/{rel}: mode in the inode");
        assert_eq!((u, g), (UID, GID), "{guest}/{rel}: owner");
    }
    // A timestamp, read back by debugfs.
    let stat = debugfs(img, &format!("stat \"{guest}/files/f00000.dat\""));
    assert!(stat.contains(&format!("mtime: {:#010x}", EPOCH)), "{stat}");
}

fn verify_content(img: &Path, host: &Path, guest: &str, work: &Path) {
    assert_eq!(
        dumped_view(img, guest, work),
        host_view(host),
        "{guest}: contents differ"
    );
}

struct Case {
    name: &'static str,
    size_mb: u64,
    mkfs: &'static [&'static str],
    spec: TreeSpec,
}

fn small_spec() -> TreeSpec {
    TreeSpec {
        small_files: 300,
        big_file: 6 << 20,
        big_dir: 3000,
        depth: 40,
    }
}

fn run_case(c: &Case) {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    make_host_tree(&host, c.spec, 7);
    let img = tmp.path().join("img");
    mkfs(&img, c.size_mb, c.mkfs, None);
    let report = copy_in(&img, &host, "/opt/graft");
    assert_eq!(
        report.existing_dirs_changed,
        vec!["/".to_string()],
        "{}",
        c.name
    );
    e2fsck_clean(&img, c.name);
    verify(&img, &host, "/opt/graft", tmp.path());
}

macro_rules! matrix {
    ($($test:ident: $size:expr, $args:expr;)*) => {$(
        #[test]
        fn $test() {
            run_case(&Case { name: stringify!($test), size_mb: $size, mkfs: $args, spec: small_spec() });
        }
    )*};
}

matrix! {
    block_1024: 128, &["-b", "1024"];
    no_metadata_csum: 128, &["-O", "^metadata_csum"];
    no_64bit: 128, &["-O", "^64bit"];
    no_flex_bg: 128, &["-O", "^flex_bg"];
    inode_128: 128, &["-I", "128"];
    ext3: 128, &["-t", "ext3"];
    ext2: 128, &["-t", "ext2"];
    no_dir_index: 128, &["-O", "^dir_index"];
    sparse_super2: 128, &["-O", "sparse_super2"];
    meta_bg: 128, &["-O", "meta_bg,^resize_inode"];
    ext2_block_1024: 64, &["-t", "ext2", "-b", "1024"];
    gdt_csum_crc16: 128, &["-O", "^metadata_csum,uninit_bg"];
    gdt_csum_crc16_32bit_desc: 128, &["-O", "^metadata_csum,uninit_bg,^64bit", "-b", "1024"];
    ext3_block_1024: 128, &["-t", "ext3", "-b", "1024"];
    ext2_no_filetype_block_2048: 128, &["-t", "ext2", "-O", "^filetype", "-b", "2048"];
    inline_data: 128, &["-O", "inline_data"];
    metadata_csum_seed: 128, &["-O", "metadata_csum_seed"];
    large_dir: 128, &["-O", "large_dir", "-b", "1024"];
    no_sparse_super: 128, &["-O", "^sparse_super,^resize_inode"];
    no_resize_inode: 128, &["-O", "^resize_inode"];
    small_groups: 128, &["-G", "4", "-g", "2048", "-b", "1024"];
}

#[test]
fn ext4_defaults_full_size() {
    let spec = if full() {
        TreeSpec {
            small_files: 10_000,
            big_file: 100 << 20,
            big_dir: 50_000,
            depth: 100,
        }
    } else {
        TreeSpec {
            small_files: 1000,
            big_file: 20 << 20,
            big_dir: 12_000,
            depth: 60,
        }
    };
    run_case(&Case {
        name: "defaults",
        size_mb: 2048,
        mkfs: &[],
        spec,
    });
}

/// A filesystem populated by mke2fs -d with a 20,000-entry htree directory: new entries go
/// into it (leaf splits in an existing tree), and nothing that was there changes.
#[test]
fn into_existing_large_htree_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let pre = tmp.path().join("pre");
    let big = pre.join("big");
    fs::create_dir_all(&big).unwrap();
    let n = if full() { 20_000 } else { 8_000 };
    for i in 0..n {
        fs::write(
            big.join(format!("existing-{i:05}")),
            if i % 100 == 0 {
                format!("{i}")
            } else {
                String::new()
            },
        )
        .unwrap();
    }
    fs::create_dir_all(pre.join("etc")).unwrap();
    fs::write(pre.join("etc/hostname"), b"guest\n").unwrap();
    let img = tmp.path().join("img");
    mkfs(&img, 256, &[], Some(&pre));
    // mke2fs -d writes directories linearly; e2fsck -D indexes them as the kernel would.
    let (_, text) = run(Command::new("e2fsck").args(["-fyD"]).arg(&img));
    e2fsck_clean(&img, &format!("after e2fsck -D: {text}"));
    let info = debugfs(&img, "htree_dump /big");
    assert!(
        info.contains("Number of entries"),
        "mke2fs -d did not index /big: {}",
        &info[..info.len().min(500)]
    );
    let before_big = dumped_view(&img, "/big", tmp.path());
    let before_etc = dumped_view(&img, "/etc", tmp.path());

    let host = tmp.path().join("host");
    fs::create_dir_all(&host).unwrap();
    let mut rng = Lcg(3);
    for i in 0..3000 {
        fs::write(
            host.join(format!("added-{i:05}-{}", "z".repeat(i % 17))),
            rng.bytes(i % 300),
        )
        .unwrap();
    }
    symlink("existing-00001", host.join("link-to-existing")).unwrap();
    let report = copy_in(&img, &host, "/big");
    assert_eq!(report.existing_dirs_changed, vec!["/big".to_string()]);
    e2fsck_clean(&img, "existing htree");

    let after_big = dumped_view(&img, "/big", tmp.path());
    for (k, v) in &before_big {
        assert_eq!(after_big.get(k), Some(v), "existing /big/{k} changed");
    }
    assert_eq!(after_big.len(), before_big.len() + 3001);
    assert_eq!(dumped_view(&img, "/etc", tmp.path()), before_etc);
    let want = host_view(&host);
    for (k, v) in &want {
        assert_eq!(after_big.get(k).map(|x| &x.1), Some(&v.1), "/big/{k}");
    }
}

/// Nearly full: the space check refuses with numbers; what fits is written cleanly.
#[test]
fn nearly_full_and_out_of_inodes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs(&img, 32, &[], None);
    // Fill most of it from the host side with one big file written by graft itself.
    let fill = tmp.path().join("fill");
    fs::create_dir_all(&fill).unwrap();
    fs::write(fill.join("ballast"), vec![7u8; 24 << 20]).unwrap();
    copy_in(&img, &fill, "/ballast");
    e2fsck_clean(&img, "after ballast");

    let host = tmp.path().join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("too-big"), vec![1u8; 12 << 20]).unwrap();
    let items = scan_tree(&host).unwrap();
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let n = needs(&mut w, &items, "/x").unwrap();
    let err = w.check_space(&n).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Ext4Error::NoSpace(_)), "{msg}");
    assert!(
        msg.contains("needs") && msg.contains(&format!("{} blocks", w.free_blocks())),
        "{msg}"
    );
    // What still fits is written cleanly into the fragmented remainder.
    let free = w.free_blocks();
    drop(w);
    drop(dev);
    let fits = tmp.path().join("fits");
    fs::create_dir_all(&fits).unwrap();
    let mut rng = Lcg(5);
    for i in 0..40 {
        fs::write(fits.join(format!("small-{i}")), rng.bytes(1000 + i * 37)).unwrap();
    }
    fs::write(fits.join("rest"), rng.bytes(((free - 400) * 1024) as usize)).unwrap();
    copy_in(&img, &fits, "/fits");
    e2fsck_clean(&img, "nearly full");
    verify_content(&img, &fits, "/fits", tmp.path());

    // A filesystem with few inodes: the inode count is refused the same way.
    let img2 = tmp.path().join("img2");
    mkfs(&img2, 16, &["-N", "64"], None);
    let many = tmp.path().join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..200 {
        fs::write(many.join(format!("{i}")), b"").unwrap();
    }
    let items = scan_tree(&many).unwrap();
    let mut dev = RawFile::open(&img2, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let n = needs(&mut w, &items, "/x").unwrap();
    let msg = w.check_space(&n).unwrap_err().to_string();
    assert!(
        msg.contains("inodes") && msg.contains(&format!("{} inodes free", w.free_inodes())),
        "{msg}"
    );
    drop(w);
    drop(dev);
    // Up to the last free inode, written cleanly.
    let few = tmp.path().join("few");
    fs::create_dir_all(&few).unwrap();
    let mut dev = RawFile::open(&img2, true).unwrap();
    let w = Ext4Writer::open(&mut dev).unwrap();
    let free = w.free_inodes();
    drop(w);
    drop(dev);
    for i in 0..free - 1 {
        fs::write(few.join(format!("{i}")), b"x").unwrap();
    }
    copy_in(&img2, &few, "/last");
    e2fsck_clean(&img2, "out of inodes");
    let mut dev = RawFile::open(&img2, true).unwrap();
    let w = Ext4Writer::open(&mut dev).unwrap();
    assert_eq!(w.free_inodes(), 0);
}

#[test]
fn refuses_journal_needing_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs(&img, 32, &[], None);
    debugfs_w(&img, "feature needs_recovery");
    let mut dev = RawFile::open(&img, true).unwrap();
    let before = fs::read(&img).unwrap();
    let err = Ext4Writer::open(&mut dev).err().expect("must refuse");
    assert!(err.to_string().contains("journal needs recovery"), "{err}");
    drop(dev);
    assert!(fs::read(&img).unwrap() == before, "nothing may be written");
}

fn debugfs_w(img: &Path, req: &str) {
    let (ok, text) = run(Command::new("debugfs").args(["-w", "-R", req]).arg(img));
    assert!(ok, "{text}");
}

#[test]
fn refuses_unknown_incompat_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs(&img, 32, &[], None);
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut raw = vec![0u8; 1024];
    dev.read_at(&mut raw, 1024).unwrap();
    let incompat = u32::from_le_bytes(raw[0x60..0x64].try_into().unwrap()) | 0x0100_0000;
    raw[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
    let mut sb = Superblock { raw };
    sb.finish();
    dev.write_at(&sb.raw, 1024).unwrap();
    let err = Ext4Writer::open(&mut dev).err().expect("must refuse");
    assert!(
        err.to_string()
            .contains("incompatible feature bits 0x1000000"),
        "{err}"
    );
}

#[test]
fn existing_name_is_refused_without_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs(&img, 32, &[], None);
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let m = Meta::new(0o644, 0, 0, 0);
    w.mkdir_p("/etc", &m).unwrap();
    w.create_file("/etc/a", &m, 3, &mut &b"abc"[..], false)
        .unwrap();
    let e = w
        .create_file("/etc/a", &m, 1, &mut &b"x"[..], false)
        .unwrap_err();
    assert!(matches!(e, Ext4Error::Exists(_)), "{e}");
    let e = w.symlink("/etc/a", b"b", &m, false).unwrap_err();
    assert!(matches!(e, Ext4Error::Exists(_)), "{e}");
    let e = w.mkdir_p("/etc/a/b", &m).unwrap_err();
    assert!(matches!(e, Ext4Error::NotADirectory(_)), "{e}");
    // Symlinks inside the filesystem are followed within it.
    w.symlink("/lib", b"usr/lib", &m, false).unwrap();
    w.mkdir_p("/usr/lib/x", &m).unwrap();
    let via_link = w.mkdir_p("/lib/x", &m).unwrap();
    assert_eq!(w.lookup("/usr/lib/x").unwrap(), Some(via_link));
    w.symlink("/escape", b"../../../../usr", &m, false).unwrap();
    assert_eq!(w.lookup("/escape/lib/x").unwrap(), Some(via_link));
    w.commit().unwrap();
    e2fsck_clean(&img, "names");
    assert!(debugfs(&img, "cat /etc/a").contains("abc"));

    // With replace: the old inode and blocks are released, the new content is there.
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let free_before = w.free_blocks();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    w.create_file("/etc/big", &m, big.len() as u64, &mut &big[..], false)
        .unwrap();
    w.commit().unwrap();
    e2fsck_clean(&img, "before replace");
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    w.create_file("/etc/big", &m, 5, &mut &b"small"[..], true)
        .unwrap();
    w.create_file("/etc/a", &m, 3, &mut &b"new"[..], true)
        .unwrap();
    w.symlink("/lib", b"usr/lib64", &m, true).unwrap();
    let e = w
        .create_file("/usr", &m, 1, &mut &b"x"[..], true)
        .unwrap_err();
    assert!(matches!(e, Ext4Error::Refused(_)), "{e}");
    let r = w.commit().unwrap();
    assert_eq!(r.replaced, 3);
    e2fsck_clean(&img, "after replace");
    assert!(debugfs(&img, "cat /etc/big").contains("small"));
    assert!(debugfs(&img, "cat /etc/a").contains("new"));
    assert!(debugfs(&img, "stat /lib").contains("Fast link dest: \"usr/lib64\""));
    let mut dev = RawFile::open(&img, true).unwrap();
    let w = Ext4Writer::open(&mut dev).unwrap();
    assert!(
        w.free_blocks() + 2 >= free_before,
        "blocks of the replaced file were not freed"
    );
}

/// The same additions to the same filesystem give the same bytes.
#[test]
fn deterministic_output() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    make_host_tree(
        &host,
        TreeSpec {
            small_files: 50,
            big_file: 1 << 20,
            big_dir: 500,
            depth: 5,
        },
        9,
    );
    let a = tmp.path().join("a");
    mkfs(
        &a,
        64,
        &[
            "-U",
            "01234567-89ab-cdef-0123-456789abcdef",
            "-E",
            "hash_seed=01234567-89ab-cdef-0123-456789abcdef",
        ],
        None,
    );
    let b = tmp.path().join("b");
    fs::copy(&a, &b).unwrap();
    copy_in(&a, &host, "/x");
    copy_in(&b, &host, "/x");
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
}

/// Every directory hash (legacy, half-MD4, TEA; signed and unsigned chars) with names
/// holding bytes >= 0x80: e2fsck recomputes each hash and checks the tree order.
#[test]
fn all_hash_algorithms_signed_and_unsigned() {
    for (alg, flags) in [
        ("legacy", 1),
        ("half_md4", 2),
        ("tea", 1),
        ("tea", 2),
        ("legacy", 2),
        ("half_md4", 1),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        mkfs(&img, 32, &["-b", "1024"], None);
        let (ok, text) = run(Command::new("tune2fs")
            .args(["-E", &format!("hash_alg={alg}")])
            .arg(&img));
        assert!(ok, "{text}");
        debugfs_w(&img, &format!("ssv flags {flags}"));
        let host = tmp.path().join("host");
        fs::create_dir_all(host.join("d")).unwrap();
        for i in 0..1500 {
            fs::write(
                host.join("d").join(format!(
                    "n\u{e9}\u{fc}-{i}-\u{4e2d}{}",
                    "\u{df}".repeat(i % 9)
                )),
                b"",
            )
            .unwrap();
        }
        copy_in(&img, &host, "/h");
        e2fsck_clean(&img, &format!("hash {alg} flags {flags}"));
        let dump = debugfs(&img, "htree_dump /h/d");
        let want = if alg == "half_md4" {
            "Hash Version: 1"
        } else if alg == "tea" {
            "Hash Version: 2"
        } else {
            "Hash Version: 0"
        };
        assert!(
            dump.contains(want),
            "{alg}: {}",
            &dump[..dump.len().min(300)]
        );
        verify_content(&img, &host, "/h", tmp.path());
    }
}

/// dir_nlink: a directory with more than 65,000 subdirectories gets a link count of 1.
#[test]
fn dir_nlink_more_than_65000_subdirectories() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    mkfs(
        &img,
        400,
        &["-b", "1024", "-N", "70000", "-O", "^has_journal"],
        None,
    );
    let mut dev = RawFile::open(&img, true).unwrap();
    let mut w = Ext4Writer::open(&mut dev).unwrap();
    let m = Meta::new(0o755, 0, 0, 0);
    w.mkdir_p("/many", &m).unwrap();
    for i in 0..65_010 {
        w.mkdir_p(&format!("/many/{i}"), &m).unwrap();
    }
    w.commit().unwrap();
    e2fsck_clean(&img, "dir_nlink");
    let stat = debugfs(&img, "stat /many");
    assert!(
        stat.contains("Links: 1 "),
        "{}",
        &stat[..stat.len().min(400)]
    );
    let stat = debugfs(&img, "stat /many/65009");
    assert!(
        stat.contains("Links: 2 "),
        "{}",
        &stat[..stat.len().min(400)]
    );
}
