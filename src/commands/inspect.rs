use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{GlobalArgs, InspectArgs};
use crate::commands::Outcome;
use crate::disk::{self, Access, ImageInfo};
use crate::guest::inspect::{self as facts, GuestFacts};
use crate::guest::layout;
use crate::guest::{RegionReport, RootChoice};
use crate::partition::TableKind;

/// Version of the `graft inspect --json` document; bumped only on incompatible changes.
pub const INSPECT_SCHEMA: u32 = 1;

#[derive(Serialize)]
struct ImageReport<'a> {
    path: String,
    #[serde(flatten)]
    info: &'a ImageInfo,
}

#[derive(Serialize)]
struct TableReport<'a> {
    kind: TableKind,
    sector_size: u64,
    disk_id: &'a Option<String>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct Report<'a> {
    schema: u32,
    image: ImageReport<'a>,
    partition_table: TableReport<'a>,
    partitions: &'a [RegionReport],
    root: &'a Option<RootChoice>,
    #[serde(flatten)]
    guest: &'a GuestFacts,
    problems: &'a [String],
}

pub fn inspect(args: &InspectArgs, global: &GlobalArgs) -> Result<Outcome> {
    if args.read_all {
        return read_all(args);
    }
    let l = layout::open(&args.image)?;
    let guest_facts = l.guest.as_ref().map(facts::inspect).unwrap_or_default();
    let report = Report {
        schema: INSPECT_SCHEMA,
        image: ImageReport {
            path: args.image.display().to_string(),
            info: &l.info,
        },
        partition_table: TableReport {
            kind: l.table.kind,
            sector_size: l.table.sector_size,
            disk_id: &l.table.disk_id,
            notes: &l.table.notes,
        },
        partitions: &l.regions,
        root: &l.root,
        guest: &guest_facts,
        problems: &l.problems,
    };
    let mut out = std::io::stdout().lock();
    if global.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &report)?;
    }
    Ok(Outcome::Ok)
}

fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_human(out: &mut impl Write, r: &Report) -> Result<()> {
    let i = r.image.info;
    let mut fmt = i.format.name().to_string();
    if let (Some(v), Some(cs)) = (i.qcow2_version, i.cluster_size) {
        fmt = format!("{fmt} (v{v}, {} clusters)", size(cs));
    }
    writeln!(
        out,
        "image       {}: {fmt}, virtual {}, allocated {}",
        r.image.path,
        size(i.virtual_size),
        size(i.allocated_size)
    )?;
    for b in &i.backing_chain {
        writeln!(
            out,
            "backing     {} ({})",
            b.path.display(),
            b.format.name()
        )?;
    }
    let t = &r.partition_table;
    let kind = match t.kind {
        TableKind::Gpt => "gpt",
        TableKind::Mbr => "mbr",
        TableKind::None => "none",
    };
    writeln!(
        out,
        "table       {kind} ({}-byte sectors){}",
        t.sector_size,
        t.disk_id
            .as_ref()
            .map(|d| format!(", id {d}"))
            .unwrap_or_default()
    )?;
    for note in t.notes {
        writeln!(out, "  note: {note}")?;
    }
    for p in r.partitions {
        let fs = p.filesystem.map(|f| f.name()).unwrap_or("-");
        let label = p
            .fs_label
            .as_ref()
            .map(|l| format!(" \"{l}\""))
            .unwrap_or_default();
        let is_root = r
            .root
            .as_ref()
            .is_some_and(|root| root.partition == p.partition.index);
        writeln!(
            out,
            "  {:>3}  start {:>10}  size {:>10}  {:<24} {fs}{label}{}",
            p.partition.index,
            size(p.partition.start),
            size(p.partition.size),
            p.partition.type_name,
            if is_root { "  (root)" } else { "" }
        )?;
    }
    match r.root {
        Some(root) => writeln!(
            out,
            "root        partition {} ({}): {}",
            root.partition,
            root.filesystem.name(),
            root.reason
        )?,
        None => writeln!(out, "root        not found")?,
    }
    let g = r.guest;
    if let Some(os) = &g.os {
        writeln!(
            out,
            "os          {} [{} {}]",
            os.pretty_name.as_deref().unwrap_or("?"),
            os.id.as_deref().unwrap_or("?"),
            os.version_id.as_deref().unwrap_or("?")
        )?;
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "python      {}{}",
        dash(&g.python.default),
        if g.python.versions.is_empty() {
            String::new()
        } else {
            format!(" (found: {})", g.python.versions.join(", "))
        }
    )?;
    writeln!(out, "glibc       {}", dash(&g.glibc))?;
    writeln!(
        out,
        "arch        {}{}",
        dash(&g.architecture),
        g.architecture_from
            .as_ref()
            .map(|p| format!(" (ELF header of {p})"))
            .unwrap_or_default()
    )?;
    writeln!(out, "init        {}", dash(&g.init))?;
    match &g.cloud_init {
        Some(c) => writeln!(
            out,
            "cloud-init  {} ({})",
            c.version.as_deref().unwrap_or("present, version unknown"),
            c.found_at
        )?,
        None => writeln!(out, "cloud-init  -")?,
    }
    writeln!(
        out,
        "selinux     {}",
        g.selinux.as_deref().unwrap_or("- (no /etc/selinux/config)")
    )?;
    for p in r.problems {
        writeln!(out, "problem     {p}")?;
    }
    Ok(())
}

/// Reads every byte of the virtual disk (for `bench/read-qcow2.sh`).
fn read_all(args: &InspectArgs) -> Result<Outcome> {
    let dev = disk::open_image(&args.image, Access::ReadOnly)
        .with_context(|| format!("opening {}", args.image.display()))?;
    let started = Instant::now();
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    while off < dev.len() {
        let n = (dev.len() - off).min(buf.len() as u64) as usize;
        dev.read_at(&mut buf[..n], off)
            .with_context(|| format!("reading {} at {off}", args.image.display()))?;
        off += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("read {off} bytes in {secs:.3} s");
    Ok(Outcome::Ok)
}
