//! Extent trees: a 12-byte header then 12-byte index or leaf entries, rooted in `i_block`
//! and continued in blocks that end with a crc32c tail.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/ifork.html#extent-tree>

use super::checksum::crc32c;
use super::{le16, le32, put16, put32, Ext4Error, Result};

pub const MAGIC: u16 = 0xF30A;
/// Longest initialised extent.
pub const MAX_LEN: u32 = 32768;
/// Deepest tree we walk (the kernel's limit is 5).
const MAX_DEPTH: u16 = 5;

/// One mapped run: logical block, physical block, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub lblk: u32,
    pub pblk: u64,
    pub len: u32,
}

/// What the extent and block-map code needs from the writer: metadata blocks held in its
/// cache, and new blocks for the tree.
pub trait MetaIo {
    /// The cached contents of metadata block `pblk` (read from disk on first use).
    fn meta(&mut self, pblk: u64) -> Result<&mut Vec<u8>>;
    /// A copy of metadata block `pblk`, for reading only.
    fn read(&mut self, pblk: u64) -> Result<Vec<u8>>;
    /// A new zeroed metadata block near `goal`, entered in the cache.
    fn alloc_meta(&mut self, goal: u64) -> Result<u64>;
}

#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

pub fn header(node: &[u8], what: &str) -> Result<Header> {
    if node.len() < 12 || le16(node, 0) != MAGIC {
        return Err(Ext4Error::Corrupt(format!("{what}: no extent header magic")));
    }
    let h = Header { entries: le16(node, 2), max: le16(node, 4), depth: le16(node, 6) };
    if h.entries > h.max || 12 + h.max as usize * 12 > node.len() || h.depth > MAX_DEPTH {
        return Err(Ext4Error::Corrupt(format!(
            "{what}: extent header entries {} max {} depth {} do not fit {} bytes",
            h.entries,
            h.max,
            h.depth,
            node.len()
        )));
    }
    Ok(h)
}

fn put_header(node: &mut [u8], entries: u16, max: u16, depth: u16) {
    put16(node, 0, MAGIC);
    put16(node, 2, entries);
    put16(node, 4, max);
    put16(node, 6, depth);
    put32(node, 8, 0);
}

fn leaf_entry(node: &[u8], i: usize) -> Run {
    let o = 12 + i * 12;
    let raw_len = le16(node, o + 4) as u32;
    let len = if raw_len > MAX_LEN { raw_len - MAX_LEN } else { raw_len };
    Run { lblk: le32(node, o), pblk: (le16(node, o + 6) as u64) << 32 | le32(node, o + 8) as u64, len }
}
fn put_leaf_entry(node: &mut [u8], i: usize, r: Run) {
    let o = 12 + i * 12;
    put32(node, o, r.lblk);
    put16(node, o + 4, r.len as u16);
    put16(node, o + 6, (r.pblk >> 32) as u16);
    put32(node, o + 8, r.pblk as u32);
}
fn index_entry(node: &[u8], i: usize) -> (u32, u64) {
    let o = 12 + i * 12;
    (le32(node, o), le32(node, o + 4) as u64 | (le16(node, o + 8) as u64) << 32)
}
fn put_index_entry(node: &mut [u8], i: usize, lblk: u32, pblk: u64) {
    let o = 12 + i * 12;
    put32(node, o, lblk);
    put32(node, o + 4, pblk as u32);
    put16(node, o + 8, (pblk >> 32) as u16);
    put16(node, o + 10, 0);
}

pub fn block_max(bs: usize) -> u16 {
    ((bs - 12) / 12) as u16
}

/// Writes the tail checksum of an extent block owned by an inode with `owner_seed`.
pub fn set_block_checksum(block: &mut [u8], owner_seed: u32) {
    let max = le16(block, 4) as usize;
    let end = 12 + max * 12;
    if end + 4 <= block.len() {
        let c = crc32c(owner_seed, &block[..end]);
        put32(block, end, c);
    }
}

/// Every run of the tree, in order, and the tree's own blocks.
pub fn collect(root: &[u8], io: &mut dyn MetaIo, blocks_count: u64) -> Result<(Vec<Run>, Vec<u64>)> {
    let mut runs = Vec::new();
    let mut tree = Vec::new();
    walk(root.to_vec(), io, blocks_count, &mut runs, &mut tree, None)?;
    Ok((runs, tree))
}

