//! From an image file to the guest's root filesystem: container → partition table →
//! what each region holds → which region is the root, and why.

use std::path::Path;
use std::rc::Rc;

use serde::Serialize;

use crate::disk::{self, Access, BlockDevice, ImageInfo, Region};
use crate::fs::probe::{self, FsInfo, FsKind};
use crate::partition::{self, Partition, PartitionTable, TableKind};

use super::guestfs::Guest;

/// A partition (or the whole disk) with what was found in it.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    #[serde(flatten)]
    pub partition: Partition,
    /// `ext4`, `xfs`, `vfat`, `swap`, `lvm2-pv`, `luks`, ...; null when nothing is recognised.
    pub filesystem: Option<FsKind>,
    pub fs_label: Option<String>,
    pub fs_uuid: Option<String>,
}

/// Which region is the root filesystem, and why graft thinks so.
#[derive(Debug, Clone, Serialize)]
pub struct RootChoice {
    /// Index into the table (`partition` field of the region; 0 for a whole disk).
    pub partition: u32,
    pub filesystem: FsKind,
    pub reason: String,
}

/// An opened image with its layout resolved.
pub struct Layout {
    pub device: Rc<dyn BlockDevice>,
    pub info: ImageInfo,
    pub table: PartitionTable,
    pub regions: Vec<RegionReport>,
    pub root: Option<RootChoice>,
    /// The root filesystem, when it is one graft reads (ext2/3/4).
    pub guest: Option<Guest>,
    /// Why no guest filesystem could be opened, when none was.
    pub problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error("{path}: partition table")]
    Partition {
        path: String,
        #[source]
        source: partition::PartitionError,
    },
}

/// Opens `path` read-only and works out its layout.
pub fn open(path: &Path) -> Result<Layout, LayoutError> {
    let (dev, info) = disk::open_image_with_info(path, Access::ReadOnly)?;
    let device: Rc<dyn BlockDevice> = Rc::from(dev);
    let table = partition::scan(&*device).map_err(|source| LayoutError::Partition {
        path: path.display().to_string(),
        source,
    })?;
    let regions = probe_regions(&*device, &table);
    let mut problems = Vec::new();
    let (root, guest) = find_root(&device, &table, &regions, &mut problems);
    Ok(Layout {
        device,
        info,
        table,
        regions,
        root,
        guest,
        problems,
    })
}

/// Probes each partition (a read-only window of the device) for its filesystem.
pub fn probe_regions(dev: &dyn BlockDevice, table: &PartitionTable) -> Vec<RegionReport> {
    table
        .partitions
        .iter()
        .map(|p| {
            let info: Option<FsInfo> = if p.is_extended() {
                None
            } else {
                ReadOnlyWindow {
                    dev,
                    start: p.start,
                    len: p.size,
                }
                .probe()
            };
            RegionReport {
                partition: p.clone(),
                filesystem: info.as_ref().map(|i| i.kind),
                fs_label: info.as_ref().and_then(|i| i.label.clone()),
                fs_uuid: info.and_then(|i| i.uuid),
            }
        })
        .collect()
}

/// A read-only [`Region`] over a shared device (`Region` needs `&mut`).
struct ReadOnlyWindow<'a> {
    dev: &'a dyn BlockDevice,
    start: u64,
    len: u64,
}

impl ReadOnlyWindow<'_> {
    fn probe(&self) -> Option<FsInfo> {
        probe::probe_info(self)
    }
}

impl BlockDevice for ReadOnlyWindow<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        disk::check_range(offset, buf.len(), self.len)?;
        self.dev.read_at(buf, self.start + offset)
    }
    fn write_at(&mut self, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "read-only window",
        ))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Picks the root filesystem:
