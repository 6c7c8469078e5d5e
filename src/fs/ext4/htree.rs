//! Hashed (htree, dir_index) directories: a root in block 0 behind "." and "..", optional
//! interior nodes that look like one empty directory entry, and linear leaf blocks.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/directory.html#hash-tree-directories>

use super::checksum::crc32c;
use super::{le16, le32, put16, put32, Ext4Error, Result};

/// Offset of the limit/count header in the root block (after ".", ".." and dx_root_info).
pub const ROOT_COUNT_OFFSET: usize = 0x20;
/// Offset of the limit/count header in an interior node.
pub const NODE_COUNT_OFFSET: usize = 8;
const TAIL: usize = 8;

pub fn limit_for(bs: usize, count_offset: usize, csum: bool) -> u16 {
    ((bs - count_offset - if csum { TAIL } else { 0 }) / 8) as u16
}

pub struct RootInfo {
    pub hash_version: u8,
    pub levels: u8,
}

pub fn root_info(block: &[u8]) -> Result<RootInfo> {
    if le32(block, 0x18) != 0 || block[0x1D] != 8 {
        return Err(Ext4Error::Corrupt(
            "htree root: bad dx_root_info (reserved or info_length)".into(),
        ));
    }
    Ok(RootInfo {
        hash_version: block[0x1C],
        levels: block[0x1E],
    })
}

pub fn limit(block: &[u8], co: usize) -> u16 {
    le16(block, co)
}
pub fn count(block: &[u8], co: usize) -> u16 {
    le16(block, co + 2)
}
fn set_count(block: &mut [u8], co: usize, c: u16) {
    put16(block, co + 2, c)
}
/// Entry `i`: (hash, logical block); entry 0's hash is implicitly 0.
pub fn entry(block: &[u8], co: usize, i: usize) -> (u32, u32) {
    let o = co + i * 8;
    (if i == 0 { 0 } else { le32(block, o) }, le32(block, o + 4))
}

/// Checks limit and count against the block size; returns (limit, count).
pub fn check_node(block: &[u8], co: usize, csum: bool, what: &str) -> Result<(u16, u16)> {
    let l = limit(block, co);
    let c = count(block, co);
    let want = limit_for(block.len(), co, csum);
    if l != want {
        return Err(Ext4Error::Corrupt(format!(
            "{what}: htree limit {l}, expected {want}{}",
            if csum {
                " (no room for the checksum tail)"
            } else {
                ""
            }
        )));
    }
    if c == 0 || c > l {
        return Err(Ext4Error::Corrupt(format!(
            "{what}: htree count {c} with limit {l}"
        )));
    }
    Ok((l, c))
}

/// Index of the entry whose range holds `hash`.
pub fn find(block: &[u8], co: usize, hash: u32) -> usize {
    let c = count(block, co) as usize;
    let (mut lo, mut hi) = (1usize, c);
    // First entry with hash > target, minus one.
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(block, co, mid).0 > hash {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo - 1
}

/// Inserts (hash, lblk) at position `at` (>= 1); the caller checked count < limit.
pub fn insert(block: &mut [u8], co: usize, at: usize, hash: u32, lblk: u32) {
    let c = count(block, co) as usize;
    let start = co + at * 8;
    let end = co + c * 8;
    block.copy_within(start..end, start + 8);
    put32(block, start, hash);
    put32(block, start + 4, lblk);
    set_count(block, co, c as u16 + 1);
}

/// A fresh interior node holding `entries` (first hash implicit).
pub fn new_node(bs: usize, csum: bool, entries: &[(u32, u32)]) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    put16(&mut b, 4, bs as u16);
    fill(&mut b, NODE_COUNT_OFFSET, csum, entries);
    b
}

/// Rewrites the entries of a node or root (limit set from the block size).
pub fn fill(b: &mut [u8], co: usize, csum: bool, entries: &[(u32, u32)]) {
    let bs = b.len();
    let l = limit_for(bs, co, csum);
    b[co..].fill(0);
    for (i, &(h, blk)) in entries.iter().enumerate() {
        put32(b, co + i * 8, h);
        put32(b, co + i * 8 + 4, blk);
    }
    put16(b, co, l);
    put16(b, co + 2, entries.len() as u16);
}

/// All entries of a node.
pub fn entries(b: &[u8], co: usize) -> Vec<(u32, u32)> {
    (0..count(b, co) as usize)
        .map(|i| entry(b, co, i))
        .collect()
}

/// Makes block 0 of a directory an htree root: ".", "..", info, entries.
pub fn new_root(
    bs: usize,
    csum: bool,
    ino: u32,
    parent: u32,
    hash_version: u8,
    filetype: bool,
    entries: &[(u32, u32)],
) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    super::dir::write_entry(&mut b, 0, ino, 12, b".", super::dir::FT_DIR, filetype);
    super::dir::write_entry(
        &mut b,
        12,
        parent,
        bs - 12,
        b"..",
        super::dir::FT_DIR,
        filetype,
    );
    b[0x1C] = hash_version;
    b[0x1D] = 8;
    fill(&mut b, ROOT_COUNT_OFFSET, csum, entries);
    b
}

pub fn set_levels(b: &mut [u8], levels: u8) {
    b[0x1E] = levels;
}

/// crc32c over the used part of the node and the tail's reserved word, as `ext4_dx_csum`.
pub fn set_checksum(b: &mut [u8], co: usize, owner_seed: u32) {
    let l = limit(b, co) as usize;
    let c = count(b, co) as usize;
    let tail = co + l * 8;
    if tail + TAIL > b.len() {
        return;
    }
    let mut x = crc32c(owner_seed, &b[..co + c * 8]);
    // The whole tail is covered, its checksum word as zero.
    let mut t = [0u8; TAIL];
    t[..4].copy_from_slice(&b[tail..tail + 4]);
    x = crc32c(x, &t);
    put32(b, tail + 4, x);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_insert() {
        let mut root = new_root(1024, true, 2, 2, 1, true, &[(0, 1), (100, 2), (200, 3)]);
        check_node(&root, ROOT_COUNT_OFFSET, true, "t").unwrap();
        assert_eq!(find(&root, ROOT_COUNT_OFFSET, 50), 0);
        assert_eq!(find(&root, ROOT_COUNT_OFFSET, 100), 1);
        assert_eq!(find(&root, ROOT_COUNT_OFFSET, 250), 2);
        insert(&mut root, ROOT_COUNT_OFFSET, 2, 150, 4);
        assert_eq!(
            entries(&root, ROOT_COUNT_OFFSET),
            vec![(0, 1), (100, 2), (150, 4), (200, 3)]
        );
        assert_eq!(limit(&root, ROOT_COUNT_OFFSET), (1024 - 32 - 8) / 8);
        set_checksum(&mut root, ROOT_COUNT_OFFSET, 5);
        let node = new_node(1024, false, &[(0, 7)]);
        check_node(&node, NODE_COUNT_OFFSET, false, "t").unwrap();
        assert!(check_node(&node, NODE_COUNT_OFFSET, true, "t").is_err());
    }
}
