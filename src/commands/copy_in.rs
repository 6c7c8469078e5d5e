//! `graft copy-in`: copy a host directory tree into an ext2/3/4 filesystem of an image.

use std::fs::File;
use std::io::Read;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::{CopyInArgs, GlobalArgs};
use crate::commands::output;
use crate::commands::Outcome;
use crate::fs::ext4::{Ext4Writer, Meta, Needs};

/// One thing to create, relative to the guest directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Dir {
        rel: String,
        mode: u16,
    },
    File {
        rel: String,
        mode: u16,
        size: u64,
        host: PathBuf,
    },
    Symlink {
        rel: String,
        target: Vec<u8>,
    },
}

/// Walks `host_dir` in name order (so the result does not depend on readdir order).
pub fn scan_tree(host_dir: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let walker = walkdir::WalkDir::new(host_dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.with_context(|| format!("reading {}", host_dir.display()))?;
        let rel_path = entry.path().strip_prefix(host_dir).expect("under root");
        let Some(rel) = rel_path.to_str() else {
            bail!("{}: file names must be UTF-8", entry.path().display());
        };
        let rel = rel.to_string();
        let md = entry
            .path()
            .symlink_metadata()
            .with_context(|| format!("stat {}", entry.path().display()))?;
        let mode = (md.permissions().mode() & 0o7777) as u16;
        let ft = md.file_type();
        if ft.is_dir() {
            items.push(Item::Dir { rel, mode });
        } else if ft.is_file() {
            items.push(Item::File {
                rel,
                mode,
                size: md.len(),
                host: entry.path().to_path_buf(),
            });
        } else if ft.is_symlink() {
            let t = std::fs::read_link(entry.path())
                .with_context(|| format!("readlink {}", entry.path().display()))?;
            items.push(Item::Symlink {
                rel,
                target: t.as_os_str().as_encoded_bytes().to_vec(),
            });
        } else {
            bail!(
                "{}: only directories, regular files and symlinks can be copied",
                entry.path().display()
            );
        }
    }
    Ok(items)
}

/// Blocks and inodes the items need in the worst case (checked before writing anything),
/// the missing directories of `guest_dir` included.
pub fn needs(w: &mut Ext4Writer, items: &[Item], guest_dir: &str) -> Result<Needs> {
    let mut n = Needs::default();
    let comps: Vec<&str> = guest_dir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut existing = 0;
    for k in (0..=comps.len()).rev() {
        if w.lookup(&format!("/{}", comps[..k].join("/")))?.is_some() {
            existing = k;
            break;
        }
    }
    let missing = (comps.len() - existing) as u64;
    if missing > 0 {
        n.inodes += missing;
        n.blocks += missing + w.dir_growth_blocks(1, comps[existing].len() as u64);
    }
    let mut names = std::collections::BTreeMap::<&str, (u64, u64)>::new();
    for it in items {
        let rel = match it {
            Item::Dir { rel, .. } | Item::File { rel, .. } | Item::Symlink { rel, .. } => {
                rel.as_str()
            }
        };
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let e = names.entry(parent).or_default();
        e.0 += 1;
        e.1 += name.len() as u64;
        n.inodes += 1;
        n.blocks += match it {
            Item::Dir { .. } => 1,
            Item::File { size, .. } => w.file_blocks(*size),
            Item::Symlink { target, .. } => w.symlink_blocks(target.len()),
        };
    }
    for (count, bytes) in names.values() {
        n.blocks += w.dir_growth_blocks(*count, *bytes);
    }
    Ok(n)
}

/// Copies `items` from the host into `guest_dir` (created if missing).
#[allow(clippy::too_many_arguments)]
pub fn copy_tree(
    w: &mut Ext4Writer,
    items: &[Item],
    guest_dir: &str,
    uid: u32,
    gid: u32,
    epoch: i64,
    replace: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<()> {
    let base = guest_dir.trim_end_matches('/');
    let dir_meta = Meta::new(0o755, uid, gid, epoch);
    w.mkdir_p(base, &dir_meta)
        .with_context(|| format!("creating {guest_dir} in the filesystem"))?;
    for it in items {
        match it {
            Item::Dir { rel, mode } => {
                w.mkdir_p(&format!("{base}/{rel}"), &Meta::new(*mode, uid, gid, epoch))
                    .with_context(|| format!("creating directory {base}/{rel}"))?;
            }
            Item::File {
                rel,
                mode,
                size,
                host,
            } => {
                let f = File::open(host).with_context(|| format!("opening {}", host.display()))?;
                // The writer reads in chunks of up to 1 MiB itself: no buffering needed.
                let mut r = f.take(*size + 1);
                w.create_file(
                    &format!("{base}/{rel}"),
                    &Meta::new(*mode, uid, gid, epoch),
                    *size,
                    &mut r,
                    replace,
                )
                .with_context(|| format!("copying {} to {base}/{rel}", host.display()))?;
                if let Some(p) = progress {
                    p.inc(*size);
                }
            }
            Item::Symlink { rel, target } => {
                w.symlink(
                    &format!("{base}/{rel}"),
                    target,
                    &Meta::new(0o777, uid, gid, epoch),
                    replace,
                )
                .with_context(|| format!("creating symlink {base}/{rel}"))?;
            }
        }
    }
    Ok(())
}

fn parse_owner(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s
        .split_once(':')
        .with_context(|| format!("--owner {s:?}: expected UID:GID, e.g. 0:0"))?;
    Ok((
        u.parse()
            .with_context(|| format!("--owner {s:?}: bad uid"))?,
        g.parse()
            .with_context(|| format!("--owner {s:?}: bad gid"))?,
    ))
}

pub fn copy_in(args: &CopyInArgs, global: &GlobalArgs) -> Result<Outcome> {
    let (uid, gid) = parse_owner(&args.owner)?;
    if !args.guest_dir.starts_with('/') {
        bail!(
            "GUEST_DIR {:?} must be absolute, e.g. /opt/agent",
            args.guest_dir
        );
    }
    let items = scan_tree(&args.host_dir)?;
    let total: u64 = items
        .iter()
        .map(|i| {
            if let Item::File { size, .. } = i {
                *size
            } else {
                0
            }
        })
        .sum();
    let bar = output::byte_bar(global, total, "copying");
    let dest = output::destination(&args.image, &args.out)?;
    let label = dest.path.clone();
    let result = output::write_image(&args.image, &dest, Some(args.epoch), |w| {
        let n = needs(w, &items, &args.guest_dir)?;
        w.check_space(&n)
            .with_context(|| format!("{}: checking free space", label.display()))?;
        copy_tree(
            w,
            &items,
            &args.guest_dir,
            uid,
            gid,
            args.epoch,
            args.replace,
            bar.as_ref(),
        )
    });
    // Cleared before any error is printed, so the message starts on its own line.
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let ((), written) = result?;
    if global.json {
        let v = serde_json::json!({
            "image": written.output,
            "filesystem": written.filesystem,
            "guest_dir": args.guest_dir,
            "report": written.report,
            "output": written,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !global.quiet {
        output::print_report(&written, "Copied");
    }
    Ok(Outcome::Ok)
}
