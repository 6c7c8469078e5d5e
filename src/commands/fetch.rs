use anyhow::{bail, Result};

use crate::cli::{FetchArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn fetch(_args: &FetchArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft fetch` is not implemented yet (issue 3)")
}
