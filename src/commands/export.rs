use anyhow::{bail, Result};

use crate::cli::{ExportArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn export(_args: &ExportArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft export` is not implemented yet (issue 2)")
}
