//! The superblock: 1024 bytes at byte offset 1024 of the filesystem.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/super.html>
//!
//! Kept as its raw bytes so that fields we do not know survive a rewrite untouched; the
//! accessors below read the few we need.

use super::checksum::crc32c;
use super::{le16, le32, put32, Ext4Error, Result};

pub const SUPERBLOCK_OFFSET: u64 = 1024;
pub const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;
const CHECKSUM_OFFSET: usize = 0x3FC;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub const COMPAT_RESIZE_INODE: u32 = 0x10;
pub const COMPAT_DIR_INDEX: u32 = 0x20;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;
// s_feature_incompat
pub const INCOMPAT_COMPRESSION: u32 = 0x1;
pub const INCOMPAT_FILETYPE: u32 = 0x2;
pub const INCOMPAT_RECOVER: u32 = 0x4;
pub const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub const INCOMPAT_META_BG: u32 = 0x10;
pub const INCOMPAT_EXTENTS: u32 = 0x40;
pub const INCOMPAT_64BIT: u32 = 0x80;
pub const INCOMPAT_MMP: u32 = 0x100;
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
pub const INCOMPAT_EA_INODE: u32 = 0x400;
pub const INCOMPAT_DIRDATA: u32 = 0x1000;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
pub const INCOMPAT_LARGEDIR: u32 = 0x4000;
pub const INCOMPAT_INLINE_DATA: u32 = 0x8000;
pub const INCOMPAT_ENCRYPT: u32 = 0x10000;
pub const INCOMPAT_CASEFOLD: u32 = 0x20000;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub const RO_COMPAT_QUOTA: u32 = 0x100;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
pub const RO_COMPAT_PROJECT: u32 = 0x2000;
pub const RO_COMPAT_VERITY: u32 = 0x8000;
pub const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

/// Incompatible features this writer knows how to keep consistent.
const INCOMPAT_SUPPORTED: u32 = INCOMPAT_FILETYPE
    | INCOMPAT_META_BG
    | INCOMPAT_EXTENTS
    | INCOMPAT_64BIT
    | INCOMPAT_FLEX_BG
    | INCOMPAT_EA_INODE
    | INCOMPAT_CSUM_SEED
    | INCOMPAT_LARGEDIR
    | INCOMPAT_INLINE_DATA
    | INCOMPAT_ENCRYPT
    | INCOMPAT_CASEFOLD;
/// Read-only-compatible features this writer keeps consistent (others, such as quota or
/// bigalloc, would be left wrong by our writes).
const RO_COMPAT_SUPPORTED: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_GDT_CSUM
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM
    | RO_COMPAT_PROJECT
    | RO_COMPAT_VERITY;

/// `s_flags`: directory hashes use unsigned chars.
pub const FLAGS_UNSIGNED_HASH: u32 = 0x2;

#[derive(Clone)]
pub struct Superblock {
    pub raw: Vec<u8>,
}

