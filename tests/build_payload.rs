//! The real Heat agent payload: built from the package index, unpacked at a temporary
//! prefix, and run with the host's CPython (its own tools, its imports, the `local`
//! collector under the unit's environment). Needs the network.
//!
//! The lockfile: `$GRAFT_TEST_LOCK` if set; else `lockfiles/heat-agent.lock` when it was
//! made from the current recipe; else one made now with `graft lock --target debian-12`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TARGET: &str = "debian-12";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Built {
    _dir: tempfile::TempDir,
    lock: PathBuf,
    cache: PathBuf,
    payload: PathBuf,
    prefix: PathBuf,
    work: PathBuf,
}

fn recipe() -> PathBuf {
    root().join("recipes/heat-agent.toml")
}

fn lockfile(work: &Path) -> PathBuf {
    if let Some(l) = std::env::var_os("GRAFT_TEST_LOCK") {
        return PathBuf::from(l);
    }
    let committed = root().join("lockfiles/heat-agent.lock");
    let digest = graft::recipe::Recipe::load(&recipe())
        .unwrap()
        .lock_digest();
    if std::fs::read_to_string(&committed).is_ok_and(|t| t.contains(&digest)) {
        return committed;
    }
    let fresh = work.join("heat-agent.lock");
    check(
        Command::new(env!("CARGO_BIN_EXE_graft"))
            .args(["-q", "lock", "--target", TARGET, "--recipe"])
            .arg(recipe())
            .arg("-o")
            .arg(&fresh)
            .output()
            .unwrap(),
        "graft lock",
    );
    fresh
}

/// One build for every test of this file: fetched, built with a temporary prefix and
/// the part under the prefix unpacked at that very path.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().to_path_buf();
        let lock = lockfile(&work);
        let cache = work.join("cache");
        let prefix = work.join("guest/opt/heat-agent");
        let payload = work.join("payload.tar.gz");
        check(
            Command::new(env!("CARGO_BIN_EXE_graft"))
                .arg("--cache-dir")
                .arg(&cache)
                .args(["build", "--target", TARGET, "--recipe"])
                .arg(recipe())
                .arg("--lock")
                .arg(&lock)
                .arg("-o")
                .arg(&payload)
                .arg("--prefix")
                .arg(&prefix)
                .output()
                .unwrap(),
            "graft build",
        );
        let bytes = std::fs::read(&payload).unwrap();
        let rel = prefix.strip_prefix("/").unwrap().to_path_buf();
        std::fs::create_dir_all(prefix.parent().unwrap()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().into_owned();
            // Only the prefix: the unit's /etc path is not the host's to write.
            if path.starts_with(&rel) {
                e.unpack(Path::new("/").join(&path)).unwrap();
            }
        }
        Built {
            _dir: dir,
            lock,
            cache,
            payload,
            prefix,
            work,
        }
    })
}

fn host_python_is_311() {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output();
    let version = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(version, "3.11", "these tests run the debian-12 payload with the host's /usr/bin/python3, which must be CPython 3.11");
}

/// The unit's `Environment=` assignments, read from the payload itself.
fn unit_environment(b: &Built) -> Vec<(String, String)> {
    let bytes = std::fs::read(&b.payload).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut text = String::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "etc/systemd/system/os-collect-config.service" {
            e.read_to_string(&mut text).unwrap();
        }
    }
    assert!(
        !text.is_empty(),
        "the payload has no os-collect-config.service"
    );
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("Environment=\"")?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("\\\"", "\"").replace("%%", "%"))
        })
        .collect()
}

#[test]
#[ignore = "needs the package index"]
fn the_payload_tools_run_and_its_libraries_import_with_the_host_python() {
    host_python_is_311();
    let b = built();
    let bin = b.prefix.join("bin");
    for tool in ["os-collect-config", "os-refresh-config", "os-apply-config"] {
        let out = check(
            Command::new(bin.join(tool))
                .arg("--help")
                .env_clear()
                .env("LC_ALL", "C")
                .output()
                .unwrap(),
            tool,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("usage: {tool}")),
            "{tool} --help:\n{text}"
        );
    }
    let out = check(
        Command::new(bin.join("python3"))
            .args(["-c", "import heatclient, keystoneclient, zaqarclient, yaml, requests, sys; print(sys.prefix)"])
            .env_clear()
            .output()
            .unwrap(),
        "imports",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        b.prefix.to_str().unwrap(),
        "the venv's python runs in the venv"
    );
    // dib-run-parts (from the os-refresh-config wheel) and the heat-agents files are there.
    for f in [
        "bin/dib-run-parts",
        "bin/heat-config-notify",
        "os-refresh-config/configure.d/55-heat-config",
        "hooks/script",
    ] {
        let m = std::fs::metadata(b.prefix.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
            0o755,
            "{f}"
        );
    }
}

