//! Output images for the commands that write into a guest (`copy-in`, `inject`): where the
//! result goes (a standalone copy, a qcow2 overlay, another format, or the input itself
//! with `--in-place`), and how it gets there safely.
//!
//! Every output except `--in-place` is written under a temporary name in the output's
//! directory (`.NAME.graft-PID.tmp`), flushed, and renamed over NAME only when complete:
//! an interrupted run (kill -9, disk full) leaves no file under NAME, and the input is
//! only ever read. A conversion first fills a sparse raw scratch file beside the output,
//! writes into it, and then encodes the requested container from it.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::{ImageFormat as FormatArg, OutputArgs, VhdType};
use crate::disk::{self, Access, BlockDevice, ImageFormat};
use crate::fs::ext4::{Ext4Writer, Report};

/// How the output is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    InPlace,
    /// A byte-identical, hole-preserving copy of the input, then written through.
    Copy,
    /// A qcow2 whose backing file is the input.
    Overlay,
    /// Another container format.
    Convert,
}

/// Where and how the result is written.
#[derive(Debug, Clone)]
pub struct Destination {
    pub path: PathBuf,
    pub format: ImageFormat,
    pub mode: Mode,
}

/// Works out the destination from the output options and the input's format.
pub fn destination(input: &Path, args: &OutputArgs) -> Result<Destination> {
    let input_format = disk::image_info(input)
        .with_context(|| format!("reading {}", input.display()))?
        .format;
    if args.in_place {
        if args.format.is_some_and(|f| !same_family(f, input_format)) {
            bail!("--in-place cannot change the format ({} is {}); write a new image with -o OUT --format", input.display(), input_format.name());
        }
        return Ok(Destination {
            path: input.to_path_buf(),
            format: input_format,
            mode: Mode::InPlace,
        });
    }
    let path = args
        .output
        .clone()
        .context("give -o OUT, or --in-place to modify the input itself")?;
    if same_file(input, &path) {
        bail!(
            "-o {} is the input image; pass --in-place to modify it",
            path.display()
        );
    }
    if args.overlay {
        if args.format.is_some_and(|f| f != FormatArg::Qcow2) {
            bail!("--overlay writes a qcow2 (backed by the input); drop --format or use --format qcow2");
        }
        if !matches!(input_format, ImageFormat::Qcow2 | ImageFormat::Raw) {
            bail!(
                "--overlay needs a qcow2 or raw base, {} is {}; convert it first (graft inject -o base.qcow2 --format qcow2 is not an overlay) or drop --overlay",
                input.display(),
                input_format.name()
            );
        }
        return Ok(Destination {
            path,
            format: ImageFormat::Qcow2,
            mode: Mode::Overlay,
        });
    }
    let format = match args.format {
        None => input_format,
        Some(FormatArg::Raw) => ImageFormat::Raw,
        Some(FormatArg::Qcow2) => ImageFormat::Qcow2,
        Some(FormatArg::Vhd) => match args.vhd_type {
            VhdType::Fixed => ImageFormat::VhdFixed,
            VhdType::Dynamic => ImageFormat::VhdDynamic,
        },
    };
    let mode = if format == input_format {
        Mode::Copy
    } else {
        Mode::Convert
    };
    Ok(Destination { path, format, mode })
}

fn same_family(f: FormatArg, g: ImageFormat) -> bool {
    matches!(
        (f, g),
        (FormatArg::Raw, ImageFormat::Raw)
            | (FormatArg::Qcow2, ImageFormat::Qcow2)
            | (
                FormatArg::Vhd,
                ImageFormat::VhdFixed | ImageFormat::VhdDynamic
            )
    )
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// A byte-counting progress bar on a terminal's stderr, or none (quiet, or not a terminal):
/// CI logs get the summary, not redraws.
pub fn byte_bar(
    global: &crate::cli::GlobalArgs,
    total: u64,
    message: &'static str,
) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if global.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_message(message);
    Some(bar)
}

/// What writing into the root filesystem changed.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub output: PathBuf,
    pub format: &'static str,
    pub mode: Mode,
    /// `partition N` or `whole disk`.
    pub filesystem: String,
    pub report: Report,
    /// 4 KiB blocks of the virtual disk that were written.
    pub disk_blocks_written: u64,
    /// Allocation units of the output container that were written (qcow2 clusters, VHD
    /// blocks; 4 KiB for raw and fixed VHD).
    pub clusters_written: u64,
    pub cluster_size: u64,
}

/// A temporary file beside `final_path`, removed on drop unless committed.
struct TempOut {
    tmp: PathBuf,
    final_path: PathBuf,
    done: bool,
}