fn walk(
    node: Vec<u8>,
    io: &mut dyn MetaIo,
    blocks_count: u64,
    runs: &mut Vec<Run>,
    tree: &mut Vec<u64>,
    parent_depth: Option<u16>,
) -> Result<()> {
    let h = header(&node, "extent node")?;
    if let Some(p) = parent_depth {
        if h.depth + 1 != p {
            return Err(Ext4Error::Corrupt("extent tree depth does not decrease by one".into()));
        }
    }
    if tree.len() > 1 << 20 {
        return Err(Ext4Error::Corrupt("extent tree has too many blocks".into()));
    }
    for i in 0..h.entries as usize {
        if h.depth == 0 {
            let r = leaf_entry(&node, i);
            if r.pblk.checked_add(r.len as u64).is_none_or(|e| e > blocks_count) {
                return Err(Ext4Error::Corrupt(format!("extent maps past the end of the filesystem ({r:?})")));
            }
            runs.push(r);
        } else {
            let (_, child) = index_entry(&node, i);
            if child >= blocks_count || child == 0 {
                return Err(Ext4Error::Corrupt(format!("extent index points at block {child}")));
            }
            tree.push(child);
            let data = io.read(child)?;
            walk(data, io, blocks_count, runs, tree, Some(h.depth))?;
        }
    }
    Ok(())
}

/// Physical block of logical block `lblk`, if mapped.
pub fn map(root: &[u8], lblk: u32, io: &mut dyn MetaIo) -> Result<Option<u64>> {
    let mut node = root.to_vec();
    for _ in 0..=MAX_DEPTH {
        let h = header(&node, "extent node")?;
        if h.depth == 0 {
            for i in 0..h.entries as usize {
                let r = leaf_entry(&node, i);
                if lblk >= r.lblk && (lblk - r.lblk) < r.len {
                    return Ok(Some(r.pblk + (lblk - r.lblk) as u64));
                }
            }
            return Ok(None);
        }
        let mut child = None;
        for i in 0..h.entries as usize {
            let (start, pblk) = index_entry(&node, i);
            if start <= lblk {
                child = Some(pblk);
            }
        }
        match child {
            Some(c) => node = io.read(c)?,
            None => return Ok(None),
        }
    }
    Err(Ext4Error::Corrupt("extent tree deeper than 5".into()))
}

/// Builds the tree of a new file from its runs (ascending, each at most [`MAX_LEN`]):
/// in the inode up to 4 runs, else one level of leaf blocks. Returns the tree blocks used.
pub fn build(root: &mut [u8], runs: &[Run], bs: usize, goal: u64, io: &mut dyn MetaIo) -> Result<Vec<u64>> {
    root.fill(0);
    if runs.len() <= 4 {
        put_header(root, runs.len() as u16, 4, 0);
        for (i, r) in runs.iter().enumerate() {
            put_leaf_entry(root, i, *r);
        }
        return Ok(Vec::new());
    }
    let per_leaf = block_max(bs) as usize;
    let leaves = runs.len().div_ceil(per_leaf);
    if leaves > 4 {
        return Err(Ext4Error::Unsupported(format!(
            "a file in {} fragments (needs a two-level extent tree); free space is too fragmented",
            runs.len()
        )));
    }
    put_header(root, leaves as u16, 4, 1);
    let mut used = Vec::new();
    for (li, chunk) in runs.chunks(per_leaf).enumerate() {
        let pblk = io.alloc_meta(goal)?;
        used.push(pblk);
        let leaf = io.meta(pblk)?;
        put_header(leaf, chunk.len() as u16, per_leaf as u16, 0);
        for (i, r) in chunk.iter().enumerate() {
            put_leaf_entry(leaf, i, *r);
        }
        put_index_entry(root, li, chunk[0].lblk, pblk);
    }
    Ok(used)
}

