//! `graft copy-in` end to end: a GPT disk (raw and qcow2) whose root ext4 is partition 2,
//! a standalone output by default, --in-place only when asked, refusals leave no output.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

const PART_START: u64 = 2048 * 512;
const P1_SIZE: u64 = 8 << 20;
const ROOT_START: u64 = PART_START + P1_SIZE;
const ROOT_SIZE: u64 = 96 << 20;

/// A GPT disk: an 8 MiB vfat-less "ESP" placeholder, then the ext4 root with /etc/os-release.
fn make_disk(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("disk.raw");
    let f = fs::File::create(&img).unwrap();
    f.set_len(ROOT_START + ROOT_SIZE + (1 << 20)).unwrap();
    drop(f);
    let script = format!(
        "label: gpt\nstart={}, size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart={}, size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n",
        PART_START / 512,
        P1_SIZE / 512,
        ROOT_START / 512,
        ROOT_SIZE / 512
    );
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let pre = dir.join("pre");
    fs::create_dir_all(pre.join("etc")).unwrap();
    fs::write(pre.join("etc/os-release"), "ID=test\n").unwrap();
    let (ok, _, err) = run(Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-E",
            &format!("offset={ROOT_START}"),
            "-d",
        ])
        .arg(&pre)
        .arg(&img)
        .arg(format!("{}k", ROOT_SIZE / 1024)));
    assert!(ok, "{err}");
    img
}

fn root_fs_of(raw: &Path, dir: &Path) -> std::path::PathBuf {
    let bytes = fs::read(raw).unwrap();
    let p = dir.join(format!(
        "{}.root",
        raw.file_name().unwrap().to_string_lossy()
    ));
    fs::write(
        &p,
        &bytes[ROOT_START as usize..(ROOT_START + ROOT_SIZE) as usize],
    )
    .unwrap();
    p
}

fn e2fsck_clean(fsimg: &Path) {
    let (ok, out, err) = run(Command::new("e2fsck").arg("-fn").arg(fsimg));
    assert!(ok && !out.contains("Fix?"), "e2fsck:\n{out}{err}");
}

fn host_tree(dir: &Path) -> std::path::PathBuf {
    let h = dir.join("host");
    fs::create_dir_all(h.join("bin")).unwrap();
    fs::write(h.join("bin/agent"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(h.join("bin/agent"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(h.join("data"), vec![3u8; 300_000]).unwrap();
    symlink("bin/agent", h.join("run")).unwrap();
    h
}

fn graft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graft"))
}

#[test]
fn copy_in_raw_gpt_standalone_then_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_disk(tmp.path());
    let host = host_tree(tmp.path());
    let before = fs::read(&img).unwrap();
    let out = tmp.path().join("out.raw");
    let (ok, stdout, stderr) = run(graft()
        .args(["copy-in"])
        .arg(&img)
        .arg(&host)
        .args([
            "/opt/agent",
            "--owner",
            "0:0",
            "--epoch",
            "1700000000",
            "--json",
            "-o",
        ])
        .arg(&out));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["filesystem"], "partition 2");
    assert_eq!(v["report"]["files"], 2);
    assert_eq!(v["report"]["symlinks"], 1);
    assert_eq!(
        v["report"]["existing_dirs_changed"],
        serde_json::json!(["/"])
    );
    assert!(
        fs::read(&img).unwrap() == before,
        "the input must not change without --in-place"
    );
    let root = root_fs_of(&out, tmp.path());
    e2fsck_clean(&root);
    let (ok, cat, _) = run(Command::new("debugfs")
        .args(["-R", "cat /opt/agent/bin/agent"])
        .arg(&root));
    assert!(ok && cat.contains("echo hi"), "{cat}");
    let (_, stat, _) = run(Command::new("debugfs")
        .args(["-R", "stat /opt/agent/run"])
        .arg(&root));
    assert!(stat.contains("Fast link dest: \"bin/agent\""), "{stat}");
    // Leftover temporary files are not allowed.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );

    // Again into the same place: names exist, refused, output untouched.
    let out2 = tmp.path().join("out2.raw");
    let (ok, _, stderr) = run(graft()
        .arg("copy-in")
        .arg(&out)
        .arg(&host)
        .args(["/opt/agent", "-o"])
        .arg(&out2));
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    assert!(!out2.exists());

    // In place, into another directory.
    let (ok, _, stderr) =
        run(graft()
            .arg("copy-in")
            .arg(&img)
            .arg(&host)
            .args(["/srv/x", "--in-place", "-q"]));
    assert!(ok, "{stderr}");
    let root = root_fs_of(&img, tmp.path());
    e2fsck_clean(&root);
    let (_, ls, _) = run(Command::new("debugfs")
        .args(["-R", "ls -p /srv/x/bin"])
        .arg(&root));
    assert!(ls.contains("/100755/0/0/agent/18/"), "{ls}");
}

#[test]
fn copy_in_qcow2_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = make_disk(tmp.path());
    let q = tmp.path().join("disk.qcow2");
    let (ok, _, e) = run(Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&raw)
        .arg(&q));
    assert!(ok, "{e}");
    let host = host_tree(tmp.path());
    let out = tmp.path().join("out.qcow2");
    let (ok, _, stderr) = run(graft()
        .arg("copy-in")
        .arg(&q)
        .arg(&host)
        .args(["/opt/agent", "-o"])
        .arg(&out));
    assert!(ok, "{stderr}");
    let (ok, o, e) = run(Command::new("qemu-img").arg("check").arg(&out));
    assert!(ok, "{o}{e}");
    let back = tmp.path().join("back.raw");
    assert!(
        run(Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&out)
            .arg(&back))
        .0
    );
    e2fsck_clean(&root_fs_of(&back, tmp.path()));

    // Too big for the filesystem: refused before writing, with numbers, no output left.
    let big = tmp.path().join("big");
    fs::create_dir_all(&big).unwrap();
    let f = fs::File::create(big.join("huge")).unwrap();
    f.set_len(200 << 20).unwrap();
    let out3 = tmp.path().join("out3.qcow2");
    let (ok, _, stderr) = run(graft()
        .arg("copy-in")
        .arg(&q)
        .arg(&big)
        .args(["/opt", "-o"])
        .arg(&out3));
    assert!(
        !ok && stderr.contains("needs") && stderr.contains("blocks and") && stderr.contains("free"),
        "{stderr}"
    );
    assert!(!out3.exists());
}
