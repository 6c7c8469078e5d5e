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
        return Err(Ext4Error::Corrupt(format!(
            "{what}: no extent header magic"
        )));
    }
    let h = Header {
        entries: le16(node, 2),
        max: le16(node, 4),
        depth: le16(node, 6),
    };
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
    let len = if raw_len > MAX_LEN {
        raw_len - MAX_LEN
    } else {
        raw_len
    };
    Run {
        lblk: le32(node, o),
        pblk: (le16(node, o + 6) as u64) << 32 | le32(node, o + 8) as u64,
        len,
    }
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
    (
        le32(node, o),
        le32(node, o + 4) as u64 | (le16(node, o + 8) as u64) << 32,
    )
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
pub fn collect(
    root: &[u8],
    io: &mut dyn MetaIo,
    blocks_count: u64,
) -> Result<(Vec<Run>, Vec<u64>)> {
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
            return Err(Ext4Error::Corrupt(
                "extent tree depth does not decrease by one".into(),
            ));
        }
    }
    if tree.len() > 1 << 20 {
        return Err(Ext4Error::Corrupt("extent tree has too many blocks".into()));
    }
    for i in 0..h.entries as usize {
        if h.depth == 0 {
            let r = leaf_entry(&node, i);
            if r.pblk
                .checked_add(r.len as u64)
                .is_none_or(|e| e > blocks_count)
            {
                return Err(Ext4Error::Corrupt(format!(
                    "extent maps past the end of the filesystem ({r:?})"
                )));
            }
            runs.push(r);
        } else {
            let (_, child) = index_entry(&node, i);
            if child >= blocks_count || child == 0 {
                return Err(Ext4Error::Corrupt(format!(
                    "extent index points at block {child}"
                )));
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
pub fn build(
    root: &mut [u8],
    runs: &[Run],
    bs: usize,
    goal: u64,
    io: &mut dyn MetaIo,
) -> Result<Vec<u64>> {
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
        // Very fragmented: grow the tree run by run (it deepens as needed).
        put_header(root, 0, 4, 0);
        let mut used = Vec::new();
        for r in runs {
            used.extend(append_run(root, *r, bs, io)?);
        }
        return Ok(used);
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
pub fn append(
    root: &mut [u8],
    lblk: u32,
    pblk: u64,
    bs: usize,
    io: &mut dyn MetaIo,
) -> Result<Vec<u64>> {
    append_run(root, Run { lblk, pblk, len: 1 }, bs, io)
}

/// Adds `run` after the last mapped block, merging it into the last extent when
/// contiguous; full nodes get a new sibling on the right, and a full root moves down one
/// level (the tree grows at the top, as in the kernel).
pub fn append_run(root: &mut [u8], run: Run, bs: usize, io: &mut dyn MetaIo) -> Result<Vec<u64>> {
    let mut new_blocks = Vec::new();
    let h = header(root, "inode extent root")?;
    if would_overflow(root, h.depth, run, io)? {
        // Everything on the right edge is full: move the root's entries down into one new
        // block (the kernel's grow-in-depth), which then has room for a new sibling.
        if h.depth + 1 > MAX_DEPTH {
            return Err(Ext4Error::Unsupported(
                "an extent tree deeper than 5".into(),
            ));
        }
        let moved = io.alloc_meta(run.pblk)?;
        new_blocks.push(moved);
        let entries = h.entries as usize;
        let old_first = if h.depth == 0 {
            leaf_entry(root, 0).lblk
        } else {
            index_entry(root, 0).0
        };
        let raw = root[12..12 + 12 * entries].to_vec();
        let node = io.meta(moved)?;
        put_header(node, h.entries, block_max(bs), h.depth);
        node[12..12 + raw.len()].copy_from_slice(&raw);
        root[12..].fill(0);
        put_header(root, 1, 4, h.depth + 1);
        put_index_entry(root, 0, old_first, moved);
    }
    let h = header(root, "inode extent root")?;
    if append_rec(root, h.depth, run, bs, io, &mut new_blocks)?.is_some() {
        return Err(Ext4Error::Corrupt(
            "extent root overflowed after growing in depth".into(),
        ));
    }
    Ok(new_blocks)
}

/// Whether appending `run` under `node` would need a new entry in `node` itself while it
/// is full.
fn would_overflow(node: &[u8], depth: u16, run: Run, io: &mut dyn MetaIo) -> Result<bool> {
    let h = header(node, "extent node")?;
    if depth == 0 {
        let mut copy = node.to_vec();
        return Ok(!append_in_leaf(&mut copy, run));
    }
    if h.entries < h.max {
        return Ok(false);
    }
    let (_, child) = index_entry(node, h.entries as usize - 1);
    let data = io.read(child)?;
    would_overflow(&data, depth - 1, run, io)
}

/// Appends under `node` (at `depth`); returns a new right sibling (first logical block,
/// block) when `node` had no room for it.
fn append_rec(
    node: &mut [u8],
    depth: u16,
    run: Run,
    bs: usize,
    io: &mut dyn MetaIo,
    new_blocks: &mut Vec<u64>,
) -> Result<Option<(u32, u64)>> {
    let h = header(node, "extent node")?;
    if h.depth != depth {
        return Err(Ext4Error::Corrupt(
            "extent tree depth does not decrease by one".into(),
        ));
    }
    let sibling = if depth == 0 {
        if append_in_leaf(node, run) {
            return Ok(None);
        }
        let b = io.alloc_meta(run.pblk)?;
        new_blocks.push(b);
        let leaf = io.meta(b)?;
        put_header(leaf, 1, block_max(bs), 0);
        put_leaf_entry(leaf, 0, run);
        (run.lblk, b)
    } else {
        if h.entries == 0 {
            return Err(Ext4Error::Corrupt("empty extent index node".into()));
        }
        let (_, child) = index_entry(node, h.entries as usize - 1);
        let mut data = io.read(child)?;
        let r = append_rec(&mut data, depth - 1, run, bs, io, new_blocks)?;
        *io.meta(child)? = data;
        let Some((first, blk)) = r else {
            return Ok(None);
        };
        if h.entries < h.max {
            put_index_entry(node, h.entries as usize, first, blk);
            put16(node, 2, h.entries + 1);
            return Ok(None);
        }
        let b = io.alloc_meta(run.pblk)?;
        new_blocks.push(b);
        let idx = io.meta(b)?;
        put_header(idx, 1, block_max(bs), depth);
        put_index_entry(idx, 0, first, blk);
        (first, b)
    };
    Ok(Some(sibling))
}

fn append_in_leaf(node: &mut [u8], run: Run) -> bool {
    let entries = le16(node, 2) as usize;
    let max = le16(node, 4) as usize;
    if entries > 0 {
        let o = 12 + (entries - 1) * 12;
        let raw_len = le16(node, o + 4) as u32;
        let last = leaf_entry(node, entries - 1);
        if raw_len + run.len <= MAX_LEN
            && last.lblk + last.len == run.lblk
            && last.pblk + last.len as u64 == run.pblk
        {
            put16(node, o + 4, (raw_len + run.len) as u16);
            return true;
        }
    }
    if entries < max {
        put_leaf_entry(node, entries, run);
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
            self.blocks
                .get_mut(&pblk)
                .ok_or_else(|| Ext4Error::Corrupt("absent".into()))
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
        let mut io = Mem {
            blocks: BTreeMap::new(),
            next: 1000,
        };
        let runs: Vec<Run> = (0..10)
            .map(|i| Run {
                lblk: i * 10,
                pblk: 5000 + i as u64 * 20,
                len: 10,
            })
            .collect();
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
    fn deep_trees_from_many_fragments() {
        let mut io = Mem {
            blocks: BTreeMap::new(),
            next: 1 << 30,
        };
        // 1 KiB blocks: 84 extents a leaf; 2,000 fragments need depth 2.
        let runs: Vec<Run> = (0..2000)
            .map(|i| Run {
                lblk: i * 2,
                pblk: 100_000 + i as u64 * 3,
                len: 2,
            })
            .collect();
        let mut root = [0u8; 60];
        let used = build(&mut root, &runs, 1024, 0, &mut io).unwrap();
        assert_eq!(header(&root, "t").unwrap().depth, 2);
        let (all, tree) = collect(&root, &mut io, 1 << 40).unwrap();
        assert_eq!(all, runs);
        assert_eq!(tree.len(), used.len());
        for r in runs.iter().step_by(97) {
            assert_eq!(map(&root, r.lblk + 1, &mut io).unwrap(), Some(r.pblk + 1));
        }
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
