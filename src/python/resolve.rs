//! Locking: pip's own resolver for the Python distributions of one target, the package
//! index for data archives, and the checks that turn either answer into lockfile
//! artifacts.
//!
//! pip runs as `pip install --dry-run --report` (report format:
//! <https://pip.pypa.io/en/stable/reference/installation-report/>), wheels only, with the
//! target's Python version, implementation, ABI tags and every platform tag its glibc
//! implies, so pip decides what the guest gets exactly as it would on the guest.
//!
//! pip is run with `--index-url` set to the one index graft locks against and with
//! find-links and extra index URLs switched off (`PIP_FIND_LINKS=""`,
//! `PIP_EXTRA_INDEX_URL=""`): a lockfile names an artifact's index, not its address, so
//! an artifact pip found anywhere else (a local wheel directory, another index) could
//! not be fetched again by that name. Every artifact pip picks is then looked up on the
//! index: it must be listed there, and the index's sha256 and pip's must agree.
//!
//! Data archives (`[[archive]]` with `requirement`) never go through pip, because pip
//! would run a source release's build code to learn its metadata: graft picks the newest
//! final, non-yanked sdist matching the requirement from the index listing itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde::Deserialize;
use thiserror::Error;

use crate::lockfile::{Artifact, ArtifactKind};
use crate::python::index::{normalize_name, IndexError, IndexFile, PackageIndex};
use crate::python::pip::PipError;
use crate::python::tags;
use crate::python::version::{SimpleRequirement, Version};
use crate::recipe::{Archive, Target};

/// pip versions older than this have no `--dry-run` / `--report`.
const MIN_PIP: (u32, u32) = (22, 2);

#[derive(Debug, Error)]
pub enum LockError {
    #[error(transparent)]
    Pip(#[from] PipError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("pip {found} is too old: graft needs pip {}.{} or newer for `--dry-run --report` \
             (upgrade it: `{python} -m pip install --upgrade pip`, or set GRAFT_PYTHON / --python)",
            MIN_PIP.0, MIN_PIP.1)]
    PipTooOld { python: String, found: String },
    #[error(
        "no distribution named {name:?} on the package index {index} (needed for {target}); \
             check the spelling in the recipe's [python] requirements"
    )]
    NoDistribution {
        name: String,
        index: String,
        target: String,
    },
    #[error(
        "{name} has no wheel for target {target} ({describe}): {detail}. graft installs wheels \
             only and never builds from source. Pin an older release that has wheels for this \
             target (e.g. add \"{name}<{version}\" to [python] requirements), or drop the target"
    )]
    NoWheel {
        name: String,
        version: String,
        target: String,
        describe: String,
        detail: String,
    },
    /// pip's "No matching distribution found"; `Locker::lock_target` explains it further.
    #[error("pip found no wheel of {name} that fits target {target} ({describe}); graft installs wheels only")]
    NoMatch {
        name: String,
        target: String,
        describe: String,
    },
    #[error("requirement {requirement:?} does not start with a distribution name")]
    BadRequirement { requirement: String },
    #[error(
        "pip cannot reach the package index {index} while resolving target {target}: {detail}. \
             Is the network up, and is pip's proxy/certificate configuration right? \
             (`graft lock` needs the index; other commands work from the cache with --offline)"
    )]
    Network {
        index: String,
        target: String,
        detail: String,
    },
    #[error("pip cannot resolve target {target}: the requirements conflict:\n{detail}")]
    Conflict { target: String, detail: String },
    #[error("pip failed for target {target} (exit status {status}):\n{detail}")]
    PipFailed {
        target: String,
        status: String,
        detail: String,
    },
    #[error("pip's report for target {target} cannot be read: {message}")]
    Report { target: String, message: String },
    #[error("{filename} (picked by pip for target {target}) is not listed on the package index {index} \
             under {name:?}: a lockfile can only name artifacts of its index. Is pip configured with \
             another index or find-links than graft uses?")]
    NotOnIndex {
        name: String,
        filename: String,
        target: String,
        index: String,
    },
    #[error(
        "{filename}: sha256 mismatch: {first_source} says {first}, {second_source} says {second}"
    )]
    HashMismatch {
        filename: String,
        first_source: String,
        first: String,
        second_source: String,
        second: String,
    },
    #[error("[[archive]] {archive:?}: {message}")]
    Archive { archive: String, message: String },
    #[error("cannot run pip: {0}")]
    Io(#[from] std::io::Error),
}

