use anyhow::{bail, Result};

use crate::cli::{BuildArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn build(_args: &BuildArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft build` is not implemented yet (issue 3)")
}
