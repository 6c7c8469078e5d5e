//! `graft fetch`, `graft build` and `graft verify --rebuild` against a local file index
//! (PEP 503 pages on disk) holding small wheels and a source release made here. No
//! network. The oracles: GNU tar reads the archive back, the tar crate's own reader
//! checks every entry against the manifest, sha256 is recomputed here.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod package_support;
use package_support::{record_hash, sdist, sha256_hex, wheel_zip};

const EPOCH: i64 = 1_700_000_000;

fn graft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graft"))
}

/// A wheel: `files` are (member name, bytes); WHEEL and RECORD are added unless `record`
/// overrides RECORD's text.
fn wheel(dist: &str, version: &str, files: &[(&str, &[u8])], record: Option<String>) -> Vec<u8> {
    let members = files
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    wheel_zip(dist, version, members, record)
}

/// A wheel whose one member has a hostile name. The zip crate's writer would not write
/// such a name, so a placeholder of the same length is written and then replaced in the
/// local header and the central directory (the member comes first, so its name is read
/// before anything else).
fn wheel_with_member_name(dist: &str, name: &str) -> Vec<u8> {
    let placeholder: String = "Qz".repeat(name.len()).chars().take(name.len()).collect();
    let mut w = wheel(dist, "1.5", &[(placeholder.as_str(), b"x")], None);
    let (from, to) = (placeholder.as_bytes(), name.as_bytes());
    let mut replaced = 0;
    let mut i = 0;
    while i + from.len() <= w.len() {
        if &w[i..i + from.len()] == from {
            w[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
        }
        i += 1;
    }
    assert_eq!(
        replaced, 2,
        "the name appears in the local header and the central directory"
    );
    w
}

struct Fixture {
    dir: tempfile::TempDir,
    recipe: PathBuf,
    lock: PathBuf,
    index_url: String,
    /// filename → bytes of every artifact.
    artifacts: BTreeMap<String, Vec<u8>>,
}

const RECIPE: &str = r#"
schema = 1
name = "mini"
prefix = "/opt/mini"
source-date-epoch = 1700000000

[python]
interpreter = "/usr/bin/python3"
requirements = ["demo-agent", "helper"]

[[archive]]
name = "agents"
requirement = "agents"
strip-components = 1

[[layout.file]]
archive = "agents"
from = "bin/notify"
to = "bin/notify"
mode = 0o755

[[layout.file]]
archive = "agents"
from = "templates/conf"
to = "templates/conf"
mode = 0o644

[layout.hooks]
archive = "agents"
from = "hook-{name}/hook.py"
to = "hooks/{name}"
names = ["one", "two"]

[service]
name = "mini-agent.service"
description = "mini agent"
exec-start = "{prefix}/bin/demo-agent --run"
after = ["network-online.target"]

[service.environment]
PATH = "{prefix}/bin:/usr/bin"
LC_ALL = "C"

[[target]]
name = "debian-12"
python = "3.11"
arch = "x86_64"
glibc = "2.36"
"#;

impl Fixture {
    /// `overrides` replaces the bytes of an artifact (a hostile wheel) under the same name.
    fn new(overrides: &[(&str, Vec<u8>)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut artifacts: BTreeMap<String, (String, String, &str, Vec<u8>)> = BTreeMap::new();
        let demo = wheel(
            "demo_agent",
            "2.0",
            &[
                ("demo_agent/__init__.py", b"VERSION = '2.0'\n"),
                ("demo_agent/cli.py", b"def main():\n    print('demo')\n"),
                (
                    "demo_agent-2.0.data/scripts/run-parts",
                    b"#!/bin/bash\necho parts\n",
                ),
                (
                    "demo_agent-2.0.data/scripts/pyscript",
                    b"#!python\nprint('x')\n",
                ),
                (
                    "demo_agent-2.0.dist-info/METADATA",
                    b"Metadata-Version: 2.1\nName: demo-agent\nVersion: 2.0\n",
                ),
                (
                    "demo_agent-2.0.dist-info/entry_points.txt",
                    b"[console_scripts]\ndemo-agent = demo_agent.cli:main\n",
                ),
            ],
            None,
        );
        artifacts.insert(
            "demo_agent-2.0-py3-none-any.whl".into(),
            ("demo-agent".into(), "2.0".into(), "wheel", demo),
        );
        let helper = wheel(
            "helper",
            "1.5",
            &[
                ("helper.py", b"X = 1\n"),
                (
                    "helper-1.5.dist-info/METADATA",
                    b"Metadata-Version: 2.1\nName: helper\nVersion: 1.5\n",
                ),
            ],
            None,
        );
        artifacts.insert(
            "helper-1.5-py3-none-any.whl".into(),
            ("helper".into(), "1.5".into(), "wheel", helper),
        );
        let agents = sdist(
            "agents-3.0",
            &[
                (
                    "bin/notify",
                    b"#!/usr/bin/env python3\nprint('notify')\n",
                    0o775,
                ),
                ("templates/conf", b"[DEFAULT]\n", 0o664),
                (
                    "hook-one/hook.py",
                    b"#!/usr/bin/env python3\n# one\n",
                    0o775,
                ),
                (
                    "hook-two/hook.py",
                    b"#!/usr/bin/env python3\n# two\n",
                    0o664,
                ),
                ("setup.py", b"raise SystemExit('never run')\n", 0o644),
            ],
        );
        artifacts.insert(
            "agents-3.0.tar.gz".into(),
            ("agents".into(), "3.0".into(), "sdist", agents),
        );
        for (name, bytes) in overrides {
            artifacts
                .get_mut(*name)
                .expect("override of a known artifact")
                .3 = bytes.clone();
        }

        // The file index: <root>/simple/<project>/index.html linking ../../files/<name>.
        std::fs::create_dir_all(root.join("files")).unwrap();
        let mut pages: BTreeMap<String, String> = BTreeMap::new();
        for (filename, (project, _, _, bytes)) in &artifacts {
            std::fs::write(root.join("files").join(filename), bytes).unwrap();
            pages.entry(project.clone()).or_default().push_str(&format!(
                "<a href=\"../../files/{filename}#sha256={}\">{filename}</a>\n",
                sha256_hex(bytes)
            ));
        }
        for (project, links) in pages {
            let d = root.join("simple").join(&project);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("index.html"),
                format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
            )
            .unwrap();
        }

        let recipe = root.join("mini.toml");
        std::fs::write(&recipe, RECIPE).unwrap();
        let lock = root.join("mini.lock");
        std::fs::write(&lock, lockfile(&artifacts)).unwrap();
        let index_url = format!("file://{}/simple/", root.display());
        let artifacts = artifacts.into_iter().map(|(k, v)| (k, v.3)).collect();
        Fixture {
            dir,
            recipe,
            lock,
            index_url,
            artifacts,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `graft` with the fixture's recipe/lock/cache and extra arguments.
    fn run(&self, cache: &Path, args: &[&str]) -> Output {
        let mut c = graft();
        c.arg("--cache-dir").arg(cache);
        c.args(args);
        c.arg("--recipe")
            .arg(&self.recipe)
            .arg("--lock")
            .arg(&self.lock);
        c.output().unwrap()
    }

    fn fetch(&self, cache: &Path, jobs: &str) -> Output {
        self.run(
            cache,
            &["fetch", "--index-url", &self.index_url, "--jobs", jobs],
        )
    }
}

/// A lockfile in the format graft reads, written here by hand.
fn lockfile(artifacts: &BTreeMap<String, (String, String, &str, Vec<u8>)>) -> String {
    // The recipe digest is graft's own definition (what a lockfile depends on).
    let digest = graft::recipe::Recipe::parse(RECIPE, "mini.toml")
        .unwrap()
        .lock_digest();
    let mut s = format!(
        "schema = 1\ngraft-version = \"0.1.0\"\nrecipe = \"mini\"\nrecipe-digest = \"{digest}\"\nsource-date-epoch = {EPOCH}\n\n\
         [[target]]\nname = \"debian-12\"\npython = \"3.11\"\nimplementation = \"cp\"\nabi = \"cp311\"\narch = \"x86_64\"\nglibc = \"2.36\"\n"
    );
    for (filename, (project, version, kind, bytes)) in artifacts {
        s.push_str(&format!(
            "\n[[target.artifact]]\nname = \"{project}\"\nversion = \"{version}\"\nkind = \"{kind}\"\nfilename = \"{filename}\"\nsha256 = \"{}\"\nsize = {}\nindex = \"default\"\n",
            sha256_hex(bytes),
            bytes.len()
        ));
        if *kind == "sdist" {
            s.push_str(&format!("archive = \"{project}\"\n"));
        }
    }
    s
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "graft failed ({:?}):\n{stderr}",
        out.status.code()
    );
    stderr
}

fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected an error exit, got {:?}:\n{stderr}",
        out.status.code()
    );
    stderr
}