/// One distribution pip picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDist {
    /// PEP 503 normalised.
    pub name: String,
    pub version: String,
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
    /// Named in the requirements (not pulled in as a dependency).
    pub requested: bool,
}

/// Checks that `python -m pip` exists and is new enough; returns pip's version.
pub fn check_pip(python: &Path) -> Result<String, LockError> {
    let out = Command::new(python)
        .args(["-m", "pip", "--version"])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .map_err(|source| PipError::NoPython {
            python: python.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.starts_with("pip ") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(PipError::NoPip {
            python: python.display().to_string(),
            detail: stderr
                .lines()
                .last()
                .unwrap_or("`-m pip --version` failed")
                .trim()
                .to_string(),
        }
        .into());
    }
    let version = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_PIP {
        return Err(LockError::PipTooOld {
            python: python.display().to_string(),
            found: version,
        });
    }
    Ok(version)
}

/// The interpreter's own path (`sys.executable`), asked once. Version-manager shims such
/// as pyenv's rehash on every start and race when several pips run at once (seen as
/// "pyenv: cannot rehash" failures with targets resolved in parallel); the real
/// interpreter has no such step. Falls back to what was given when it cannot tell.
pub fn real_interpreter(python: &Path) -> std::path::PathBuf {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if text.is_empty() || !Path::new(&text).is_absolute() {
                python.to_path_buf()
            } else {
                std::path::PathBuf::from(text)
            }
        }
        _ => python.to_path_buf(),
    }
}

/// The distribution name at the start of a PEP 508 requirement.
pub fn requirement_name(requirement: &str) -> Option<String> {
    let t = requirement.trim();
    let n = t
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        .count();
    (n > 0).then(|| normalize_name(&t[..n]))
}

/// Runs pip's resolver for one target. `constraints` are `name==version` pins.
pub fn pip_resolve(
    python: &Path,
    index_url: &str,
    target: &Target,
    requirements: &[String],
    constraints: &BTreeMap<String, String>,
) -> Result<Vec<ResolvedDist>, LockError> {
    let work = tempfile::Builder::new().prefix("graft-lock-").tempdir()?;
    let req_file = work.path().join("requirements.txt");
    std::fs::write(
        &req_file,
        requirements
            .iter()
            .map(|r| format!("{r}\n"))
            .collect::<String>(),
    )?;
    let report = work.path().join("report.json");
    let abis = tags::abi_tags(target);
    let platforms = tags::platform_tags(target).map_err(|message| LockError::Report {
        target: target.name.clone(),
        message,
    })?;

    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--only-binary=:all:",
    ])
    .args([
        "--no-input",
        "--disable-pip-version-check",
        "--no-color",
        "--quiet",
    ])
    .arg("--report")
    .arg(&report)
    // pip allows platform options only with --target; --dry-run installs nothing there.
    .arg("--target")
    .arg(work.path().join("target"))
    .args(["--index-url", index_url])
    .args(["--python-version", &target.python])
    .args(["--implementation", &target.implementation]);
    for abi in &abis {
        cmd.args(["--abi", abi]);
    }
    for platform in &platforms {
        cmd.args(["--platform", platform]);
    }
    if !constraints.is_empty() {
        let c_file = work.path().join("constraints.txt");
        let text: String = constraints
            .iter()
            .map(|(n, v)| format!("{n}=={v}\n"))
            .collect();
        std::fs::write(&c_file, text)?;
        cmd.arg("-c").arg(&c_file);
    }
    cmd.arg("-r").arg(&req_file);
    // See the module documentation: one index, nothing else.
    cmd.env("PIP_FIND_LINKS", "")
        .env("PIP_EXTRA_INDEX_URL", "")
        .env("PIP_CONSTRAINT", "");
    cmd.env("PIP_NO_INPUT", "1")
        .env("PIP_REQUIRE_VIRTUALENV", "0");

    let out = cmd.output().map_err(|source| PipError::NoPython {
        python: python.display().to_string(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(classify_pip_failure(
            &stderr,
            index_url,
            target,
            out.status.to_string(),
        ));
    }
    parse_report(
        &std::fs::read_to_string(&report).map_err(|e| LockError::Report {
            target: target.name.clone(),
            message: format!("pip wrote no report: {e}"),
        })?,
    )
    .map_err(|message| LockError::Report {
        target: target.name.clone(),
        message,
    })
}

/// A pip failure the caller may act on.
fn classify_pip_failure(
    stderr: &str,
    index_url: &str,
    target: &Target,
    status: String,
) -> LockError {
    const NETWORK: [&str; 8] = [
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "ProxyError",
        "SSLError",
        "ConnectTimeoutError",
        "Max retries exceeded",
    ];
    let detail = pip_errors(stderr);
    if let Some(line) = stderr
        .lines()
        .find(|l| NETWORK.iter().any(|n| l.contains(n)))
    {
        return LockError::Network {
            index: crate::python::index::redact(index_url),
            target: target.name.clone(),
            detail: line.trim().to_string(),
        };
    }
    if stderr.contains("ResolutionImpossible") || stderr.contains("conflicting dependencies") {
        return LockError::Conflict {
            target: target.name.clone(),
            detail,
        };
    }
    if let Some(name) = no_matching_distribution(stderr) {
        return LockError::NoMatch {
            name,
            target: target.name.clone(),
            describe: describe(target),
        };
    }
    LockError::PipFailed {
        target: target.name.clone(),
        status,
        detail,
    }
}

/// pip's `ERROR:` lines and what follows them (the explanation), without its noise.
fn pip_errors(stderr: &str) -> String {
    let text: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("ERROR:"))
        .filter(|l| !l.trim().is_empty())
        .take(60)
        .collect();
    if text.is_empty() {
        stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.join("\n")
    }
}

