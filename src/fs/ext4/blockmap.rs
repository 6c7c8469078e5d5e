//! Classic ext2/ext3 block maps: 12 direct pointers, then single, double and triple
//! indirect blocks of 32-bit block numbers.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/ifork.html#direct-indirect-block-addressing>

use super::extent::MetaIo;
use super::{le32, put32, Ext4Error, Result};

/// The path of pointer slots leading to `lblk`: (slot in i_block, then slots in each
/// indirect level).
fn path(lblk: u64, per: u64) -> Result<(usize, Vec<usize>)> {
    if lblk < 12 {
        return Ok((lblk as usize, Vec::new()));
    }
    let mut rest = lblk - 12;
    if rest < per {
        return Ok((12, vec![rest as usize]));
    }
    rest -= per;
    if rest < per * per {
        return Ok((13, vec![(rest / per) as usize, (rest % per) as usize]));
    }
    rest -= per * per;
    if rest < per * per * per {
        return Ok((
            14,
            vec![
                (rest / (per * per)) as usize,
                ((rest / per) % per) as usize,
                (rest % per) as usize,
            ],
        ));
    }
    Err(Ext4Error::Unsupported(format!(
        "logical block {lblk} beyond triple-indirect reach"
    )))
}

pub fn map(
    iblock: &[u8],
    lblk: u64,
    bs: usize,
    io: &mut dyn MetaIo,
    blocks_count: u64,
) -> Result<Option<u64>> {
    let (slot, rest) = path(lblk, bs as u64 / 4)?;
    let mut ptr = le32(iblock, slot * 4) as u64;
    for idx in rest {
        if ptr == 0 {
            return Ok(None);
        }
        if ptr >= blocks_count {
            return Err(Ext4Error::Corrupt(format!(
                "indirect block pointer {ptr} past the end of the filesystem"
            )));
        }
        ptr = le32(&io.read(ptr)?, idx * 4) as u64;
    }
    Ok((ptr != 0).then_some(ptr))
}

/// Points `lblk` at `pblk`, allocating indirect blocks on the way (returned, to be
/// counted in i_blocks).
pub fn set(
    iblock: &mut [u8],
    lblk: u64,
    pblk: u64,
    bs: usize,
    io: &mut dyn MetaIo,
) -> Result<Vec<u64>> {
    if pblk > u32::MAX as u64 {
        return Err(Ext4Error::Unsupported(
            "block maps cannot address blocks beyond 2^32".into(),
        ));
    }
    let (slot, rest) = path(lblk, bs as u64 / 4)?;
    let mut new = Vec::new();
    if rest.is_empty() {
        put32(iblock, slot * 4, pblk as u32);
        return Ok(new);
    }
    let mut cur = le32(iblock, slot * 4) as u64;
    if cur == 0 {
        cur = io.alloc_meta(pblk)?;
        new.push(cur);
        put32(iblock, slot * 4, cur as u32);
    }
    for (depth, &idx) in rest.iter().enumerate() {
        let last = depth + 1 == rest.len();
        let next = le32(io.meta(cur)?, idx * 4) as u64;
        if last {
            put32(io.meta(cur)?, idx * 4, pblk as u32);
        } else if next == 0 {
            let b = io.alloc_meta(pblk)?;
            new.push(b);
            put32(io.meta(cur)?, idx * 4, b as u32);
            cur = b;
        } else {
            cur = next;
        }
    }
    Ok(new)
}

/// Every (data, indirect) block of a block-mapped file of `nblocks` logical blocks.
pub fn collect(
    iblock: &[u8],
    bs: usize,
    io: &mut dyn MetaIo,
    blocks_count: u64,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut data = Vec::new();
    let mut tree = Vec::new();
    for i in 0..12 {
        let p = le32(iblock, i * 4) as u64;
        if p != 0 {
            data.push(p);
        }
    }
    for (slot, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
        let p = le32(iblock, slot * 4) as u64;
        walk(p, level, bs, io, blocks_count, &mut data, &mut tree)?;
    }
    Ok((data, tree))
}

fn walk(
    p: u64,
    level: u32,
    bs: usize,
    io: &mut dyn MetaIo,
    bc: u64,
    data: &mut Vec<u64>,
    tree: &mut Vec<u64>,
) -> Result<()> {
    if p == 0 {
        return Ok(());
    }
    if p >= bc {
        return Err(Ext4Error::Corrupt(format!(
            "indirect block pointer {p} past the end of the filesystem"
        )));
    }
    tree.push(p);
    let block = io.read(p)?;
    for i in 0..bs / 4 {
        let c = le32(&block, i * 4) as u64;
        if c == 0 {
            continue;
        }
        if level == 1 {
            data.push(c);
        } else {
            walk(c, level - 1, bs, io, bc, data, tree)?;
        }
    }
    Ok(())
}

/// Indirect blocks a file of `n` blocks needs.
pub fn overhead(n: u64, bs: u64) -> u64 {
    let per = bs / 4;
    let mut extra = 0;
    let mut rest = n.saturating_sub(12);
    if rest > 0 {
        extra += 1;
        rest = rest.saturating_sub(per);
    }
    if rest > 0 {
        let d = rest.min(per * per);
        extra += 1 + d.div_ceil(per);
        rest -= d;
    }
    if rest > 0 {
        extra += 1 + rest.div_ceil(per * per) + rest.div_ceil(per);
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Mem(BTreeMap<u64, Vec<u8>>, u64);
    impl MetaIo for Mem {
        fn meta(&mut self, pblk: u64) -> Result<&mut Vec<u8>> {
            self.0
                .get_mut(&pblk)
                .ok_or_else(|| Ext4Error::Corrupt("absent".into()))
        }
        fn read(&mut self, pblk: u64) -> Result<Vec<u8>> {
            self.meta(pblk).cloned()
        }
        fn alloc_meta(&mut self, _goal: u64) -> Result<u64> {
            self.1 += 1;
            self.0.insert(self.1, vec![0; 1024]);
            Ok(self.1)
        }
    }

    #[test]
    fn set_then_map_all_levels() {
        let mut io = Mem(BTreeMap::new(), 100_000);
        let mut ib = [0u8; 60];
        let n = 12 + 256 + 256 * 256 + 10;
        let mut tree = 0;
        for l in 0..n {
            tree += set(&mut ib, l, 1000 + l, 1024, &mut io).unwrap().len() as u64;
        }
        assert_eq!(tree, overhead(n, 1024));
        for l in [0, 11, 12, 267, 268, 5000, n - 1] {
            assert_eq!(map(&ib, l, 1024, &mut io, 1 << 30).unwrap(), Some(1000 + l));
        }
        assert_eq!(map(&ib, n, 1024, &mut io, 1 << 30).unwrap(), None);
        let (data, t) = collect(&ib, 1024, &mut io, 1 << 30).unwrap();
        assert_eq!(data.len() as u64, n);
        assert_eq!(t.len() as u64, tree);
    }
}
