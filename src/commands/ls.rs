use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::{GlobalArgs, LsArgs};
use crate::commands::{readable_guest, Outcome};
use crate::guest::{layout, DirEntry, FileKind};

pub fn ls(args: &LsArgs, global: &GlobalArgs) -> Result<Outcome> {
    let l = layout::open(&args.image)?;
    let guest = readable_guest(&l, &args.image)?;
    let ctx = || format!("{}", args.image.display());
    // Like ls: a directory (or a link to one) is listed; anything else is shown itself.
    let st = guest.stat(&args.path).with_context(ctx)?;
    let entries = if st.kind == FileKind::Dir {
        guest.read_dir(&args.path).with_context(ctx)?
    } else {
        let lst = guest.lstat(&args.path).with_context(ctx)?;
        let link_target = if lst.kind == FileKind::Symlink {
            Some(guest.read_link(&args.path).with_context(ctx)?)
        } else {
            None
        };
        vec![DirEntry {
            name: args.path.clone(),
            stat: lst,
            link_target,
        }]
    };
    let mut out = std::io::stdout().lock();
    if global.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    for e in &entries {
        if args.long {
            let link = e
                .link_target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{} {:>5} {:>5} {:>10} {}{link}",
                e.stat.mode_string(),
                e.stat.uid,
                e.stat.gid,
                e.stat.size,
                e.name
            )?;
        } else {
            writeln!(out, "{}", e.name)?;
        }
    }
    Ok(Outcome::Ok)
}
