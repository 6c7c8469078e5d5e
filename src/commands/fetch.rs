//! `graft fetch`: every locked artifact into the content-addressed cache.

use anyhow::{bail, Result};

use crate::cache::Cache;
use crate::cli::{FetchArgs, GlobalArgs};
use crate::commands::build::Inputs;
use crate::commands::Outcome;
use crate::lockfile::LockedTarget;

/// Makes sure the cache holds every artifact of `targets`, downloading what is missing.
pub(crate) fn fill_cache(
    _cache: &Cache,
    _inputs: &Inputs,
    _targets: &[&LockedTarget],
    _index_url: Option<&str>,
    _jobs: usize,
    _global: &GlobalArgs,
) -> Result<()> {
    bail!("downloading is not wired yet: use --offline with a filled cache")
}

pub fn fetch(_args: &FetchArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft fetch` is not implemented yet (issue 3)")
}
