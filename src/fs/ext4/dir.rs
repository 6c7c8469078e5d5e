//! Linear directory blocks: variable-length entries (inode, rec_len, name_len, file_type,
//! name) filling the block, ending with a 12-byte checksum tail under metadata_csum.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/directory.html#linear-classic-directories>

use super::checksum::crc32c;
use super::{le16, le32, put16, put32, Ext4Error, Result};

pub const FT_REG: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_SYMLINK: u8 = 7;
pub const TAIL_SIZE: usize = 12;
const TAIL_FT: u8 = 0xDE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: usize,
    pub inode: u32,
    pub rec_len: usize,
    pub file_type: u8,
    pub name: Vec<u8>,
}

/// Space an entry with an `n`-byte name needs.
pub fn needed(n: usize) -> usize {
    (8 + n + 3) & !3
}

/// Whether the block ends with a checksum tail.
pub fn has_tail(block: &[u8]) -> bool {
    let t = block.len() - TAIL_SIZE;
    le32(block, t) == 0 && le16(block, t + 4) == 12 && block[t + 6] == 0 && block[t + 7] == TAIL_FT
}

/// Bytes of the block holding entries (all, or all but the tail).
pub fn entries_end(block: &[u8]) -> usize {
    if has_tail(block) {
        block.len() - TAIL_SIZE
    } else {
        block.len()
    }
}

/// Parses every record (live or empty) of a block, checking each stays inside it.
pub fn parse(block: &[u8], filetype: bool, what: &dyn Fn() -> String) -> Result<Vec<Entry>> {
    let end = entries_end(block);
    let mut out = Vec::new();
    let mut off = 0;
    while off < end {
        if off + 8 > end {
            return Err(Ext4Error::Corrupt(format!(
                "{}: directory entry at {off} truncated",
                what()
            )));
        }
        let inode = le32(block, off);
        let rec_len = le16(block, off + 4) as usize;
        let name_len = if filetype {
            block[off + 6] as usize
        } else {
            le16(block, off + 6) as usize
        };
        if rec_len < 8 || rec_len % 4 != 0 || off + rec_len > end || 8 + name_len > rec_len {
            return Err(Ext4Error::Corrupt(format!(
                "{}: directory entry at offset {off} has rec_len {rec_len}, name_len {name_len}",
                what()
            )));
        }
        out.push(Entry {
            offset: off,
            inode,
            rec_len,
            file_type: if filetype { block[off + 7] } else { 0 },
            name: block[off + 8..off + 8 + name_len].to_vec(),
        });
        off += rec_len;
    }
    Ok(out)
}

pub fn write_entry(
    block: &mut [u8],
    off: usize,
    inode: u32,
    rec_len: usize,
    name: &[u8],
    ft: u8,
    filetype: bool,
) {
    put32(block, off, inode);
    put16(block, off + 4, rec_len as u16);
    block[off + 6] = name.len() as u8;
    block[off + 7] = if filetype { ft } else { 0 };
    block[off + 8..off + 8 + name.len()].copy_from_slice(name);
    let pad_end = (off + 8 + name.len() + 3) & !3;
    block[off + 8 + name.len()..pad_end.min(off + rec_len)].fill(0);
}

/// A fresh block holding one empty record, and the tail when `csum`.
pub fn empty_block(bs: usize, csum: bool) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    let end = if csum { bs - TAIL_SIZE } else { bs };
    put16(&mut b, 4, end as u16);
    if csum {
        put_tail(&mut b);
    }
    b
}

pub fn put_tail(b: &mut [u8]) {
    let t = b.len() - TAIL_SIZE;
    b[t..].fill(0);
    put16(b, t + 4, 12);
    b[t + 7] = TAIL_FT;
}

/// Inserts an entry where a record has room; false when the block is full.
pub fn try_insert(
    block: &mut [u8],
    name: &[u8],
    inode: u32,
    ft: u8,
    filetype: bool,
) -> Result<bool> {
    let need = needed(name.len());
    let entries = parse(block, filetype, &|| "directory block".into())?;
    for e in entries {
        if e.inode == 0 && e.rec_len >= need {
            write_entry(block, e.offset, inode, e.rec_len, name, ft, filetype);
            return Ok(true);
        }
        let used = needed(e.name.len());
        if e.inode != 0 && e.rec_len >= used + need {
            put16(block, e.offset + 4, used as u16);
            write_entry(
                block,
                e.offset + used,
                inode,
                e.rec_len - used,
                name,
                ft,
                filetype,
            );
            return Ok(true);
        }
    }
    Ok(false)
}

/// Rewrites a block to hold exactly `entries` (inode, name, type), packed.
pub fn pack(
    block: &mut [u8],
    entries: &[(u32, Vec<u8>, u8)],
    filetype: bool,
    csum: bool,
) -> Result<()> {
    let bs = block.len();
    let end = if csum { bs - TAIL_SIZE } else { bs };
    block.fill(0);
    let total: usize = entries.iter().map(|e| needed(e.1.len())).sum();
    if total > end {
        return Err(Ext4Error::Corrupt(
            "directory entries do not fit one block".into(),
        ));
    }
    if entries.is_empty() {
        put16(block, 4, end as u16);
    }
    let mut off = 0;
    for (i, (ino, name, ft)) in entries.iter().enumerate() {
        let rec = if i + 1 == entries.len() {
            end - off
        } else {
            needed(name.len())
        };
        write_entry(block, off, *ino, rec, name, *ft, filetype);
        off += rec;
    }
    if csum {
        put_tail(block);
    }
    Ok(())
}

pub fn set_tail_checksum(block: &mut [u8], owner_seed: u32) {
    if has_tail(block) {
        let t = block.len() - TAIL_SIZE;
        let c = crc32c(owner_seed, &block[..t]);
        put32(block, t + 8, c);
    }
}

pub fn verify_tail_checksum(block: &[u8], owner_seed: u32) -> bool {
    if !has_tail(block) {
        return true;
    }
    let t = block.len() - TAIL_SIZE;
    crc32c(owner_seed, &block[..t]) == le32(block, t + 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_until_full_then_pack() {
        let mut b = empty_block(1024, true);
        let mut n = 0;
        while try_insert(
            &mut b,
            format!("name-{n:04}").as_bytes(),
            100 + n,
            FT_REG,
            true,
        )
        .unwrap()
        {
            n += 1;
        }
        // 9-byte names need 20 bytes each; 1012 usable bytes.
        assert_eq!(n, 1012 / 20);
        let live: Vec<_> = parse(&b, true, &|| "t".into())
            .unwrap()
            .into_iter()
            .filter(|e| e.inode != 0)
            .collect();
        assert_eq!(live.len(), n as usize);
        assert!(has_tail(&b));
        set_tail_checksum(&mut b, 7);
        assert!(verify_tail_checksum(&b, 7));
        assert!(!verify_tail_checksum(&b, 8));
        let few: Vec<_> = live[..3]
            .iter()
            .map(|e| (e.inode, e.name.clone(), e.file_type))
            .collect();
        pack(&mut b, &few, true, true).unwrap();
        assert_eq!(parse(&b, true, &|| "t".into()).unwrap().len(), 3);
    }

    #[test]
    fn hostile_rec_len_is_an_error() {
        let mut b = vec![0u8; 1024];
        put16(&mut b, 4, 4);
        assert!(parse(&b, true, &|| "t".into()).is_err());
        put16(&mut b, 4, 2000);
        assert!(parse(&b, true, &|| "t".into()).is_err());
    }
}
