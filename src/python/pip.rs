//! The host's pip: finding it, and reading its configuration.
//!
//! graft takes the package index, its certificates, proxy and timeout from pip's own
//! configuration (`PIP_*` environment variables and pip.conf files, merged by pip itself
//! through `pip config list`), so that a host set up for pip is set up for graft.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PipError {
    #[error(
        "cannot run {python}: {source}. graft resolves through the host's pip: install it \
         (Debian/Ubuntu: `apt-get install python3-pip`; RHEL: `dnf install python3-pip`), \
         or point GRAFT_PYTHON / --python at an interpreter that has pip"
    )]
    NoPython {
        python: String,
        source: std::io::Error,
    },
    #[error(
        "{python} has no usable pip ({detail}). Install it (Debian/Ubuntu: \
         `apt-get install python3-pip`; RHEL: `dnf install python3-pip`), or point \
         GRAFT_PYTHON / --python at an interpreter that has pip"
    )]
    NoPip { python: String, detail: String },
}

/// The interpreter graft runs pip with: `$GRAFT_PYTHON`, else `python3` on PATH.
pub fn default_python() -> PathBuf {
    match std::env::var_os("GRAFT_PYTHON").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("python3"),
    }
}

/// pip's merged configuration, as `pip config list` prints it: keys are
/// `section.name` (`global.index-url`, `install.cert`) or `:env:.name` for `PIP_*`
/// environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipConfig {
    values: BTreeMap<String, String>,
}

impl PipConfig {
    /// Runs `python -m pip config list` and parses its output.
    pub fn load(python: &Path) -> Result<PipConfig, PipError> {
        let output = Command::new(python)
            .args(["-m", "pip", "config", "list"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .map_err(|source| PipError::NoPython {
                python: python.display().to_string(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(PipError::NoPip {
                python: python.display().to_string(),
                detail: stderr
                    .lines()
                    .last()
                    .unwrap_or("pip config list failed")
                    .trim()
                    .to_string(),
            });
        }
        Ok(PipConfig::parse(&String::from_utf8_lossy(&output.stdout)))
    }

    /// The configuration of the default interpreter, read once per process. A host
    /// without python or pip gives an empty configuration (the HTTP client then uses
    /// only the environment and the system certificate store).
    pub fn host() -> PipConfig {
        static CACHE: OnceLock<Mutex<Option<PipConfig>>> = OnceLock::new();
        let cell = CACHE.get_or_init(|| Mutex::new(None));
        let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref() {
            return c.clone();
        }
        let config = PipConfig::load(&default_python()).unwrap_or_default();
        *guard = Some(config.clone());
        config
    }

    /// Parses `pip config list` output: one `key='python repr'` per line.
    pub fn parse(text: &str) -> PipConfig {
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if let Some(v) = unrepr(value.trim()) {
                values.insert(normalize_key(key.trim()), v);
            }
        }
        PipConfig { values }
    }

    /// The value pip's `install` command would use for option `name` (e.g.
    /// `index-url`): a `PIP_*` variable, else the `[install]` section, else `[global]`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = normalize_name(name);
        [":env:", "install", "global"]
            .iter()
            .find_map(|section| self.values.get(&format!("{section}.{name}")))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// pip normalises option names in config files: lower case, `_` as `-`, no leading `--`.
fn normalize_name(name: &str) -> String {
    name.trim_start_matches("--")
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn normalize_key(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, name)) => format!("{section}.{}", normalize_name(name)),
        None => normalize_name(key),
    }
}

/// Decodes a Python `repr()` of a str (`'...'` or `"..."`), as pip prints values.
fn unrepr(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    if (quote != '\'' && quote != '"') || s.len() < 2 || !s.ends_with(quote) {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'x' => out.push(hex_char(&mut chars, 2)?),
            'u' => out.push(hex_char(&mut chars, 4)?),
            'U' => out.push(hex_char(&mut chars, 8)?),
            _ => return None,
        }
    }
    Some(out)
}

fn hex_char(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<char> {
    let mut v = 0u32;
    for _ in 0..digits {
        v = v.checked_mul(16)? + chars.next()?.to_digit(16)?;
    }
    char::from_u32(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_beats_install_section_beats_global() {
        let c = PipConfig::parse(
            "global.index-url='http://global/simple'\n\
             install.index_url='http://install/simple'\n\
             global.cert='/etc/ssl/x.pem'\n\
             :env:.index-url='http://env/simple'\n",
        );
        assert_eq!(c.get("index-url"), Some("http://env/simple"));
        assert_eq!(c.get("cert"), Some("/etc/ssl/x.pem"));
        assert_eq!(c.get("proxy"), None);
        let c = PipConfig::parse(
            "global.index-url='http://global/simple'\ninstall.index-url='http://i/s'\n",
        );
        assert_eq!(c.get("index_url"), Some("http://i/s"));
    }

    #[test]
    fn python_repr_escapes_are_decoded() {
        assert_eq!(unrepr(r#"'/a b/c\'d'"#).as_deref(), Some("/a b/c'd"));
        assert_eq!(unrepr(r#""it's""#).as_deref(), Some("it's"));
        assert_eq!(unrepr(r"'\xe9\u00e9\\'").as_deref(), Some("éé\\"));
        assert_eq!(unrepr("'unterminated"), None);
        assert_eq!(unrepr(r"'\x4'"), None);
    }

    #[test]
    fn the_host_pip_config_round_trips_an_environment_variable() {
        // Oracle: pip itself (graft's tests need the host's pip, as `graft lock` does):
        // a PIP_* variable must come back through `pip config list` and our parser.
        let out = Command::new(default_python())
            .args(["-m", "pip", "config", "list"])
            .env("PIP_GRAFT_TEST_KEY", "x'y")
            .output()
            .expect("python3 with pip is needed by the tests (apt-get install python3-pip)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = PipConfig::parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(c.get("graft-test-key"), Some("x'y"));
    }
}