/// Every entry of a .tar.gz as (path, type, mode, uid, gid, mtime, size, sha256, link).
type Row = (
    String,
    String,
    u32,
    u64,
    u64,
    u64,
    u64,
    Option<String>,
    Option<String>,
);
fn read_archive(bytes: &[u8]) -> Vec<Row> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut rows = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => "dir",
            tar::EntryType::Regular => "file",
            tar::EntryType::Symlink => "symlink",
            other => panic!("unexpected entry type {other:?} at {path}"),
        };
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let sha = (kind == "file").then(|| sha256_hex(&data));
        rows.push((
            path,
            kind.to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            data.len() as u64,
            sha,
            link,
        ));
    }
    rows
}

#[test]
fn build_is_byte_identical_across_dirs_umask_tz_locale_and_cache_order() {
    let fx = Fixture::new(&[]);
    // Cache A: fetched one at a time. Cache B: the entries copied in reverse name order.
    let cache_a = fx.path().join("cache-a");
    ok(&fx.fetch(&cache_a, "1"));
    let cache_b = fx.path().join("cache-b/sha256");
    std::fs::create_dir_all(&cache_b).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(cache_a.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names.reverse();
    for n in &names {
        std::fs::copy(cache_a.join("sha256").join(n), cache_b.join(n)).unwrap();
    }
    assert_eq!(names.len(), 3);

    let out_a = fx.path().join("one");
    let out_b = fx.path().join("two/deeper");
    std::fs::create_dir_all(&out_a).unwrap();
    std::fs::create_dir_all(&out_b).unwrap();
    let a = Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(&out_a)
        .env("TZ", "UTC")
        .env("LANG", "C")
        .args(["--offline", "--cache-dir"])
        .arg(&cache_a)
        .args([
            "build",
            "--target",
            "debian-12",
            "-o",
            "payload.tar.gz",
            "--recipe",
        ])
        .arg(&fx.recipe)
        .arg("--lock")
        .arg(&fx.lock)
        .output()
        .unwrap();
    ok(&a);
    let b = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_graft"))
        .current_dir(&out_b)
        .env("TZ", "Pacific/Chatham")
        .env("LANG", "tr_TR.UTF-8")
        .env("LC_ALL", "tr_TR.UTF-8")
        .args(["--offline", "--cache-dir"])
        .arg(fx.path().join("cache-b"))
        .args(["build", "--target", "debian-12", "-o"])
        .arg(out_b.join("p.tar.gz"))
        .arg("--recipe")
        .arg(&fx.recipe)
        .arg("--lock")
        .arg(&fx.lock)
        .output()
        .unwrap();
    ok(&b);
    let pa = std::fs::read(out_a.join("payload.tar.gz")).unwrap();
    let pb = std::fs::read(out_b.join("p.tar.gz")).unwrap();
    assert!(
        pa == pb,
        "payloads differ: {} vs {} bytes",
        pa.len(),
        pb.len()
    );
    let ma = std::fs::read(out_a.join("payload.manifest.json")).unwrap();
    let mb = std::fs::read(out_b.join("p.manifest.json")).unwrap();
    assert!(ma == mb, "manifests differ");

    // And `verify --rebuild` agrees, exit 0.
    let v = fx.run(
        &cache_a,
        &[
            "--offline",
            "verify",
            "--rebuild",
            out_a.join("payload.tar.gz").to_str().unwrap(),
            "--target",
            "debian-12",
        ],
    );
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("Verified"),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert_eq!(v.status.code(), Some(0));
}

#[test]
fn manifest_matches_every_archive_entry_and_the_layout_is_right() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("cache");
    ok(&fx.fetch(&cache, "4"));
    let payload = fx.path().join("payload.tar.gz");
    let out = fx.run(
        &cache,
        &[
            "--json",
            "build",
            "--target",
            "debian-12",
            "-o",
            payload.to_str().unwrap(),
        ],
    );
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = std::fs::read(&payload).unwrap();
    assert_eq!(summary["sha256"], sha256_hex(&bytes));
    assert_eq!(summary["archive_size"], bytes.len() as u64);

    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.path().join("payload.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        side["payload"]["sha256"],
        format!("sha256:{}", sha256_hex(&bytes))
    );
    assert_eq!(
        side["lock_digest"],
        format!("sha256:{}", sha256_hex(&std::fs::read(&fx.lock).unwrap()))
    );
    assert_eq!(side["target"], "debian-12");
    let rows = read_archive(&bytes);
    let entries = side["entries"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        entries.len(),
        "one manifest entry per archive entry"
    );
    let mut paths: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    let sorted = {
        let mut s = paths.clone();
        s.sort();
        s
    };
    assert_eq!(paths, sorted, "archive entries are sorted");
    paths.dedup();
    assert_eq!(paths.len(), rows.len(), "no duplicates");
    for (row, e) in rows.iter().zip(entries) {
        let (path, kind, mode, uid, gid, mtime, size, sha, link) = row;
        assert_eq!(e["path"], format!("/{path}"));
        assert_eq!(e["type"], kind.as_str(), "{path}");
        assert_eq!(e["mode"], format!("{mode:04o}"), "{path}");
        assert_eq!((*uid, *gid, *mtime), (0, 0, EPOCH as u64), "{path}");
        assert_eq!(e["size"], *size, "{path}");
        assert_eq!(e["sha256"].as_str().map(str::to_string), *sha, "{path}");
        assert_eq!(e["target"].as_str().map(str::to_string), *link, "{path}");
        match kind.as_str() {
            "dir" => assert_eq!(*mode, 0o755, "{path}"),
            "file" => assert!(*mode == 0o644 || *mode == 0o755, "{path}: {mode:o}"),
            _ => assert_eq!(*mode, 0o777, "{path}"),
        }
    }

    // The in-guest copy: the same document without the archive digest and its own entry.
    let row = |p: &str| {
        rows.iter()
            .find(|r| r.0 == p)
            .unwrap_or_else(|| panic!("{p} missing from the payload"))
    };
    let inner_bytes = {
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut found = None;
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == "opt/mini/share/graft/manifest.json" {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                found = Some(d);
            }
        }
        found.expect("in-guest manifest")
    };
    let inner: serde_json::Value = serde_json::from_slice(&inner_bytes).unwrap();
    assert!(inner.get("payload").is_none());
    let inner_entries = inner["entries"].as_array().unwrap();
    assert_eq!(inner_entries.len() + 1, entries.len());
    assert!(inner_entries
        .iter()
        .all(|e| e["path"] != "/opt/mini/share/graft/manifest.json"));

    // The layout: venv, wrappers, scripts, data files, hooks, unit and its enable link.
    assert_eq!(
        row("opt/mini/bin/python3").8.as_deref(),
        Some("/usr/bin/python3")
    );
    assert_eq!(row("opt/mini/bin/python").8.as_deref(), Some("python3"));
    assert_eq!(row("opt/mini/bin/demo-agent").2, 0o755);
    assert_eq!(row("opt/mini/bin/run-parts").2, 0o755);
    assert_eq!(row("opt/mini/bin/notify").2, 0o755);
    assert_eq!(row("opt/mini/templates/conf").2, 0o644);
    assert_eq!(row("opt/mini/hooks/one").2, 0o755);
    assert_eq!(
        row("opt/mini/hooks/two").2,
        0o755,
        "hooks get the [layout.hooks] mode"
    );
    assert!(
        rows.iter().all(|r| !r.0.ends_with("setup.py")),
        "only laid-out files come from the sdist"
    );
    row("opt/mini/lib/python3.11/site-packages/demo_agent/cli.py");
    row("opt/mini/lib/python3.11/site-packages/demo_agent-2.0.dist-info/INSTALLER");
    row("opt/mini/lib/python3.11/site-packages/helper.py");
    row("opt/mini/pyvenv.cfg");
    row("etc/systemd/system/mini-agent.service");
    assert_eq!(
        row("etc/systemd/system/multi-user.target.wants/mini-agent.service")
            .8
            .as_deref(),
        Some("/etc/systemd/system/mini-agent.service")
    );

    // GNU tar (an oracle nobody here wrote) lists the same paths with owner 0/0.
    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&payload)
        .output()
        .unwrap();
    assert!(listing.status.success());
    let text = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(text.lines().count(), rows.len());
    assert!(
        text.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0/0")),
        "{text}"
    );
    let gnu_paths: Vec<String> = text
        .lines()
        .map(|l| {
            let name = l.split_whitespace().nth(5).unwrap();
            name.trim_end_matches('/').to_string()
        })
        .collect();
    assert_eq!(
        gnu_paths,
        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn the_venv_files_are_what_an_installer_writes() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("cache");
    ok(&fx.fetch(&cache, "2"));
    let payload = fx.path().join("p.tar.gz");
    ok(&fx.run(
        &cache,
        &[
            "build",
            "--target",
            "debian-12",
            "-o",
            payload.to_str().unwrap(),
        ],
    ));
    let dest = fx.path().join("x");
    std::fs::create_dir_all(&dest).unwrap();
    assert!(Command::new("tar")
        .arg("-xzf")
        .arg(&payload)
        .arg("-C")
        .arg(&dest)
        .status()
        .unwrap()
        .success());
    let p = dest.join("opt/mini");
    assert_eq!(
        std::fs::read_to_string(p.join("pyvenv.cfg")).unwrap(),
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
    );
    let wrapper = std::fs::read_to_string(p.join("bin/demo-agent")).unwrap();
    assert!(
        wrapper.starts_with("#!/opt/mini/bin/python3\n")
            && wrapper.contains("from demo_agent.cli import main"),
        "{wrapper}"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("bin/pyscript")).unwrap(),
        "#!/opt/mini/bin/python3\nprint('x')\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("bin/run-parts")).unwrap(),
        "#!/bin/bash\necho parts\n"
    );
    // RECORD: every installed file with its real hash, as pip's RECORD would list it.
    let sp = p.join("lib/python3.11/site-packages");
    let record = std::fs::read_to_string(sp.join("demo_agent-2.0.dist-info/RECORD")).unwrap();
    let mut listed = 0;
    for line in record.lines() {
        let mut f = line.split(',');
        let (path, hash, size) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if path.ends_with("/RECORD") {
            assert_eq!((hash, size), ("", ""));
            continue;
        }
        let data = std::fs::read(sp.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(hash, format!("sha256={}", record_hash(&data)), "{path}");
        assert_eq!(size, data.len().to_string(), "{path}");
        listed += 1;
    }
    assert!(
        record.contains("../../../bin/demo-agent,")
            && record.contains("demo_agent-2.0.dist-info/INSTALLER,"),
        "{record}"
    );
    assert_eq!(
        std::fs::read_to_string(sp.join("demo_agent-2.0.dist-info/INSTALLER")).unwrap(),
        "graft\n"
    );
    assert_eq!(listed, 9, "{record}");
    // The unit.
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/mini-agent.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/mini/bin/demo-agent --run\n")
            && unit.contains("Environment=\"LC_ALL=C\"\n"),
        "{unit}"
    );
}