/// 1. a GPT partition typed "Linux root" for some architecture;
/// 2. else the ext2/3/4 filesystems that contain `/etc/os-release` (or
///    `/usr/lib/os-release`) — the only one, or the largest;
/// 3. else the only Linux-capable filesystem (xfs, btrfs: named, not readable by graft).
pub fn find_root(
    dev: &Rc<dyn BlockDevice>,
    table: &PartitionTable,
    regions: &[RegionReport],
    problems: &mut Vec<String>,
) -> (Option<RootChoice>, Option<Guest>) {
    let load = |r: &RegionReport, problems: &mut Vec<String>| -> Option<Guest> {
        match Guest::load(Rc::clone(dev), r.partition.start, r.partition.size) {
            Ok(g) => Some(g),
            Err(e) => {
                problems.push(format!("partition {}: {e}", r.partition.index));
                None
            }
        }
    };
    let whole = table.kind == TableKind::None;
    let describe = |r: &RegionReport| {
        if whole {
            "the whole disk (no partition table)".to_string()
        } else {
            format!("partition {}", r.partition.index)
        }
    };

    if let Some((p, reason)) = partition::find_root_by_type(table) {
        if let Some(r) = regions.iter().find(|r| r.partition.index == p.index) {
            if let Some(fs) = r.filesystem {
                let guest = if fs.is_ext() { load(r, problems) } else { None };
                return (
                    Some(RootChoice {
                        partition: p.index,
                        filesystem: fs,
                        reason,
                    }),
                    guest,
                );
            }
            problems.push(format!(
                "partition {} has a Linux root type but no filesystem graft recognises",
                p.index
            ));
        }
    }

    let ext: Vec<&RegionReport> = regions
        .iter()
        .filter(|r| r.filesystem.is_some_and(FsKind::is_ext))
        .collect();
    let mut with_os: Vec<(&RegionReport, Guest)> = Vec::new();
    for r in &ext {
        if let Some(g) = load(r, problems) {
            if g.exists("/etc/os-release") || g.exists("/usr/lib/os-release") {
                with_os.push((r, g));
            }
        }
    }
    if !with_os.is_empty() {
        let n = with_os.len();
        let total_ext = ext.len();
        with_os.sort_by_key(|(r, _)| {
            std::cmp::Reverse((r.partition.size, std::cmp::Reverse(r.partition.index)))
        });
        let (r, g) = with_os.into_iter().next().unwrap();
        let fs = r.filesystem.unwrap();
        let reason = if n == 1 && total_ext == 1 {
            format!(
                "{} holds the only {} filesystem, and it has /etc/os-release",
                describe(r),
                fs.name()
            )
        } else if n == 1 {
            format!(
                "{} is the only one of {total_ext} ext filesystems with /etc/os-release",
                describe(r)
            )
        } else {
            format!(
                "{} is the largest of {n} filesystems with /etc/os-release",
                describe(r)
            )
        };
        return (
            Some(RootChoice {
                partition: r.partition.index,
                filesystem: fs,
                reason,
            }),
            Some(g),
        );
    }

    let linux: Vec<&RegionReport> = regions
        .iter()
        .filter(|r| r.filesystem.is_some_and(FsKind::is_linux_root_capable))
        .collect();
    if linux.len() == 1 {
        let r = linux[0];
        let fs = r.filesystem.unwrap();
        let reason = if fs.is_ext() {
            format!(
                "{} holds the only Linux filesystem ({}), though it has no /etc/os-release",
                describe(r),
                fs.name()
            )
        } else {
            format!(
                "{} holds the only Linux filesystem ({}); graft cannot read {} yet",
                describe(r),
                fs.name(),
                fs.name()
            )
        };
        let guest = if fs.is_ext() { load(r, problems) } else { None };
        return (
            Some(RootChoice {
                partition: r.partition.index,
                filesystem: fs,
                reason,
            }),
            guest,
        );
    }
    if linux.is_empty() {
        let hidden: Vec<String> = regions
            .iter()
            .filter(|r| matches!(r.filesystem, Some(FsKind::LvmPv | FsKind::Luks)))
            .map(|r| {
                format!(
                    "partition {} is {}",
                    r.partition.index,
                    r.filesystem.unwrap().name()
                )
            })
            .collect();
        if hidden.is_empty() {
            problems.push("no Linux filesystem found in any partition".into());
        } else {
            problems.push(format!(
                "no Linux filesystem found directly; {} (graft reads neither LVM nor LUKS)",
                hidden.join(", ")
            ));
        }
    } else {
        problems.push(format!(
            "{} Linux filesystems and none has /etc/os-release: cannot tell which is the root",
            linux.len()
        ));
    }
    (None, None)
}

/// The root filesystem's region as a writable window of `dev` (for writers).
pub fn root_region<'a>(
    dev: &'a mut dyn BlockDevice,
    regions: &[RegionReport],
    root: &RootChoice,
) -> std::io::Result<Region<'a>> {
    let r = regions
        .iter()
        .find(|r| r.partition.index == root.partition)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "root partition not in the table",
            )
        })?;
    Region::new(dev, r.partition.start, r.partition.size)
}
