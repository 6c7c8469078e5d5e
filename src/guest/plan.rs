//! The install plan: a payload (an assembled tree or a read archive) as the list of guest
//! operations `graft inject` performs, with the checks made before anything is written
//! (the guest's init system and Python, paths already taken, free space).
//!
//! Paths are absolute guest paths. Every path is resolved inside the guest by the ext4
//! writer (a symlinked `/opt` is followed within the filesystem, never on the host).

use std::collections::BTreeMap;

use thiserror::Error;

use crate::fs::ext4::{Ext4Error, Ext4Writer, Meta, Needs};
use crate::payload::archive::Member;
use crate::payload::manifest::{Manifest, IN_GUEST_PATH};
use crate::payload::tree::{Node, Tree};

use super::guestfs::Guest;
use super::inspect::GuestFacts;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error(
        "the payload holds no graft manifest (<prefix>/{IN_GUEST_PATH}); is it a graft payload?"
    )]
    NoManifest,
    #[error("the payload's manifest {path} cannot be read: {message}")]
    BadManifest { path: String, message: String },
    #[error("{0}")]
    Guest(String),
    #[error("{count} payload path(s) already exist in the guest: {list}; pass --replace to overwrite files and symlinks")]
    Exists { count: usize, list: String },
}

/// What one operation creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One thing to create at an absolute guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub path: String,
    pub kind: OpKind,
    /// Permission bits.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// A payload laid out as guest operations, parents before children (byte order of paths).
#[derive(Debug, Clone)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// The in-guest manifest the payload carries.
    pub manifest: Manifest,
    /// The Python MAJOR.MINOR the venv was built for (`<prefix>/lib/pythonX.Y`), if any.
    pub python: Option<String>,
}

impl Plan {
    /// From an assembled tree; every entry gets root ownership and the lockfile's epoch,
    /// exactly as the archive of the same tree would carry them.
    pub fn from_tree(tree: Tree, manifest: Manifest) -> Plan {
        let epoch = manifest.source_date_epoch;
        let ops = tree
            .into_entries()
            .map(|(path, e)| Op {
                path: format!("/{path}"),
                kind: match e.node {
                    Node::Dir => OpKind::Dir,
                    Node::File { data, .. } => OpKind::File(data),
                    Node::Symlink { target } => OpKind::Symlink(target),
                },
                mode: (e.mode & 0o7777) as u16,
                uid: 0,
                gid: 0,
                mtime: epoch,
            })
            .collect();
        Plan::finish(ops, manifest)
    }

    /// From the members of a payload archive; the manifest is the one inside it.
    pub fn from_members(
        members: Vec<Member>,
        preferred_prefix: Option<&str>,
    ) -> Result<Plan, PlanError> {
        let suffix = format!("/{IN_GUEST_PATH}");
        let preferred = preferred_prefix.map(|p| format!("{}{suffix}", p.trim_matches('/')));
        let manifests: Vec<&Member> = members
            .iter()
            .filter(|m| m.path.ends_with(&suffix))
            .collect();
        let chosen = manifests
            .iter()
            .find(|m| Some(&m.path) == preferred.as_ref())
            .or_else(|| manifests.first())
            .ok_or(PlanError::NoManifest)?;
        let manifest = match &chosen.entry.node {
            Node::File { data, .. } => Manifest::from_json(&String::from_utf8_lossy(data))
                .map_err(|e| PlanError::BadManifest {
                    path: format!("/{}", chosen.path),
                    message: e.to_string(),
                })?,
            _ => {
                return Err(PlanError::BadManifest {
                    path: format!("/{}", chosen.path),
                    message: "not a regular file".into(),
                })
            }
        };
        let mut sorted: BTreeMap<String, Member> = BTreeMap::new();
        for m in members {
            sorted.insert(m.path.clone(), m);
        }
        let ops = sorted
            .into_values()
            .map(|m| Op {
                path: format!("/{}", m.path),
                mode: m.entry.mode as u16,
                uid: m.uid.min(u32::MAX as u64) as u32,
                gid: m.gid.min(u32::MAX as u64) as u32,
                mtime: m.mtime.min(i64::MAX as u64) as i64,
                kind: match m.entry.node {
                    Node::Dir => OpKind::Dir,
                    Node::File { data, .. } => OpKind::File(data),
                    Node::Symlink { target } => OpKind::Symlink(target),
                },
            })
            .collect();
        Ok(Plan::finish(ops, manifest))
    }

