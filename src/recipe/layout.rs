//! The recipe's `[layout]` and `[service]` sections: which files of which archive land
//! where under the prefix, and the systemd unit that starts the agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Recipe;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Layout {
    /// Where the virtual environment lives, relative to the prefix (`.` = the prefix).
    #[serde(default = "default_venv")]
    pub venv: String,
    /// Single files taken from an archive.
    #[serde(default, rename = "file")]
    pub files: Vec<LayoutFile>,
    /// A family of files named by a pattern, one per name (the heat-config hooks).
    #[serde(default, rename = "hooks")]
    pub hooks: Option<LayoutHooks>,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            venv: default_venv(),
            files: Vec::new(),
            hooks: None,
        }
    }
}

fn default_venv() -> String {
    ".".into()
}

/// One file from an archive, placed under the prefix.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LayoutFile {
    /// The `[[archive]]` it comes from.
    pub archive: String,
    /// Path inside the archive, after `strip-components`.
    pub from: String,
    /// Path under the prefix.
    pub to: String,
    /// Mode bits, e.g. `0o755`.
    pub mode: u32,
}

/// `from`/`to` patterns with `{name}` replaced by each of `names`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LayoutHooks {
    pub archive: String,
    pub from: String,
    pub to: String,
    #[serde(default = "default_hook_mode")]
    pub mode: u32,
    pub names: Vec<String>,
}

fn default_hook_mode() -> u32 {
    0o755
}

/// The systemd unit that starts the agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    /// Unit file name, e.g. `os-collect-config.service`.
    pub name: String,
    pub description: String,
    /// Command line; `{prefix}` is replaced by the guest prefix.
    pub exec_start: String,
    /// `Environment=` entries; `{prefix}` is replaced. Sorted by key in the unit.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default = "default_wanted_by")]
    pub wanted_by: String,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub wants: Vec<String>,
    /// Extra `[Service]` lines, verbatim, e.g. `Restart=on-failure`.
    #[serde(default)]
    pub extra: Vec<String>,
}

fn default_wanted_by() -> String {
    "multi-user.target".into()
}

impl Layout {
    pub(super) fn validate(&self, recipe: &Recipe) -> Result<(), String> {
        check_relative("[layout] venv", &self.venv, true)?;
        for f in &self.files {
            if recipe.archive(&f.archive).is_none() {
                return Err(format!(
                    "[[layout.file]] to = {:?}: no [[archive]] named {:?}",
                    f.to, f.archive
                ));
            }
            check_relative("[[layout.file]] from", &f.from, false)?;
            check_relative("[[layout.file]] to", &f.to, false)?;
            check_mode(&f.to, f.mode)?;
        }
        if let Some(h) = &self.hooks {
            if recipe.archive(&h.archive).is_none() {
                return Err(format!(
                    "[layout.hooks]: no [[archive]] named {:?}",
                    h.archive
                ));
            }
            if !h.from.contains("{name}") || !h.to.contains("{name}") {
                return Err("[layout.hooks]: `from` and `to` must both contain {name}".into());
            }
            check_mode("[layout.hooks]", h.mode)?;
            for name in &h.names {
                if name.is_empty() || name.contains('/') || name.contains("..") {
                    return Err(format!(
                        "[layout.hooks] names: {name:?} is not a plain name"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Service {
    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.name.ends_with(".service") || self.name.contains('/') {
            return Err(format!(
                "[service] name = {:?} must be a unit file name ending in .service",
                self.name
            ));
        }
        for (k, v) in &self.environment {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "[service.environment] {k:?} is not a variable name"
                ));
            }
            if v.contains('\n') {
                return Err(format!("[service.environment] {k}: value has a newline"));
            }
        }
        Ok(())
    }
}

fn check_relative(what: &str, path: &str, allow_dot: bool) -> Result<(), String> {
    if path.starts_with('/')
        || path.split('/').any(|c| c == "..")
        || (path == "." && !allow_dot)
        || path.is_empty()
    {
        return Err(format!(
            "{what} = {path:?} must be a relative path without `..`"
        ));
    }
    Ok(())
}

fn check_mode(what: &str, mode: u32) -> Result<(), String> {
    if mode > 0o7777 {
        return Err(format!(
            "{what}: mode {mode:#o} is more than permission bits (write e.g. 0o755)"
        ));
    }
    Ok(())
}