/// Maps one more block at the end of an existing file (directory growth). Returns the
/// tree blocks it had to allocate.
pub fn append(root: &mut [u8], lblk: u32, pblk: u64, bs: usize, io: &mut dyn MetaIo) -> Result<Vec<u64>> {
    let h = header(root, "inode extent root")?;
    match h.depth {
        0 => {
            if append_in_leaf(root, lblk, pblk) {
                return Ok(Vec::new());
            }
            // Root full: push its runs down into a new leaf, the root becomes an index.
            let leaf_blk = io.alloc_meta(pblk)?;
            let per_leaf = block_max(bs);
            let mut runs = Vec::new();
            for i in 0..h.entries as usize {
                runs.push(leaf_entry(root, i));
            }
            let raw_entries = root[12..12 + 12 * h.entries as usize].to_vec();
            let leaf = io.meta(leaf_blk)?;
            put_header(leaf, h.entries, per_leaf, 0);
            leaf[12..12 + raw_entries.len()].copy_from_slice(&raw_entries);
            if !append_in_leaf(leaf, lblk, pblk) {
                return Err(Ext4Error::Corrupt("new extent leaf unexpectedly full".into()));
            }
            root[12..].fill(0);
            put_header(root, 1, 4, 1);
            put_index_entry(root, 0, runs.first().map(|r| r.lblk).unwrap_or(0), leaf_blk);
            Ok(vec![leaf_blk])
        }
        1 => {
            if h.entries == 0 {
                return Err(Ext4Error::Corrupt("empty extent index".into()));
            }
            let (_, last_leaf) = index_entry(root, h.entries as usize - 1);
            {
                let leaf = io.meta(last_leaf)?;
                header(leaf, "extent leaf")?;
                if append_in_leaf(leaf, lblk, pblk) {
                    return Ok(Vec::new());
                }
            }
            if h.entries >= h.max {
                return Err(Ext4Error::Unsupported("growing a directory whose extent tree needs a new level".into()));
            }
            let leaf_blk = io.alloc_meta(pblk)?;
            let leaf = io.meta(leaf_blk)?;
            put_header(leaf, 1, block_max(bs), 0);
            put_leaf_entry(leaf, 0, Run { lblk, pblk, len: 1 });
            put_index_entry(root, h.entries as usize, lblk, leaf_blk);
            put16(root, 2, h.entries + 1);
            Ok(vec![leaf_blk])
        }
        _ => Err(Ext4Error::Unsupported("growing a directory with an extent tree deeper than 1".into())),
    }
}

fn append_in_leaf(node: &mut [u8], lblk: u32, pblk: u64) -> bool {
    let entries = le16(node, 2) as usize;
    let max = le16(node, 4) as usize;
    if entries > 0 {
        let o = 12 + (entries - 1) * 12;
        let raw_len = le16(node, o + 4) as u32;
        let last = leaf_entry(node, entries - 1);
        if raw_len < MAX_LEN && last.lblk + last.len == lblk && last.pblk + last.len as u64 == pblk {
            put16(node, o + 4, (raw_len + 1) as u16);
            return true;
        }
    }
    if entries < max {
        put_leaf_entry(node, entries, Run { lblk, pblk, len: 1 });
        put16(node, 2, entries as u16 + 1);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Mem {
        blocks: BTreeMap<u64, Vec<u8>>,
        next: u64,
    }
    impl MetaIo for Mem {
        fn meta(&mut self, pblk: u64) -> Result<&mut Vec<u8>> {
            self.blocks.get_mut(&pblk).ok_or_else(|| Ext4Error::Corrupt("absent".into()))
        }
        fn read(&mut self, pblk: u64) -> Result<Vec<u8>> {
            self.meta(pblk).cloned()
        }
        fn alloc_meta(&mut self, _goal: u64) -> Result<u64> {
            self.next += 1;
            self.blocks.insert(self.next, vec![0; 1024]);
            Ok(self.next)
        }
    }

    #[test]
    fn build_map_append() {
        let mut io = Mem { blocks: BTreeMap::new(), next: 1000 };
        let runs: Vec<Run> = (0..10).map(|i| Run { lblk: i * 10, pblk: 5000 + i as u64 * 20, len: 10 }).collect();
        let mut root = [0u8; 60];
        let used = build(&mut root, &runs, 1024, 0, &mut io).unwrap();
        assert_eq!(used.len(), 1);
        assert_eq!(map(&root, 15, &mut io).unwrap(), Some(5025));
        assert_eq!(map(&root, 100, &mut io).unwrap(), None);
        let (all, tree) = collect(&root, &mut io, 1 << 20).unwrap();
        assert_eq!(all, runs);
        assert_eq!(tree, used);
        append(&mut root, 100, 5190, 1024, &mut io).unwrap();
        assert_eq!(map(&root, 100, &mut io).unwrap(), Some(5190));

        let mut small = [0u8; 60];
        build(&mut small, &runs[..4], 1024, 0, &mut io).unwrap();
        append(&mut small, 40, 7000, 1024, &mut io).unwrap();
        assert_eq!(header(&small, "t").unwrap().depth, 1);
        assert_eq!(map(&small, 40, &mut io).unwrap(), Some(7000));
        assert_eq!(map(&small, 3, &mut io).unwrap(), Some(5003));
    }

    #[test]
    fn hostile_headers_are_errors() {
        let mut root = [0u8; 60];
        put_header(&mut root, 9, 4, 0);
        assert!(header(&root, "x").is_err());
        put_header(&mut root, 1, 4, 9);
        assert!(header(&root, "x").is_err());
    }
}