/// The requirement name in pip's "No matching distribution found for X".
fn no_matching_distribution(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("No matching distribution found for "))?;
    let rest = line.split("No matching distribution found for ").nth(1)?;
    requirement_name(rest)
}

/// Names among `pins` that pip's conflict explanation mentions.
pub fn conflicting_pins(detail: &str, pins: &BTreeMap<String, String>) -> BTreeSet<String> {
    let words: BTreeSet<String> = detail
        .split(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
        .filter(|w| !w.is_empty())
        .map(normalize_name)
        .collect();
    pins.keys()
        .filter(|name| words.contains(*name))
        .cloned()
        .collect()
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    install: Vec<ReportItem>,
}

#[derive(Deserialize)]
struct ReportItem {
    download_info: DownloadInfo,
    #[serde(default)]
    requested: bool,
    metadata: ReportMetadata,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
    #[serde(default)]
    archive_info: Option<ArchiveInfo>,
}

#[derive(Deserialize)]
struct ArchiveInfo {
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ReportMetadata {
    name: String,
    version: String,
}

/// Parses pip's installation report.
pub fn parse_report(text: &str) -> Result<Vec<ResolvedDist>, String> {
    let report: Report = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    let mut out = Vec::new();
    for item in report.install {
        let url = item.download_info.url;
        let filename = url
            .split(['#', '?'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or("")
            .to_string();
        let sha256 = item.download_info.archive_info.and_then(|a| {
            a.hashes.get("sha256").cloned().or_else(|| {
                a.hash
                    .and_then(|h| h.strip_prefix("sha256=").map(str::to_string))
            })
        });
        out.push(ResolvedDist {
            name: normalize_name(&item.metadata.name),
            version: item.metadata.version,
            filename: crate::python::index::percent_decode(&filename),
            url,
            sha256: sha256.map(|h| h.to_ascii_lowercase()),
            requested: item.requested,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// How a target is described in messages.
pub fn describe(target: &Target) -> String {
    format!(
        "CPython {}, ABI {}, {} glibc {}",
        target.python,
        target.abi_tag(),
        target.arch,
        target.glibc
    )
}

/// Whether a wheel file name's tags fit the target (used to explain failures; pip
/// decides what is installed).
pub fn wheel_fits(filename: &str, target: &Target) -> bool {
    let Some(stem) = filename.strip_suffix(".whl") else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return false;
    }
    let (py, abi, plat) = (
        parts[parts.len() - 3],
        parts[parts.len() - 2],
        parts[parts.len() - 1],
    );
    let Ok((maj, min)) = target.python_version() else {
        return false;
    };
    let platforms = tags::platform_tags(target).unwrap_or_default();
    let plat_ok = plat
        .split('.')
        .any(|p| p == "any" || platforms.iter().any(|t| t == p));
    let own_abi = target.abi_tag();
    let abi_ok = abi
        .split('.')
        .any(|a| a == own_abi || a == "abi3" || a == "none");
    let py_ok = py.split('.').any(|p| {
        if p == format!("py{maj}") || p == format!("cp{maj}{min}") || p == format!("py{maj}{min}") {
            return true;
        }
        // cp3N with abi3 runs on any CPython >= 3.N.
        p.strip_prefix(&format!("cp{maj}"))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n <= min && abi.split('.').any(|a| a == "abi3"))
    });
    plat_ok && abi_ok && py_ok
}

/// Whether a `requires-python` specifier set admits Python `major.minor` (checked as
/// `major.minor.0` and as the newest patch level, as pip compares full versions).
pub fn requires_python_allows(requires_python: &str, python: &str) -> bool {
    let Ok(req) = SimpleRequirement::parse(&format!("python{}", requires_python.trim())) else {
        return true; // Unparseable: leave the decision to pip.
    };
    [format!("{python}.0"), format!("{python}.999")]
        .iter()
        .filter_map(|v| Version::parse(v))
        .any(|v| req.matches(&v))
}

/// The version in an sdist or wheel file name of `project`.
pub fn filename_version(project: &str, filename: &str) -> Option<String> {
    let stem = if let Some(s) = filename.strip_suffix(".whl") {
        let mut parts = s.splitn(3, '-');
        let name = parts.next()?;
        if normalize_name(name) != normalize_name(project) {
            return None;
        }
        return parts.next().map(str::to_string);
    } else {
        [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
            .iter()
            .find_map(|ext| filename.strip_suffix(ext))?
    };
    let want = normalize_name(project);
    stem.char_indices()
        .filter(|(_, c)| *c == '-')
        .find(|(i, _)| {
            normalize_name(&stem[..*i]) == want && Version::parse(&stem[*i + 1..]).is_some()
        })
        .map(|(i, _)| stem[i + 1..].to_string())
}

/// A sink that hashes and counts what is written to it.
/// Resolves targets and archives against one index, remembering project listings.
pub struct Locker<'a> {
    pub index: &'a PackageIndex,
    pub python: PathBuf,
    /// The recipe's name for the index, recorded in every index artifact.
    pub index_name: String,
    /// Shared by the threads that lock targets side by side.
    files: Mutex<BTreeMap<String, Vec<IndexFile>>>,
}

/// What became of one target.
#[derive(Debug, Clone)]
pub struct TargetLock {
    pub artifacts: Vec<Artifact>,
    /// What graft had to do beyond the plain resolve (pins dropped, and why).
    pub notes: Vec<String>,
}

impl<'a> Locker<'a> {
    pub fn new(index: &'a PackageIndex, python: PathBuf, index_name: String) -> Locker<'a> {
        Locker {
            index,
            python,
            index_name,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// The index's listing of `project`, fetched once.
    pub fn files(&self, project: &str) -> Result<Vec<IndexFile>, IndexError> {
        let key = normalize_name(project);
        if let Some(f) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(f.clone());
        }
        // Not held across the request: two threads may fetch the same page once each.
        let files = self.index.project_files(&key)?;
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, files.clone());
        Ok(files)
    }

    /// Every requirement's distribution exists on the index (a fast, clear error before
    /// pip runs; also the first contact with the network).
    /// `needed_by` says for whom in the error (`every target`, `target debian-12`).
    pub fn check_requirements_exist(
        &self,
        requirements: &[String],
        needed_by: &str,
    ) -> Result<(), LockError> {
        for r in requirements {
            let name = requirement_name(r).ok_or_else(|| LockError::BadRequirement {
                requirement: r.clone(),
            })?;
            match self.files(&name) {
                Err(IndexError::NotFound { .. }) => {
                    return Err(LockError::NoDistribution {
                        name,
                        index: self.index.display_url(),
                        target: needed_by.to_string(),
                    })
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Resolves one target's requirements with pip, keeping `pins` where the recipe
    /// still allows them, and turns the result into artifacts.
    pub fn lock_target(
        &self,
        target: &Target,
        requirements: &[String],
        pins: &BTreeMap<String, String>,
    ) -> Result<TargetLock, LockError> {
        let mut notes = Vec::new();
        let mut pins = pins.clone();
        let mut attempts = 0;
        let resolved = loop {
            attempts += 1;
            match pip_resolve(&self.python, self.index.url(), target, requirements, &pins) {
                Ok(r) => break r,
                Err(LockError::Conflict { detail, .. }) if !pins.is_empty() && attempts < 3 => {
                    let mut drop = conflicting_pins(&detail, &pins);
                    if drop.is_empty() || attempts == 2 {
                        drop = pins.keys().cloned().collect();
                    }
                    notes.push(format!(
                        "the recipe no longer allows the locked {}; resolved again without {}",
                        drop.iter()
                            .map(|n| format!("{n}=={}", pins[n]))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if drop.len() == 1 {
                            "that pin"
                        } else {
                            "those pins"
                        }
                    ));
                    pins.retain(|n, _| !drop.contains(n));
                }
                Err(LockError::NoMatch { name, .. })
                    if pins.contains_key(&normalize_name(&name)) && attempts < 3 =>
                {
                    let name = normalize_name(&name);
                    notes.push(format!(
                        "the locked {name}=={} is not available for this target any more; resolved again without that pin",
                        pins[&name]
                    ));
                    pins.remove(&name);
                }
                Err(LockError::NoMatch { name, .. }) => {
                    // The explanation, or the error that kept graft from finding one.
                    return Err(match self.diagnose_no_wheel(&name, target) {
                        Ok(e) | Err(e) => e,
                    });
                }
                Err(e) => return Err(e),
            }
        };
        let mut artifacts = Vec::new();
        for dist in resolved {
            artifacts.push(self.wheel_artifact(&dist, target)?);
        }
        Ok(TargetLock { artifacts, notes })
    }

    /// Explains why pip found nothing for `name` on `target`. Always returns an error.
    fn diagnose_no_wheel(&self, name: &str, target: &Target) -> Result<LockError, LockError> {
        let files = match self.files(name) {
            Err(IndexError::NotFound { .. }) => {
                return Ok(LockError::NoDistribution {
                    name: name.to_string(),
                    index: self.index.display_url(),
                    target: format!("target {}", target.name),
                })
            }
            other => other?,
        };
        let mut by_version: BTreeMap<Version, Vec<&IndexFile>> = BTreeMap::new();
        for f in files.iter().filter(|f| !f.yanked) {
            if let Some(v) = filename_version(name, &f.filename).and_then(|v| Version::parse(&v)) {
                by_version.entry(v).or_default().push(f);
            }
        }
        let newest = by_version
            .iter()
            .rev()
            .find(|(v, _)| !v.is_prerelease())
            .or_else(|| by_version.iter().next_back());
        let (version, detail) = match newest {
            None => (
                "0".to_string(),
                "the index lists no release files".to_string(),
            ),
            Some((v, files)) => {
                let wheels: Vec<&str> = files
                    .iter()
                    .filter(|f| f.filename.ends_with(".whl"))
                    .map(|f| f.filename.as_str())
                    .collect();
                let fitting: Vec<&&IndexFile> = files
                    .iter()
                    .filter(|f| wheel_fits(&f.filename, target))
                    .collect();
                let python_excluded = fitting
                    .iter()
                    .filter_map(|f| f.requires_python.as_deref())
                    .find(|rp| !requires_python_allows(rp, &target.python));
                let detail = if wheels.is_empty() {
                    format!("its newest release, {v}, is a source release only")
                } else if let (Some(rp), true) = (python_excluded, !fitting.is_empty()) {
                    format!(
                        "its newest release, {v}, needs Python {rp} (its requires-python), not {}",
                        target.python
                    )
                } else if !fitting.is_empty() {
                    format!(
                        "its newest release, {v}, has a wheel for it, so the recipe's version limits or another \
                         distribution's requirements exclude every release that has one"
                    )
                } else {
                    let shown: Vec<&str> = wheels.iter().take(6).copied().collect();
                    format!("its newest release, {v}, has wheels only for other platforms or Pythons ({})", shown.join(", "))
                };
                (v.to_string(), detail)
            }
        };
        Ok(LockError::NoWheel {
            name: name.to_string(),
            version,
            target: target.name.clone(),
            describe: describe(target),
            detail,
        })
    }

    fn wheel_artifact(&self, dist: &ResolvedDist, target: &Target) -> Result<Artifact, LockError> {
        if !dist.filename.ends_with(".whl") {
            return Err(LockError::NoWheel {
                name: dist.name.clone(),
                version: dist.version.clone(),
                target: target.name.clone(),
                describe: describe(target),
                detail: format!("pip picked {}, which is not a wheel", dist.filename),
            });
        }
        let files = self.files(&dist.name)?;
        let Some(entry) = files.iter().find(|f| f.filename == dist.filename) else {
            return Err(LockError::NotOnIndex {
                name: dist.name.clone(),
                filename: dist.filename.clone(),
                target: target.name.clone(),
                index: self.index.display_url(),
            });
        };
        let (sha256, size) = self.hash_and_size(entry, dist.sha256.as_deref(), "pip's report")?;
        Ok(Artifact {
            name: dist.name.clone(),
            version: dist.version.clone(),
            kind: ArtifactKind::Wheel,
            filename: dist.filename.clone(),
            sha256,
            size,
            index: Some(self.index_name.clone()),
            archive: None,
        })
    }

    /// The file's sha256 and size: from the index (and `other`, which must agree), or
    /// by downloading and measuring it when the index gives no size or no hash.
    fn hash_and_size(
        &self,
        entry: &IndexFile,
        other: Option<&str>,
        other_source: &str,
    ) -> Result<(String, u64), LockError> {
        let mismatch = |a: &str, a_src: &str, b: &str, b_src: &str| LockError::HashMismatch {
            filename: entry.filename.clone(),
            first_source: a_src.to_string(),
            first: a.to_string(),
            second_source: b_src.to_string(),
            second: b.to_string(),
        };
        if let (Some(a), Some(b)) = (entry.sha256.as_deref(), other) {
            if a != b {
                return Err(mismatch(a, "the index", b, other_source));
            }
        }
        let known = entry.sha256.clone().or_else(|| other.map(str::to_string));
        if let (Some(h), Some(size)) = (&known, entry.size) {
            if crate::util::is_sha256_hex(h) && size > 0 {
                return Ok((h.clone(), size));
            }
        }
        let mut sink = crate::util::HashingWriter::new(std::io::sink());
        self.index.download(&entry.url, &mut sink, &mut |_| {})?;
        let (_, measured, measured_len) = sink.finish();
        if let Some(h) = &known {
            if *h != measured {
                return Err(mismatch(
                    h,
                    "the index / pip",
                    &measured,
                    "the downloaded file",
                ));
            }
        }
        if let Some(size) = entry.size {
            if size != measured_len {
                return Err(LockError::HashMismatch {
                    filename: entry.filename.clone(),
                    first_source: "the index's size".into(),
                    first: size.to_string(),
                    second_source: "the downloaded file's size".into(),
                    second: measured_len.to_string(),
                });
            }
        }
        Ok((measured, measured_len))
    }

    /// Locks an `[[archive]]` with `requirement`: the newest final, non-yanked sdist
    /// matching it, unless `keep` (the current lock entry) still matches.
    pub fn lock_index_archive(
        &self,
        archive: &Archive,
        keep: Option<&Artifact>,
    ) -> Result<Artifact, LockError> {
        let requirement = archive.requirement.as_deref().unwrap_or_default();
        let err = |message: String| LockError::Archive {
            archive: archive.name.clone(),
            message,
        };
        let req =
            SimpleRequirement::parse(requirement).map_err(|m| err(format!("requirement: {m}")))?;
        let files = match self.files(&req.name) {
            Err(IndexError::NotFound { .. }) => {
                return Err(err(format!(
                    "no distribution named {:?} on the package index {}",
                    req.name,
                    self.index.display_url()
                )))
            }
            other => other?,
        };
        let mut best: Option<(Version, &IndexFile)> = None;
        for f in &files {
            if f.yanked || !f.filename.ends_with(".tar.gz") {
                continue;
            }
            let Some(v) = filename_version(&req.name, &f.filename).and_then(|v| Version::parse(&v))
            else {
                continue;
            };
            if v.is_prerelease() || !req.matches(&v) {
                continue;
            }
            if let Some(k) = keep {
                if k.kind == ArtifactKind::Sdist && k.filename == f.filename {
                    // The current pin still fits and is still listed: keep it.
                    if let Some(h) = &f.sha256 {
                        if *h != k.sha256 {
                            return Err(LockError::HashMismatch {
                                filename: f.filename.clone(),
                                first_source: "the lockfile".into(),
                                first: k.sha256.clone(),
                                second_source: "the index".into(),
                                second: h.clone(),
                            });
                        }
                    }
                    return Ok(k.clone());
                }
            }
            if best
                .as_ref()
                .is_none_or(|(bv, bf)| v > *bv || (v == *bv && f.filename < bf.filename))
            {
                best = Some((v, f));
            }
        }
        let Some((_, entry)) = best else {
            return Err(err(format!(
                "the index has no final, non-yanked source release (.tar.gz) of {:?} matching {requirement:?}",
                req.name
            )));
        };
        let (sha256, size) = self.hash_and_size(entry, None, "")?;
        Ok(Artifact {
            name: normalize_name(&req.name),
            // The file name's own spelling (it parsed above, so it is there).
            version: filename_version(&req.name, &entry.filename).unwrap_or_default(),
            kind: ArtifactKind::Sdist,
            filename: entry.filename.clone(),
            sha256,
            size,
            index: Some(self.index_name.clone()),
            archive: Some(archive.name.clone()),
        })
    }
}

/// Locks a URL `[[archive]]`: its recipe sha256, and its size, measured by downloading
/// it once (and checking the hash), unless `keep` already records that sha256.
pub fn lock_url_archive(archive: &Archive, keep: Option<&Artifact>) -> Result<Artifact, LockError> {
    let err = |message: String| LockError::Archive {
        archive: archive.name.clone(),
        message,
    };
    let url = archive.url.as_deref().ok_or_else(|| err("no url".into()))?;
    let sha256 = archive
        .sha256
        .clone()
        .ok_or_else(|| err("no sha256".into()))?;
    let version = archive
        .version
        .clone()
        .unwrap_or_else(|| "unversioned".into());
    let filename =
        url_filename(url).ok_or_else(|| err(format!("url {url:?} does not end in a file name")))?;
    if let Some(k) = keep {
        if k.kind == ArtifactKind::Url
            && k.sha256 == sha256
            && k.filename == filename
            && k.version == version
        {
            return Ok(k.clone());
        }
    }
    let client = crate::http::client().map_err(|e| err(e.to_string()))?;
    let response = client.get(url).send().map_err(|e| {
        err(format!(
            "cannot download {url}: {e}. Is the network up? (`graft lock` needs it once per URL artifact)"
        ))
    })?;
    if !response.status().is_success() {
        return Err(err(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let (measured, measured_len) =
        crate::util::sha256_reader(response).map_err(|e| err(format!("downloading {url}: {e}")))?;
    if measured != sha256 {
        return Err(err(format!(
            "{url} has sha256 {measured}, but the recipe says {sha256}; if the new file is the one you want, \
             put its sha256 in the recipe"
        )));
    }
    Ok(Artifact {
        name: archive.name.clone(),
        version,
        kind: ArtifactKind::Url,
        filename,
        sha256,
        size: measured_len,
        index: None,
        archive: Some(archive.name.clone()),
    })
}

/// The last path segment of a URL, if it is a plain file name.
pub fn url_filename(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?.to_string();
    let name = crate::python::index::percent_decode(&last);
    crate::util::is_plain_filename(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(python: &str, arch: &str, glibc: &str) -> Target {
        Target {
            name: "t".into(),
            python: python.into(),
            implementation: "cp".into(),
            abi: None,
            arch: arch.into(),
            glibc: glibc.into(),
            platforms: vec![],
        }
    }

    #[test]
    fn report_is_parsed() {
        let report = r#"{"version":"1","pip_version":"23.2.1","install":[
          {"download_info":{"url":"https://h.example/p/six-1.16.0-py2.py3-none-any.whl",
            "archive_info":{"hash":"sha256=AB","hashes":{"sha256":"ab"}}},
           "is_direct":false,"requested":true,"metadata":{"name":"six","version":"1.16.0"}},
          {"download_info":{"url":"https://h.example/p/PyYAML-6.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "archive_info":{"hash":"sha256=CD"}},
           "metadata":{"name":"PyYAML","version":"6.0"}}],"environment":{}}"#;
        let r = parse_report(report).unwrap();
        assert_eq!(r[0].name, "pyyaml");
        assert_eq!(r[0].sha256.as_deref(), Some("cd"));
        assert!(!r[0].requested);
        assert_eq!(r[1].filename, "six-1.16.0-py2.py3-none-any.whl");
        assert!(r[1].requested);
        assert!(parse_report("{").is_err());
    }

    #[test]
    fn pip_messages_are_classified() {
        let t = target("3.11", "x86_64", "2.36");
        let nomatch = "ERROR: Could not find a version that satisfies the requirement Foo_Bar>=2 (from versions: none)\n\
                       ERROR: No matching distribution found for Foo_Bar>=2\n";
        match classify_pip_failure(nomatch, "u", &t, "1".into()) {
            LockError::NoMatch { name, .. } => assert_eq!(name, "foo-bar"),
            other => panic!("{other:?}"),
        }
        let net = "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(...)': /simple/six/\n\
                   ERROR: No matching distribution found for six\n";
        assert!(matches!(
            classify_pip_failure(net, "u", &t, "1".into()),
            LockError::Network { .. }
        ));
        let conflict = "ERROR: Cannot install six>=1.16 because these package versions have conflicting dependencies.\n\
                        The conflict is caused by:\n    The user requested six>=1.16\n    The user requested (constraint) six==1.15.0\n\
                        ERROR: ResolutionImpossible: for help visit https://pip.example/\n";
        match classify_pip_failure(conflict, "u", &t, "1".into()) {
            LockError::Conflict { detail, .. } => {
                let pins = BTreeMap::from([
                    ("six".to_string(), "1.15.0".to_string()),
                    ("idna".to_string(), "3".to_string()),
                ]);
                assert_eq!(
                    conflicting_pins(&detail, &pins),
                    BTreeSet::from(["six".to_string()])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wheel_tags_are_matched_against_a_target() {
        let deb = target("3.11", "x86_64", "2.36");
        assert!(wheel_fits("six-1.16.0-py2.py3-none-any.whl", &deb));
        assert!(wheel_fits(
            "PyYAML-6.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            &deb
        ));
        assert!(wheel_fits(
            "cryptography-42-cp37-abi3-manylinux_2_28_x86_64.whl",
            &deb
        ));
        assert!(!wheel_fits(
            "PyYAML-6.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            &deb
        ));
        assert!(!wheel_fits(
            "x-1-cp311-cp311-manylinux_2_38_x86_64.whl",
            &deb
        ));
        assert!(!wheel_fits("x-1-cp311-cp311-linux_x86_64.whl", &deb));
        assert!(!wheel_fits(
            "x-1-cp311-cp311-manylinux_2_17_aarch64.whl",
            &deb
        ));
        assert!(!wheel_fits("x-1.tar.gz", &deb));
    }

    #[test]
    fn requires_python_is_checked_against_the_target() {
        assert!(requires_python_allows(">=3.8", "3.9"));
        assert!(!requires_python_allows(">=3.10", "3.9"));
        assert!(requires_python_allows(">=2.7, !=3.0.*, !=3.1.*", "3.11"));
        assert!(
            requires_python_allows(">3.9", "3.9"),
            "3.9.1 satisfies >3.9"
        );
        assert!(!requires_python_allows("<3.9", "3.9"));
        assert!(requires_python_allows("garbage", "3.9"));
    }

    #[test]
    fn versions_come_out_of_file_names() {
        assert_eq!(
            filename_version("heat-agents", "heat-agents-9.0.0.tar.gz").as_deref(),
            Some("9.0.0")
        );
        assert_eq!(
            filename_version("heat-agents", "heat_agents-13.0.0.tar.gz").as_deref(),
            Some("13.0.0")
        );
        assert_eq!(
            filename_version("heat-agents", "heat_agents-13.0.0-py3-none-any.whl").as_deref(),
            Some("13.0.0")
        );
        assert_eq!(
            filename_version("heat-agents", "heat-agents-extra-1.0.tar.gz"),
            None
        );
        assert_eq!(filename_version("x", "y-1.0.tar.gz"), None);
        assert_eq!(
            url_filename("https://h.example/a/b/tool%2B1.tar.gz?x=1").as_deref(),
            Some("tool+1.tar.gz")
        );
        assert_eq!(url_filename("https://h.example/"), None);
        assert_eq!(
            requirement_name(" Python_HeatClient>=1.0 ; python_version>'3'").as_deref(),
            Some("python-heatclient")
        );
    }
}
