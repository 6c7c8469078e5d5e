use std::io::Write;

use anyhow::{anyhow, Context, Result};

use crate::cli::{CatArgs, GlobalArgs};
use crate::commands::Outcome;
use crate::guest::layout;

pub fn cat(args: &CatArgs, _global: &GlobalArgs) -> Result<Outcome> {
    let l = layout::open(&args.image)?;
    let guest = l.guest.as_ref().ok_or_else(|| {
        anyhow!(
            "{}: no readable root filesystem: {}",
            args.image.display(),
            l.problems.join("; ")
        )
    })?;
    let bytes = guest
        .read(&args.path)
        .with_context(|| format!("{}", args.image.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(Outcome::Ok)
}