/// os-collect-config's `local` collector, the one that dies with `locale.Error` on images
/// without en_US.UTF-8, run under the environment the payload's unit sets.
fn run_local_collector(b: &Built, env: &[(String, String)]) -> Output {
    let data = b.work.join("local-data");
    let cachedir = b.work.join(format!("occ-cache-{}", env.len()));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&cachedir).unwrap();
    std::fs::write(
        data.join("graft-test.json"),
        r#"{"graft-probe": {"answer": 42}}"#,
    )
    .unwrap();
    let mut c = Command::new(b.prefix.join("bin/os-collect-config"));
    c.env_clear();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["--one-time", "--print", "--local-path"])
        .arg(&data)
        .arg("--cachedir")
        .arg(&cachedir)
        .arg("--backup-cachedir")
        .arg(cachedir.join("backup"))
        .arg("local");
    c.output().unwrap()
}

#[test]
#[ignore = "needs the package index"]
fn the_local_collector_runs_under_the_units_environment() {
    host_python_is_311();
    let b = built();
    let env = unit_environment(b);
    assert!(
        env.iter().any(|(k, v)| k == "LC_ALL" && v == "C"),
        "{env:?}"
    );
    let out = run_local_collector(b, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "collector failed under the unit's environment:\n{stderr}"
    );
    assert!(!stderr.contains("locale.Error"), "{stderr}");
    let printed: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        printed["graft-test.json"]["graft-probe"]["answer"], 42,
        "{stdout}"
    );

    // The control: under C.UTF-8 on a host without en_US.UTF-8 the same run must fail
    // with the locale error, or the check above proves nothing.
    let locales = Command::new("locale")
        .arg("-a")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_lowercase())
        .unwrap_or_default();
    if locales.contains("en_us.utf8") || locales.contains("en_us.utf-8") {
        eprintln!("note: this host has en_US.UTF-8, so the C.UTF-8 control cannot fail here");
        return;
    }
    let path = env.iter().find(|(k, _)| k == "PATH").cloned().unwrap();
    let out = run_local_collector(b, &[path, ("LANG".into(), "C.UTF-8".into())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("locale.Error"),
        "the control did not hit the trap:\n{stderr}"
    );
}

#[test]
#[ignore = "needs the package index"]
fn the_real_payload_is_reproducible_and_verifies() {
    let b = built();
    // A second build: another directory, umask 077, another time zone and locale, and a
    // cache filled afresh one download at a time.
    let other = b.work.join("elsewhere/deeper");
    std::fs::create_dir_all(&other).unwrap();
    let cache2 = b.work.join("cache-2");
    let graft = env!("CARGO_BIN_EXE_graft");
    check(
        Command::new(graft)
            .arg("-q")
            .arg("--cache-dir")
            .arg(&cache2)
            .args(["fetch", "--jobs", "1", "--target", TARGET, "--recipe"])
            .arg(recipe())
            .arg("--lock")
            .arg(&b.lock)
            .output()
            .unwrap(),
        "graft fetch --jobs 1",
    );
    check(
        Command::new("sh")
            .args([
                "-c",
                "umask 077; exec \"$@\"",
                "sh",
                graft,
                "--offline",
                "--cache-dir",
            ])
            .arg(&cache2)
            .args([
                "build",
                "--target",
                TARGET,
                "-o",
                "again.tar.gz",
                "--recipe",
            ])
            .arg(recipe())
            .arg("--lock")
            .arg(&b.lock)
            .arg("--prefix")
            .arg(&b.prefix)
            .current_dir(&other)
            .env("TZ", "Asia/Kathmandu")
            .env("LANG", "de_DE.UTF-8")
            .env("LC_ALL", "de_DE.UTF-8")
            .output()
            .unwrap(),
        "second build",
    );
    assert!(
        std::fs::read(&b.payload).unwrap() == std::fs::read(other.join("again.tar.gz")).unwrap(),
        "payload bytes differ"
    );
    assert!(
        std::fs::read(b.work.join("payload.manifest.json")).unwrap()
            == std::fs::read(other.join("again.manifest.json")).unwrap(),
        "manifests differ"
    );
    let out = Command::new(graft)
        .arg("--offline")
        .arg("--cache-dir")
        .arg(&b.cache)
        .args(["verify", "--rebuild"])
        .arg(&b.payload)
        .args(["--target", TARGET, "--recipe"])
        .arg(recipe())
        .arg("--lock")
        .arg(&b.lock)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
