//! `graft inject` and `graft verify` end to end, offline: a payload built by graft from a
//! local file index (small wheels and a source release made here) injected into GPT disks
//! with an ext4 root made by sfdisk and mke2fs (raw, then converted by qemu-img to a
//! compressed qcow2 and to dynamic and fixed VHDs).
//!
//! Oracles: e2fsck -fn and debugfs on the root partition (after `qemu-img convert` to raw),
//! qemu-img check / info / compare, sha256 of the files.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod package_support;
use package_support::{sdist, sha256_hex, wheel_zip};

const EPOCH: i64 = 1_700_000_000;
const PART_START: u64 = 1 << 20;
const ROOT_SIZE: u64 = 60 << 20;
/// systemd's "Root Partition (x86-64)" type.
const ROOT_TYPE: &str = "4F68BCE3-E8CD-4C31-B1D5-0A1B0A6E3B27";

fn graft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graft"))
}

fn file_sha(p: &Path) -> String {
    sha256_hex(&fs::read(p).unwrap())
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "failed ({:?}):\n{}\n{stderr}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected an error exit:\n{stderr}"
    );
    stderr
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

// ------------------------------------------------------------------ the payload

/// A wheel with METADATA, WHEEL and RECORD besides `files` (member name, bytes).
fn wheel(dist: &str, version: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut members: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    members.push((
        format!("{dist}-{version}.dist-info/METADATA"),
        format!("Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n").into_bytes(),
    ));
    wheel_zip(dist, version, members, None)
}

const RECIPE: &str = r#"
schema = 1
name = "mini"
prefix = "/opt/mini"
source-date-epoch = 1700000000

[python]
interpreter = "/usr/bin/python3"
requirements = ["demo-agent"]

[[archive]]
name = "agents"
requirement = "agents"
strip-components = 1

[[layout.file]]
archive = "agents"
from = "bin/notify"
to = "bin/notify"
mode = 0o755

[service]
name = "mini-agent.service"
description = "mini agent"
exec-start = "{prefix}/bin/demo-agent --run"

[service.environment]
PATH = "{prefix}/bin:/usr/bin"

[[target]]
name = "debian-12"
python = "3.11"
arch = "x86_64"
glibc = "2.36"
"#;

/// A recipe, a lockfile and a cache filled from a local file index; `payload.tar.gz`
/// built by `graft build`.
struct Payload {
    dir: tempfile::TempDir,
    recipe: PathBuf,
    lock: PathBuf,
    cache: PathBuf,
    payload: PathBuf,
}

impl Payload {
    fn new() -> Payload {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // 300 KB of data so the payload spans many blocks and several qcow2 clusters.
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut artifacts: BTreeMap<String, (String, String, &str, Vec<u8>)> = BTreeMap::new();
        let demo = wheel(
            "demo_agent",
            "2.0",
            &[
                ("demo_agent/__init__.py", b"VERSION = '2.0'\n"),
                ("demo_agent/data.bin", &big),
                (
                    "demo_agent-2.0.dist-info/entry_points.txt",
                    b"[console_scripts]\ndemo-agent = demo_agent:main\n",
                ),
            ],
        );
        artifacts.insert(
            "demo_agent-2.0-py3-none-any.whl".into(),
            ("demo-agent".into(), "2.0".into(), "wheel", demo),
        );
        let agents = sdist(
            "agents-3.0",
            &[(
                "bin/notify",
                b"#!/usr/bin/env python3\nprint('notify')\n",
                0o775,
            )],
        );
        artifacts.insert(
            "agents-3.0.tar.gz".into(),
            ("agents".into(), "3.0".into(), "sdist", agents),
        );
        fs::create_dir_all(root.join("files")).unwrap();
        let mut pages: BTreeMap<String, String> = BTreeMap::new();
        for (filename, (project, _, _, bytes)) in &artifacts {
            fs::write(root.join("files").join(filename), bytes).unwrap();
            pages.entry(project.clone()).or_default().push_str(&format!(
                "<a href=\"../../files/{filename}#sha256={}\">{filename}</a>\n",
                sha256_hex(bytes)
            ));
        }
        for (project, links) in pages {
            let d = root.join("simple").join(&project);
            fs::create_dir_all(&d).unwrap();
            fs::write(
                d.join("index.html"),
                format!("<html><body>\n{links}</body></html>\n"),
            )
            .unwrap();
        }
        let recipe = root.join("mini.toml");
        fs::write(&recipe, RECIPE).unwrap();
        let digest = graft::recipe::Recipe::parse(RECIPE, "mini.toml")
            .unwrap()
            .lock_digest();
        let mut lock_text = format!(
            "schema = 1\ngraft-version = \"0.1.0\"\nrecipe = \"mini\"\nrecipe-digest = \"{digest}\"\nsource-date-epoch = {EPOCH}\n\n\
             [[target]]\nname = \"debian-12\"\npython = \"3.11\"\nimplementation = \"cp\"\nabi = \"cp311\"\narch = \"x86_64\"\nglibc = \"2.36\"\n"
        );
        for (filename, (project, version, kind, bytes)) in &artifacts {
            lock_text.push_str(&format!(
                "\n[[target.artifact]]\nname = \"{project}\"\nversion = \"{version}\"\nkind = \"{kind}\"\nfilename = \"{filename}\"\nsha256 = \"{}\"\nsize = {}\nindex = \"default\"\n",
                sha256_hex(bytes),
                bytes.len()
            ));
            if *kind == "sdist" {
                lock_text.push_str(&format!("archive = \"{project}\"\n"));
            }
        }
        let lock = root.join("mini.lock");
        fs::write(&lock, lock_text).unwrap();
        let cache = root.join("cache");
        let index_url = format!("file://{}/simple/", root.display());
        let p = Payload {
            recipe,
            lock,
            cache,
            payload: root.join("payload.tar.gz"),
            dir,
        };
        ok(&run(p
            .graft()
            .args(["fetch", "--index-url", &index_url])
            .arg("--recipe")
            .arg(&p.recipe)
            .arg("--lock")
            .arg(&p.lock)));
        ok(&run(p
            .graft()
            .args(["--offline", "build", "--target", "debian-12", "-o"])
            .arg(&p.payload)
            .arg("--recipe")
            .arg(&p.recipe)
            .arg("--lock")
            .arg(&p.lock)));
        p
    }