impl TempOut {
    fn new(final_path: &Path, tag: &str) -> TempOut {
        let dir = final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let tmp = dir.join(format!(".{name}.graft-{}{tag}.tmp", std::process::id()));
        // A leftover of an earlier run of the same process id is ours to replace.
        let _ = std::fs::remove_file(&tmp);
        TempOut {
            tmp,
            final_path: final_path.to_path_buf(),
            done: false,
        }
    }

    fn commit(mut self) -> io::Result<()> {
        std::fs::File::open(&self.tmp)?.sync_all()?;
        std::fs::rename(&self.tmp, &self.final_path)?;
        if let Some(dir) = self
            .final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            // The rename itself must reach the disk.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Records which 4 KiB blocks of the virtual disk are written.
struct Tracked<'a> {
    inner: &'a mut dyn BlockDevice,
    blocks: BTreeSet<u64>,
}

impl BlockDevice for Tracked<'_> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)?;
        if !buf.is_empty() {
            let first = offset / 4096;
            let last = (offset + buf.len() as u64 - 1) / 4096;
            self.blocks.extend(first..=last);
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens `image`'s root ext2/3/4 filesystem for writing, runs `edit`, commits and flushes.
/// Returns `edit`'s value, the writer's report, where the filesystem is, and the 4 KiB
/// disk blocks written. `label` names the image in messages (the output, not a temp name).
pub fn edit_root_fs<T>(
    image: &Path,
    label: &Path,
    edit: impl FnOnce(&mut Ext4Writer) -> Result<T>,
) -> Result<(T, Report, String, BTreeSet<u64>)> {
    let layout = crate::guest::layout::open(image)
        .with_context(|| format!("opening {}", label.display()))?;
    let Some(root) = layout.root.clone() else {
        bail!(
            "{}: no root filesystem found: {}",
            label.display(),
            layout.problems.join("; ")
        );
    };
    if !root.filesystem.is_ext() {
        bail!(
            "{}: the root filesystem is {}, graft writes only ext2/3/4",
            label.display(),
            root.filesystem.name()
        );
    }
    let regions = layout.regions.clone();
    drop(layout);
    let mut dev = disk::open_image(image, Access::ReadWrite)
        .with_context(|| format!("opening {} for writing", label.display()))?;
    let mut tracked = Tracked {
        inner: &mut *dev,
        blocks: BTreeSet::new(),
    };
    let (value, report) = {
        let mut region = crate::guest::layout::root_region(&mut tracked, &regions, &root)
            .with_context(|| format!("{}: root partition", label.display()))?;
        let mut w = Ext4Writer::open(&mut region).with_context(|| {
            format!(
                "{}: opening the root filesystem ({})",
                label.display(),
                root.reason
            )
        })?;
        let value = edit(&mut w)?;
        let report = w
            .commit()
            .with_context(|| format!("{}: writing the filesystem metadata", label.display()))?;
        (value, report)
    };
    tracked
        .flush()
        .with_context(|| format!("flushing {}", label.display()))?;
    let blocks = std::mem::take(&mut tracked.blocks);
    drop(tracked);
    drop(dev);
    let where_ = if root.partition == 0 {
        "whole disk".to_string()
    } else {
        format!("partition {}", root.partition)
    };
    Ok((value, report, where_, blocks))
}

/// Writes into the root filesystem of `input`'s output as `dest` says. `epoch` dates a
/// new VHD footer (never the clock).
pub fn write_image<T>(
    input: &Path,
    dest: &Destination,
    epoch: Option<i64>,
    edit: impl FnOnce(&mut Ext4Writer) -> Result<T>,
) -> Result<(T, Written)> {
    let out = &dest.path;
    let (value, report, filesystem, blocks) = match dest.mode {
        Mode::InPlace => edit_root_fs(input, input, edit)?,
        Mode::Copy => {
            let tmp = TempOut::new(out, "");
            // A reflink or sparse copy: unchanged clusters stay byte-identical.
            disk::copy_image(input, &tmp.tmp)
                .with_context(|| format!("copying {} to {}", input.display(), out.display()))?;
            let r = edit_root_fs(&tmp.tmp, out, edit)?;
            finish(&tmp.tmp, dest.format, out)?;
            tmp.commit()
                .with_context(|| format!("renaming into {}", out.display()))?;
            r
        }
        Mode::Overlay => {
            let tmp = TempOut::new(out, "");
            disk::create_qcow2_overlay(input, &tmp.tmp).with_context(|| {
                format!(
                    "creating the overlay {} on {}",
                    out.display(),
                    input.display()
                )
            })?;
            let r = edit_root_fs(&tmp.tmp, out, edit)?;
            finish(&tmp.tmp, dest.format, out)?;
            tmp.commit()
                .with_context(|| format!("renaming into {}", out.display()))?;
            r
        }
        Mode::Convert => {
            let scratch = TempOut::new(out, "-raw");
            fill_raw(input, &scratch.tmp).with_context(|| {
                format!(
                    "unpacking {} into {}",
                    input.display(),
                    scratch.tmp.display()
                )
            })?;
            let r = edit_root_fs(&scratch.tmp, out, edit)?;
            let tmp = TempOut::new(out, "");
            let src = disk::RawFile::open(&scratch.tmp, false)
                .with_context(|| format!("reading {}", scratch.tmp.display()))?;
            let identity = disk::vhd::VhdIdentity {
                epoch,
                uuid_seed: None,
            };
            match dest.format {
                ImageFormat::Raw => std::fs::rename(&scratch.tmp, &tmp.tmp)
                    .with_context(|| format!("renaming {}", scratch.tmp.display()))?,
                ImageFormat::Qcow2 => disk::create_qcow2_from(&src, &tmp.tmp)
                    .with_context(|| format!("writing {}", out.display()))?,
                ImageFormat::VhdFixed => disk::vhd::create_fixed(&src, &tmp.tmp, &identity)
                    .with_context(|| format!("writing {}", out.display()))?,
                ImageFormat::VhdDynamic => disk::vhd::create_dynamic(&src, &tmp.tmp, &identity)
                    .with_context(|| format!("writing {}", out.display()))?,
            }
            drop(src);
            finish(&tmp.tmp, dest.format, out)?;
            tmp.commit()
                .with_context(|| format!("renaming into {}", out.display()))?;
            drop(scratch);
            r
        }
    };
    let cluster_size = match dest.format {
        ImageFormat::Qcow2 => disk::image_info(out)
            .ok()
            .and_then(|i| i.cluster_size)
            .unwrap_or(65536),
        ImageFormat::VhdDynamic => disk::vhd::DEFAULT_BLOCK_SIZE as u64,
        _ => 4096,
    };
    let clusters: BTreeSet<u64> = blocks.iter().map(|b| b * 4096 / cluster_size).collect();
    let written = Written {
        output: out.clone(),
        format: dest.format.name(),
        mode: dest.mode,
        filesystem,
        report,
        disk_blocks_written: blocks.len() as u64,
        clusters_written: clusters.len() as u64,
        cluster_size,
    };
    Ok((value, written))
}

/// Last touches before the rename: a qcow2's feature name table in a fixed order.
fn finish(tmp: &Path, format: ImageFormat, out: &Path) -> Result<()> {
    if format == ImageFormat::Qcow2 {
        disk::qcow2::sort_feature_name_table(tmp)
            .with_context(|| format!("finishing {}", out.display()))?;
    }
    Ok(())
}

/// Copies `input`'s virtual disk into a new sparse raw file (zero chunks left as holes).
fn fill_raw(input: &Path, raw: &Path) -> Result<()> {
    let src = disk::open_image(input, Access::ReadOnly)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(raw)?;
    f.set_len(src.len())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    use std::os::unix::fs::FileExt;
    while off < src.len() {
        let n = (src.len() - off).min(buf.len() as u64) as usize;
        src.read_at(&mut buf[..n], off)?;
        if buf[..n].iter().any(|&b| b != 0) {
            f.write_all_at(&buf[..n], off)?;
        }
        off += n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// The report's few lines (uv style), for copy-in and inject.
pub fn print_report(w: &Written, what: &str) {
    let r = &w.report;
    eprintln!(
        "{what} {} files ({} bytes), {} directories, {} symlinks into {} ({}, {})",
        r.files,
        r.bytes,
        r.directories,
        r.symlinks,
        w.output.display(),
        w.format,
        w.filesystem
    );
    if r.replaced > 0 {
        eprintln!("  {} existing files replaced", r.replaced);
    }
    for d in &r.existing_dirs_changed {
        eprintln!("  existing directory {d} received entries");
    }
    eprintln!(
        "  {} filesystem blocks and {} inodes allocated, {} metadata blocks written",
        r.blocks_allocated, r.inodes_allocated, r.metadata_blocks_written
    );
    eprintln!(
        "  {} disk blocks of 4 KiB written, in {} clusters of {} KiB",
        w.disk_blocks_written,
        w.clusters_written,
        w.cluster_size / 1024
    );
}
