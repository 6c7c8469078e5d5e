//! `graft build`: fetch (unless --offline), assemble the payload, write the archive and
//! its manifest atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::cache::{Cache, Wanted};
use crate::cli::{BuildArgs, GlobalArgs};
use crate::commands::Outcome;
use crate::lockfile::{LockedTarget, Lockfile};
use crate::payload::{self, archive, Assembled, BuildSpec};
use crate::recipe::Recipe;

/// A recipe and lockfile read and checked against each other.
pub(crate) struct Inputs {
    pub recipe: Recipe,
    pub lock: Lockfile,
    /// `sha256:<hex>` of the lockfile's bytes.
    pub lock_digest: String,
}

impl Inputs {
    /// Reads both files and refuses a lockfile made from another version of the recipe.
    pub fn load(recipe_path: &Path, lock_path: &Path) -> Result<Inputs> {
        let recipe_bytes = std::fs::read(recipe_path)
            .with_context(|| format!("cannot read recipe {}", recipe_path.display()))?;
        let recipe = Recipe::parse(
            std::str::from_utf8(&recipe_bytes)
                .with_context(|| format!("recipe {} is not UTF-8", recipe_path.display()))?,
            &recipe_path.display().to_string(),
        )?;
        let lock_bytes = std::fs::read(lock_path).with_context(|| {
            format!(
                "cannot read lockfile {} (run `graft lock` to write it)",
                lock_path.display()
            )
        })?;
        let lock = Lockfile::parse(
            std::str::from_utf8(&lock_bytes)
                .with_context(|| format!("lockfile {} is not UTF-8", lock_path.display()))?,
            &lock_path.display().to_string(),
        )?;
        // The digest covers what the lockfile depends on (requirements, archives,
        // targets, epoch), not the layout or the service: see `Recipe::lock_digest`.
        let recipe_digest = recipe.lock_digest();
        if lock.recipe_digest != recipe_digest {
            bail!(
                "lockfile {} is stale: it was made from a recipe with digest {}, but {} now has digest {}; run `graft lock`",
                lock_path.display(),
                lock.recipe_digest,
                recipe_path.display(),
                recipe_digest
            );
        }
        if lock.recipe != recipe.name {
            bail!(
                "lockfile {} is for recipe {:?}, not {:?}; run `graft lock`",
                lock_path.display(),
                lock.recipe,
                recipe.name
            );
        }
        if lock.source_date_epoch != recipe.source_date_epoch {
            bail!(
                "lockfile {} has source-date-epoch {}, the recipe {}; run `graft lock`",
                lock_path.display(),
                lock.source_date_epoch,
                recipe.source_date_epoch
            );
        }
        let lock_digest = format!("sha256:{}", crate::util::sha256_hex(&lock_bytes));
        Ok(Inputs {
            recipe,
            lock,
            lock_digest,
        })
    }

    pub fn target(&self, name: &str, lock_path: &Path) -> Result<&LockedTarget> {
        self.lock.target(name).ok_or_else(|| {
            anyhow!(
                "lockfile {} has no target {name:?} (it has: {}); check --target or run `graft lock`",
                lock_path.display(),
                self.lock.target_names().join(", ")
            )
        })
    }
}

pub(crate) fn open_cache(global: &GlobalArgs) -> Result<Cache> {
    let dir = global
        .cache_dir
        .clone()
        .unwrap_or_else(crate::util::default_cache_dir);
    Cache::open(&dir).with_context(|| format!("cannot open the cache at {}", dir.display()))
}

/// Prints one line of progress unless `-q` or `--json`.
pub(crate) fn say(global: &GlobalArgs, line: impl AsRef<str>) {
    if !global.quiet {
        if global.verbose >= 2 {
            // -vv: when each step ended, for profiling; never part of any output file.
            eprintln!(
                "[{:>7.3}s] {}",
                started().elapsed().as_secs_f64(),
                line.as_ref()
            );
        } else {
            eprintln!("{}", line.as_ref());
        }
    }
}

fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// Assembles the payload of `target` from verified cache entries.
pub(crate) fn assemble(
    inputs: &Inputs,
    target: &LockedTarget,
    prefix: Option<&str>,
    cache: &Cache,
) -> Result<Assembled> {
    let spec = BuildSpec {
        recipe: &inputs.recipe,
        lock: &inputs.lock,
        target,
        prefix: prefix.unwrap_or(&inputs.recipe.prefix).to_string(),
        lock_digest: inputs.lock_digest.clone(),
    };
    let load = |a: &crate::lockfile::Artifact| {
        cache
            .read_verified(&Wanted {
                label: a.filename.clone(),
                sha256: a.sha256.clone(),
                size: a.size,
            })
            .map_err(|e| e.to_string())
    };
    payload::assemble(&spec, &load).context("cannot assemble the payload")
}

/// `payload.tar.gz` → `payload.manifest.json` (also for `.tgz` and other names).
pub fn manifest_path_for(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "payload".into());
    let stem = name
        .strip_suffix(".tar.gz")
        .or_else(|| name.strip_suffix(".tgz"))
        .unwrap_or(&name)
        .to_string();
    output.with_file_name(format!("{stem}.manifest.json"))
}

pub fn build(args: &BuildArgs, global: &GlobalArgs) -> Result<Outcome> {
    started();
    let inputs = Inputs::load(&args.recipe, &args.lock)?;
    let target = inputs.target(&args.target, &args.lock)?;
    if let Some(p) = &args.prefix {
        if !p.starts_with('/')
            || p.split('/').any(|c| c == "..")
            || p.trim_end_matches('/').is_empty()
        {
            bail!("--prefix {p:?} must be an absolute guest path without `..`, other than /");
        }
    }
    say(
        global,
        format!(
            "Read {} (recipe {}, target {}, {} artifacts)",
            args.lock.display(),
            inputs.recipe.name,
            target.name,
            target.artifacts.len()
        ),
    );

    let cache = open_cache(global)?;
    super::fetch::fill_cache(
        &cache,
        &inputs,
        &[target],
        args.index_url.as_deref(),
        4,
        global,
    )?;

    let assembled = assemble(&inputs, target, args.prefix.as_deref(), &cache)?;
    let (files, unpacked) = assembled.tree.file_stats();
    say(
        global,
        format!(
            "Assembled {} entries ({files} files, {unpacked} bytes) from {} wheels",
            assembled.tree.len(),
            assembled.wheel_count
        ),
    );

    let mut out = crate::util::AtomicFile::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let (digest, size) = {
        let writer = crate::util::HashingWriter::new(std::io::BufWriter::new(out.file()));
        let mut writer =
            archive::write_tar_gz(&assembled.tree, inputs.lock.source_date_epoch, writer)
                .with_context(|| format!("cannot write {}", args.output.display()))?;
        writer
            .flush()
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        let (_, digest, len) = writer.finish();
        (digest, len)
    };
    out.commit()
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    say(
        global,
        format!(
            "Wrote {} ({size} bytes, sha256 {digest})",
            args.output.display()
        ),
    );

    let manifest_path = manifest_path_for(&args.output);
    let side = payload::side_manifest(&assembled, &digest, size);
    crate::util::atomic_write(&manifest_path, side.to_json().as_bytes())
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    say(global, format!("Wrote {}", manifest_path.display()));

    if global.json {
        let summary = serde_json::json!({
            "payload": args.output.display().to_string(),
            "manifest": manifest_path.display().to_string(),
            "target": target.name,
            "prefix": assembled.manifest.prefix,
            "entries": assembled.tree.len(),
            "files": files,
            "bytes_unpacked": unpacked,
            "archive_size": size,
            "sha256": digest,
            "lock_digest": inputs.lock_digest,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lands_beside_the_payload() {
        assert_eq!(
            manifest_path_for(Path::new("out/payload.tar.gz")),
            Path::new("out/payload.manifest.json")
        );
        assert_eq!(
            manifest_path_for(Path::new("a.tgz")),
            Path::new("a.manifest.json")
        );
        assert_eq!(
            manifest_path_for(Path::new("x")),
            Path::new("x.manifest.json")
        );
    }
}
