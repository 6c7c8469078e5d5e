//! `graft lock` and `graft export` against a local PEP 503 file index built here: tiny
//! but valid wheels (METADATA with Requires-Dist, WHEEL, RECORD) and source releases,
//! project pages with `#sha256=` fragments. The real `graft` binary runs; pip (the
//! host's) resolves, and is also the oracle that accepts the exported hashes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use graft::lockfile::{ArtifactKind, Lockfile};

/// One file of the test index.
struct Dist {
    project: &'static str,
    version: &'static str,
    /// Wheel tag triple (`py3-none-any`), or `None` for a source release.
    wheel_tags: Option<&'static str>,
    requires: &'static [&'static str],
    yanked: bool,
    requires_python: Option<&'static str>,
}

const fn wheel(
    project: &'static str,
    version: &'static str,
    requires: &'static [&'static str],
) -> Dist {
    Dist {
        project,
        version,
        wheel_tags: Some("py3-none-any"),
        requires,
        yanked: false,
        requires_python: None,
    }
}

const fn sdist(project: &'static str, version: &'static str) -> Dist {
    Dist {
        project,
        version,
        wheel_tags: None,
        requires: &[],
        yanked: false,
        requires_python: None,
    }
}

struct Index {
    dir: tempfile::TempDir,
}

impl Index {
    fn new() -> Index {
        Index {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn simple(&self) -> PathBuf {
        self.dir.path().join("simple")
    }

    fn url(&self) -> String {
        format!("file://{}/", self.simple().display())
    }

    /// Writes the files and (re)writes every project page for `dists`.
    fn publish(&self, dists: &[Dist]) {
        let files = self.dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        let mut pages: std::collections::BTreeMap<String, String> = Default::default();
        for d in dists {
            let (filename, bytes) = match d.wheel_tags {
                Some(tags) => make_wheel(d, tags),
                None => make_sdist(d),
            };
            std::fs::write(files.join(&filename), &bytes).unwrap();
            let sha = graft::util::sha256_hex(&bytes);
            let mut yanked = if d.yanked {
                " data-yanked=\"\"".to_string()
            } else {
                String::new()
            };
            if let Some(rp) = d.requires_python {
                yanked.push_str(&format!(
                    " data-requires-python=\"{}\"",
                    rp.replace('>', "&gt;").replace('<', "&lt;")
                ));
            }
            let page = pages
                .entry(graft::python::index::normalize_name(d.project))
                .or_default();
            page.push_str(&format!(
                "<a href=\"../../files/{filename}#sha256={sha}\"{yanked}>{filename}</a><br/>\n"
            ));
        }
        for (name, links) in pages {
            let dir = self.simple().join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("index.html"),
                format!(
                    "<!DOCTYPE html><html><body><h1>Links for {name}</h1>\n{links}</body></html>\n"
                ),
            )
            .unwrap();
        }
    }

    fn file_bytes(&self, filename: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("files").join(filename)).unwrap()
    }
}

