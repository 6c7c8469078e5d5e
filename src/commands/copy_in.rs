use anyhow::{bail, Result};

use crate::cli::{CopyInArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn copy_in(_args: &CopyInArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft copy-in` is not implemented yet (issue 5)")
}