    fn graft(&self) -> Command {
        let mut c = graft();
        c.arg("--cache-dir").arg(&self.cache);
        c
    }

    fn inject(&self, image: &Path, out: &Path, extra: &[&str]) -> Output {
        run(self
            .graft()
            .arg("inject")
            .arg(image)
            .arg("-o")
            .arg(out)
            .arg("--payload")
            .arg(&self.payload)
            .args(extra))
    }

    fn inject_lock(&self, image: &Path, out: &Path, extra: &[&str]) -> Output {
        run(self
            .graft()
            .args(["--offline", "inject"])
            .arg(image)
            .arg("-o")
            .arg(out)
            .arg("--lock")
            .arg(&self.lock)
            .arg("--recipe")
            .arg(&self.recipe)
            .args(extra))
    }

    fn verify(&self, image: &Path) -> Output {
        run(self.graft().arg("verify").arg(image))
    }
}

// ------------------------------------------------------------------ the disks

/// What the fake guest is like.
#[derive(Clone, Copy)]
struct Guest {
    python: &'static str,
    systemd: bool,
    inodes: Option<u32>,
}

const DEBIAN_LIKE: Guest = Guest {
    python: "3.11",
    systemd: true,
    inodes: None,
};

/// An x86-64 ELF header: enough for an architecture probe.
fn elf() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    h[18] = 0x3e;
    h
}