fn make_wheel(d: &Dist, tags: &str) -> (String, Vec<u8>) {
    let dist_name = d.project.replace('-', "_");
    let filename = format!("{dist_name}-{}-{tags}.whl", d.version);
    let info = format!("{dist_name}-{}.dist-info", d.version);
    let mut metadata = format!(
        "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
        d.project, d.version
    );
    if let Some(rp) = d.requires_python {
        metadata.push_str(&format!("Requires-Python: {rp}\n"));
    }
    for r in d.requires {
        metadata.push_str(&format!("Requires-Dist: {r}\n"));
    }
    let files = [
        (
            format!("{dist_name}/__init__.py"),
            format!("VERSION = {:?}\n", d.version),
        ),
        (format!("{info}/METADATA"), metadata),
        (
            format!("{info}/WHEEL"),
            format!(
                "Wheel-Version: 1.0\nGenerator: graft-test\nRoot-Is-Purelib: true\nTag: {tags}\n"
            ),
        ),
    ];
    let mut record = String::new();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (path, text) in &files {
        zip.start_file(path.as_str(), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
        record.push_str(&format!("{path},,{}\n", text.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), options).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    (filename, zip.finish().unwrap().into_inner())
}

fn make_sdist(d: &Dist) -> (String, Vec<u8>) {
    let base = format!("{}-{}", d.project.replace('-', "_"), d.version);
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let body = format!("data of {base}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, format!("{base}/data/README"), body.as_bytes())
        .unwrap();
    (
        format!("{base}.tar.gz"),
        tar.into_inner().unwrap().finish().unwrap(),
    )
}

const RECIPE: &str = r#"schema = 1
name = "test-agent"
source-date-epoch = 1700000000

[python]
requirements = ["alpha"]

[[archive]]
name = "data"
requirement = "agentdata"

[[target]]
name = "py311"
python = "3.11"
arch = "x86_64"
glibc = "2.28"

[[target]]
name = "py39-arm"
python = "3.9"
arch = "aarch64"
glibc = "2.17"
"#;

fn first_release() -> Vec<Dist> {
    vec![
        wheel("alpha", "1.0", &["beta>=1.0"]),
        wheel("beta", "1.0", &[]),
        sdist("agentdata", "1.0"),
        sdist("agentdata", "2.0"),
        Dist {
            yanked: true,
            ..sdist("agentdata", "2.5")
        },
        sdist("agentdata", "3.0rc1"),
        sdist("gamma", "1.0"),
        Dist {
            wheel_tags: Some("cp311-cp311-manylinux_2_17_x86_64"),
            ..wheel("delta", "1.0", &[])
        },
        Dist {
            requires_python: Some(">=3.10"),
            ..wheel("epsilon", "1.0", &[])
        },
    ]
}

fn second_release() -> Vec<Dist> {
    let mut d = first_release();
    d.push(wheel("alpha", "2.0", &["beta>=1.0"]));
    d.push(wheel("beta", "1.1", &[]));
    d
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(recipe: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recipe.toml"), recipe).unwrap();
        Project { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn graft(&self, index: &Index, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .env_remove("PIP_FIND_LINKS")
            .env_remove("PIP_INDEX_URL")
            .env_remove("GRAFT_PYTHON");
        if args.first() == Some(&"lock") && !args.contains(&"--index-url") {
            cmd.args(["--index-url", &index.url()]);
        }
        cmd.output().unwrap()
    }

    fn lock(&self, index: &Index, extra: &[&str]) -> Output {
        let mut args = vec!["lock", "--recipe", "recipe.toml", "-o", "test.lock"];
        args.extend_from_slice(extra);
        self.graft(index, &args)
    }

    fn lockfile(&self) -> Lockfile {
        Lockfile::load(&self.path("test.lock")).unwrap()
    }

    fn version_of(&self, target: &str, name: &str) -> String {
        let lock = self.lockfile();
        let t = lock.target(target).unwrap();
        t.artifacts
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.version.clone())
            .unwrap_or_default()
    }
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "graft failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "graft should have failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn lock_pins_every_artifact_and_relocking_gives_the_same_bytes() {
    let index = Index::new();
    index.publish(&second_release());
    let p = Project::new(RECIPE);
    let stderr = ok(&p.lock(&index, &[]));
    assert!(stderr.contains("Locked py311: 3 artifacts"), "{stderr}");
    assert!(stderr.contains("Locked py39-arm: 3 artifacts"), "{stderr}");

    let text = std::fs::read_to_string(p.path("test.lock")).unwrap();
    assert!(
        !text.contains("://"),
        "the lockfile must hold no URL:\n{text}"
    );
    let lock = p.lockfile();
    assert_eq!(lock.target_names(), ["py311", "py39-arm"]);
    for t in &lock.targets {
        let names: Vec<(&str, &str, ArtifactKind)> = t
            .artifacts
            .iter()
            .map(|a| (a.name.as_str(), a.version.as_str(), a.kind))
            .collect();
        // Newest alpha and beta; agentdata 2.0: 2.5 is yanked and 3.0rc1 a pre-release.
        assert_eq!(
            names,
            [
                ("agentdata", "2.0", ArtifactKind::Sdist),
                ("alpha", "2.0", ArtifactKind::Wheel),
                ("beta", "1.1", ArtifactKind::Wheel)
            ]
        );
        for a in &t.artifacts {
            let bytes = index.file_bytes(&a.filename);
            assert_eq!(a.sha256, graft::util::sha256_hex(&bytes), "{}", a.filename);
            assert_eq!(a.size, bytes.len() as u64, "{}", a.filename);
            assert_eq!(a.index.as_deref(), Some("default"));
        }
        assert_eq!(t.artifacts[0].archive.as_deref(), Some("data"));
    }

    let first = std::fs::read(p.path("test.lock")).unwrap();
    let stderr = ok(&p.lock(&index, &[]));
    assert!(
        stderr.contains("(0 changed)") && stderr.contains("up to date"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(p.path("test.lock")).unwrap(),
        first,
        "re-locking changed bytes"
    );

    let check = p.lock(&index, &["--check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // --json gives a summary a pipeline can read.
    let out = p.lock(&index, &["--json", "--target", "py311"]);
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["targets"][0]["name"], "py311");
    assert_eq!(summary["targets"][0]["artifacts"], 3);
    assert_eq!(summary["written"], false);
}

#[test]
fn pins_are_kept_until_an_upgrade_is_asked_for() {
    let index = Index::new();
    index.publish(&first_release());
    let p = Project::new(RECIPE);
    ok(&p.lock(&index, &[]));
    assert_eq!(
        (
            p.version_of("py311", "alpha"),
            p.version_of("py311", "beta")
        ),
        ("1.0".into(), "1.0".into())
    );
    assert_eq!(p.version_of("py311", "agentdata"), "2.0");

    index.publish(&second_release());
    let before = std::fs::read(p.path("test.lock")).unwrap();
    ok(&p.lock(&index, &[]));
    assert_eq!(
        std::fs::read(p.path("test.lock")).unwrap(),
        before,
        "new releases must not move pins"
    );

    let stderr = ok(&p.lock(&index, &["--upgrade-package", "BETA", "-v"]));
    assert!(
        stderr.contains("(1 changed)") && stderr.contains("beta 1.0 -> 1.1"),
        "{stderr}"
    );
    assert_eq!(
        (
            p.version_of("py311", "alpha"),
            p.version_of("py311", "beta")
        ),
        ("1.0".into(), "1.1".into())
    );

    ok(&p.lock(&index, &["--upgrade"]));
    assert_eq!(p.version_of("py311", "alpha"), "2.0");
    assert_eq!(p.version_of("py39-arm", "alpha"), "2.0");

    let err = fails(&p.lock(&index, &["--upgrade-package", "nothing-like-it"]));
    assert!(err.contains("nothing-like-it"), "{err}");

    // The data archive's pin is kept too, and moves only when asked.
    let mut third = second_release();
    third.push(sdist("agentdata", "2.6"));
    index.publish(&third);
    ok(&p.lock(&index, &[]));
    assert_eq!(p.version_of("py311", "agentdata"), "2.0");
    ok(&p.lock(&index, &["--upgrade-package", "agentdata"]));
    assert_eq!(p.version_of("py311", "agentdata"), "2.6");
    assert_eq!(p.version_of("py39-arm", "agentdata"), "2.6");
}

#[test]
fn target_option_relocks_one_target_and_keeps_the_other() {
    let index = Index::new();
    index.publish(&first_release());
    let p = Project::new(RECIPE);
    ok(&p.lock(&index, &[]));
    index.publish(&second_release());
    ok(&p.lock(&index, &["--target", "py39-arm", "--upgrade"]));
    assert_eq!(p.version_of("py39-arm", "alpha"), "2.0");
    assert_eq!(
        p.version_of("py311", "alpha"),
        "1.0",
        "the other target keeps its entries"
    );
    let err = fails(&p.lock(&index, &["--target", "py312"]));
    assert!(err.contains("py312") && err.contains("py311"), "{err}");

    // Dropping a target from the recipe: a full re-lock drops its entries and is fresh.
    let one_target = RECIPE[..RECIPE.rfind("[[target]]").unwrap()].to_string();
    std::fs::write(p.path("recipe.toml"), &one_target).unwrap();
    let check = |p: &Project| p.lock(&index, &["--check"]);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("target py39-arm is in the lockfile but not in the recipe"));
    let stderr = ok(&p.lock(&index, &[]));
    assert!(stderr.contains("dropped target py39-arm"), "{stderr}");
    assert_eq!(p.lockfile().target_names(), ["py311"]);
    assert_eq!(check(&p).status.code(), Some(0));
}

#[test]
fn check_passes_then_fails_after_a_recipe_edit_and_relock_drops_the_conflicting_pin() {
    let index = Index::new();
    index.publish(&second_release());
    let p = Project::new(RECIPE);
    ok(&p.lock(&index, &[]));
    let check = |p: &Project| p.lock(&index, &["--check"]);
    assert_eq!(check(&p).status.code(), Some(0));
    let before = std::fs::read(p.path("test.lock")).unwrap();

    std::fs::write(
        p.path("recipe.toml"),
        RECIPE.replace(r#"["alpha"]"#, r#"["alpha", "beta<1.1"]"#),
    )
    .unwrap();
    let out = check(&p);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("recipe changed"), "{stderr}");
    assert_eq!(
        std::fs::read(p.path("test.lock")).unwrap(),
        before,
        "--check writes nothing"
    );
    let out = p.lock(&index, &["--check", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["up_to_date"], false);
    assert!(
        report["differences"][0]
            .as_str()
            .unwrap()
            .contains("recipe changed"),
        "{report}"
    );

    // beta==1.1 is locked, the recipe now says beta<1.1: the pin goes, and graft says so.
    let stderr = ok(&p.lock(&index, &[]));
    assert!(
        stderr.contains("note:") && stderr.contains("beta==1.1"),
        "{stderr}"
    );
    assert_eq!(p.version_of("py311", "beta"), "1.0");
    assert_eq!(p.version_of("py311", "alpha"), "2.0", "alpha's pin is kept");
    assert_eq!(check(&p).status.code(), Some(0));

    // A layout-only edit does not make the lockfile stale.
    let mut text = std::fs::read_to_string(p.path("recipe.toml")).unwrap();
    text.push_str("\n[layout]\nvenv = \"venv\"\n");
    std::fs::write(p.path("recipe.toml"), text).unwrap();
    assert_eq!(check(&p).status.code(), Some(0));

    // A target the lockfile lacks is named.
    let mut text = std::fs::read_to_string(p.path("recipe.toml")).unwrap();
    text.push_str(
        "\n[[target]]\nname = \"py312\"\npython = \"3.12\"\narch = \"x86_64\"\nglibc = \"2.39\"\n",
    );
    std::fs::write(p.path("recipe.toml"), text).unwrap();
    let out = check(&p);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("target py312 is in the recipe but not in the lockfile"));
}

#[test]
fn export_prints_hashed_pins_that_pip_accepts() {
    let index = Index::new();
    index.publish(&second_release());
    let p = Project::new(RECIPE);
    ok(&p.lock(&index, &[]));
    let out = p.graft(
        &index,
        &["export", "--lock", "test.lock", "--target", "py311"],
    );
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let alpha = graft::util::sha256_hex(&index.file_bytes("alpha-2.0-py3-none-any.whl"));
    let beta = graft::util::sha256_hex(&index.file_bytes("beta-1.1-py3-none-any.whl"));
    assert_eq!(
        body,
        [
            "alpha==2.0 \\".to_string(),
            format!("    --hash=sha256:{alpha}"),
            "beta==1.1 \\".to_string(),
            format!("    --hash=sha256:{beta}"),
        ]
    );
    assert!(
        !text.contains("://") && !text.contains("agentdata"),
        "{text}"
    );
    let req = p.path("req.txt");
    std::fs::write(&req, &text).unwrap();

    // Oracle: pip downloads exactly these files and accepts every hash.
    let dl = p.path("dl");
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
        ])
        .args(["--index-url", &index.url(), "-d"])
        .arg(&dl)
        .arg("-r")
        .arg(&req)
        .env("PIP_FIND_LINKS", "")
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let mut got: Vec<String> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["alpha-2.0-py3-none-any.whl", "beta-1.1-py3-none-any.whl"]
    );

    // A tampered hash is refused by pip: the check above can fail.
    std::fs::write(&req, text.replace(&alpha, &"0".repeat(64))).unwrap();
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
        ])
        .args(["--index-url", &index.url(), "-d"])
        .arg(p.path("dl2"))
        .arg("-r")
        .arg(&req)
        .env("PIP_FIND_LINKS", "")
        .output()
        .unwrap();
    assert!(!pip.status.success());

    let err = fails(&p.graft(
        &index,
        &["export", "--lock", "test.lock", "--target", "nope"],
    ));
    assert!(err.contains("nope") && err.contains("py311"), "{err}");
}

#[test]
fn errors_name_what_is_wrong_and_what_to_do() {
    let index = Index::new();
    index.publish(&second_release());

    let p = Project::new(&RECIPE.replace(r#"["alpha"]"#, r#"["alpha", "no-such-dist"]"#));
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("no distribution named \"no-such-dist\"") && err.contains("every target"),
        "{err}"
    );
    let err = fails(&p.lock(&index, &["--target", "py311"]));
    assert!(
        err.contains("no distribution named \"no-such-dist\"") && err.contains("target py311"),
        "{err}"
    );

    // gamma has only a source release.
    let p = Project::new(&RECIPE.replace(r#"["alpha"]"#, r#"["gamma"]"#));
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("gamma has no wheel for target py311") && err.contains("1.0"),
        "{err}"
    );
    assert!(
        err.contains("Pin an older release") && err.contains("drop the target"),
        "{err}"
    );

    // delta has a wheel for CPython 3.11 on x86_64 only: the aarch64 target is named.
    let p = Project::new(&RECIPE.replace(r#"["alpha"]"#, r#"["delta"]"#));
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("delta has no wheel for target py39-arm"),
        "{err}"
    );
    assert!(
        err.contains("other platforms or Pythons") && err.contains("delta-1.0-cp311"),
        "{err}"
    );
    ok(&p.lock(&index, &["--target", "py311"]));

    // epsilon needs Python 3.10: the 3.9 target is named, with the reason.
    let p = Project::new(&RECIPE.replace(r#"["alpha"]"#, r#"["epsilon"]"#));
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("epsilon has no wheel for target py39-arm")
            && err.contains("needs Python >=3.10"),
        "{err}"
    );

    let p = Project::new(&RECIPE.replace("arch = \"x86_64\"", "achr = \"x86_64\""));
    let err = fails(&p.lock(&index, &[]));
    assert!(err.contains("achr") && err.contains("line 15"), "{err}");

    let p = Project::new(&RECIPE.replace("glibc = \"2.17\"", "glibc = \"2.12\""));
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("impossible") && err.contains("py39-arm"),
        "{err}"
    );

    let p = Project::new(RECIPE);
    let err = fails(&p.lock(&index, &["--python", "/nonexistent/python3"]));
    assert!(
        err.contains("/nonexistent/python3") && err.contains("apt-get install python3-pip"),
        "{err}"
    );
    // An interpreter without pip, and one with a pip too old for --dry-run --report.
    for (name, script, expected, advice) in [
        (
            "nopip",
            "echo '/usr/bin/python3: No module named pip' >&2; exit 1",
            "has no usable pip",
            "apt-get install python3-pip",
        ),
        (
            "oldpip",
            "echo 'pip 21.0 from /usr/lib/python3/dist-packages/pip (python 3.9)'",
            "pip 21.0 is too old",
            "install --upgrade pip",
        ),
    ] {
        let path = p.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let err = fails(&p.lock(&index, &["--python", path.to_str().unwrap()]));
        assert!(
            err.contains(expected)
                && err.contains(advice)
                && err.contains("No module named pip") == (name == "nopip"),
            "{err}"
        );
    }

    let err = fails(&p.graft(
        &index,
        &[
            "lock",
            "--recipe",
            "recipe.toml",
            "-o",
            "test.lock",
            "--index-url",
            "http://127.0.0.1:9/simple",
        ],
    ));
    assert!(
        err.contains("cannot reach the package index") && err.contains("--offline"),
        "{err}"
    );

    let err = fails(&p.graft(
        &index,
        &[
            "--offline",
            "lock",
            "--recipe",
            "recipe.toml",
            "-o",
            "test.lock",
            "--index-url",
            "http://127.0.0.1:9/simple",
        ],
    ));
    assert!(err.contains("--offline"), "{err}");
    assert!(!p.path("test.lock").exists(), "nothing half-written");

    // A hand-edited lockfile is refused naming the entry, and left as it was.
    ok(&p.lock(&index, &[]));
    let text = std::fs::read_to_string(p.path("test.lock")).unwrap();
    let sha = graft::util::sha256_hex(&index.file_bytes("beta-1.1-py3-none-any.whl"));
    let edited = text.replacen(&sha, "not-a-hash", 1);
    std::fs::write(p.path("test.lock"), &edited).unwrap();
    let err = fails(&p.lock(&index, &[]));
    assert!(
        err.contains("beta") && err.contains("sha256") && err.contains("py311"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("test.lock")).unwrap(),
        edited
    );
    // --upgrade writes it anew.
    ok(&p.lock(&index, &["--upgrade"]));
    assert_eq!(std::fs::read_to_string(p.path("test.lock")).unwrap(), text);
}

#[test]
fn find_links_are_switched_off_so_every_artifact_comes_from_the_index() {
    // pip given a find-links directory through its config would pick a wheel there; graft
    // switches find-links off, so the only wheel of `alpha` 3.0 (not on the index) is
    // never picked and the lock still comes from the index alone.
    let index = Index::new();
    index.publish(&second_release());
    let links = tempfile::tempdir().unwrap();
    let (name, bytes) = make_wheel(&wheel("alpha", "3.0", &[]), "py3-none-any");
    std::fs::write(links.path().join(name), bytes).unwrap();
    let p = Project::new(RECIPE);
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(p.dir.path())
        .args([
            "lock",
            "--recipe",
            "recipe.toml",
            "-o",
            "test.lock",
            "--index-url",
            &index.url(),
        ])
        .env("PIP_FIND_LINKS", links.path())
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(p.version_of("py311", "alpha"), "2.0");
}

#[test]
fn the_index_is_reached_through_the_environments_proxy() {
    // A one-shot HTTP proxy on localhost: it records the request line and answers 404.
    // graft must send an absolute-URI request for the index host to it.
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        first
    });
    let p = Project::new(RECIPE);
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(p.dir.path())
        .args([
            "lock",
            "--recipe",
            "recipe.toml",
            "-o",
            "test.lock",
            "--index-url",
            "http://index.invalid/simple/",
        ])
        .env("HTTP_PROXY", format!("http://127.0.0.1:{port}"))
        .env_remove("http_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let err = fails(&out);
    let request = seen.join().unwrap();
    assert!(
        request.starts_with("GET http://index.invalid/simple/alpha/ HTTP/1.1"),
        "{request:?}"
    );
    assert!(err.contains("no distribution named \"alpha\""), "{err}");
}
