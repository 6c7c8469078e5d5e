//! `graft inject`: build (or read) the payload, check the guest can run it, and write it
//! into the image's root filesystem through the output rules of [`super::output`].

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalArgs, InjectArgs, OutputArgs};
use crate::commands::build::{assemble, open_cache, say, Inputs};
use crate::commands::output::{self, Destination, Written};
use crate::commands::Outcome;
use crate::guest::inspect::{self, GuestFacts};
use crate::guest::plan::Plan;
use crate::lockfile::LockedTarget;
use crate::payload::archive;

/// Where the payload comes from.
pub enum Source<'a> {
    /// Build from the lockfile: target name or `auto`.
    Lock {
        recipe: &'a Path,
        lock: &'a Path,
        target: &'a str,
    },
    /// A payload archive written by `graft build`.
    Payload(&'a Path),
}

/// The guest facts of a (read-only) image, and its guest view.
pub fn read_guest(image: &Path) -> Result<(crate::guest::Layout, GuestFacts)> {
    let layout = crate::guest::layout::open(image)
        .with_context(|| format!("opening {}", image.display()))?;
    let facts = inspect::inspect(super::readable_guest(&layout, image)?);
    Ok((layout, facts))
}

/// The lockfile target for an image: `requested`, or with `auto` the one whose Python is
/// the guest's `/usr/bin/python3`, whose architecture is the guest's and whose glibc is no
/// newer than the guest's (the newest such glibc wins).
pub(crate) fn choose_target<'a>(
    inputs: &'a Inputs,
    facts: &GuestFacts,
    lock_path: &Path,
    requested: &str,
    image: &Path,
) -> Result<&'a LockedTarget> {
    if requested != "auto" {
        let t = inputs.target(requested, lock_path)?;
        if let Some(arch) = &facts.architecture {
            if *arch != t.arch {
                bail!("target {} is built for {}, but {} is {arch}; pick another --target or --target auto", t.name, t.arch, image.display());
            }
        }
        return Ok(t);
    }
    let fits = |t: &&LockedTarget| {
        facts.architecture.as_deref() == Some(t.arch.as_str())
            && facts.python.default.as_deref() == Some(t.python.as_str())
            && facts.glibc.as_deref().is_some_and(|g| {
                crate::guest::inspect::version_key(&t.glibc)
                    <= crate::guest::inspect::version_key(g)
            })
    };
    let mut candidates: Vec<&LockedTarget> = inputs.lock.targets.iter().filter(fits).collect();
    candidates.sort_by(|a, b| {
        crate::guest::inspect::version_key(&b.glibc)
            .cmp(&crate::guest::inspect::version_key(&a.glibc))
            .then(a.name.cmp(&b.name))
    });
    if let Some(t) = candidates.first() {
        return Ok(t);
    }
    let has = format!(
        "Python {} (/usr/bin/python3), architecture {}, glibc {}",
        facts.python.default.as_deref().unwrap_or("none"),
        facts.architecture.as_deref().unwrap_or("unknown"),
        facts.glibc.as_deref().unwrap_or("unknown")
    );
    let offers: Vec<String> = inputs
        .lock
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} (Python {}, {}, glibc {})",
                t.name, t.python, t.arch, t.glibc
            )
        })
        .collect();
    bail!(
        "no target of {} fits {}: the image has {has}; the lockfile offers {}. \
         Add a [[target]] with python = {:?}, arch = {:?}, glibc = {:?} to the recipe and run `graft lock`, or pass --target NAME",
        lock_path.display(),
        image.display(),
        if offers.is_empty() { "nothing".to_string() } else { offers.join(", ") },
        facts.python.default.as_deref().unwrap_or("?"),
        facts.architecture.as_deref().unwrap_or("?"),
        facts.glibc.as_deref().unwrap_or("?"),
    )
}

