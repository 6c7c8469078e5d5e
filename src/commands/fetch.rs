//! `graft fetch`: every locked artifact into the content-addressed cache.
//!
//! Index artifacts (wheels, source releases) are found by file name on the project page
//! of the index pip is configured with and downloaded as plain files: never through pip,
//! whose download path would prepare a source release's metadata by running its setup
//! code. URL artifacts come from the recipe's `[[archive]]` of that name.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

use crate::cache::{Cache, FetchFailure, FetchOptions, Source, Wanted};
use crate::cli::{FetchArgs, GlobalArgs};
use crate::commands::build::{open_cache, say, Inputs};
use crate::commands::Outcome;
use crate::lockfile::{Artifact, ArtifactKind, LockedTarget};
use crate::python::index::{IndexError, IndexFile, PackageIndex};
use crate::recipe::Recipe;

/// Every distinct artifact of `targets` (the same file in two targets is fetched once).
fn artifacts_of<'a>(targets: &[&'a LockedTarget]) -> Vec<&'a Artifact> {
    let mut by_hash: BTreeMap<&str, &Artifact> = BTreeMap::new();
    for t in targets {
        for a in &t.artifacts {
            by_hash.entry(a.sha256.as_str()).or_insert(a);
        }
    }
    let mut list: Vec<&Artifact> = by_hash.into_values().collect();
    list.sort_by(|a, b| (&a.name, &a.filename).cmp(&(&b.name, &b.filename)));
    list
}

/// Makes sure the cache holds every artifact of `targets`, downloading what is missing.
pub(crate) fn fill_cache(
    cache: &Cache,
    inputs: &Inputs,
    targets: &[&LockedTarget],
    index_url: Option<&str>,
    jobs: usize,
    global: &GlobalArgs,
) -> Result<()> {
    let artifacts = artifacts_of(targets);
    let wanted: Vec<Wanted> = artifacts
        .iter()
        .map(|a| Wanted {
            label: a.filename.clone(),
            sha256: a.sha256.clone(),
            size: a.size,
        })
        .collect();
    if global.offline {
        for (label, actual) in cache.require_all(&wanted)? {
            say(global, format!("Discarded the cache entry of {label}: its bytes hash to {actual}, not the locked sha256"));
        }
        say(
            global,
            format!(
                "Checked {} cached artifacts in {} (offline)",
                wanted.len(),
                cache.root().display()
            ),
        );
        return Ok(());
    }
    let source = LockSource {
        recipe: &inputs.recipe,
        by_hash: artifacts
            .iter()
            .map(|a| (a.sha256.clone(), (*a).clone()))
            .collect(),
        index_url: index_url.map(str::to_string),
        index: OnceLock::new(),
        pages: Mutex::new(BTreeMap::new()),
    };
    let opts = FetchOptions {
        jobs: jobs.max(1),
        progress: !global.quiet && !global.json,
        ..FetchOptions::default()
    };
    let report = cache.fetch_all(&wanted, &source, &opts)?;
    for (label, actual) in &report.discarded {
        say(global, format!("Discarded the cache entry of {label}: its bytes hash to {actual}, not the locked sha256; fetched again"));
    }
    say(
        global,
        format!(
            "Fetched {} artifacts ({} bytes); {} already in the cache {}",
            report.fetched,
            report.fetched_bytes,
            report.cached,
            cache.root().display()
        ),
    );
    Ok(())
}

/// Downloads locked artifacts: index files by name from the project page, URL archives
/// from the recipe.
struct LockSource<'a> {
    recipe: &'a Recipe,
    by_hash: BTreeMap<String, Artifact>,
    index_url: Option<String>,
    /// Found only when something must be downloaded from it.
    index: OnceLock<Result<PackageIndex, String>>,
    /// Project pages already read (successful reads only; failures are retried).
    pages: Mutex<BTreeMap<String, Vec<IndexFile>>>,
}

impl LockSource<'_> {
    fn index(&self) -> Result<&PackageIndex, FetchFailure> {
        self.index
            .get_or_init(|| {
                PackageIndex::discover(
                    self.index_url.as_deref(),
                    &crate::python::pip::default_python(),
                )
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| FetchFailure::Permanent(e.clone()))
    }

    fn index_file(&self, a: &Artifact) -> Result<IndexFile, FetchFailure> {
        let index = self.index()?;
        let cached = self
            .pages
            .lock()
            .expect("no panic while held")
            .get(&a.name)
            .cloned();
        let files = match cached {
            Some(f) => f,
            None => {
                let f = index.project_files(&a.name).map_err(classify)?;
                self.pages
                    .lock()
                    .expect("no panic while held")
                    .insert(a.name.clone(), f.clone());
                f
            }
        };
        let file = files
            .into_iter()
            .find(|f| f.filename == a.filename)
            .ok_or_else(|| {
                FetchFailure::Permanent(format!(
                    "the package index at {} does not list {} on the page of {:?}",
                    index.url(),
                    a.filename,
                    a.name
                ))
            })?;
        if let Some(h) = &file.sha256 {
            if !h.eq_ignore_ascii_case(&a.sha256) {
                return Err(FetchFailure::Permanent(format!(
                    "the package index lists sha256 {h} for it, the lockfile {}; the index serves a different file",
                    a.sha256
                )));
            }
        }
        Ok(file)
    }
}

