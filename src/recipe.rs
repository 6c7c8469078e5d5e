//! The recipe (`recipes/*.toml`): what goes into the guest, and where.
//!
//! A recipe names the Python distributions to resolve, the data archives and plain URL
//! artifacts to take files from, the guest prefix, the layout of files under it, the
//! service unit, and the targets (Python version, implementation, ABI, architecture,
//! glibc) it is locked for. The README documents every key.
//!
//! Unknown keys are errors (serde's `deny_unknown_fields`), and toml's error carries the
//! line and column, so a misspelt key is reported with its place.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod layout;

pub use layout::{Layout, Service};

/// The recipe format version this graft reads.
pub const RECIPE_SCHEMA: u32 = 1;

#[derive(Debug, Error)]
pub enum RecipeError {
    #[error("cannot read recipe {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("recipe {path}: {message}")]
    Parse { path: String, message: String },
    #[error("recipe {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recipe {
    /// Must be [`RECIPE_SCHEMA`].
    pub schema: u32,
    /// A short name, used in messages and the manifest.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Absolute guest directory the payload lives under.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Timestamp of every file graft writes (archive mtimes, inode times), seconds since
    /// 1970. Fixed in the recipe so that a build does not depend on the clock.
    pub source_date_epoch: i64,
    /// The name recorded for artifacts that come from the package index pip is
    /// configured with. Lockfiles name the index, never its address.
    #[serde(default = "default_index_name")]
    pub index_name: String,
    pub python: PythonSection,
    /// Data archives and plain URL artifacts, used as data only: never built or run.
    #[serde(default, rename = "archive")]
    pub archives: Vec<Archive>,
    #[serde(rename = "target")]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub service: Option<Service>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonSection {
    /// The guest's interpreter the virtual environment points at.
    #[serde(default = "default_interpreter")]
    pub interpreter: String,
    /// PEP 508 requirements resolved by pip for each target (wheels only).
    pub requirements: Vec<String>,
}

/// An archive used as data. Exactly one of `requirement` (a source release from the
/// package index) or `url` (any https URL, with its sha256) is given.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Archive {
    /// How layout entries refer to this archive.
    pub name: String,
    /// A requirement on a source release in the package index, e.g. `heat-agents` or
    /// `heat-agents==9.0.0`. The newest matching final release is locked.
    #[serde(default)]
    pub requirement: Option<String>,
    /// A plain https URL, for components outside a package index.
    #[serde(default)]
    pub url: Option<String>,
    /// Required with `url`: the artifact's sha256 (64 hex digits).
    #[serde(default)]
    pub sha256: Option<String>,
    /// With `url`: a version label recorded in the lockfile (informational; the
    /// sha256 is what pins the artifact). Default `unversioned`.
    #[serde(default)]
    pub version: Option<String>,
    /// Leading directories stripped from archive member paths (sdists have one).
    #[serde(default = "default_strip")]
    pub strip_components: u32,
}

/// One platform the payload is locked for.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Target {
    pub name: String,
    /// `MAJOR.MINOR` of the guest's Python.
    pub python: String,
    /// Python implementation tag: `cp` for CPython.
    #[serde(default = "default_implementation")]
    pub implementation: String,
    /// ABI tag, e.g. `cp311`. Default: implementation + version digits.
    #[serde(default)]
    pub abi: Option<String>,
    /// `x86_64` or `aarch64` (also `i686`, `ppc64le`, `s390x`, `armv7l`).
    pub arch: String,
    /// The guest's glibc `MAJOR.MINOR`; every manylinux tag up to it is accepted.
    pub glibc: String,
    /// Extra platform tags passed to pip beside the derived ones.
    #[serde(default)]
    pub platforms: Vec<String>,
}

fn default_prefix() -> String {
    "/opt/heat-agent".into()
}
fn default_index_name() -> String {
    "default".into()
}
fn default_interpreter() -> String {
    "/usr/bin/python3".into()
}
fn default_implementation() -> String {
    "cp".into()
}
fn default_strip() -> u32 {
    1
}