impl Superblock {
    /// Parses and validates the superblock bytes (exactly 1024).
    pub fn parse(raw: &[u8]) -> Result<Self> {
        if raw.len() != SUPERBLOCK_SIZE {
            return Err(Ext4Error::NotExt4(
                "superblock shorter than 1024 bytes".into(),
            ));
        }
        let sb = Self { raw: raw.to_vec() };
        if le16(raw, 0x38) != MAGIC {
            return Err(Ext4Error::NotExt4(format!(
                "no ext2/3/4 magic at byte 1080 (found {:#06x}, want 0xef53)",
                le16(raw, 0x38)
            )));
        }
        if sb.has_ro_compat(RO_COMPAT_METADATA_CSUM) {
            let want = le32(raw, CHECKSUM_OFFSET);
            let got = sb.compute_checksum();
            if want != got {
                return Err(Ext4Error::Checksum(format!(
                    "superblock (stored {want:#010x}, computed {got:#010x})"
                )));
            }
        }
        let log = le32(raw, 0x18);
        if log > 6 {
            return Err(Ext4Error::Corrupt(format!(
                "superblock s_log_block_size {log} (> 64 KiB blocks)"
            )));
        }
        if le32(raw, 0x1C) != log && sb.has_ro_compat(0x200) {
            return Err(Ext4Error::Refused(
                "bigalloc filesystems are not supported".into(),
            ));
        }
        let bpg = sb.blocks_per_group();
        let ipg = sb.inodes_per_group();
        let bs = sb.block_size();
        if bpg == 0 || bpg as u64 > bs * 8 || ipg == 0 || ipg as u64 > bs * 8 {
            return Err(Ext4Error::Corrupt(format!(
                "superblock blocks_per_group {bpg} / inodes_per_group {ipg} impossible for {bs}-byte blocks"
            )));
        }
        let isz = sb.inode_size();
        if isz < 128 || !isz.is_power_of_two() || isz as u64 > bs {
            return Err(Ext4Error::Corrupt(format!("superblock s_inode_size {isz}")));
        }
        if sb.has_incompat(INCOMPAT_64BIT) {
            let ds = sb.desc_size();
            if !(32..=1024).contains(&ds) || !ds.is_power_of_two() {
                return Err(Ext4Error::Corrupt(format!("superblock s_desc_size {ds}")));
            }
        }
        if sb.blocks_count() <= sb.first_data_block() as u64 {
            return Err(Ext4Error::Corrupt(
                "superblock block count below first data block".into(),
            ));
        }
        let groups64 = (sb.blocks_count() - sb.first_data_block() as u64).div_ceil(bpg as u64);
        let groups = sb.group_count();
        if groups64 != groups as u64 || groups as u64 * ipg as u64 != sb.inodes_count() as u64 {
            return Err(Ext4Error::Corrupt(format!(
                "superblock inodes_count {} != {groups} groups x {ipg}",
                sb.inodes_count()
            )));
        }
        // Bounds on what super_and_gdt_blocks walks: descriptor and reserved blocks must
        // fit in one group, as mke2fs and e2fsck require.
        let old = if sb.has_incompat(INCOMPAT_META_BG) {
            if sb.first_meta_bg() > sb.desc_blocks() {
                return Err(Ext4Error::Corrupt(format!(
                    "superblock s_first_meta_bg {} > {} descriptor blocks",
                    sb.first_meta_bg(),
                    sb.desc_blocks()
                )));
            }
            sb.first_meta_bg() as u64
        } else {
            sb.desc_blocks() as u64 + sb.reserved_gdt_blocks() as u64
        };
        if sb.reserved_gdt_blocks() as u64 > bs / 4 || old + 2 > bpg as u64 {
            return Err(Ext4Error::Corrupt(format!(
                "superblock: {} descriptor and {} reserved GDT blocks do not fit a group of {bpg} blocks",
                sb.desc_blocks(),
                sb.reserved_gdt_blocks()
            )));
        }
        Ok(sb)
    }