/// A GPT disk with one ext4 root partition. `/opt` is a symlink to `srv/opt`, so the
/// payload's `/opt/mini` must land in `/srv/opt/mini`.
fn make_disk(dir: &Path, name: &str, guest: Guest) -> PathBuf {
    let pre = dir.join(format!("{name}.tree"));
    for d in [
        "etc/systemd/system/multi-user.target.wants",
        "usr/bin",
        "usr/lib/systemd",
        "usr/lib/x86_64-linux-gnu",
        "srv/opt/other",
        "bin",
        "sbin",
    ] {
        fs::create_dir_all(pre.join(d)).unwrap();
    }
    fs::write(pre.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    fs::write(pre.join("bin/sh"), elf()).unwrap();
    fs::write(pre.join(format!("usr/bin/python{}", guest.python)), elf()).unwrap();
    symlink(
        format!("python{}", guest.python),
        pre.join("usr/bin/python3"),
    )
    .unwrap();
    fs::write(
        pre.join("usr/lib/x86_64-linux-gnu/libc.so.6"),
        b"GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n",
    )
    .unwrap();
    fs::write(pre.join("srv/opt/other/keep"), b"unrelated\n").unwrap();
    symlink("srv/opt", pre.join("opt")).unwrap();
    if guest.systemd {
        fs::write(pre.join("usr/lib/systemd/systemd"), elf()).unwrap();
        symlink("/usr/lib/systemd/systemd", pre.join("sbin/init")).unwrap();
    }
    let img = dir.join(format!("{name}.raw"));
    let f = fs::File::create(&img).unwrap();
    f.set_len(PART_START + ROOT_SIZE + (1 << 20)).unwrap();
    drop(f);
    let script = format!(
        "label: gpt\nstart={}, size={}, type={ROOT_TYPE}\n",
        PART_START / 512,
        ROOT_SIZE / 512
    );
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut mk = Command::new("mke2fs");
    mk.args([
        "-q",
        "-F",
        "-t",
        "ext4",
        "-E",
        &format!("offset={PART_START},root_owner=0:0"),
        "-d",
    ])
    .arg(&pre);
    if let Some(n) = guest.inodes {
        mk.args(["-N", &n.to_string()]);
    }
    ok(&run(mk.arg(&img).arg(format!("{}k", ROOT_SIZE / 1024))));
    img
}

fn convert(raw: &Path, out: &Path, args: &[&str]) {
    ok(&run(Command::new("qemu-img")
        .args(["convert", "-f", "raw"])
        .args(args)
        .arg(raw)
        .arg(out)));
}

fn qemu_fmt(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("qcow2") => "qcow2",
        Some("vhd") => "vpc",
        _ => "raw",
    }
}

/// The root partition of any image, as a raw file made by qemu-img.
fn root_partition(image: &Path, dir: &Path) -> PathBuf {
    let raw = dir.join(format!(
        "{}.check.raw",
        image.file_name().unwrap().to_string_lossy()
    ));
    ok(&run(Command::new("qemu-img")
        .args(["convert", "-f", qemu_fmt(image), "-O", "raw"])
        .arg(image)
        .arg(&raw)));
    let bytes = fs::read(&raw).unwrap();
    let part = dir.join(format!(
        "{}.root",
        image.file_name().unwrap().to_string_lossy()
    ));
    fs::write(
        &part,
        &bytes[PART_START as usize..(PART_START + ROOT_SIZE) as usize],
    )
    .unwrap();
    fs::remove_file(&raw).unwrap();
    part
}

fn e2fsck_clean(part: &Path) {
    let out = run(Command::new("e2fsck").arg("-fn").arg(part));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("Fix?"),
        "e2fsck -fn:\n{text}"
    );
}

