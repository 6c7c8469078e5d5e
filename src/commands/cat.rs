use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{CatArgs, GlobalArgs};
use crate::commands::{readable_guest, Outcome};
use crate::guest::layout;

pub fn cat(args: &CatArgs, _global: &GlobalArgs) -> Result<Outcome> {
    let l = layout::open(&args.image)?;
    let guest = readable_guest(&l, &args.image)?;
    let bytes = guest
        .read(&args.path)
        .with_context(|| format!("{}", args.image.display()))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(Outcome::Ok)
}