#[test]
fn a_tampered_cache_entry_is_refused_and_fetched_again() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("cache");
    ok(&fx.fetch(&cache, "4"));
    let helper = &fx.artifacts["helper-1.5-py3-none-any.whl"];
    let entry = cache.join("sha256").join(sha256_hex(helper));
    let mut evil = helper.clone();
    let n = evil.len();
    evil[n / 2] ^= 0xff;
    std::fs::write(&entry, &evil).unwrap();

    // Offline, the bad entry is discarded and counted as missing.
    let err = fails(&fx.run(
        &cache,
        &[
            "--offline",
            "build",
            "--target",
            "debian-12",
            "-o",
            fx.path().join("p.tar.gz").to_str().unwrap(),
        ],
    ));
    assert!(
        err.contains("helper-1.5-py3-none-any.whl") && err.contains("missing"),
        "{err}"
    );
    assert!(!entry.exists(), "the tampered entry is deleted");

    // Online, it is fetched again and the build succeeds with the right bytes.
    std::fs::write(&entry, &evil).unwrap();
    let out = fx.run(
        &cache,
        &[
            "build",
            "--index-url",
            &fx.index_url,
            "--target",
            "debian-12",
            "-o",
            fx.path().join("p.tar.gz").to_str().unwrap(),
        ],
    );
    let stderr = ok(&out);
    assert!(
        stderr.contains("Discarded the cache entry of helper-1.5-py3-none-any.whl"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&entry).unwrap(), *helper);
}