    /// Refuses states and features we could not write correctly.
    pub fn check_writable(&self) -> Result<()> {
        let incompat = self.incompat();
        if incompat & INCOMPAT_RECOVER != 0 {
            return Err(Ext4Error::Refused(
                "the journal needs recovery: mount and unmount the filesystem cleanly or run e2fsck on it first".into(),
            ));
        }
        if incompat & INCOMPAT_JOURNAL_DEV != 0 {
            return Err(Ext4Error::Refused(
                "this is an external journal device, not a filesystem".into(),
            ));
        }
        if incompat & INCOMPAT_MMP != 0 {
            return Err(Ext4Error::Refused(
                "multi-mount protection (mmp) is enabled; disable it with tune2fs -O ^mmp".into(),
            ));
        }
        let unknown = incompat & !INCOMPAT_SUPPORTED;
        if unknown != 0 {
            return Err(Ext4Error::Refused(format!(
                "unknown or unsupported incompatible feature bits {unknown:#x} in the superblock"
            )));
        }
        let ro = self.ro_compat();
        if ro & RO_COMPAT_QUOTA != 0 {
            return Err(Ext4Error::Refused("the quota feature is enabled; quota files would not be updated (tune2fs -O ^quota)".into()));
        }
        if ro & RO_COMPAT_ORPHAN_PRESENT != 0 || self.last_orphan() != 0 {
            return Err(Ext4Error::Refused(
                "the filesystem has orphan inodes pending: run e2fsck on it first".into(),
            ));
        }
        let unknown = ro & !RO_COMPAT_SUPPORTED;
        if unknown != 0 {
            return Err(Ext4Error::Refused(format!(
                "unsupported read-only-compatible feature bits {unknown:#x} in the superblock"
            )));
        }
        let state = le16(&self.raw, 0x3A);
        if state & 1 == 0 || state & 2 != 0 {
            return Err(Ext4Error::Refused(format!(
                "the filesystem was not cleanly unmounted or has errors (s_state {state:#x}): run e2fsck on it first"
            )));
        }
        if self.rev_level() == 0 {
            return Err(Ext4Error::Unsupported(
                "revision 0 (GOOD_OLD) filesystems".into(),
            ));
        }
        if self.block_size() > 32768 {
            return Err(Ext4Error::Unsupported("64 KiB blocks".into()));
        }
        Ok(())
    }

    pub fn compute_checksum(&self) -> u32 {
        crc32c(!0, &self.raw[..CHECKSUM_OFFSET])
    }
    /// Recomputes the checksum (if the filesystem has one) after edits.
    pub fn finish(&mut self) {
        if self.has_ro_compat(RO_COMPAT_METADATA_CSUM) {
            let c = self.compute_checksum();
            put32(&mut self.raw, CHECKSUM_OFFSET, c);
        }
    }

