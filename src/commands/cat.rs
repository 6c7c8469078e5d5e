use anyhow::{bail, Result};

use crate::cli::{CatArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn cat(_args: &CatArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft cat` is not implemented yet (issue 4)")
}
