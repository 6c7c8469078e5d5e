//! The committed lockfile against the real package index (whatever pip is configured
//! with), with pip as the oracle. The offline checks of the committed file run always.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft::lockfile::{ArtifactKind, Lockfile};
use graft::recipe::Recipe;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> (Recipe, Lockfile, String) {
    let recipe = Recipe::load(&root().join("recipes/heat-agent.toml")).unwrap();
    let text = std::fs::read_to_string(root().join("lockfiles/heat-agent.lock")).unwrap();
    let lock = Lockfile::parse(&text, "lockfiles/heat-agent.lock").unwrap();
    (recipe, lock, text)
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(root())
        .args(args)
        .env_remove("PIP_FIND_LINKS")
        .output()
        .unwrap()
}

/// `pip ... --python-version/--implementation/--abi/--platform` for a locked target.
fn target_options(recipe: &Recipe, name: &str) -> Vec<String> {
    let t = recipe.target(name).unwrap();
    let mut args = vec![
        "--python-version".into(),
        t.python.clone(),
        "--implementation".into(),
        t.implementation.clone(),
    ];
    for abi in graft::python::tags::abi_tags(t) {
        args.extend(["--abi".to_string(), abi]);
    }
    for p in graft::python::tags::platform_tags(t).unwrap() {
        args.extend(["--platform".to_string(), p]);
    }
    args
}

fn export(target: &str) -> String {
    let out = graft(&["export", "--target", target]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (name, version, sha256) of each exported pin.
fn exported_pins(text: &str) -> BTreeSet<(String, String, String)> {
    let mut pins = BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let line = line.trim().trim_end_matches('\\').trim();
        if let Some(hash) = line.strip_prefix("--hash=sha256:") {
            let (n, v) = current.take().expect("a --hash line follows its pin");
            pins.insert((n, v, hash.to_string()));
        } else if let Some((n, v)) = line.split_once("==") {
            current = Some((n.to_string(), v.to_string()));
        }
    }
    pins
}

#[test]
fn committed_lockfile_is_complete_pinned_and_holds_no_url() {
    let (recipe, lock, text) = committed();
    assert!(!text.contains("://"), "the lockfile must hold no URL");
    assert_eq!(
        lock.recipe_digest,
        recipe.lock_digest(),
        "the lockfile is stale: run `graft lock`"
    );
    let names: BTreeSet<&str> = lock.target_names().into_iter().collect();
    let wanted: BTreeSet<&str> = recipe.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, wanted);
    for t in &lock.targets {
        assert!(
            t.artifacts.len() > 20,
            "{}: only {} artifacts",
            t.name,
            t.artifacts.len()
        );
        for a in &t.artifacts {
            assert!(
                graft::util::is_sha256_hex(&a.sha256),
                "{} {}",
                t.name,
                a.filename
            );
            assert!(a.size > 0, "{} {}", t.name, a.filename);
        }
        assert!(t
            .artifacts
            .iter()
            .any(|a| a.kind == ArtifactKind::Sdist && a.archive.as_deref() == Some("heat-agents")));
        for r in [
            "os-collect-config",
            "os-refresh-config",
            "os-apply-config",
            "pyyaml",
            "requests",
            "python-heatclient",
        ] {
            assert!(
                t.artifacts
                    .iter()
                    .any(|a| a.name == r && a.kind == ArtifactKind::Wheel),
                "{}: {r}",
                t.name
            );
        }
    }
    // Canonical: what graft would write for this content is these bytes.
    assert_eq!(lock.to_toml(), text);
}

