use anyhow::{bail, Result};

use crate::cli::{VerifyArgs, GlobalArgs};
use crate::commands::Outcome;

pub fn verify(_args: &VerifyArgs, _global: &GlobalArgs) -> Result<Outcome> {
    bail!("`graft verify` is not implemented yet (issue 6)")
}