fn debugfs(part: &Path, request: &str) -> String {
    let out = run(Command::new("debugfs").arg("-R").arg(request).arg(part));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

// ------------------------------------------------------------------ tests

#[test]
fn inject_into_raw_qcow2_and_vhd_then_verify_and_detect_tampering() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let qcow2 = dir.join("base.qcow2");
    convert(&raw, &qcow2, &["-O", "qcow2", "-c"]);
    let vhd_dyn = dir.join("base-dyn.vhd");
    convert(&raw, &vhd_dyn, &["-O", "vpc", "-o", "subformat=dynamic"]);
    let vhd_fixed = dir.join("base-fixed.vhd");
    convert(
        &raw,
        &vhd_fixed,
        &["-O", "vpc", "-o", "subformat=fixed,force_size=on"],
    );

    for base in [&raw, &qcow2, &vhd_dyn, &vhd_fixed] {
        let before = file_sha(base);
        let name = base
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("base", "out");
        let out = dir.join(&name);
        let stderr = ok(&p.inject(base, &out, &[]));
        assert!(
            stderr.contains("Injected")
                && stderr.contains("existing directory /opt received entries"),
            "{stderr}"
        );
        assert_eq!(file_sha(base), before, "{} changed", base.display());
        assert!(leftovers(dir).is_empty(), "{:?}", leftovers(dir));
        if qemu_fmt(&out) == "qcow2" {
            ok(&run(Command::new("qemu-img").arg("check").arg(&out)));
        }
        // Same virtual size and container family as the input, per qemu-img.
        let info = run(Command::new("qemu-img")
            .args(["info", "--output=json", "-f", qemu_fmt(base)])
            .arg(&out));
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["format"], qemu_fmt(base), "{info}");

        let part = root_partition(&out, dir);
        e2fsck_clean(&part);
        // /opt is a symlink in the guest: the payload is under its target.
        let notify = debugfs(&part, "cat /srv/opt/mini/bin/notify");
        assert_eq!(notify, "#!/usr/bin/env python3\nprint('notify')\n");
        let stat = debugfs(&part, "stat /srv/opt/mini/bin/notify");
        assert!(
            stat.contains("Mode:  0755") && stat.contains("User:     0"),
            "{stat}"
        );
        let wants = debugfs(
            &part,
            "stat /etc/systemd/system/multi-user.target.wants/mini-agent.service",
        );
        assert!(
            wants.contains("Fast link dest: \"/etc/systemd/system/mini-agent.service\""),
            "{wants}"
        );
        assert!(debugfs(&part, "cat /etc/systemd/system/mini-agent.service")
            .contains("ExecStart=/opt/mini/bin/demo-agent --run"));
        assert_eq!(debugfs(&part, "cat /srv/opt/other/keep"), "unrelated\n");
        fs::remove_file(&part).unwrap();

        let v = p.verify(&out);
        assert_eq!(
            v.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(String::from_utf8_lossy(&v.stderr).contains("mini-agent.service enabled"));
    }

    // Tampering: a payload file replaced (graft copy-in --replace), an extra file added.
    let out = dir.join("out.qcow2");
    let host = dir.join("tamper/bin");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("notify"), b"#!/bin/sh\necho evil\n").unwrap();
    fs::write(host.join("extra-tool"), b"x").unwrap();
    let tampered = dir.join("tampered.qcow2");
    ok(&run(graft()
        .arg("copy-in")
        .arg(&out)
        .arg(&host)
        .args(["/opt/mini/bin", "--replace", "-o"])
        .arg(&tampered)));
    let v = p.verify(&tampered);
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert_eq!(v.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("changed")
            && stderr.contains(
                "/opt/mini/bin/notify: mode 0644, manifest 0755; size 20, manifest 39; sha256"
            ),
        "{stderr}"
    );
    assert!(
        stderr.contains("extra") && stderr.contains("/opt/mini/bin/extra-tool"),
        "{stderr}"
    );
    let j = run(p.graft().args(["--json", "verify"]).arg(&tampered));
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(j["verified"], false);
    assert_eq!(j["findings"].as_array().unwrap().len(), 2, "{j}");

    // The wants link removed by hand: not enabled.
    let disabled_raw = dir.join("disabled.raw");
    ok(&run(Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(&out)
        .arg(&disabled_raw)));
    let rm = run(Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg("rm /etc/systemd/system/multi-user.target.wants/mini-agent.service")
        .arg(format!("{}?offset={PART_START}", disabled_raw.display())));
    ok(&rm);
    let v = p.verify(&disabled_raw);
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert_eq!(v.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("missing")
            && stderr.contains("not-enabled")
            && stderr.contains("mini-agent.service"),
        "{stderr}"
    );
}

#[test]
fn injections_are_byte_identical_and_lock_equals_payload() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let qcow2 = dir.join("base.qcow2");
    convert(&raw, &qcow2, &["-O", "qcow2", "-c"]);
    let vhd = dir.join("base.vhd");
    convert(&raw, &vhd, &["-O", "vpc", "-o", "subformat=dynamic"]);
    // What every injection below must hold, disk content for disk content.
    let reference = dir.join("ref.raw");
    ok(&p.inject(&raw, &reference, &[]));
    for (base, ext, extra) in [
        (&qcow2, "qcow2", &[][..]),
        (&vhd, "vhd", &[][..]),
        (
            &qcow2,
            "vhd",
            &["--format", "vhd", "--vhd-type", "fixed"][..],
        ),
        (&raw, "qcow2", &["--format", "qcow2"][..]),
    ] {
        let a = dir.join(format!("a.{ext}"));
        let b = dir.join(format!("sub/b.{ext}"));
        fs::create_dir_all(b.parent().unwrap()).unwrap();
        ok(&p.inject(base, &a, extra));
        // The in-memory build from the lockfile gives the same image as the payload file.
        ok(&p.inject_lock(base, &b, extra));
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "{} and {} differ ({extra:?})",
            a.display(),
            b.display()
        );
        // qemu-img agrees the disk content is that of an injection into the raw base.
        ok(&run(Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", qemu_fmt(&a)])
            .arg(&reference)
            .arg(&a)));
        // And `verify --base` re-injects and finds the same bytes.
        let v = run(p
            .graft()
            .args(["--offline", "verify"])
            .arg(&a)
            .arg("--base")
            .arg(base)
            .arg("--lock")
            .arg(&p.lock)
            .arg("--recipe")
            .arg(&p.recipe));
        assert_eq!(
            v.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&v.stderr)
        );
        assert!(String::from_utf8_lossy(&v.stderr).contains("byte-identical"));
        for f in [&a, &b] {
            fs::remove_file(f).unwrap();
        }
    }
    fs::remove_file(&reference).unwrap();
}