#[test]
#[ignore = "needs the package index"]
fn committed_lockfile_passes_check_and_relocking_changes_no_byte() {
    let check = graft(&["lock", "--check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("heat-agent.lock");
    std::fs::copy(root().join("lockfiles/heat-agent.lock"), &copy).unwrap();
    let out = graft(&["lock", "-q", "-o", copy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(root().join("lockfiles/heat-agent.lock")).unwrap(),
        "re-locking changed the committed lockfile"
    );
}

#[test]
#[ignore = "needs the package index"]
fn pip_resolves_the_recipe_to_exactly_the_exported_set_for_every_x86_64_target() {
    let (recipe, lock, _) = committed();
    let dir = tempfile::tempdir().unwrap();
    // pip mostly waits on the index: ask it about every target at once.
    std::thread::scope(|scope| {
        for t in lock.targets.iter().filter(|t| t.arch == "x86_64") {
            let (recipe, dir) = (&recipe, dir.path());
            scope.spawn(move || pip_agrees_with_export(recipe, t, dir));
        }
    });
}

fn pip_agrees_with_export(recipe: &Recipe, t: &graft::lockfile::LockedTarget, dir: &Path) {
    let exported = export(&t.name);
    let pins = exported_pins(&exported);
    assert_eq!(
        pins.len(),
        t.artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::Wheel)
            .count()
    );
    let constraints = dir.join(format!("{}.constraints.txt", t.name));
    std::fs::write(
        &constraints,
        pins.iter()
            .map(|(n, v, _)| format!("{n}=={v}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let report = dir.join(format!("{}.report.json", t.name));
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "-q",
        ])
        .arg("--report")
        .arg(&report)
        .arg("--target")
        .arg(dir.join("unused"))
        .args(target_options(recipe, &t.name))
        .arg("-c")
        .arg(&constraints)
        .args(&recipe.python.requirements)
        .env("PIP_FIND_LINKS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        t.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved =
        graft::python::resolve::parse_report(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let got: BTreeSet<(String, String, String)> = resolved
        .into_iter()
        .map(|d| (d.name, d.version, d.sha256.unwrap_or_default()))
        .collect();
    let missing: Vec<_> = pins.difference(&got).collect();
    let extra: Vec<_> = got.difference(&pins).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: missing {missing:?}, extra {extra:?}",
        t.name
    );
}

#[test]
#[ignore = "needs the package index"]
fn pip_download_accepts_every_exported_hash() {
    let (recipe, _, _) = committed();
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("debian-12.txt");
    let exported = export("debian-12");
    std::fs::write(&req, &exported).unwrap();
    let dl = dir.path().join("dl");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
        ])
        .arg(&dl)
        .args(target_options(&recipe, "debian-12"))
        .arg("-r")
        .arg(&req)
        .env("PIP_FIND_LINKS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = std::fs::read_dir(&dl).unwrap().count();
    assert_eq!(count, exported_pins(&exported).len());
    check_sizes(&dl, "debian-12");
}

/// Every downloaded file has the lockfile's size and sha256.
fn check_sizes(dir: &Path, target: &str) {
    let (_, lock, _) = committed();
    let t = lock.target(target).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let a = t
            .artifacts
            .iter()
            .find(|a| a.filename == name)
            .unwrap_or_else(|| panic!("{name} not locked"));
        let (sha, size) = graft::util::sha256_file(&path).unwrap();
        assert_eq!((sha.as_str(), size), (a.sha256.as_str(), a.size), "{name}");
    }
}

#[test]
#[ignore = "needs the package index"]
fn url_archives_are_downloaded_once_checked_and_locked_without_their_url() {
    // Any https file will do; take the heat-agents source release's address from the
    // index pip is configured with, so that no host is written here.
    let python = graft::python::pip::default_python();
    let index = graft::python::index::PackageIndex::discover(None, &python).unwrap();
    let files = index.project_files("heat-agents").unwrap();
    let file = files
        .iter()
        .rev()
        .find(|f| f.filename.ends_with(".tar.gz") && f.url.starts_with("https://"))
        .unwrap();
    let sha = file.sha256.clone().unwrap();
    let recipe = |sha: &str| {
        format!(
            "schema = 1\nname = \"u\"\nsource-date-epoch = 0\n[python]\nrequirements = [\"six\"]\n\
             [[archive]]\nname = \"agents\"\nurl = \"{}\"\nsha256 = \"{sha}\"\nversion = \"x\"\n\
             [[target]]\nname = \"debian-12\"\npython = \"3.11\"\narch = \"x86_64\"\nglibc = \"2.36\"\n",
            file.url
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("u.toml");
    let l = dir.path().join("u.lock");
    std::fs::write(&r, recipe(&sha)).unwrap();
    let out = graft(&[
        "lock",
        "--recipe",
        r.to_str().unwrap(),
        "-o",
        l.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&l).unwrap();
    assert!(!text.contains("://"), "{text}");
    let lock = Lockfile::parse(&text, "u.lock").unwrap();
    let a = lock.targets[0]
        .artifacts
        .iter()
        .find(|a| a.kind == ArtifactKind::Url)
        .unwrap();
    assert_eq!(
        (a.name.as_str(), a.version.as_str(), a.sha256.as_str()),
        ("agents", "x", sha.as_str())
    );
    assert_eq!(a.filename, file.filename);
    if let Some(size) = file.size {
        assert_eq!(a.size, size);
    }
    assert!(a.size > 1000);

    // A wrong sha256 in the recipe is caught by the download.
    std::fs::write(&r, recipe(&"0".repeat(64))).unwrap();
    let out = graft(&[
        "lock",
        "--recipe",
        r.to_str().unwrap(),
        "-o",
        l.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("agents") && err.contains(&sha),
        "{err}"
    );
}