#[test]
fn offline_with_an_empty_cache_lists_every_missing_artifact() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("empty");
    for args in [
        vec!["--offline", "fetch"],
        vec![
            "--offline",
            "build",
            "--target",
            "debian-12",
            "-o",
            "/nonexistent/never.tar.gz",
        ],
    ] {
        let err = fails(&fx.run(&cache, &args));
        assert!(err.contains("3 artifact(s) missing"), "{err}");
        for name in fx.artifacts.keys() {
            assert!(err.contains(name.as_str()), "{name} not listed: {err}");
        }
    }
}

#[test]
fn hostile_wheels_are_rejected_naming_the_wheel() {
    let name = "helper-1.5-py3-none-any.whl";
    let mismatch = wheel(
        "helper",
        "1.5",
        &[("helper.py", b"X = 2  # changed after RECORD was written\n")],
        Some(format!(
            "helper.py,sha256={},6\nhelper-1.5.dist-info/WHEEL,sha256={},{}\nhelper-1.5.dist-info/RECORD,,\n",
            record_hash(b"X = 1\n"),
            record_hash(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".len()
        )),
    );
    let cases = [
        (wheel_with_member_name("helper", "../../x.py"), ".."),
        (wheel_with_member_name("helper", "/etc/x.py"), "absolute"),
        (mismatch, "RECORD says"),
    ];
    for (bytes, word) in cases {
        let fx = Fixture::new(&[(name, bytes)]);
        let cache = fx.path().join("cache");
        ok(&fx.fetch(&cache, "2"));
        let err = fails(&fx.run(
            &cache,
            &[
                "--offline",
                "build",
                "--target",
                "debian-12",
                "-o",
                fx.path().join("p.tar.gz").to_str().unwrap(),
            ],
        ));
        assert!(err.contains(name) && err.contains(word), "{word}: {err}");
        assert!(
            !fx.path().join("p.tar.gz").exists(),
            "nothing written on failure"
        );
    }
}

#[test]
fn a_stale_lockfile_is_refused() {
    let fx = Fixture::new(&[]);
    let text = std::fs::read_to_string(&fx.recipe)
        .unwrap()
        .replace("\"helper\"]", "\"helper\", \"extra\"]");
    std::fs::write(&fx.recipe, text).unwrap();
    let err = fails(&fx.run(
        &fx.path().join("cache"),
        &["--offline", "build", "--target", "debian-12"],
    ));
    assert!(err.contains("stale") && err.contains("graft lock"), "{err}");
}

#[test]
fn verify_rebuild_names_the_first_entry_that_differs() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("cache");
    ok(&fx.fetch(&cache, "4"));
    let payload = fx.path().join("p.tar.gz");
    ok(&fx.run(
        &cache,
        &[
            "--offline",
            "build",
            "--target",
            "debian-12",
            "-o",
            payload.to_str().unwrap(),
        ],
    ));

    // Rewrite the payload with one file's content changed, everything else as it was.
    let bytes = std::fs::read(&payload).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if path.to_string_lossy() == "opt/mini/templates/conf" {
            data = b"[DEFAULT]\nevil = 1\n".to_vec();
            h.set_size(data.len() as u64);
            h.set_cksum();
        }
        if h.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &path, target).unwrap();
        } else {
            b.append_data(&mut h, &path, data.as_slice()).unwrap();
        }
    }
    let tampered = fx.path().join("tampered.tar.gz");
    std::fs::write(&tampered, b.into_inner().unwrap().finish().unwrap()).unwrap();
    let out = fx.run(
        &cache,
        &[
            "--offline",
            "verify",
            "--rebuild",
            tampered.to_str().unwrap(),
            "--target",
            "debian-12",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("/opt/mini/templates/conf: content differs"),
        "{stderr}"
    );
}

#[test]
fn a_layout_file_missing_from_its_archive_is_named() {
    let fx = Fixture::new(&[]);
    let cache = fx.path().join("cache");
    ok(&fx.fetch(&cache, "2"));
    // The layout shapes the build, not the lock: the lockfile stays valid.
    let text = std::fs::read_to_string(&fx.recipe)
        .unwrap()
        .replace("from = \"templates/conf\"", "from = \"templates/gone\"");
    std::fs::write(&fx.recipe, text).unwrap();
    let err = fails(&fx.run(
        &cache,
        &[
            "--offline",
            "build",
            "--target",
            "debian-12",
            "-o",
            fx.path().join("p.tar.gz").to_str().unwrap(),
        ],
    ));
    assert!(
        err.contains("templates/gone") && err.contains("\"agents\""),
        "{err}"
    );
}
