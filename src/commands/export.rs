//! `graft export`: a target's wheels as a pip requirements file with hashes.

use anyhow::{bail, Result};

use crate::cli::{ExportArgs, GlobalArgs};
use crate::commands::Outcome;
use crate::lockfile::{ArtifactKind, LockedTarget, Lockfile};

pub fn export(args: &ExportArgs, _global: &GlobalArgs) -> Result<Outcome> {
    let lock = Lockfile::load(&args.lock)?;
    let Some(target) = lock.target(&args.target) else {
        bail!(
            "lockfile {} has no target {:?}; its targets are: {}",
            args.lock.display(),
            args.target,
            lock.target_names().join(", ")
        );
    };
    print!(
        "{}",
        requirements_text(target, &args.lock.display().to_string())
    );
    Ok(Outcome::Ok)
}

/// The pip requirements text for a target: a comment header, then one
/// `name==version --hash=sha256:...` entry per wheel, sorted by name. Data archives are
/// not pip-installable and are left out; no URL is written.
pub fn requirements_text(target: &LockedTarget, origin: &str) -> String {
    let mut out = format!(
        "# Target {} (CPython {}, ABI {}, {} glibc {}), exported from {origin} by `graft export`.\n\
         # Install exactly this set, every file checked against its hash:\n\
         #   pip install --require-hashes --no-deps --only-binary=:all: -r THIS_FILE\n",
        target.name, target.python, target.abi, target.arch, target.glibc
    );
    let mut wheels: Vec<_> = target
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Wheel)
        .collect();
    wheels.sort_by(|a, b| (&a.name, &a.version, &a.sha256).cmp(&(&b.name, &b.version, &b.sha256)));
    for w in wheels {
        out.push_str(&format!(
            "{}=={} \\\n    --hash=sha256:{}\n",
            w.name, w.version, w.sha256
        ));
    }
    out
}
