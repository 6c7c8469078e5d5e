//! The payload manifest (JSON): every path with its type, mode, owner, size, sha256 and
//! link target, plus what the payload was built from.
//!
//! Two copies, one format:
//! - **in the guest**, at `<prefix>/share/graft/manifest.json`: every entry of the payload
//!   except this file itself (a file cannot list its own hash), and no archive digest (a
//!   file inside an archive cannot hold the digest of that archive);
//! - **beside the payload**, `payload.manifest.json`: every entry of the archive, the
//!   in-guest manifest included, and `payload`, the archive's sha256 and size.
//!
//! Paths are absolute guest paths (`/opt/heat-agent/bin/python3`); modes are octal
//! strings (`"0755"`). Field order is fixed by the structs and entries are sorted by path,
//! so the same payload gives the same JSON bytes.

use serde::{Deserialize, Serialize};

use super::tree::{Node, Tree};

pub const MANIFEST_SCHEMA: u32 = 1;

/// Where the in-guest copy lives, relative to the prefix.
pub const IN_GUEST_PATH: &str = "share/graft/manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: u32,
    /// The recipe's name.
    pub recipe: String,
    /// The lockfile target the payload was built for.
    pub target: String,
    /// The guest prefix the payload lives under.
    pub prefix: String,
    /// The unit file's guest path, if the recipe has a `[service]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub source_date_epoch: i64,
    /// `sha256:<hex>` of the lockfile's bytes.
    pub lock_digest: String,
    /// Guest path of the in-guest copy of this manifest.
    pub manifest_path: String,
    /// The locked artifacts the payload was made from.
    pub artifacts: Vec<ManifestArtifact>,
    pub entries: Vec<ManifestEntry>,
    /// Only in the copy beside the payload: the archive's digest and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArtifact {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Absolute guest path.
    pub path: String,
    /// `dir`, `file` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Octal permission bits, e.g. `"0755"`.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of a file; 0 for directories and links.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadDigest {
    /// `sha256:<hex>` of the `.tar.gz` bytes.
    pub sha256: String,
    pub size: u64,
}

/// The entries of `tree` (relative paths) as manifest entries, skipping `except`.
pub fn entries_of(tree: &Tree, except: Option<&str>) -> Vec<ManifestEntry> {
    tree.iter()
        .filter(|(p, _)| Some(p.as_str()) != except)
        .map(|(path, e)| {
            let (size, sha256, target) = match &e.node {
                Node::Dir => (0, None, None),
                Node::File { data, sha256 } => (data.len() as u64, Some(sha256.clone()), None),
                Node::Symlink { target } => (0, None, Some(target.clone())),
            };
            ManifestEntry {
                path: format!("/{path}"),
                kind: e.kind_name().into(),
                mode: format!("{:04o}", e.mode),
                uid: 0,
                gid: 0,
                size,
                sha256,
                target,
            }
        })
        .collect()
}

impl Manifest {
    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a manifest serialises");
        s.push('\n');
        s
    }

    pub fn from_json(text: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_type_mode_hash_and_target_and_skip_the_exception() {
        let mut t = Tree::new();
        t.add_file("opt/p/share/graft/manifest.json", b"{}".to_vec(), 0o644)
            .unwrap();
        t.add_file("opt/p/bin/x", b"abc".to_vec(), 0o755).unwrap();
        t.add_symlink("opt/p/bin/python3", "/usr/bin/python3")
            .unwrap();
        let e = entries_of(&t, Some("opt/p/share/graft/manifest.json"));
        assert!(e
            .iter()
            .all(|e| e.path != "/opt/p/share/graft/manifest.json"));
        let x = e.iter().find(|e| e.path == "/opt/p/bin/x").unwrap();
        assert_eq!(
            (x.kind.as_str(), x.mode.as_str(), x.size),
            ("file", "0755", 3)
        );
        assert_eq!(
            x.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        let l = e.iter().find(|e| e.path == "/opt/p/bin/python3").unwrap();
        assert_eq!(
            (l.kind.as_str(), l.mode.as_str(), l.target.as_deref()),
            ("symlink", "0777", Some("/usr/bin/python3"))
        );
        assert_eq!(e[0].path, "/opt", "sorted, parents first");
    }
}
