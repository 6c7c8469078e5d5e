//! Recognising what a region holds by its magic numbers, as blkid does: named even where
//! graft cannot read or write it.
//!
//! Where each magic lives:
//! - ext2/3/4: superblock at 1024, `s_magic` 0xEF53 at +56; the generation is told by the
//!   feature flags (<https://www.kernel.org/doc/html/latest/filesystems/ext4/super.html>):
//!   ext4 has incompatible or read-only features ext3 does not know, ext3 has a journal.
//! - XFS: `XFSB` at 0 (XFS Algorithms & Data Structures, "Superblocks").
//! - btrfs: `_BHRfS_M` at 0x10040 (btrfs on-disk format, "Superblock").
//! - NTFS: `NTFS    ` OEM id at 3 of the boot sector.
//! - FAT: boot signature 0x55AA at 510 and `FAT12`/`FAT16` at 54 or `FAT32` at 82.
//! - Linux swap: `SWAPSPACE2` (or `SWAP-SPACE`) in the last 10 bytes of the first page.
//! - LVM2 PV: `LABELONE` in one of the first four sectors, `LVM2 001` at +24.
//! - LUKS (1 and 2): `LUKS\xba\xbe` at 0.
//!
//! Every read is bounded and a failed read means "not this kind", so hostile or short
//! regions give `None`, never a panic.

use serde::Serialize;

use crate::disk::BlockDevice;

/// A filesystem or container found in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Ntfs,
    Vfat,
    Swap,
    #[serde(rename = "lvm2-pv")]
    LvmPv,
    Luks,
}

impl FsKind {
    /// The name blkid would print (`ext4`, `vfat`, `LVM2_member`, ...), lower-cased.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Ntfs => "ntfs",
            FsKind::Vfat => "vfat",
            FsKind::Swap => "swap",
            FsKind::LvmPv => "lvm2-pv",
            FsKind::Luks => "luks",
        }
    }

    /// ext2, ext3 or ext4: what graft reads (ext4-view) and writes.
    pub fn is_ext(self) -> bool {
        matches!(self, FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4)
    }

    /// A filesystem a Linux root can be on.
    pub fn is_linux_root_capable(self) -> bool {
        matches!(
            self,
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 | FsKind::Xfs | FsKind::Btrfs
        )
    }
}

/// What was found, with the label and UUID where the format has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    pub kind: FsKind,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