    pub fn inodes_count(&self) -> u32 {
        le32(&self.raw, 0x0)
    }
    pub fn blocks_count(&self) -> u64 {
        let hi = if self.is_64bit() {
            le32(&self.raw, 0x150) as u64
        } else {
            0
        };
        le32(&self.raw, 0x4) as u64 | hi << 32
    }
    pub fn free_blocks(&self) -> u64 {
        let hi = if self.is_64bit() {
            le32(&self.raw, 0x158) as u64
        } else {
            0
        };
        le32(&self.raw, 0xC) as u64 | hi << 32
    }
    pub fn set_free_blocks(&mut self, v: u64) {
        put32(&mut self.raw, 0xC, v as u32);
        if self.is_64bit() {
            put32(&mut self.raw, 0x158, (v >> 32) as u32);
        }
    }
    pub fn free_inodes(&self) -> u32 {
        le32(&self.raw, 0x10)
    }
    pub fn set_free_inodes(&mut self, v: u32) {
        put32(&mut self.raw, 0x10, v);
    }
    pub fn first_data_block(&self) -> u32 {
        le32(&self.raw, 0x14)
    }
    pub fn block_size(&self) -> u64 {
        1024u64 << le32(&self.raw, 0x18).min(6)
    }
    pub fn blocks_per_group(&self) -> u32 {
        le32(&self.raw, 0x20)
    }
    pub fn inodes_per_group(&self) -> u32 {
        le32(&self.raw, 0x28)
    }
    pub fn rev_level(&self) -> u32 {
        le32(&self.raw, 0x4C)
    }
    pub fn first_ino(&self) -> u32 {
        if self.rev_level() == 0 {
            11
        } else {
            le32(&self.raw, 0x54)
        }
    }
    pub fn inode_size(&self) -> u32 {
        if self.rev_level() == 0 {
            128
        } else {
            le16(&self.raw, 0x58) as u32
        }
    }
    pub fn compat(&self) -> u32 {
        le32(&self.raw, 0x5C)
    }
    pub fn incompat(&self) -> u32 {
        le32(&self.raw, 0x60)
    }
    pub fn ro_compat(&self) -> u32 {
        le32(&self.raw, 0x64)
    }
    pub fn has_compat(&self, f: u32) -> bool {
        self.compat() & f != 0
    }
    pub fn has_incompat(&self, f: u32) -> bool {
        self.incompat() & f != 0
    }
    pub fn has_ro_compat(&self, f: u32) -> bool {
        self.ro_compat() & f != 0
    }
    pub fn is_64bit(&self) -> bool {
        self.has_incompat(INCOMPAT_64BIT)
    }
    pub fn metadata_csum(&self) -> bool {
        self.has_ro_compat(RO_COMPAT_METADATA_CSUM)
    }
    /// Whether group descriptors carry a checksum and the uninit flags mean something.
    pub fn group_csum(&self) -> bool {
        self.metadata_csum() || self.has_ro_compat(RO_COMPAT_GDT_CSUM)
    }
    pub fn uuid(&self) -> [u8; 16] {
        self.raw[0x68..0x78].try_into().expect("16 bytes")
    }
    pub fn reserved_gdt_blocks(&self) -> u32 {
        le16(&self.raw, 0xCE) as u32
    }
    pub fn last_orphan(&self) -> u32 {
        le32(&self.raw, 0xE8)
    }
    pub fn hash_seed(&self) -> [u32; 4] {
        [
            le32(&self.raw, 0xEC),
            le32(&self.raw, 0xF0),
            le32(&self.raw, 0xF4),
            le32(&self.raw, 0xF8),
        ]
    }
    pub fn def_hash_version(&self) -> u8 {
        self.raw[0xFC]
    }
    pub fn desc_size(&self) -> u32 {
        if self.is_64bit() {
            le16(&self.raw, 0xFE) as u32
        } else {
            32
        }
    }
    pub fn first_meta_bg(&self) -> u32 {
        le32(&self.raw, 0x104)
    }
    pub fn want_extra_isize(&self) -> u16 {
        le16(&self.raw, 0x15E)
    }
    pub fn flags(&self) -> u32 {
        le32(&self.raw, 0x160)
    }
    pub fn backup_bgs(&self) -> [u32; 2] {
        [le32(&self.raw, 0x24C), le32(&self.raw, 0x250)]
    }
    /// Seed of every metadata checksum but the superblock's own.
    pub fn csum_seed(&self) -> u32 {
        if self.has_incompat(INCOMPAT_CSUM_SEED) {
            le32(&self.raw, 0x270)
        } else {
            crc32c(!0, &self.uuid())
        }
    }
    pub fn group_count(&self) -> u32 {
        let data = self.blocks_count() - self.first_data_block() as u64;
        data.div_ceil(self.blocks_per_group() as u64) as u32
    }
    /// Whether `group` holds a superblock backup (sparse_super / sparse_super2 rules).
    pub fn group_has_super(&self, group: u32) -> bool {
        if group == 0 {
            return true;
        }
        if self.has_compat(COMPAT_SPARSE_SUPER2) {
            return self.backup_bgs().contains(&group);
        }
        if group <= 1 || !self.has_ro_compat(RO_COMPAT_SPARSE_SUPER) {
            return true;
        }
        if group & 1 == 0 {
            return false;
        }
        let is_power = |mut g: u32, b: u32| {
            while g % b == 0 && g > 1 {
                g /= b;
            }
            g == 1
        };
        is_power(group, 3) || is_power(group, 5) || is_power(group, 7)
    }
    pub fn descs_per_block(&self) -> u32 {
        (self.block_size() / self.desc_size() as u64) as u32
    }
    pub fn desc_blocks(&self) -> u32 {
        self.group_count().div_ceil(self.descs_per_block())
    }
    pub fn group_first_block(&self, group: u32) -> u64 {
        self.first_data_block() as u64 + group as u64 * self.blocks_per_group() as u64
    }
    pub fn group_block_count(&self, group: u32) -> u32 {
        let first = self.group_first_block(group);
        (self.blocks_count() - first).min(self.blocks_per_group() as u64) as u32
    }
    /// Blocks of `group` taken by its superblock and descriptor copies (primary or backup),
    /// as `ext2fs_super_and_bgd_loc2`/`ext2fs_reserve_super_and_bgd` count them.
    pub fn super_and_gdt_blocks(&self, group: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let mut start = self.group_first_block(group);
        if start == 0 && self.block_size() == 1024 {
            start = 1;
        }
        let has_super = self.group_has_super(group);
        if has_super {
            out.push(start);
        }
        let meta_bg = self.has_incompat(INCOMPAT_META_BG);
        let per = self.descs_per_block();
        let mb = group / per;
        if !meta_bg || mb < self.first_meta_bg() {
            if has_super {
                let old = if meta_bg {
                    self.first_meta_bg() as u64
                } else {
                    self.desc_blocks() as u64 + self.reserved_gdt_blocks() as u64
                };
                for b in 0..old {
                    out.push(start + 1 + b);
                }
            }
        } else {
            let r = group % per;
            if r == 0 || r == 1 || r == per - 1 {
                out.push(start + has_super as u64);
            }
        }
        out
    }
    /// Block holding the primary copy of descriptor block `index` (0-based).
    pub fn desc_block_location(&self, index: u32) -> u64 {
        let first = self.first_data_block() as u64;
        if !self.has_incompat(INCOMPAT_META_BG) || index < self.first_meta_bg() {
            return first + 1 + index as u64;
        }
        let group = index * self.descs_per_block();
        self.group_first_block(group) + self.group_has_super(group) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Vec<u8> {
        let mut raw = vec![0u8; 1024];
        put32(&mut raw, 0x0, 2048); // inodes
        put32(&mut raw, 0x4, 8192); // blocks
        put32(&mut raw, 0x14, 1); // first data block (1 KiB blocks)
        put32(&mut raw, 0x18, 0);
        put32(&mut raw, 0x20, 8192);
        put32(&mut raw, 0x28, 2048);
        raw[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        raw[0x3A] = 1;
        put32(&mut raw, 0x4C, 1);
        raw[0x58..0x5A].copy_from_slice(&256u16.to_le_bytes());
        put32(&mut raw, 0x64, RO_COMPAT_SPARSE_SUPER);
        raw
    }

    #[test]
    fn parses_and_refuses() {
        let raw = minimal();
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(sb.block_size(), 1024);
        assert_eq!(sb.group_count(), 1);
        sb.check_writable().unwrap();
        let mut bad = raw.clone();
        bad[0x38] = 0;
        assert!(matches!(
            Superblock::parse(&bad),
            Err(Ext4Error::NotExt4(_))
        ));
        let mut rec = raw.clone();
        put32(&mut rec, 0x60, INCOMPAT_RECOVER);
        let e = Superblock::parse(&rec)
            .unwrap()
            .check_writable()
            .unwrap_err();
        assert!(e.to_string().contains("needs recovery"), "{e}");
        let mut unk = raw.clone();
        put32(&mut unk, 0x60, 0x8000_0000);
        assert!(Superblock::parse(&unk).unwrap().check_writable().is_err());
    }

    #[test]
    fn checksum_is_verified() {
        let mut raw = minimal();
        put32(
            &mut raw,
            0x64,
            RO_COMPAT_SPARSE_SUPER | RO_COMPAT_METADATA_CSUM,
        );
        let mut sb = Superblock { raw: raw.clone() };
        sb.finish();
        Superblock::parse(&sb.raw).unwrap();
        sb.raw[0x100] ^= 1;
        assert!(matches!(
            Superblock::parse(&sb.raw),
            Err(Ext4Error::Checksum(_))
        ));
    }

    #[test]
    fn sparse_super_backup_groups() {
        let sb = Superblock::parse(&minimal()).unwrap();
        let with: Vec<u32> = (0..60).filter(|&g| sb.group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }
}
