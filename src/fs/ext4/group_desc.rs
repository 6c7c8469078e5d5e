//! Block group descriptors: 32 bytes, or `s_desc_size` (64) with the 64bit feature.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/group_descr.html>

use super::checksum::{crc16, crc32c};
use super::superblock::Superblock;
use super::{le16, le32, put16, Ext4Error, Result};

pub const BG_INODE_UNINIT: u16 = 0x1;
pub const BG_BLOCK_UNINIT: u16 = 0x2;
pub const BG_INODE_ZEROED: u16 = 0x4;

const CHECKSUM_OFFSET: usize = 0x1E;

#[derive(Clone, Debug)]
pub struct GroupDesc {
    pub raw: Vec<u8>,
}

impl GroupDesc {
    fn lo_hi32(&self, lo: usize, hi: usize) -> u64 {
        let h = if self.raw.len() >= 64 {
            le32(&self.raw, hi) as u64
        } else {
            0
        };
        le32(&self.raw, lo) as u64 | h << 32
    }
    fn lo_hi16(&self, lo: usize, hi: usize) -> u32 {
        let h = if self.raw.len() >= 64 {
            le16(&self.raw, hi) as u32
        } else {
            0
        };
        le16(&self.raw, lo) as u32 | h << 16
    }
    fn set_lo_hi16(&mut self, lo: usize, hi: usize, v: u32) {
        put16(&mut self.raw, lo, v as u16);
        if self.raw.len() >= 64 {
            put16(&mut self.raw, hi, (v >> 16) as u16);
        }
    }
    pub fn block_bitmap(&self) -> u64 {
        self.lo_hi32(0x0, 0x20)
    }
    pub fn inode_bitmap(&self) -> u64 {
        self.lo_hi32(0x4, 0x24)
    }
    pub fn inode_table(&self) -> u64 {
        self.lo_hi32(0x8, 0x28)
    }
    pub fn free_blocks(&self) -> u32 {
        self.lo_hi16(0xC, 0x2C)
    }
    pub fn set_free_blocks(&mut self, v: u32) {
        self.set_lo_hi16(0xC, 0x2C, v)
    }
    pub fn free_inodes(&self) -> u32 {
        self.lo_hi16(0xE, 0x2E)
    }
    pub fn set_free_inodes(&mut self, v: u32) {
        self.set_lo_hi16(0xE, 0x2E, v)
    }
    pub fn used_dirs(&self) -> u32 {
        self.lo_hi16(0x10, 0x30)
    }
    pub fn set_used_dirs(&mut self, v: u32) {
        self.set_lo_hi16(0x10, 0x30, v)
    }
    pub fn flags(&self) -> u16 {
        le16(&self.raw, 0x12)
    }
    pub fn set_flags(&mut self, v: u16) {
        put16(&mut self.raw, 0x12, v)
    }
    pub fn itable_unused(&self) -> u32 {
        self.lo_hi16(0x1C, 0x32)
    }
    pub fn set_itable_unused(&mut self, v: u32) {
        self.set_lo_hi16(0x1C, 0x32, v)
    }
    pub fn set_block_bitmap_csum(&mut self, c: u32) {
        put16(&mut self.raw, 0x18, c as u16);
        if self.raw.len() >= 64 {
            put16(&mut self.raw, 0x38, (c >> 16) as u16);
        }
    }
    pub fn set_inode_bitmap_csum(&mut self, c: u32) {
        put16(&mut self.raw, 0x1A, c as u16);
        if self.raw.len() >= 64 {
            put16(&mut self.raw, 0x3A, (c >> 16) as u16);
        }
    }

    /// The descriptor checksum: crc32c's low half with metadata_csum, crc16 with gdt_csum.
    pub fn compute_checksum(&self, sb: &Superblock, group: u32) -> Option<u16> {
        let mut d = self.raw.clone();
        put16(&mut d, CHECKSUM_OFFSET, 0);
        if sb.metadata_csum() {
            let c = crc32c(sb.csum_seed(), &group.to_le_bytes());
            Some((crc32c(c, &d) & 0xFFFF) as u16)
        } else if sb.has_ro_compat(super::superblock::RO_COMPAT_GDT_CSUM) {
            let mut c = crc16(!0, &sb.uuid());
            c = crc16(c, &group.to_le_bytes());
            c = crc16(c, &self.raw[..CHECKSUM_OFFSET]);
            if self.raw.len() > 0x20 {
                c = crc16(c, &self.raw[0x20..]);
            }
            Some(c)
        } else {
            None
        }
    }
    pub fn verify(&self, sb: &Superblock, group: u32) -> Result<()> {
        if let Some(c) = self.compute_checksum(sb, group) {
            let stored = le16(&self.raw, CHECKSUM_OFFSET);
            if stored != c {
                return Err(Ext4Error::Checksum(format!(
                    "group descriptor {group} (stored {stored:#06x}, computed {c:#06x})"
                )));
            }
        }
        Ok(())
    }
    pub fn finish(&mut self, sb: &Superblock, group: u32) {
        if let Some(c) = self.compute_checksum(sb, group) {
            put16(&mut self.raw, CHECKSUM_OFFSET, c);
        }
    }
}

/// Reads descriptor `group` out of a table block, checking its fields lie in the fs.
pub fn parse(sb: &Superblock, bytes: &[u8], group: u32) -> Result<GroupDesc> {
    let ds = sb.desc_size() as usize;
    if bytes.len() < ds {
        return Err(Ext4Error::Corrupt(format!(
            "group descriptor {group} truncated"
        )));
    }
    let gd = GroupDesc {
        raw: bytes[..ds].to_vec(),
    };
    gd.verify(sb, group)?;
    let blocks = sb.blocks_count();
    let itb = (sb.inodes_per_group() as u64 * sb.inode_size() as u64).div_ceil(sb.block_size());
    for (what, b, n) in [
        ("block bitmap", gd.block_bitmap(), 1),
        ("inode bitmap", gd.inode_bitmap(), 1),
        ("inode table", gd.inode_table(), itb),
    ] {
        if b == 0 || b.checked_add(n).is_none_or(|end| end > blocks) {
            return Err(Ext4Error::Corrupt(format!(
                "group descriptor {group}: {what} at block {b} outside the filesystem ({blocks} blocks)"
            )));
        }
    }
    if gd.free_blocks() > sb.blocks_per_group() || gd.free_inodes() > sb.inodes_per_group() {
        return Err(Ext4Error::Corrupt(format!(
            "group descriptor {group}: free counts above group size"
        )));
    }
    Ok(gd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lo_hi_fields_and_crc16() {
        let mut gd = GroupDesc { raw: vec![0u8; 64] };
        gd.set_free_blocks(0x12345);
        assert_eq!(gd.free_blocks(), 0x12345);
        assert_eq!(gd.raw[0xC..0xE], [0x45, 0x23]);
        assert_eq!(gd.raw[0x2C..0x2E], [0x01, 0x00]);
        let mut small = GroupDesc { raw: vec![0u8; 32] };
        small.set_free_inodes(77);
        assert_eq!(small.free_inodes(), 77);
    }
}
