//! Inodes: 128 bytes plus `i_extra_isize` more in inodes of `s_inode_size` > 128.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/inodes.html>

use super::checksum::crc32c;
use super::{le16, le32, put16, put32, Ext4Error, Result};

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;

pub const FL_INDEX: u32 = 0x1000;
pub const FL_ENCRYPT: u32 = 0x800;
pub const FL_HUGE_FILE: u32 = 0x40000;
pub const FL_EXTENTS: u32 = 0x80000;
pub const FL_INLINE_DATA: u32 = 0x1000_0000;
pub const FL_CASEFOLD: u32 = 0x4000_0000;

/// Offset of `i_block` (60 bytes: extent root, block map, or fast symlink target).
pub const I_BLOCK: usize = 0x28;

#[derive(Clone, Debug)]
pub struct Inode {
    pub raw: Vec<u8>,
}

impl Inode {
    pub fn new(size: usize) -> Self {
        Self { raw: vec![0; size] }
    }
    pub fn mode(&self) -> u16 {
        le16(&self.raw, 0)
    }
    pub fn set_mode(&mut self, m: u16) {
        put16(&mut self.raw, 0, m)
    }
    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.mode() & S_IFMT == S_IFLNK
    }
    pub fn is_reg(&self) -> bool {
        self.mode() & S_IFMT == S_IFREG
    }
    pub fn size(&self) -> u64 {
        le32(&self.raw, 0x4) as u64 | (le32(&self.raw, 0x6C) as u64) << 32
    }
    pub fn set_size(&mut self, s: u64) {
        put32(&mut self.raw, 0x4, s as u32);
        put32(&mut self.raw, 0x6C, (s >> 32) as u32);
    }
    pub fn links(&self) -> u16 {
        le16(&self.raw, 0x1A)
    }
    pub fn set_links(&mut self, n: u16) {
        put16(&mut self.raw, 0x1A, n)
    }
    pub fn flags(&self) -> u32 {
        le32(&self.raw, 0x20)
    }
    pub fn set_flags(&mut self, f: u32) {
        put32(&mut self.raw, 0x20, f)
    }
    pub fn generation(&self) -> u32 {
        le32(&self.raw, 0x64)
    }
    pub fn set_generation(&mut self, g: u32) {
        put32(&mut self.raw, 0x64, g)
    }
    pub fn uid(&self) -> u32 {
        le16(&self.raw, 0x2) as u32 | (le16(&self.raw, 0x78) as u32) << 16
    }
    pub fn gid(&self) -> u32 {
        le16(&self.raw, 0x18) as u32 | (le16(&self.raw, 0x7A) as u32) << 16
    }
    pub fn set_owner(&mut self, uid: u32, gid: u32) {
        put16(&mut self.raw, 0x2, uid as u16);
        put16(&mut self.raw, 0x78, (uid >> 16) as u16);
        put16(&mut self.raw, 0x18, gid as u16);
        put16(&mut self.raw, 0x7A, (gid >> 16) as u16);
    }
    /// i_blocks in 512-byte sectors (the huge_file per-inode scaling is refused on read).
    pub fn sectors(&self) -> u64 {
        le32(&self.raw, 0x1C) as u64 | (le16(&self.raw, 0x74) as u64) << 32
    }
    pub fn set_sectors(&mut self, s: u64) -> Result<()> {
        if s >> 48 != 0 {
            return Err(Ext4Error::Unsupported(
                "files of more than 2^48 sectors".into(),
            ));
        }
        put32(&mut self.raw, 0x1C, s as u32);
        put16(&mut self.raw, 0x74, (s >> 32) as u16);
        Ok(())
    }
    pub fn block_area(&self) -> &[u8] {
        &self.raw[I_BLOCK..I_BLOCK + 60]
    }
    pub fn block_area_mut(&mut self) -> &mut [u8] {
        &mut self.raw[I_BLOCK..I_BLOCK + 60]
    }
    pub fn extra_isize(&self) -> u16 {
        if self.raw.len() > 128 {
            le16(&self.raw, 0x80)
        } else {
            0
        }
    }
    /// Sets the four timestamps (seconds; nanoseconds 0), with the epoch bits of the
    /// extra fields for dates past 2038 when the inode has room for them.
    pub fn set_times(&mut self, atime: i64, mtime: i64, ctime: i64, crtime: i64) {
        let extra_ok = self.raw.len() > 128 && self.extra_isize() >= 24;
        for (t, lo, hi) in [(atime, 0x8, 0x8C), (ctime, 0xC, 0x84), (mtime, 0x10, 0x88)] {
            put32(&mut self.raw, lo, t as u32);
            if extra_ok {
                put32(&mut self.raw, hi, epoch_bits(t));
            }
        }
        if extra_ok {
            put32(&mut self.raw, 0x90, crtime as u32);
            put32(&mut self.raw, 0x94, epoch_bits(crtime));
        }
    }

    /// crc32c over inode number, generation and the whole on-disk inode (checksum fields
    /// zeroed), as `ext4_inode_csum`.
    pub fn compute_checksum(&self, csum_seed: u32, ino: u32) -> u32 {
        let mut c = crc32c(csum_seed, &ino.to_le_bytes());
        c = crc32c(c, &self.generation().to_le_bytes());
        let mut r = self.raw.clone();
        put16(&mut r, 0x7C, 0);
        if self.has_csum_hi() {
            put16(&mut r, 0x82, 0);
        }
        crc32c(c, &r)
    }
    fn has_csum_hi(&self) -> bool {
        self.raw.len() > 128 && self.extra_isize() >= 4
    }
    pub fn verify(&self, csum_seed: u32, ino: u32) -> Result<()> {
        let c = self.compute_checksum(csum_seed, ino);
        let (stored, want) = if self.has_csum_hi() {
            (
                le16(&self.raw, 0x7C) as u32 | (le16(&self.raw, 0x82) as u32) << 16,
                c,
            )
        } else {
            (le16(&self.raw, 0x7C) as u32, c & 0xFFFF)
        };
        if stored != want {
            return Err(Ext4Error::Checksum(format!(
                "inode {ino} (stored {stored:#x}, computed {want:#x})"
            )));
        }
        Ok(())
    }
    pub fn finish(&mut self, csum_seed: u32, ino: u32) {
        let c = self.compute_checksum(csum_seed, ino);
        put16(&mut self.raw, 0x7C, c as u16);
        if self.has_csum_hi() {
            put16(&mut self.raw, 0x82, (c >> 16) as u16);
        }
    }
    /// Seed for checksums of blocks owned by this inode (extent, directory blocks).
    pub fn owner_seed(&self, csum_seed: u32, ino: u32) -> u32 {
        let c = crc32c(csum_seed, &ino.to_le_bytes());
        crc32c(c, &self.generation().to_le_bytes())
    }
}

/// The two epoch bits of `*_extra`: `(t - (i32)t) >> 32`, nanoseconds zero.
fn epoch_bits(t: i64) -> u32 {
    (((t - (t as i32 as i64)) >> 32) & 3) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_checksum_roundtrip() {
        let mut ino = Inode::new(256);
        put16(&mut ino.raw, 0x80, 32);
        ino.set_mode(S_IFREG | 0o644);
        ino.set_size(5_000_000_000);
        ino.set_owner(70000, 5);
        ino.set_times(1, 2, 3, 4);
        assert_eq!(ino.size(), 5_000_000_000);
        assert_eq!(ino.uid(), 70000);
        assert!(ino.is_reg());
        ino.finish(0x1234, 12);
        ino.verify(0x1234, 12).unwrap();
        assert!(ino.verify(0x1234, 13).is_err());
        assert_eq!(epoch_bits(0x1_0000_0000), 1);
        assert_eq!(epoch_bits(100), 0);
    }
}
