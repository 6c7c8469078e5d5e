//! The lockfile (`lockfiles/*.lock`, TOML): every artifact of every target, pinned by
//! name, version, file name, sha256 and size, and the index it came from by *name*.
//!
//! No package-index address is ever written: an artifact is identified by its hash, so
//! the same lockfile works against the public index and a company mirror. Targets and
//! artifacts are sorted, and serialisation is canonical, so the same inputs give the
//! same bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The lockfile format version this graft reads and writes.
pub const LOCK_SCHEMA: u32 = 1;

const HEADER: &str = "# This file is written by `graft lock`. Do not edit it by hand:\n\
# every artifact is pinned by sha256, and `graft lock --check` verifies it.\n";

#[derive(Debug, Error)]
pub enum LockfileError {
    #[error("cannot read lockfile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("lockfile {path}: {message}")]
    Parse { path: String, message: String },
    #[error("lockfile {path}: {message}; run `graft lock` to write it again")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lockfile {
    /// Must be [`LOCK_SCHEMA`].
    pub schema: u32,
    /// The graft version that wrote it (informational).
    pub graft_version: String,
    /// The recipe's name.
    pub recipe: String,
    /// `sha256:<hex>` of what the lock was made from (`Recipe::lock_digest`: requirements,
    /// archives, targets, epoch; not the layout or service).
    pub recipe_digest: String,
    pub source_date_epoch: i64,
    #[serde(rename = "target")]
    pub targets: Vec<LockedTarget>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedTarget {
    pub name: String,
    pub python: String,
    pub implementation: String,
    pub abi: String,
    pub arch: String,
    pub glibc: String,
    #[serde(rename = "artifact")]
    pub artifacts: Vec<Artifact>,
}

/// What an artifact is, which decides how it is fetched and used.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A wheel installed into the virtual environment.
    Wheel,
    /// A source release from the package index, used as data only.
    Sdist,
    /// A plain URL artifact; its address is in the recipe's `[[archive]]` of that name.
    Url,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Artifact {
    /// Normalised distribution name (PEP 503), or the recipe's archive name.
    pub name: String,
    pub version: String,
    pub kind: ArtifactKind,
    pub filename: String,
    /// 64 lower-case hex digits.
    pub sha256: String,
    pub size: u64,
    /// For index artifacts, the recipe's index name; absent for URL artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// For archives: the recipe `[[archive]]` name this artifact satisfies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

impl Lockfile {
    pub fn load(path: &Path) -> Result<Lockfile, LockfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Lockfile::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Lockfile, LockfileError> {
        let lock: Lockfile = toml::from_str(text).map_err(|e| LockfileError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        lock.validate().map_err(|message| LockfileError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(lock)
    }

    /// Canonical text: header comment, targets and artifacts sorted.
    pub fn to_toml(&self) -> String {
        let mut sorted = self.clone();
        sorted.sort();
        let body = toml::to_string(&sorted).expect("lockfile serialises");
        format!("{HEADER}\n{body}")
    }

    /// Sorts targets by name and artifacts by (name, kind, filename).
    pub fn sort(&mut self) {
        self.targets.sort_by(|a, b| a.name.cmp(&b.name));
        for t in &mut self.targets {
            t.artifacts.sort_by(|a, b| {
                (&a.name, a.kind, &a.filename).cmp(&(&b.name, b.kind, &b.filename))
            });
        }
    }

    pub fn target(&self, name: &str) -> Option<&LockedTarget> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Every target's name, for "no such target" messages.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    fn validate(&self) -> Result<(), String> {
        if self.schema != LOCK_SCHEMA {
            return Err(format!(
                "schema = {} is not supported (this graft reads {LOCK_SCHEMA})",
                self.schema
            ));
        }
        match self.recipe_digest.strip_prefix("sha256:") {
            Some(h) if crate::util::is_sha256_hex(h) => {}
            _ => {
                return Err(format!(
                    "recipe-digest = {:?} is not sha256:<64 hex>",
                    self.recipe_digest
                ))
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !names.insert(&t.name) {
                return Err(format!("target {:?} appears twice", t.name));
            }
            let mut files = std::collections::BTreeSet::new();
            for a in &t.artifacts {
                let place = format!(
                    "target {:?}, artifact {:?} ({})",
                    t.name, a.name, a.filename
                );
                if !crate::util::is_sha256_hex(&a.sha256) {
                    return Err(format!(
                        "{place}: sha256 = {:?} is not 64 lower-case hex digits",
                        a.sha256
                    ));
                }
                if a.size == 0 {
                    return Err(format!("{place}: size is 0"));
                }
                if !crate::util::is_plain_filename(&a.filename) {
                    return Err(format!("{place}: filename is not a plain file name"));
                }
                if a.filename.contains("://") || a.name.contains("://") {
                    return Err(format!("{place}: lockfiles hold no URLs"));
                }
                if a.name.trim().is_empty() || a.version.trim().is_empty() {
                    return Err(format!("{place}: name and version must not be empty"));
                }
                match a.kind {
                    ArtifactKind::Wheel if !a.filename.ends_with(".whl") => {
                        return Err(format!("{place}: a wheel's filename must end in .whl"))
                    }
                    ArtifactKind::Wheel if a.archive.is_some() => {
                        return Err(format!("{place}: a wheel belongs to no [[archive]]"))
                    }
                    ArtifactKind::Wheel | ArtifactKind::Sdist if a.index.is_none() => {
                        return Err(format!("{place}: an index artifact needs `index`"))
                    }
                    ArtifactKind::Sdist | ArtifactKind::Url if a.archive.is_none() => {
                        return Err(format!("{place}: an archive artifact needs `archive` (its recipe [[archive]] name)"))
                    }
                    ArtifactKind::Url if a.index.is_some() => {
                        return Err(format!("{place}: a url artifact comes from no index"))
                    }
                    _ => {}
                }
                if !files.insert(&a.filename) {
                    return Err(format!("{place}: listed twice"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lockfile {
        Lockfile {
            schema: 1,
            graft_version: "0.1.0".into(),
            recipe: "heat-agent".into(),
            recipe_digest: format!("sha256:{}", "a".repeat(64)),
            source_date_epoch: 1,
            targets: vec![
                LockedTarget {
                    name: "z".into(),
                    python: "3.11".into(),
                    implementation: "cp".into(),
                    abi: "cp311".into(),
                    arch: "x86_64".into(),
                    glibc: "2.36".into(),
                    artifacts: vec![
                        Artifact {
                            name: "six".into(),
                            version: "1.16.0".into(),
                            kind: ArtifactKind::Wheel,
                            filename: "six-1.16.0-py2.py3-none-any.whl".into(),
                            sha256: "b".repeat(64),
                            size: 10,
                            index: Some("default".into()),
                            archive: None,
                        },
                        Artifact {
                            name: "pbr".into(),
                            version: "6.0.0".into(),
                            kind: ArtifactKind::Wheel,
                            filename: "pbr-6.0.0-py2.py3-none-any.whl".into(),
                            sha256: "c".repeat(64),
                            size: 11,
                            index: Some("default".into()),
                            archive: None,
                        },
                    ],
                },
                LockedTarget {
                    name: "a".into(),
                    python: "3.9".into(),
                    implementation: "cp".into(),
                    abi: "cp39".into(),
                    arch: "x86_64".into(),
                    glibc: "2.34".into(),
                    artifacts: vec![],
                },
            ],
        }
    }

    #[test]
    fn canonical_text_is_sorted_and_round_trips() {
        let text = sample().to_toml();
        let back = Lockfile::parse(&text, "x.lock").unwrap();
        assert_eq!(back.targets[0].name, "a");
        assert_eq!(back.targets[1].artifacts[0].name, "pbr");
        assert_eq!(back.to_toml(), text, "serialisation must be stable");
        assert!(!text.contains("://"));
    }

    #[test]
    fn inconsistent_entries_are_named() {
        let text = sample().to_toml();
        let cases = [
            (
                text.replacen("version = \"6.0.0\"", "version = \"\"", 1),
                "pbr",
            ),
            (
                text.replacen(
                    "index = \"default\"\n",
                    "index = \"default\"\narchive = \"x\"\n",
                    1,
                ),
                "no [[archive]]",
            ),
            (
                text.replacen(
                    "kind = \"wheel\"\nfilename = \"six",
                    "kind = \"url\"\nfilename = \"six",
                    1,
                ),
                "archive",
            ),
            (
                text.replacen("kind = \"wheel\"", "kind = \"tarball\"", 1),
                "tarball",
            ),
        ];
        for (edited, expected) in cases {
            assert_ne!(edited, text, "the edit for {expected:?} must apply");
            let err = Lockfile::parse(&edited, "x.lock").unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn hand_edited_hash_is_named() {
        let text = sample().to_toml().replace(&"b".repeat(64), "xyz");
        let err = Lockfile::parse(&text, "x.lock").unwrap_err().to_string();
        assert!(err.contains("six") && err.contains("sha256"), "{err}");
    }
}