impl Source for LockSource<'_> {
    fn fetch(
        &self,
        wanted: &Wanted,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), FetchFailure> {
        let a = self
            .by_hash
            .get(&wanted.sha256)
            .ok_or_else(|| FetchFailure::Permanent("not in the lockfile".into()))?;
        match a.kind {
            ArtifactKind::Wheel | ArtifactKind::Sdist => {
                let file = self.index_file(a)?;
                self.index()?
                    .download(&file.url, out, progress)
                    .map(|_| ())
                    .map_err(classify)
            }
            ArtifactKind::Url => {
                let archive_name = a.archive.as_deref().unwrap_or(&a.name);
                let url = self
                    .recipe
                    .archive(archive_name)
                    .and_then(|r| r.url.clone())
                    .ok_or_else(|| {
                        FetchFailure::Permanent(format!(
                            "the recipe has no [[archive]] {archive_name:?} with a url"
                        ))
                    })?;
                download_url(&url, out, progress)
            }
        }
    }
}

/// Transient: connection trouble, HTTP 5xx and 429, a body cut short. Permanent: the rest.
fn classify(e: IndexError) -> FetchFailure {
    let message = e.to_string();
    match &e {
        IndexError::Connect { .. } => FetchFailure::Transient(message),
        IndexError::Status { status, .. } if *status == 429 || *status >= 500 => {
            FetchFailure::Transient(message)
        }
        IndexError::Download { url, message: m } => {
            if let Some(code) = m
                .strip_prefix("HTTP ")
                .and_then(|c| c.split_whitespace().next())
                .and_then(|c| c.parse::<u16>().ok())
            {
                if code == 429 || code >= 500 {
                    FetchFailure::Transient(message)
                } else {
                    FetchFailure::Permanent(message)
                }
            } else if url.starts_with("file:") || m.starts_with("writing:") {
                FetchFailure::Permanent(message)
            } else {
                FetchFailure::Transient(message)
            }
        }
        _ => FetchFailure::Permanent(message),
    }
}

fn download_url(
    url: &str,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(), FetchFailure> {
    let client = crate::http::client().map_err(|e| FetchFailure::Permanent(e.to_string()))?;
    let mut response = client
        .get(url)
        .send()
        .map_err(|e| FetchFailure::Transient(format!("{url}: {e}")))?;
    let status = response.status().as_u16();
    if status == 429 || status >= 500 {
        return Err(FetchFailure::Transient(format!("{url}: HTTP {status}")));
    }
    if !response.status().is_success() {
        return Err(FetchFailure::Permanent(format!("{url}: HTTP {status}")));
    }
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = std::io::Read::read(&mut response, &mut buf)
            .map_err(|e| FetchFailure::Transient(format!("{url}: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])
            .map_err(|e| FetchFailure::Permanent(format!("writing: {e}")))?;
        total += n as u64;
        progress(total);
    }
}

pub fn fetch(args: &FetchArgs, global: &GlobalArgs) -> Result<Outcome> {
    let inputs = Inputs::load(&args.recipe, &args.lock)?;
    let targets: Vec<&LockedTarget> = if args.targets.is_empty() {
        inputs.lock.targets.iter().collect()
    } else {
        args.targets
            .iter()
            .map(|t| inputs.target(t, &args.lock))
            .collect::<Result<_>>()?
    };
    if targets.is_empty() {
        bail!(
            "lockfile {} has no targets; run `graft lock`",
            args.lock.display()
        );
    }
    let cache = open_cache(global)?;
    fill_cache(
        &cache,
        &inputs,
        &targets,
        args.index_url.as_deref(),
        args.jobs,
        global,
    )
    .with_context(|| format!("cannot fetch the artifacts of {}", args.lock.display()))?;
    if global.json {
        let artifacts = artifacts_of(&targets);
        let doc = serde_json::json!({
            "cache": cache.root().display().to_string(),
            "targets": targets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "artifacts": artifacts.len(),
            "bytes": artifacts.iter().map(|a| a.size).sum::<u64>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(Outcome::Ok)
}
