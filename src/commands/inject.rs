use anyhow::{bail, Result};

use crate::cli::{InjectArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn inject(_args: &InjectArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft inject` is not implemented yet (issue 6)")
}