#[test]
fn verify_base_names_where_a_tampered_image_differs() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let out = dir.join("out.raw");
    ok(&p.inject(&raw, &out, &[]));
    let host = dir.join("t");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("notify"), b"changed\n").unwrap();
    ok(&run(graft().arg("copy-in").arg(&out).arg(&host).args([
        "/opt/mini/bin",
        "--replace",
        "--in-place",
    ])));
    let v = run(p
        .graft()
        .args(["--offline", "verify"])
        .arg(&out)
        .arg("--base")
        .arg(&raw)
        .arg("--lock")
        .arg(&p.lock)
        .arg("--recipe")
        .arg(&p.recipe));
    let stderr = String::from_utf8_lossy(&v.stderr);
    assert_eq!(v.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("differ first at byte") && stderr.contains("partition 1"),
        "{stderr}"
    );
}

#[test]
fn existing_paths_are_refused_unless_replace_and_overlay_matches_standalone() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let qcow2 = dir.join("base.qcow2");
    convert(&raw, &qcow2, &["-O", "qcow2"]);
    let once = dir.join("once.qcow2");
    ok(&p.inject(&qcow2, &once, &[]));
    let twice = dir.join("twice.qcow2");
    let stderr = fails(&p.inject(&once, &twice, &[]));
    assert!(
        stderr.contains("already exist")
            && stderr.contains("/etc/systemd/system/mini-agent.service")
            && stderr.contains("--replace"),
        "{stderr}"
    );
    assert!(!twice.exists() && leftovers(dir).is_empty());
    ok(&p.inject(&once, &twice, &["--replace"]));
    let v = p.verify(&twice);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    e2fsck_clean(&root_partition(&twice, dir));

    // --overlay: a qcow2 backed by the base, with the same disk content as the standalone.
    let overlay = dir.join("overlay.qcow2");
    ok(&p.inject(&qcow2, &overlay, &["--overlay"]));
    let info = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&overlay));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["backing-filename"], "base.qcow2", "{info}");
    assert_eq!(info["backing-filename-format"], "qcow2", "{info}");
    ok(&run(Command::new("qemu-img").arg("check").arg(&overlay)));
    let cmp = run(Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "qcow2"])
        .arg(&once)
        .arg(&overlay));
    assert!(
        String::from_utf8_lossy(&cmp.stdout).contains("Images are identical"),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    assert!(fs::metadata(&overlay).unwrap().len() < fs::metadata(&once).unwrap().len());

    // --in-place changes the input itself, and only then.
    let inplace = dir.join("inplace.qcow2");
    fs::copy(&qcow2, &inplace).unwrap();
    ok(&run(p
        .graft()
        .arg("inject")
        .arg(&inplace)
        .arg("--in-place")
        .arg("--payload")
        .arg(&p.payload)));
    let cmp = run(Command::new("qemu-img")
        .args(["compare"])
        .arg(&once)
        .arg(&inplace));
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stdout)
    );
}

#[test]
fn unfit_guests_are_refused_before_writing() {
    let p = Payload::new();
    let dir = p.dir.path();
    // Python 3.9 only: auto finds no target, and the 3.11 payload is refused.
    let py39 = make_disk(
        dir,
        "py39",
        Guest {
            python: "3.9",
            ..DEBIAN_LIKE
        },
    );
    let out = dir.join("out.raw");
    let stderr = fails(&p.inject_lock(&py39, &out, &[]));
    assert!(
        stderr.contains("Python 3.9 (/usr/bin/python3), architecture x86_64, glibc 2.36")
            && stderr.contains("debian-12 (Python 3.11, x86_64, glibc 2.36)")
            && stderr.contains("graft lock"),
        "{stderr}"
    );
    let stderr = fails(&p.inject(&py39, &out, &[]));
    assert!(
        stderr.contains("built for Python 3.11") && stderr.contains("3.9"),
        "{stderr}"
    );
    // No systemd.
    let nosd = make_disk(
        dir,
        "nosd",
        Guest {
            systemd: false,
            ..DEBIAN_LIKE
        },
    );
    let stderr = fails(&p.inject(&nosd, &out, &[]));
    assert!(stderr.contains("not systemd"), "{stderr}");
    // Too few free inodes: refused before anything is written.
    let tiny = make_disk(
        dir,
        "tiny",
        Guest {
            inodes: Some(64),
            ..DEBIAN_LIKE
        },
    );
    let before = file_sha(&tiny);
    let stderr = fails(&p.inject(&tiny, &out, &[]));
    assert!(
        stderr.contains("inodes") && stderr.contains("free"),
        "{stderr}"
    );
    let stderr = fails(&run(p
        .graft()
        .arg("inject")
        .arg(&tiny)
        .arg("--in-place")
        .arg("--payload")
        .arg(&p.payload)));
    assert!(stderr.contains("free"), "{stderr}");
    assert_eq!(file_sha(&tiny), before);
    assert!(
        !out.exists() && leftovers(dir).is_empty(),
        "{:?}",
        leftovers(dir)
    );
}