/// The install plan from a lockfile (built in memory) or a payload file.
pub fn load_plan(
    source: &Source,
    facts: &GuestFacts,
    image: &Path,
    global: &GlobalArgs,
) -> Result<Plan> {
    match source {
        Source::Payload(p) => {
            let f = std::fs::File::open(p)
                .with_context(|| format!("cannot read payload {}", p.display()))?;
            let members =
                archive::read_tar_gz(std::io::BufReader::new(f), 0, &p.display().to_string())?;
            Plan::from_members(members, None).with_context(|| format!("payload {}", p.display()))
        }
        Source::Lock {
            recipe,
            lock,
            target,
        } => {
            let inputs = Inputs::load(recipe, lock)?;
            let t = choose_target(&inputs, facts, lock, target, image)?;
            say(
                global,
                format!(
                    "Target {} (Python {}, {}, glibc {}) for {}",
                    t.name,
                    t.python,
                    t.arch,
                    t.glibc,
                    image.display()
                ),
            );
            let cache = open_cache(global)?;
            super::fetch::fill_cache(&cache, &inputs, &[t], None, 4, global)?;
            let assembled = assemble(&inputs, t, None, &cache)?;
            Ok(Plan::from_tree(assembled.tree, assembled.manifest))
        }
    }
}

/// Checks `plan` against the input's guest and writes it to `dest`.
pub fn inject_plan(
    image: &Path,
    dest: &Destination,
    plan: &Plan,
    facts: &GuestFacts,
    layout: &crate::guest::Layout,
    replace: bool,
    global: &GlobalArgs,
) -> Result<Written> {
    let g = layout.guest.as_ref().context("no guest filesystem")?;
    plan.check_guest(facts, g)
        .with_context(|| format!("{} cannot take this payload", image.display()))?;
    plan.check_conflicts(g, replace)
        .with_context(|| format!("{}", image.display()))?;
    let label = dest.path.clone();
    let bar = output::byte_bar(global, plan.file_stats().1, "writing the payload");
    let result = output::write_image(image, dest, Some(plan.manifest.source_date_epoch), |w| {
        let n = plan.needs(w);
        w.check_space(&n)
            .with_context(|| format!("{}: checking free space before writing", label.display()))?;
        plan.apply(w, replace, &mut |n| {
            if let Some(b) = &bar {
                b.inc(n)
            }
        })
        .with_context(|| format!("{}: writing the payload", label.display()))?;
        Ok(())
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let ((), written) = result?;
    Ok(written)
}

/// Everything `graft inject` does, without printing: used by `verify --base` too.
pub fn run_inject(
    image: &Path,
    out: &OutputArgs,
    source: &Source,
    replace: bool,
    global: &GlobalArgs,
) -> Result<(Plan, Written)> {
    let dest = output::destination(image, out)?;
    let (layout, facts) = read_guest(image)?;
    let plan = load_plan(source, &facts, image, global)?;
    let written = inject_plan(image, &dest, &plan, &facts, &layout, replace, global)?;
    Ok((plan, written))
}

pub fn inject(args: &InjectArgs, global: &GlobalArgs) -> Result<Outcome> {
    let started = Instant::now();
    let source = match (&args.payload, &args.lock) {
        (Some(p), _) => {
            if args.target != "auto" {
                bail!("--target picks a lockfile target; with --payload the payload says what it was built for");
            }
            Source::Payload(p)
        }
        (None, Some(l)) => Source::Lock {
            recipe: &args.recipe,
            lock: l,
            target: &args.target,
        },
        (None, None) => bail!(
            "give --lock LOCKFILE (build the payload) or --payload PAYLOAD.tar.gz (a built one)"
        ),
    };
    let (plan, written) = run_inject(&args.image, &args.out, &source, args.replace, global)?;
    let seconds = started.elapsed().as_secs_f64();
    let (files, bytes) = plan.file_stats();
    if global.json {
        let doc = serde_json::json!({
            "image": args.image,
            "output": written.output,
            "format": written.format,
            "mode": written.mode,
            "filesystem": written.filesystem,
            "target": plan.manifest.target,
            "prefix": plan.manifest.prefix,
            "unit": plan.manifest.unit,
            "payload_files": files,
            "payload_bytes": bytes,
            "report": written.report,
            "disk_blocks_written": written.disk_blocks_written,
            "clusters_written": written.clusters_written,
            "cluster_size": written.cluster_size,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if !global.quiet {
        output::print_report(&written, "Injected");
        if let Some(unit) = &plan.manifest.unit {
            eprintln!(
                "  {unit} enabled; payload {} (target {}) under {}",
                plan.manifest.recipe, plan.manifest.target, plan.manifest.prefix
            );
        }
        eprintln!("  done in {seconds:.2} s");
    }
    Ok(Outcome::Ok)
}
