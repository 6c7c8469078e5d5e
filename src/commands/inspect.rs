use anyhow::{bail, Result};

use crate::cli::{InspectArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn inspect(_args: &InspectArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft inspect` is not implemented yet (issue 4)")
}