#[test]
fn kill_9_leaves_the_input_and_no_output() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let vhd = dir.join("base.vhd");
    convert(&raw, &vhd, &["-O", "vpc", "-o", "subformat=dynamic"]);
    let before = file_sha(&vhd);
    let out = dir.join("out.vhd");
    let mut killed = 0;
    for delay_ms in [0u64, 5, 20, 50, 100, 200, 400] {
        let mut child = p
            .graft()
            .arg("inject")
            .arg(&vhd)
            .arg("-o")
            .arg(&out)
            .args(["--format", "vhd", "--vhd-type", "fixed", "--payload"])
            .arg(&p.payload)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            // Finished first: then the output is complete and verifies.
            let v = p.verify(&out);
            assert_eq!(v.status.code(), Some(0));
            fs::remove_file(&out).unwrap();
        } else {
            killed += 1;
            assert!(
                !out.exists(),
                "killed after {delay_ms} ms, yet {} exists",
                out.display()
            );
        }
        assert_eq!(file_sha(&vhd), before);
        // What a killed run leaves is only a temporary name; remove it for the next round.
        for l in leftovers(dir) {
            assert!(l.starts_with(".out.vhd.graft-"), "{l}");
            fs::remove_file(dir.join(l)).unwrap();
        }
    }
    assert!(killed > 0, "no run was interrupted");
}

/// A full disk while the output is written: the write fails (RLIMIT_FSIZE with SIGXFSZ
/// ignored makes the kernel answer EFBIG, as a full filesystem answers ENOSPC), graft
/// reports it, the input is unchanged and nothing is left under the output name or a
/// temporary one.
#[test]
fn a_full_disk_leaves_the_input_and_no_output() {
    let p = Payload::new();
    let dir = p.dir.path();
    let raw = make_disk(dir, "base", DEBIAN_LIKE);
    let qcow2 = dir.join("base.qcow2");
    convert(&raw, &qcow2, &["-O", "qcow2"]);
    let base_len = fs::metadata(&qcow2).unwrap().len();
    let before = file_sha(&qcow2);
    let out = dir.join("out.qcow2");
    // Limits in 1 KiB units (bash's `ulimit -f`): the copy of the base, then the payload's
    // writes, fail at different points.
    let limits = [16u64, base_len / 1024 / 2, base_len / 1024 + 64];
    for limit in limits {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("trap '' XFSZ; ulimit -f {limit}; exec \"$@\""))
            .arg("graft")
            .arg(env!("CARGO_BIN_EXE_graft"))
            .arg("--cache-dir")
            .arg(&p.cache)
            .arg("inject")
            .arg(&qcow2)
            .arg("-o")
            .arg(&out)
            .arg("--payload")
            .arg(&p.payload)
            .output()
            .unwrap();
        assert!(
            !status.status.success(),
            "limit {limit} KiB: inject succeeded"
        );
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert!(stderr.contains("error"), "limit {limit} KiB: {stderr}");
        assert!(!out.exists(), "limit {limit} KiB: {} exists", out.display());
        assert_eq!(
            file_sha(&qcow2),
            before,
            "limit {limit} KiB: the input changed"
        );
        assert!(
            leftovers(dir).is_empty(),
            "limit {limit} KiB: left {:?}",
            leftovers(dir)
        );
    }
    // And without the limit the same command works, so the failures above were the limit's.
    ok(&p.inject(&qcow2, &out, &[]));
    assert_eq!(p.verify(&out).status.code(), Some(0));
}