impl Recipe {
    /// Reads, parses and validates a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Recipe::parse(&text, &path.display().to_string())
    }

    /// Parses and validates recipe text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Recipe, RecipeError> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        recipe.validate().map_err(|message| RecipeError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(recipe)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// `sha256:<hex>` over what a lockfile depends on: schema, name, index name,
    /// source-date-epoch, the Python requirements, the archives' sources and every
    /// target. The layout, service, interpreter and prefix are left out: they shape the
    /// build, not what is resolved, so editing them does not make a lockfile stale.
    pub fn lock_digest(&self) -> String {
        /// (name, requirement, url, sha256, version) of one archive.
        type ArchiveInputs<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        #[derive(Serialize)]
        struct LockInputs<'a> {
            schema: u32,
            name: &'a str,
            index_name: &'a str,
            source_date_epoch: i64,
            requirements: Vec<&'a str>,
            archives: Vec<ArchiveInputs<'a>>,
            targets: Vec<&'a Target>,
        }
        let mut requirements: Vec<&str> =
            self.python.requirements.iter().map(|r| r.trim()).collect();
        requirements.sort_unstable();
        let mut archives: Vec<_> = self
            .archives
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.requirement.as_deref(),
                    a.url.as_deref(),
                    a.sha256.as_deref(),
                    a.version.as_deref(),
                )
            })
            .collect();
        archives.sort_unstable();
        let mut targets: Vec<&Target> = self.targets.iter().collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        let inputs = LockInputs {
            schema: self.schema,
            name: &self.name,
            index_name: &self.index_name,
            source_date_epoch: self.source_date_epoch,
            requirements,
            archives,
            targets,
        };
        let json = serde_json::to_vec(&inputs).expect("recipe inputs serialise");
        format!("sha256:{}", crate::util::sha256_hex(&json))
    }

    pub fn archive(&self, name: &str) -> Option<&Archive> {
        self.archives.iter().find(|a| a.name == name)
    }

    fn validate(&self) -> Result<(), String> {
        if self.schema != RECIPE_SCHEMA {
            return Err(format!(
                "schema = {} is not supported; this graft reads schema = {RECIPE_SCHEMA}",
                self.schema
            ));
        }
        if !self.prefix.starts_with('/') || self.prefix.split('/').any(|c| c == "..") {
            return Err(format!(
                "prefix = {:?} must be an absolute guest path without `..`",
                self.prefix
            ));
        }
        if self.source_date_epoch < 0 {
            return Err("source-date-epoch must not be negative".into());
        }
        if self.targets.is_empty() {
            return Err("no [[target]]: a recipe needs at least one target".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !seen.insert(t.name.as_str()) {
                return Err(format!("[[target]] name {:?} appears twice", t.name));
            }
            t.validate()?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.archives {
            if !seen.insert(a.name.as_str()) {
                return Err(format!("[[archive]] name {:?} appears twice", a.name));
            }
            a.validate()?;
        }
        self.layout.validate(self)?;
        if let Some(service) = &self.service {
            service.validate()?;
        }
        Ok(())
    }
}

impl Archive {
    fn validate(&self) -> Result<(), String> {
        match (&self.requirement, &self.url) {
            (Some(_), None) => {
                if self.sha256.is_some() || self.version.is_some() {
                    return Err(format!(
                        "[[archive]] {:?}: sha256 and version go with url; an index archive's \
                         version comes from `requirement` and its hash is locked",
                        self.name
                    ));
                }
            }
            (None, Some(url)) => {
                if !url.starts_with("https://") {
                    return Err(format!("[[archive]] {:?}: url must be https://, got {url:?}", self.name));
                }
                match &self.sha256 {
                    Some(h) if crate::util::is_sha256_hex(h) => {}
                    Some(h) => {
                        return Err(format!(
                            "[[archive]] {:?}: sha256 = {h:?} is not 64 lower-case hex digits",
                            self.name
                        ))
                    }
                    None => {
                        return Err(format!(
                            "[[archive]] {:?}: a url artifact needs its sha256 (run `sha256sum` on the file)",
                            self.name
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "[[archive]] {:?}: give exactly one of `requirement` (from the package index) or `url`",
                    self.name
                ))
            }
        }
        Ok(())
    }
}

/// Architectures graft knows manylinux tags for.
pub const KNOWN_ARCHES: &[&str] = &["x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l"];

impl Target {
    /// `python = "3.11"` as (3, 11).
    pub fn python_version(&self) -> Result<(u32, u32), String> {
        parse_major_minor(&self.python).ok_or_else(|| {
            format!(
                "[[target]] {:?}: python = {:?} is not MAJOR.MINOR",
                self.name, self.python
            )
        })
    }

    /// `glibc = "2.36"` as (2, 36).
    pub fn glibc_version(&self) -> Result<(u32, u32), String> {
        parse_major_minor(&self.glibc).ok_or_else(|| {
            format!(
                "[[target]] {:?}: glibc = {:?} is not MAJOR.MINOR",
                self.name, self.glibc
            )
        })
    }

    /// The ABI tag: the explicit one, else implementation + version digits (`cp311`).
    pub fn abi_tag(&self) -> String {
        match &self.abi {
            Some(abi) => abi.clone(),
            None => {
                let (maj, min) = self.python_version().unwrap_or((0, 0));
                format!("{}{maj}{min}", self.implementation)
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        let (maj, min) = self.python_version()?;
        if maj != 3 || min < 6 {
            return Err(format!(
                "[[target]] {:?}: python = {:?}: only CPython 3.6 and newer are supported",
                self.name, self.python
            ));
        }
        let (gmaj, gmin) = self.glibc_version()?;
        if gmaj != 2 || gmin < 5 {
            return Err(format!(
                "[[target]] {:?}: glibc = {:?}: manylinux needs glibc 2.5 or newer",
                self.name, self.glibc
            ));
        }
        if !KNOWN_ARCHES.contains(&self.arch.as_str()) {
            return Err(format!(
                "[[target]] {:?}: arch = {:?} is not one of {}",
                self.name,
                self.arch,
                KNOWN_ARCHES.join(", ")
            ));
        }
        // manylinux exists for x86 from glibc 2.5, for every other arch from 2.17
        // (PEP 599): an older glibc on those has no wheel that could ever fit it.
        if !matches!(self.arch.as_str(), "x86_64" | "i686") && gmin < 17 {
            return Err(format!(
                "[[target]] {:?}: arch = {:?} with glibc = {:?} is impossible: manylinux wheels \
                 for {} need glibc 2.17 or newer",
                self.name, self.arch, self.glibc, self.arch
            ));
        }
        if self.implementation != "cp" {
            return Err(format!(
                "[[target]] {:?}: implementation = {:?}: only `cp` (CPython) is supported",
                self.name, self.implementation
            ));
        }
        let abi = self.abi_tag();
        let plain = format!("cp{maj}{min}");
        if abi == format!("{plain}t") && (maj, min) < (3, 13) {
            return Err(format!(
                "[[target]] {:?}: abi = {abi:?} is impossible: free-threaded CPython exists from 3.13, \
                 python = {:?}",
                self.name, self.python
            ));
        }
        if abi != plain && abi != format!("{plain}t") && abi != "abi3" && abi != "none" {
            return Err(format!(
                "[[target]] {:?}: abi = {abi:?} does not fit python = {:?} (expected {plain:?})",
                self.name, self.python
            ));
        }
        Ok(())
    }
}

fn parse_major_minor(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    if a.is_empty()
        || b.is_empty()
        || !a.bytes().all(|c| c.is_ascii_digit())
        || !b.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
schema = 1
name = "t"
source-date-epoch = 0
[python]
requirements = ["requests"]
[[target]]
name = "debian-12"
python = "3.11"
arch = "x86_64"
glibc = "2.36"
"#;

    #[test]
    fn minimal_recipe_parses_with_defaults() {
        let r = Recipe::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(r.prefix, "/opt/heat-agent");
        assert_eq!(r.python.interpreter, "/usr/bin/python3");
        assert_eq!(r.targets[0].abi_tag(), "cp311");
    }

    #[test]
    fn misspelt_key_is_named_with_its_line() {
        let text = MINIMAL.replace("arch = ", "achr = ");
        let err = Recipe::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("achr"), "{err}");
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn abi_that_does_not_fit_the_python_version_is_refused() {
        let text = MINIMAL.replace("glibc = \"2.36\"", "glibc = \"2.36\"\nabi = \"cp312\"");
        let err = Recipe::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("cp312") && err.contains("debian-12"), "{err}");
    }

    #[test]
    fn impossible_targets_are_refused() {
        let text = MINIMAL.replace("x86_64", "aarch64").replace("2.36", "2.12");
        let err = Recipe::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("impossible") && err.contains("2.17"), "{err}");
        let text = MINIMAL.replace("glibc = \"2.36\"", "glibc = \"2.36\"\nabi = \"cp311t\"");
        let err = Recipe::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("free-threaded"), "{err}");
    }

    #[test]
    fn lock_digest_ignores_layout_and_order_but_not_requirements() {
        let a = Recipe::parse(MINIMAL, "t.toml").unwrap();
        let b = Recipe::parse(
            &MINIMAL.replace("schema = 1", "schema = 1\nprefix = \"/opt/other\""),
            "t.toml",
        )
        .unwrap();
        assert_eq!(a.lock_digest(), b.lock_digest());
        let c = Recipe::parse(
            &MINIMAL.replace("[\"requests\"]", "[\"requests<3\"]"),
            "t.toml",
        )
        .unwrap();
        assert_ne!(a.lock_digest(), c.lock_digest());
        let d = Recipe::parse(&MINIMAL.replace("2.36", "2.35"), "t.toml").unwrap();
        assert_ne!(a.lock_digest(), d.lock_digest());
        assert!(crate::util::is_sha256_hex(
            a.lock_digest().strip_prefix("sha256:").unwrap()
        ));
    }

    #[test]
    fn unknown_arch_is_refused() {
        let text = MINIMAL.replace("x86_64", "sparc");
        let err = Recipe::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("sparc"), "{err}");
    }
}

#[cfg(test)]
mod shipped_recipe {
    #[test]
    fn the_committed_heat_agent_recipe_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/heat-agent.toml");
        let r = super::Recipe::load(&path).unwrap();
        for name in [
            "debian-12",
            "ubuntu-24.04",
            "ubuntu-22.04",
            "rhel-9",
            "debian-12-arm64",
            "ubuntu-24.04-arm64",
        ] {
            assert!(r.target(name).is_some(), "target {name} missing");
        }
        assert_eq!(r.layout.hooks.as_ref().unwrap().names.len(), 12);
    }
}
