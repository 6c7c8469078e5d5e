use anyhow::{bail, Result};

use crate::cli::{LockArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn lock(_args: &LockArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft lock` is not implemented yet (issue 2)")
}