fn read(dev: &dyn BlockDevice, offset: u64, len: usize) -> Option<Vec<u8>> {
    let end = offset.checked_add(len as u64)?;
    if end > dev.len() {
        return None;
    }
    let mut buf = vec![0u8; len];
    dev.read_at(&mut buf, offset).ok()?;
    Some(buf)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Text up to the first NUL, trimmed; `None` when empty.
fn label(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn uuid_string(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let h = hex::encode(b);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The kind of filesystem or container in `dev`, if any is recognised.
pub fn probe(dev: &dyn BlockDevice) -> Option<FsKind> {
    probe_info(dev).map(|i| i.kind)
}

/// [`probe`], with label and UUID.
pub fn probe_info(dev: &dyn BlockDevice) -> Option<FsInfo> {
    probe_luks(dev)
        .or_else(|| probe_lvm(dev))
        .or_else(|| probe_ext(dev))
        .or_else(|| probe_xfs(dev))
        .or_else(|| probe_btrfs(dev))
        .or_else(|| probe_ntfs(dev))
        .or_else(|| probe_vfat(dev))
        .or_else(|| probe_swap(dev))
}

fn probe_luks(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let b = read(dev, 0, 512)?;
    if b[..6] != *b"LUKS\xba\xbe" {
        return None;
    }
    // LUKS1 and LUKS2 both keep the UUID as 40 bytes of text at 168.
    Some(FsInfo {
        kind: FsKind::Luks,
        label: None,
        uuid: label(&b[168..208]),
    })
}

fn probe_lvm(dev: &dyn BlockDevice) -> Option<FsInfo> {
    for sector in 0..4u64 {
        let b = read(dev, sector * 512, 512)?;
        if b[..8] == *b"LABELONE" && b[24..32] == *b"LVM2 001" {
            // The PV UUID (32 characters) follows the label header at the offset it gives.
            let content = le32(&b, 20) as usize;
            let uuid = (content + 32 <= 512)
                .then(|| label(&b[content..content + 32]))
                .flatten();
            return Some(FsInfo {
                kind: FsKind::LvmPv,
                label: None,
                uuid,
            });
        }
    }
    None
}

const EXT_COMPAT_HAS_JOURNAL: u32 = 0x4;
/// Incompatible features ext3 knows: filetype, recover, journal_dev, meta_bg.
const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x8 | 0x10;
/// Read-only features ext3 knows: sparse_super, large_file, btree_dir.
const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;

fn probe_ext(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let sb = read(dev, 1024, 1024)?;
    if le16(&sb, 56) != 0xEF53 {
        return None;
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    let kind = if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
        FsKind::Ext4
    } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    };
    Some(FsInfo {
        kind,
        label: label(&sb[0x78..0x88]),
        uuid: uuid_string(&sb[0x68..0x78]),
    })
}

fn probe_xfs(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let b = read(dev, 0, 512)?;
    if b[..4] != *b"XFSB" {
        return None;
    }
    Some(FsInfo {
        kind: FsKind::Xfs,
        label: label(&b[108..120]),
        uuid: uuid_string(&b[32..48]),
    })
}

fn probe_btrfs(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let b = read(dev, 0x10000, 0x200)?;
    if b[0x40..0x48] != *b"_BHRfS_M" {
        return None;
    }
    let lab = read(dev, 0x10000 + 0x12B, 256)?;
    Some(FsInfo {
        kind: FsKind::Btrfs,
        label: label(&lab),
        uuid: uuid_string(&b[0x20..0x30]),
    })
}

fn probe_ntfs(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let b = read(dev, 0, 512)?;
    if b[3..11] != *b"NTFS    " {
        return None;
    }
    Some(FsInfo {
        kind: FsKind::Ntfs,
        label: None,
        uuid: None,
    })
}

/// FAT: the boot signature and the file-system type string where the BPB variant keeps
/// it, plus a sane bytes-per-sector value so that an MBR is not taken for a FAT boot sector.
fn probe_vfat(dev: &dyn BlockDevice) -> Option<FsInfo> {
    let b = read(dev, 0, 512)?;
    if b[510] != 0x55 || b[511] != 0xAA {
        return None;
    }
    let bps = le16(&b, 11);
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || b[13] == 0 || !b[13].is_power_of_two() {
        return None;
    }
    let (lab, serial) = if b[82..87] == *b"FAT32" {
        (&b[71..82], &b[67..71])
    } else if b[54..59] == *b"FAT12" || b[54..59] == *b"FAT16" {
        (&b[43..54], &b[39..43])
    } else {
        return None;
    };
    let label = label(lab).filter(|l| l != "NO NAME");
    let uuid = Some(format!(
        "{:02X}{:02X}-{:02X}{:02X}",
        serial[3], serial[2], serial[1], serial[0]
    ));
    Some(FsInfo {
        kind: FsKind::Vfat,
        label,
        uuid,
    })
}

fn probe_swap(dev: &dyn BlockDevice) -> Option<FsInfo> {
    for page in [4096u64, 8192, 16384, 65536] {
        let Some(tail) = read(dev, page - 10, 10) else {
            break;
        };
        if tail == b"SWAPSPACE2" || tail == b"SWAP-SPACE" {
            // Version 1 header: uuid at 1024+12, label at 1024+28.
            let h = read(dev, 1024, 44)?;
            return Some(FsInfo {
                kind: FsKind::Swap,
                label: label(&h[28..44]),
                uuid: uuid_string(&h[12..28]),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDevice;

    fn ext_sb(compat: u32, incompat: u32, ro: u32) -> MemDevice {
        let mut b = vec![0u8; 4096];
        b[1024 + 56..1024 + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[1024 + 0x5C..1024 + 0x60].copy_from_slice(&compat.to_le_bytes());
        b[1024 + 0x60..1024 + 0x64].copy_from_slice(&incompat.to_le_bytes());
        b[1024 + 0x64..1024 + 0x68].copy_from_slice(&ro.to_le_bytes());
        b[1024 + 0x78..1024 + 0x7d].copy_from_slice(b"root\0");
        MemDevice::new(b)
    }

    #[test]
    fn ext_generations_by_features() {
        assert_eq!(probe(&ext_sb(0, 0x2, 0x1)), Some(FsKind::Ext2));
        assert_eq!(probe(&ext_sb(0x4, 0x2, 0x1)), Some(FsKind::Ext3));
        assert_eq!(probe(&ext_sb(0x4, 0x2 | 0x40, 0x1)), Some(FsKind::Ext4)); // extents
        assert_eq!(probe(&ext_sb(0x4, 0x2, 0x400)), Some(FsKind::Ext4)); // metadata_csum
        assert_eq!(
            probe_info(&ext_sb(0, 0, 0)).unwrap().label.as_deref(),
            Some("root")
        );
    }

    #[test]
    fn other_magics() {
        let mut b = vec![0u8; 70_000];
        b[..4].copy_from_slice(b"XFSB");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::Xfs));
        b[..4].fill(0);
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::Btrfs));
        b[0x10040..0x10048].fill(0);
        b[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::Swap));
        b[4086..4096].fill(0);
        b[512..520].copy_from_slice(b"LABELONE");
        b[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::LvmPv));
        b[512..544].fill(0);
        b[..6].copy_from_slice(b"LUKS\xba\xbe");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::Luks));
        b[..6].fill(0);
        b[3..11].copy_from_slice(b"NTFS    ");
        assert_eq!(probe(&MemDevice::new(b.clone())), Some(FsKind::Ntfs));
        b[3..11].fill(0);
        assert_eq!(probe(&MemDevice::new(b)), None);
        // Short and empty devices are just "nothing".
        assert_eq!(probe(&MemDevice::new(vec![0u8; 10])), None);
        assert_eq!(probe(&MemDevice::new(Vec::new())), None);
    }

    #[test]
    fn an_mbr_is_not_fat() {
        let mut b = vec![0u8; 512];
        b[510] = 0x55;
        b[511] = 0xAA;
        b[446 + 4] = 0x83;
        assert_eq!(probe(&MemDevice::new(b)), None);
    }
}
