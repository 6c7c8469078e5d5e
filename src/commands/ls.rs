use anyhow::{bail, Result};

use crate::cli::{LsArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn ls(_args: &LsArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft ls` is not implemented yet (issue 4)")
}