    fn finish(ops: Vec<Op>, manifest: Manifest) -> Plan {
        let lib = format!("{}/lib/", manifest.prefix.trim_end_matches('/'));
        let python = ops.iter().find_map(|op| {
            let rest = op.path.strip_prefix(&lib)?.strip_prefix("python")?;
            let v = rest.split('/').next()?;
            let ok = op.kind == OpKind::Dir
                && !rest.contains('/')
                && v.split('.').count() == 2
                && v.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            ok.then(|| v.to_string())
        });
        Plan {
            ops,
            manifest,
            python,
        }
    }

    /// Files and their bytes.
    pub fn file_stats(&self) -> (u64, u64) {
        self.ops.iter().fold((0, 0), |(n, b), op| match &op.kind {
            OpKind::File(d) => (n + 1, b + d.len() as u64),
            _ => (n, b),
        })
    }

    /// Refuses a guest the payload cannot run on: no systemd for a payload with a unit, or
    /// no interpreter of the Python the venv was built for.
    pub fn check_guest(&self, facts: &GuestFacts, g: &Guest) -> Result<(), PlanError> {
        if let Some(unit) = &self.manifest.unit {
            if facts.init.as_deref() != Some("systemd") {
                return Err(PlanError::Guest(format!(
                    "the guest's init system is {}, not systemd: the payload's service {unit} would never start; \
                     graft installs agents only into systemd guests",
                    facts.init.as_deref().unwrap_or("unknown (no /sbin/init found)")
                )));
            }
        }
        if let Some(py) = &self.python {
            if !facts.python.versions.iter().any(|v| v == py)
                && facts.python.default.as_deref() != Some(py.as_str())
            {
                return Err(PlanError::Guest(format!(
                    "the payload was built for Python {py} (target {}), but the guest has {}; \
                     build for a target whose python matches the image (graft inspect shows it)",
                    self.manifest.target,
                    if facts.python.versions.is_empty() {
                        "no Python".to_string()
                    } else {
                        format!("Python {}", facts.python.versions.join(", "))
                    }
                )));
            }
            // The venv's pyvenv.cfg names the interpreter's directory: it must be there.
            let cfg_path = format!("{}/pyvenv.cfg", self.manifest.prefix.trim_end_matches('/'));
            if let Some(OpKind::File(cfg)) = self
                .ops
                .iter()
                .find(|o| o.path == cfg_path)
                .map(|o| &o.kind)
            {
                let cfg = String::from_utf8_lossy(cfg);
                if let Some(home) = cfg.lines().find_map(|l| l.strip_prefix("home = ")) {
                    let interp = format!("{}/python{py}", home.trim_end_matches('/'));
                    if !g.exists(&interp) {
                        return Err(PlanError::Guest(format!(
                            "the payload's venv runs {interp} (pyvenv.cfg home = {home}), which the guest does not have"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Payload files and symlinks whose path already exists in the guest (looked up with
    /// in-guest symlink resolution of the parents). Directories may exist: they are kept.
    pub fn conflicts(&self, g: &Guest) -> Vec<String> {
        self.ops
            .iter()
            .filter(|op| op.kind != OpKind::Dir)
            .filter(|op| g.lstat(&op.path).is_ok())
            .map(|op| op.path.clone())
            .collect()
    }

    /// Refuses when [`Plan::conflicts`] finds anything and `replace` is off.
    pub fn check_conflicts(&self, g: &Guest, replace: bool) -> Result<(), PlanError> {
        let c = self.conflicts(g);
        if c.is_empty() || replace {
            return Ok(());
        }
        let shown: Vec<&str> = c.iter().take(5).map(String::as_str).collect();
        let more = if c.len() > 5 {
            format!(" and {} more", c.len() - 5)
        } else {
            String::new()
        };
        Err(PlanError::Exists {
            count: c.len(),
            list: format!("{}{more}", shown.join(", ")),
        })
    }

    /// Worst-case blocks and inodes (every directory counted as new).
    pub fn needs(&self, w: &Ext4Writer) -> Needs {
        let mut n = Needs::default();
        let mut per_parent: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for op in &self.ops {
            let (parent, name) = op.path.rsplit_once('/').unwrap_or(("", op.path.as_str()));
            let e = per_parent.entry(parent).or_default();
            e.0 += 1;
            e.1 += name.len() as u64;
            n.inodes += 1;
            n.blocks += match &op.kind {
                OpKind::Dir => 1,
                OpKind::File(d) => w.file_blocks(d.len() as u64),
                OpKind::Symlink(t) => w.symlink_blocks(t.len()),
            };
        }
        for (count, bytes) in per_parent.values() {
            n.blocks += w.dir_growth_blocks(*count, *bytes);
        }
        n
    }

    /// Performs every operation through the writer (which is committed by the caller).
    /// Writes every entry; `on_file` hears each regular file's size once it is written
    /// (a progress bar's feed).
    pub fn apply(
        &self,
        w: &mut Ext4Writer,
        replace: bool,
        on_file: &mut dyn FnMut(u64),
    ) -> Result<(), Ext4Error> {
        for op in &self.ops {
            let meta = Meta::new(op.mode, op.uid, op.gid, op.mtime);
            match &op.kind {
                OpKind::Dir => {
                    w.mkdir_p(&op.path, &meta)?;
                }
                OpKind::File(data) => {
                    w.create_file(
                        &op.path,
                        &meta,
                        data.len() as u64,
                        &mut data.as_slice(),
                        replace,
                    )?;
                    on_file(data.len() as u64);
                }
                OpKind::Symlink(target) => {
                    w.symlink(&op.path, target.as_bytes(), &meta, replace)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::archive;

    fn sample() -> (Tree, Manifest) {
        let mut t = Tree::new();
        t.add_dir("opt/p/lib/python3.11/site-packages").unwrap();
        t.add_file("opt/p/pyvenv.cfg", b"home = /usr/bin\n".to_vec(), 0o644)
            .unwrap();
        t.add_symlink("opt/p/bin/python3", "/usr/bin/python3")
            .unwrap();
        let m = Manifest {
            schema: 1,
            recipe: "r".into(),
            target: "t".into(),
            prefix: "/opt/p".into(),
            unit: None,
            source_date_epoch: 7,
            lock_digest: "sha256:0".into(),
            manifest_path: format!("/opt/p/{IN_GUEST_PATH}"),
            artifacts: vec![],
            entries: vec![],
            payload: None,
        };
        t.add_file(
            &format!("opt/p/{IN_GUEST_PATH}"),
            m.to_json().into_bytes(),
            0o644,
        )
        .unwrap();
        (t, m)
    }

    #[test]
    fn tree_and_archive_give_the_same_plan() {
        let (t, m) = sample();
        let a = Plan::from_tree(t.clone(), m.clone());
        let bytes = archive::write_tar_gz(&t, 7, Vec::new()).unwrap();
        let b = Plan::from_members(
            archive::read_tar_gz(bytes.as_slice(), 0, "t").unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.python.as_deref(), Some("3.11"));
        assert_eq!(a.ops[0].path, "/opt");
        assert!(a.ops.iter().all(|o| o.mtime == 7 && o.uid == 0));
    }

    #[test]
    fn an_archive_without_a_manifest_is_refused() {
        let mut t = Tree::new();
        t.add_file("opt/x", b"1".to_vec(), 0o644).unwrap();
        let bytes = archive::write_tar_gz(&t, 7, Vec::new()).unwrap();
        let e = Plan::from_members(
            archive::read_tar_gz(bytes.as_slice(), 0, "t").unwrap(),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::NoManifest));
    }
}
