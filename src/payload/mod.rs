//! The payload: the guest file tree, its reproducible archive and its manifest.
//!
//! [`assemble`] turns a recipe, one locked target and the locked artifacts' bytes into a
//! [`Tree`] of guest paths, relative to the guest root:
//!
//! ```text
//! opt/heat-agent/pyvenv.cfg, bin/, lib/pythonX.Y/site-packages/   the venv (prefix = venv)
//! opt/heat-agent/bin/heat-config-notify, os-refresh-config/, ...  [layout] files
//! opt/heat-agent/hooks/<name>                                      [layout.hooks]
//! opt/heat-agent/share/graft/manifest.json                         the in-guest manifest
//! etc/systemd/system/os-collect-config.service                     [service]
//! etc/systemd/system/multi-user.target.wants/os-collect-config.service -> the unit
//! ```
//!
//! The archive holds the same paths (no leading slash); the manifest writes them as
//! absolute guest paths. Nothing here touches the host filesystem or the network: the
//! artifacts' bytes come from the caller (the cache), so the result depends on the
//! lockfile and the recipe alone.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::lockfile::{Artifact, ArtifactKind, LockedTarget, Lockfile};
use crate::python::{venv, wheel};
use crate::recipe::Recipe;

pub mod archive;
pub mod gzip;
pub mod manifest;
pub mod tree;
pub mod unit;

pub use manifest::Manifest;
pub use tree::Tree;

#[derive(Debug, Error)]
pub enum PayloadError {
    #[error(transparent)]
    Wheel(#[from] wheel::WheelError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Tree(#[from] tree::TreeError),
    #[error("{0}")]
    Input(String),
}

/// What a payload is built from.
pub struct BuildSpec<'a> {
    pub recipe: &'a Recipe,
    pub lock: &'a Lockfile,
    pub target: &'a LockedTarget,
    /// Absolute guest prefix (the recipe's, or an override).
    pub prefix: String,
    /// `sha256:<hex>` of the lockfile's bytes.
    pub lock_digest: String,
}

/// The assembled payload: the full tree (in-guest manifest included) and the in-guest
/// manifest (without the archive digest).
pub struct Assembled {
    pub tree: Tree,
    pub manifest: Manifest,
    /// How many wheels were installed, for the summary.
    pub wheel_count: usize,
}

