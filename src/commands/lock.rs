//! `graft lock`: resolve the recipe for each target and write the lockfile.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::{GlobalArgs, LockArgs};
use crate::commands::Outcome;
use crate::lockfile::{Artifact, ArtifactKind, LockedTarget, Lockfile, LOCK_SCHEMA};
use crate::python::index::{normalize_name, PackageIndex};
use crate::python::pip::default_python;
use crate::python::resolve::{self, requirement_name, Locker};
use crate::recipe::{Recipe, Target};

/// How many targets pip resolves at the same time.
const PARALLEL_TARGETS: usize = 3;

#[derive(Debug, Serialize)]
struct TargetSummary {
    name: String,
    artifacts: usize,
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct LockSummary {
    lockfile: String,
    written: bool,
    index: String,
    targets: Vec<TargetSummary>,
    kept: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CheckSummary {
    lockfile: String,
    up_to_date: bool,
    differences: Vec<String>,
}

pub fn lock(args: &LockArgs, global: &GlobalArgs) -> Result<Outcome> {
    let recipe = Recipe::load(&args.recipe)?;
    let digest = recipe.lock_digest();
    for name in &args.targets {
        if recipe.target(name).is_none() {
            bail!(
                "recipe {} has no target {name:?}; its targets are: {}",
                args.recipe.display(),
                recipe
                    .targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    if args.check {
        return check(args, global, &recipe, &digest);
    }

    let old = if args.output.exists() {
        match Lockfile::load(&args.output) {
            Ok(l) => Some(l),
            Err(e) if args.upgrade && args.targets.is_empty() => {
                warn(
                    global,
                    &format!(
                        "ignoring the unreadable existing lockfile ({e}); --upgrade writes it anew"
                    ),
                );
                None
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the existing lockfile {} cannot be used to keep pins: fix or delete it, \
                     or run `graft lock --upgrade` to write it from scratch",
                    args.output.display()
                )))
            }
        }
    } else {
        None
    };

    let python = args.python.clone().unwrap_or_else(default_python);
    resolve::check_pip(&python)?;
    let python = resolve::real_interpreter(&python);
    let index = PackageIndex::discover(args.index_url.as_deref(), &python)
        .context("finding the package index")?;
    if global.offline && !index.display_url().starts_with("file:") {
        bail!(
            "`graft lock` resolves against the package index ({}) and cannot run with --offline; \
             use --index-url file:///path/to/simple for a local mirror",
            index.display_url()
        );
    }
    let locker = Locker::new(&index, python, recipe.index_name.clone());
    let upgrade: BTreeSet<String> = args
        .upgrade_packages
        .iter()
        .map(|n| normalize_name(n))
        .collect();
    let may_keep = |name: &str| !args.upgrade && !upgrade.contains(&normalize_name(name));

    let selected: Vec<&Target> = if args.targets.is_empty() {
        recipe.targets.iter().collect()
    } else {
        recipe
            .targets
            .iter()
            .filter(|t| args.targets.contains(&t.name))
            .collect()
    };

    let spinner = spinner(global);
    spinner.set_message(format!(
        "checking {} requirements on {}",
        recipe.python.requirements.len(),
        index.display_url()
    ));
    let needed_by = if selected.len() == recipe.targets.len() {
        "every target".to_string()
    } else {
        format!(
            "target {}",
            selected
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    locker.check_requirements_exist(&recipe.python.requirements, &needed_by)?;
    for name in &upgrade {
        let in_old = old.as_ref().is_some_and(|l| {
            l.targets
                .iter()
                .any(|t| t.artifacts.iter().any(|a| a.name == *name))
        });
        let in_recipe = recipe
            .python
            .requirements
            .iter()
            .any(|r| requirement_name(r).as_deref() == Some(name.as_str()))
            || recipe.archives.iter().any(|a| {
                normalize_name(&a.name) == *name
                    || a.requirement
                        .as_deref()
                        .and_then(requirement_name)
                        .as_deref()
                        == Some(name.as_str())
            });
        if !in_old && !in_recipe {
            bail!("--upgrade-package {name}: no locked artifact and no recipe entry has that name");
        }
    }

    // Archives are the same for every target: lock each once.
    let mut archive_artifacts = Vec::new();
    for archive in &recipe.archives {
        spinner.set_message(format!("locking archive {}", archive.name));
        let keep = old.as_ref().and_then(|l| {
            l.targets
                .iter()
                .flat_map(|t| &t.artifacts)
                .find(|a| a.archive.as_deref() == Some(archive.name.as_str()))
        });
        let req_name = archive.requirement.as_deref().and_then(requirement_name);
        let keep =
            keep.filter(|_| may_keep(&archive.name) && req_name.as_deref().is_none_or(may_keep));
        let artifact = if archive.requirement.is_some() {
            locker.lock_index_archive(archive, keep)
        } else {
            resolve::lock_url_archive(archive, keep)
        }
        .with_context(|| format!("locking [[archive]] {:?}", archive.name))?;
        archive_artifacts.push(artifact);
    }

    // pip spends most of its time waiting on the index: resolve a few targets at once.
    spinner.set_message(format!(
        "resolving {} with pip",
        selected
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let pins_of = |target: &Target| -> BTreeMap<String, String> {
        old.as_ref()
            .and_then(|l| l.target(&target.name))
            .map(|t| {
                t.artifacts
                    .iter()
                    .filter(|a| a.kind == ArtifactKind::Wheel && may_keep(&a.name))
                    .map(|a| (a.name.clone(), a.version.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut results = Vec::new();
    for chunk in selected.chunks(PARALLEL_TARGETS) {
        let chunk_results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|target| {
                    let pins = pins_of(target);
                    let locker = &locker;
                    let requirements = &recipe.python.requirements;
                    scope.spawn(move || locker.lock_target(target, requirements, &pins))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a locking thread panicked"))
                .collect()
        });
        results.extend(chunk_results);
    }

    let mut summaries = Vec::new();
    let mut new_targets = Vec::new();
    for (target, locked) in selected.iter().zip(results) {
        let locked = locked.with_context(|| format!("locking target {}", target.name))?;
        let old_target = old.as_ref().and_then(|l| l.target(&target.name));
        let mut artifacts = locked.artifacts;
        artifacts.extend(archive_artifacts.iter().cloned());
        let entry = LockedTarget {
            name: target.name.clone(),
            python: target.python.clone(),
            implementation: target.implementation.clone(),
            abi: target.abi_tag(),
            arch: target.arch.clone(),
            glibc: target.glibc.clone(),
            artifacts,
        };
        let summary = summarize(&entry, old_target, locked.notes);
        spinner.suspend(|| report_target(global, &summary, old_target.is_none()));
        summaries.push(summary);
        new_targets.push(entry);
    }
    spinner.finish_and_clear();

    // Targets not locked now keep their entries if the recipe still has them.
    let mut kept = Vec::new();
    let mut warnings = Vec::new();
    if let Some(old) = &old {
        for t in &old.targets {
            if new_targets.iter().any(|n| n.name == t.name) {
                continue;
            }
            if recipe.target(&t.name).is_some() {
                kept.push(t.name.clone());
                new_targets.push(t.clone());
            } else {
                warnings.push(format!(
                    "dropped target {} (no longer in the recipe)",
                    t.name
                ));
            }
        }
    }
    let mut unlocked = 0;
    for t in &recipe.targets {
        if !new_targets.iter().any(|n| n.name == t.name) {
            unlocked += 1;
            warnings.push(format!(
                "target {} is not locked yet: run `graft lock --target {}`",
                t.name, t.name
            ));
        }
    }
    // Every recipe target resolved just now (dropped targets do not matter).
    let all_fresh = kept.is_empty() && unlocked == 0;
    // A partial re-lock of a changed recipe leaves the other targets locked from the
    // old recipe: keep the old digest so that `graft lock --check` still says so.
    let recipe_digest =
        match &old {
            Some(o) if !all_fresh && o.recipe_digest != digest => {
                warnings.push(format!(
                "the recipe changed, and {} kept entries from the old recipe; run `graft lock` \
                 without --target to bring every target up to date",
                if kept.is_empty() { "the lockfile".to_string() } else { kept.join(", ") }
            ));
                o.recipe_digest.clone()
            }
            _ => digest.clone(),
        };
    let lockfile = Lockfile {
        schema: LOCK_SCHEMA,
        graft_version: env!("CARGO_PKG_VERSION").to_string(),
        recipe: recipe.name.clone(),
        recipe_digest,
        source_date_epoch: recipe.source_date_epoch,
        targets: new_targets,
    };
    let text = lockfile.to_toml();
    // What we write must be what we read back.
    Lockfile::parse(&text, &args.output.display().to_string())
        .context("the lockfile graft produced does not validate")?;
    let unchanged = std::fs::read(&args.output).is_ok_and(|b| b == text.as_bytes());
    if !unchanged {
        if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::util::atomic_write(&args.output, text.as_bytes())
            .with_context(|| format!("writing {}", args.output.display()))?;
    }
    for w in &warnings {
        warn(global, w);
    }
    if global.json {
        let summary = LockSummary {
            lockfile: args.output.display().to_string(),
            written: !unchanged,
            index: index.display_url().to_string(),
            targets: summaries,
            kept,
            warnings,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !global.quiet {
        if unchanged {
            eprintln!("{} is up to date", args.output.display());
        } else {
            eprintln!("Wrote {}", args.output.display());
        }
    }
    Ok(Outcome::Ok)
}

fn summarize(
    entry: &LockedTarget,
    old: Option<&LockedTarget>,
    notes: Vec<String>,
) -> TargetSummary {
    let key = |a: &Artifact| (a.name.clone(), a.kind);
    let old_map: BTreeMap<_, &Artifact> = old
        .map(|o| o.artifacts.iter().map(|a| (key(a), a)).collect())
        .unwrap_or_default();
    let new_map: BTreeMap<_, &Artifact> = entry.artifacts.iter().map(|a| (key(a), a)).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (k, a) in &new_map {
        match old_map.get(k) {
            None => added.push(format!("{} {}", a.name, a.version)),
            Some(o) if o != a => changed.push(format!("{} {} -> {}", a.name, o.version, a.version)),
            Some(_) => {}
        }
    }
    let removed = old_map
        .iter()
        .filter(|(k, _)| !new_map.contains_key(*k))
        .map(|(_, a)| format!("{} {}", a.name, a.version))
        .collect();
    TargetSummary {
        name: entry.name.clone(),
        artifacts: entry.artifacts.len(),
        added,
        removed,
        changed,
        notes,
    }
}

fn report_target(global: &GlobalArgs, s: &TargetSummary, new: bool) {
    if global.quiet || global.json {
        return;
    }
    let n = s.added.len() + s.removed.len() + s.changed.len();
    if new {
        eprintln!("Locked {}: {} artifacts", s.name, s.artifacts);
    } else {
        eprintln!("Locked {}: {} artifacts ({n} changed)", s.name, s.artifacts);
        if global.verbose > 0 {
            for line in s
                .added
                .iter()
                .map(|a| format!("+ {a}"))
                .chain(s.removed.iter().map(|r| format!("- {r}")))
                .chain(s.changed.iter().map(|c| format!("~ {c}")))
            {
                eprintln!("  {line}");
            }
        }
    }
    for note in &s.notes {
        eprintln!("  note: {note}");
    }
}

fn warn(global: &GlobalArgs, message: &str) {
    if !global.quiet {
        eprintln!("warning: {message}");
    }
}

fn spinner(global: &GlobalArgs) -> indicatif::ProgressBar {
    if global.quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `--check`: compares what the lockfile was made from with the recipe, without the
/// network. Re-resolving with pins kept gives the same pins (that is what `graft lock`
/// does), so a lockfile whose inputs match is up to date.
fn check(args: &LockArgs, global: &GlobalArgs, recipe: &Recipe, digest: &str) -> Result<Outcome> {
    let mut differences = Vec::new();
    if !args.output.exists() {
        differences.push(format!("there is no lockfile at {}", args.output.display()));
    } else {
        let lock = Lockfile::load(&args.output)?;
        differences = compare(recipe, digest, &lock, &args.targets);
    }
    let up_to_date = differences.is_empty();
    if global.json {
        let s = CheckSummary {
            lockfile: args.output.display().to_string(),
            up_to_date,
            differences,
        };
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else if up_to_date {
        if !global.quiet {
            eprintln!(
                "{} is up to date with {}",
                args.output.display(),
                args.recipe.display()
            );
        }
    } else {
        eprintln!(
            "{} is stale ({} differences); run `graft lock`:",
            args.output.display(),
            differences.len()
        );
        for d in &differences {
            eprintln!("  {d}");
        }
    }
    Ok(if up_to_date {
        Outcome::Ok
    } else {
        Outcome::Differs
    })
}

/// Every way `lock` no longer matches `recipe`; only `only` targets if non-empty.
pub fn compare(recipe: &Recipe, digest: &str, lock: &Lockfile, only: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if lock.recipe_digest != digest {
        out.push(format!(
            "the recipe changed since the lockfile was written (recipe inputs {digest}, lockfile has {})",
            lock.recipe_digest
        ));
    }
    if lock.recipe != recipe.name {
        out.push(format!(
            "the lockfile is for recipe {:?}, not {:?}",
            lock.recipe, recipe.name
        ));
    }
    if lock.source_date_epoch != recipe.source_date_epoch {
        out.push(format!(
            "source-date-epoch: recipe {}, lockfile {}",
            recipe.source_date_epoch, lock.source_date_epoch
        ));
    }
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    for t in recipe.targets.iter().filter(|t| wanted(&t.name)) {
        let Some(lt) = lock.target(&t.name) else {
            out.push(format!(
                "target {} is in the recipe but not in the lockfile",
                t.name
            ));
            continue;
        };
        for (field, want, have) in [
            ("python", t.python.clone(), lt.python.clone()),
            (
                "implementation",
                t.implementation.clone(),
                lt.implementation.clone(),
            ),
            ("abi", t.abi_tag(), lt.abi.clone()),
            ("arch", t.arch.clone(), lt.arch.clone()),
            ("glibc", t.glibc.clone(), lt.glibc.clone()),
        ] {
            if want != have {
                out.push(format!(
                    "target {}: {field} is {want:?} in the recipe, {have:?} in the lockfile",
                    t.name
                ));
            }
        }
        // A requirement with an environment marker may rightly be absent on a target.
        for r in recipe
            .python
            .requirements
            .iter()
            .filter(|r| !r.contains(';'))
        {
            if let Some(name) = requirement_name(r) {
                if !lt
                    .artifacts
                    .iter()
                    .any(|a| a.kind == ArtifactKind::Wheel && a.name == name)
                {
                    out.push(format!(
                        "target {}: requirement {name} has no locked wheel",
                        t.name
                    ));
                }
            }
        }
        for a in &recipe.archives {
            let locked = lt
                .artifacts
                .iter()
                .find(|x| x.archive.as_deref() == Some(a.name.as_str()));
            match (locked, &a.url) {
                (None, _) => out.push(format!(
                    "target {}: [[archive]] {} is not locked",
                    t.name, a.name
                )),
                (Some(x), Some(_))
                    if x.kind != ArtifactKind::Url || Some(&x.sha256) != a.sha256.as_ref() =>
                {
                    out.push(format!(
                        "target {}: [[archive]] {}: the lockfile does not have the recipe's sha256",
                        t.name, a.name
                    ))
                }
                (Some(x), None) if x.kind != ArtifactKind::Sdist => out.push(format!(
                    "target {}: [[archive]] {} is locked as {:?}, not an sdist",
                    t.name, a.name, x.kind
                )),
                _ => {}
            }
        }
        for x in &lt.artifacts {
            if x.index.is_some() && x.index.as_deref() != Some(recipe.index_name.as_str()) {
                out.push(format!(
                    "target {}: {} comes from index {:?}, the recipe's is {:?}",
                    t.name,
                    x.filename,
                    x.index.as_deref().unwrap_or(""),
                    recipe.index_name
                ));
            }
        }
    }
    if only.is_empty() {
        for lt in &lock.targets {
            if recipe.target(&lt.name).is_none() {
                out.push(format!(
                    "target {} is in the lockfile but not in the recipe",
                    lt.name
                ));
            }
        }
    }
    out
}