/// Assembles the payload. `load` returns the verified bytes of a locked artifact.
pub fn assemble(
    spec: &BuildSpec<'_>,
    load: &(dyn Fn(&Artifact) -> Result<Vec<u8>, String> + Sync),
) -> Result<Assembled, PayloadError> {
    let recipe = spec.recipe;
    let prefix = spec.prefix.trim_end_matches('/');
    if !prefix.starts_with('/') || prefix.len() < 2 {
        return Err(PayloadError::Input(format!(
            "prefix {prefix:?} must be an absolute path other than /"
        )));
    }
    tree::check_path(&prefix[1..])?;
    let rel_prefix = &prefix[1..];
    let under = |p: &str| {
        if p == "." {
            rel_prefix.to_string()
        } else {
            format!("{rel_prefix}/{p}")
        }
    };

    let (major, minor) = parse_python(&spec.target.python).ok_or_else(|| {
        PayloadError::Input(format!(
            "lockfile target {:?}: python {:?} is not MAJOR.MINOR",
            spec.target.name, spec.target.python
        ))
    })?;

    let mut tree = Tree::new();
    tree.add_dir(rel_prefix)?;

    // The virtual environment.
    let venv_rel = under(&recipe.layout.venv);
    let venv_abs = format!("/{venv_rel}");
    let v = venv::layout(&recipe.python.interpreter, major, minor, &venv_abs);
    tree.add_file(
        &format!("{venv_rel}/pyvenv.cfg"),
        v.pyvenv_cfg.into_bytes(),
        0o644,
    )?;
    for d in &v.dirs {
        tree.add_dir(&format!("{venv_rel}/{d}"))?;
    }
    for (path, target) in &v.symlinks {
        tree.add_symlink(&format!("{venv_rel}/{path}"), target)?;
    }

    // Wheels, unpacked in parallel (each is independent) and added in lockfile order;
    // the tree's order does not depend on it.
    let wheels: Vec<&Artifact> = spec
        .target
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Wheel)
        .collect();
    let installed = install_wheels(&wheels, &v.scheme, load)?;
    for files in installed {
        for f in files {
            tree.add_file(
                &format!("{venv_rel}/{}", f.path),
                f.data,
                if f.executable { 0o755 } else { 0o644 },
            )?;
        }
    }

    // Data archives, read as data, then the [layout] files taken from them.
    let mut archives: BTreeMap<&str, BTreeMap<String, archive::Member>> = BTreeMap::new();
    let mut wanted: Vec<(&str, String, String, u32)> = recipe
        .layout
        .files
        .iter()
        .map(|f| (f.archive.as_str(), f.from.clone(), f.to.clone(), f.mode))
        .collect();
    if let Some(h) = &recipe.layout.hooks {
        for name in &h.names {
            wanted.push((
                h.archive.as_str(),
                h.from.replace("{name}", name),
                h.to.replace("{name}", name),
                h.mode,
            ));
        }
    }
    for (archive_name, from, to, mode) in &wanted {
        if !archives.contains_key(archive_name) {
            let art = spec
                .target
                .artifacts
                .iter()
                .find(|a| a.archive.as_deref() == Some(*archive_name) && a.kind != ArtifactKind::Wheel)
                .ok_or_else(|| {
                    PayloadError::Input(format!(
                        "the lockfile's target {:?} has no artifact for [[archive]] {archive_name:?}; run `graft lock`",
                        spec.target.name
                    ))
                })?;
            let strip = recipe
                .archive(archive_name)
                .map(|a| a.strip_components)
                .unwrap_or(1) as usize;
            let bytes = load(art).map_err(PayloadError::Input)?;
            let members = archive::read_tar_gz(bytes.as_slice(), strip, &art.filename)?;
            archives.insert(
                archive_name,
                members.into_iter().map(|m| (m.path.clone(), m)).collect(),
            );
        }
        let members = &archives[archive_name];
        let member = members.get(from.as_str()).ok_or_else(|| {
            PayloadError::Input(format!("[layout]: {from:?} is not in the archive {archive_name:?} (after strip-components)"))
        })?;
        match &member.entry.node {
            tree::Node::File { data, .. } => tree.add_file(&under(to), data.clone(), *mode)?,
            other => {
                return Err(PayloadError::Input(format!(
                "[layout]: {from:?} in the archive {archive_name:?} is a {}, not a regular file",
                match other {
                    tree::Node::Dir => "directory",
                    _ => "symbolic link",
                }
            )))
            }
        }
    }

    // The service unit, and the link `systemctl enable` would make.
    let mut unit_path = None;
    if let Some(service) = &recipe.service {
        let text = unit::render(service, prefix, &recipe.name);
        let path = format!("{}/{}", unit::UNIT_DIR, service.name);
        tree.add_file(&path, text.into_bytes(), 0o644)?;
        tree.add_symlink(
            &format!(
                "{}/{}.wants/{}",
                unit::UNIT_DIR,
                service.wanted_by,
                service.name
            ),
            &format!("/{path}"),
        )?;
        unit_path = Some(format!("/{path}"));
    }

    // The in-guest manifest lists everything but itself.
    let manifest_rel = format!("{rel_prefix}/{}", manifest::IN_GUEST_PATH);
    tree.add_dir(
        manifest_rel
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or(rel_prefix),
    )?;
    let mut artifacts: Vec<manifest::ManifestArtifact> = spec
        .target
        .artifacts
        .iter()
        .map(|a| manifest::ManifestArtifact {
            name: a.name.clone(),
            version: a.version.clone(),
            filename: a.filename.clone(),
            sha256: a.sha256.clone(),
        })
        .collect();
    artifacts.sort_by(|a, b| (&a.name, &a.filename).cmp(&(&b.name, &b.filename)));
    let manifest = Manifest {
        schema: manifest::MANIFEST_SCHEMA,
        recipe: recipe.name.clone(),
        target: spec.target.name.clone(),
        prefix: prefix.to_string(),
        unit: unit_path,
        source_date_epoch: spec.lock.source_date_epoch,
        lock_digest: spec.lock_digest.clone(),
        manifest_path: format!("/{manifest_rel}"),
        artifacts,
        entries: manifest::entries_of(&tree, None),
        payload: None,
    };
    tree.add_file(&manifest_rel, manifest.to_json().into_bytes(), 0o644)?;
    Ok(Assembled {
        tree,
        manifest,
        wheel_count: wheels.len(),
    })
}

/// The manifest written beside the archive: every archive entry, plus its digest.
pub fn side_manifest(assembled: &Assembled, payload_sha256: &str, payload_size: u64) -> Manifest {
    let mut m = assembled.manifest.clone();
    m.entries = manifest::entries_of(&assembled.tree, None);
    m.payload = Some(manifest::PayloadDigest {
        sha256: format!("sha256:{payload_sha256}"),
        size: payload_size,
    });
    m
}

fn install_wheels(
    wheels: &[&Artifact],
    scheme: &wheel::Scheme,
    load: &(dyn Fn(&Artifact) -> Result<Vec<u8>, String> + Sync),
) -> Result<Vec<Vec<wheel::InstalledFile>>, PayloadError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(wheels.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Vec<wheel::InstalledFile>, PayloadError>>> =
        (0..wheels.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= wheels.len() {
                    break;
                }
                let a = wheels[i];
                let r = load(a).map_err(PayloadError::Input).and_then(|bytes| {
                    wheel::install(&a.filename, &bytes, scheme).map_err(PayloadError::from)
                });
                slots
                    .lock()
                    .expect("no worker panics while holding the lock")[i] = Some(r);
            });
        }
    });
    // The first error in lockfile order, so the message does not depend on scheduling.
    results
        .into_iter()
        .map(|r| r.expect("every wheel was processed"))
        .collect()
}

fn parse_python(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
