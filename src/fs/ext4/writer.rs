//! Adding directories, files and symlinks to an existing ext2/3/4 filesystem.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/index.html>; allocation
//! policy in [`super::alloc`].
//!
//! Metadata (bitmaps, descriptors, inodes, directory and tree blocks) is changed in memory
//! and written by [`Ext4Writer::commit`], checksums last. File data is written as it
//! streams in, into blocks that are free on disk until the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::alloc::{self, set_bit, test_bit};
use super::extent::{self, MetaIo, Run};
use super::group_desc::{self, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT};
use super::inode::{self, Inode};
use super::superblock::{self, Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use super::{blockmap, dir, hash, htree, io_err, Ext4Error, Result};
use crate::disk::BlockDevice;

pub type InodeNo = u32;
const ROOT_INO: InodeNo = 2;
/// Links a directory may count before dir_nlink's "1 means many" takes over.
const MAX_LINKS: u16 = 65000;
/// Cap on directories and metadata blocks touched in one session (bounds memory).
const MAX_CACHED_BLOCKS: usize = 1 << 18;

/// Owner, permissions and times of something added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (including setuid/setgid/sticky); the type bits are ignored.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub crtime: i64,
}

impl Meta {
    pub fn new(mode: u16, uid: u32, gid: u32, time: i64) -> Self {
        Self {
            mode,
            uid,
            gid,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
        }
    }
}

/// Blocks and inodes some additions will take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub blocks: u64,
    pub inodes: u64,
}

/// What a session changed, for the caller to print.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub blocks_allocated: u64,
    pub inodes_allocated: u64,
    pub metadata_blocks_written: u64,
    /// Existing files or symlinks replaced.
    pub replaced: u64,
    /// Directories that existed before and received entries.
    pub existing_dirs_changed: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No checksum of its own (block-map indirect blocks).
    Raw,
    Extent(InodeNo),
    DirLeaf(InodeNo),
    DxNode(InodeNo, usize),
}

struct Cached {
    data: Vec<u8>,
    kind: Kind,
    dirty: bool,
}

pub struct Ext4Writer<'a> {
    dev: &'a mut dyn BlockDevice,
    sb: Superblock,
    bs: u64,
    groups: Vec<GroupDesc>,
    gd_dirty: BTreeSet<u32>,
    block_bitmaps: BTreeMap<u32, Vec<u8>>,
    inode_bitmaps: BTreeMap<u32, Vec<u8>>,
    bb_dirty: BTreeSet<u32>,
    ib_dirty: BTreeSet<u32>,
    inodes: BTreeMap<InodeNo, Inode>,
    inode_dirty: BTreeSet<InodeNo>,
    blocks: BTreeMap<u64, Cached>,
    /// Kind given to metadata blocks the extent/block-map code touches next.
    meta_kind: Kind,
    /// Names of each directory looked at: name -> (inode, file type).
    names: BTreeMap<InodeNo, BTreeMap<Vec<u8>, (InodeNo, u8)>>,
    /// First block of a linear directory that may still have room.
    linear_hint: BTreeMap<InodeNo, u32>,
    new_inodes: BTreeSet<InodeNo>,
    touched: BTreeMap<InodeNo, String>,
    cursor: u64,
    /// Blocks of replaced files, released at the commit.
    pending_free: Vec<u64>,
    report: Report,
}

fn split_path(path: &str) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        if c.len() > 255 || c.contains('\0') {
            return Err(Ext4Error::BadName(c.to_string()));
        }
        out.push(c.as_bytes());
    }
    Ok(out)
}

impl<'a> Ext4Writer<'a> {
    /// Reads the superblock and group descriptors and refuses filesystems we cannot
    /// write correctly (see [`Superblock::check_writable`]).
    pub fn open(dev: &'a mut dyn BlockDevice) -> Result<Self> {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        dev.read_at(&mut raw, SUPERBLOCK_OFFSET)
            .map_err(io_err("reading the superblock"))?;
        let sb = Superblock::parse(&raw)?;
        sb.check_writable()?;
        let bs = sb.block_size();
        if sb
            .blocks_count()
            .checked_mul(bs)
            .is_none_or(|end| end > dev.len())
        {
            return Err(Ext4Error::Corrupt(format!(
                "the filesystem's {} blocks of {bs} bytes extend past the end of its {}-byte region",
                sb.blocks_count(),
                dev.len()
            )));
        }
        let ngroups = sb.group_count();
        let per = sb.descs_per_block();
        let ds = sb.desc_size() as usize;
        let mut groups = Vec::with_capacity(ngroups as usize);
        let mut block = vec![0u8; bs as usize];
        for db in 0..sb.desc_blocks() {
            let loc = sb.desc_block_location(db);
            dev.read_at(&mut block, loc * bs)
                .map_err(io_err(format!("reading group descriptor block {loc}")))?;
            for i in 0..per {
                let g = db * per + i;
                if g >= ngroups {
                    break;
                }
                let off = i as usize * ds;
                groups.push(group_desc::parse(&sb, &block[off..off + ds], g)?);
            }
        }
        let free: u64 = groups.iter().map(|g| g.free_blocks() as u64).sum();
        let free_inodes: u64 = groups.iter().map(|g| g.free_inodes() as u64).sum();
        let mut w = Self {
            dev,
            sb,
            bs,
            groups,
            gd_dirty: BTreeSet::new(),
            block_bitmaps: BTreeMap::new(),
            inode_bitmaps: BTreeMap::new(),
            bb_dirty: BTreeSet::new(),
            ib_dirty: BTreeSet::new(),
            inodes: BTreeMap::new(),
            inode_dirty: BTreeSet::new(),
            blocks: BTreeMap::new(),
            meta_kind: Kind::Raw,
            names: BTreeMap::new(),
            linear_hint: BTreeMap::new(),
            new_inodes: BTreeSet::new(),
            touched: BTreeMap::new(),
            cursor: 0,
            pending_free: Vec::new(),
            report: Report::default(),
        };
        // The kernel keeps the superblock's totals lazily; ours must be exact at commit.
        w.sb.set_free_blocks(free);
        w.sb.set_free_inodes(free_inodes as u32);
        let root = w.inode(ROOT_INO)?;
        if !root.is_dir() {
            return Err(Ext4Error::Corrupt(
                "inode 2 (the root) is not a directory".into(),
            ));
        }
        Ok(w)
    }

    pub fn block_size(&self) -> u64 {
        self.bs
    }
    pub fn free_blocks(&self) -> u64 {
        self.sb.free_blocks()
    }
    pub fn free_inodes(&self) -> u64 {
        self.sb.free_inodes() as u64
    }
    fn csum(&self) -> bool {
        self.sb.metadata_csum()
    }
    fn filetype(&self) -> bool {
        self.sb.has_incompat(superblock::INCOMPAT_FILETYPE)
    }
    fn extents(&self) -> bool {
        self.sb.has_incompat(superblock::INCOMPAT_EXTENTS)
    }

    // ---------------------------------------------------------------- estimates

    /// Blocks a regular file of `size` bytes takes, its mapping tree included.
    pub fn file_blocks(&self, size: u64) -> u64 {
        let n = size.div_ceil(self.bs);
        if self.extents() {
            // Fragmentation is unknown before allocating: assume the worst the tree allows.
            if n <= 4 {
                n
            } else {
                n + 4
            }
        } else {
            n + blockmap::overhead(n, self.bs)
        }
    }
    /// Blocks `entries` new names totalling `name_bytes` may add to a directory:
    /// leaves at worst half full after splits, plus index blocks.
    pub fn dir_growth_blocks(&self, entries: u64, name_bytes: u64) -> u64 {
        let bytes = entries * 8 + name_bytes + entries * 3;
        (bytes * 2).div_ceil(self.bs) + 2
    }
    pub fn symlink_blocks(&self, target_len: usize) -> u64 {
        if target_len < 60 {
            0
        } else {
            self.file_blocks(target_len as u64)
        }
    }
    /// Refuses, with numbers, when `needs` exceed what is free.
    pub fn check_space(&self, needs: &Needs) -> Result<()> {
        let (fb, fi) = (self.free_blocks(), self.free_inodes());
        if needs.blocks > fb || needs.inodes > fi {
            return Err(Ext4Error::NoSpace(format!(
                "needs {} blocks and {} inodes, the filesystem has {fb} blocks and {fi} inodes free ({}-byte blocks); \
                 grow the image and filesystem first (qemu-img resize, resize2fs)",
                needs.blocks, needs.inodes, self.bs
            )));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- raw access

    fn read_block(&self, pblk: u64) -> Result<Vec<u8>> {
        if pblk >= self.sb.blocks_count() {
            return Err(Ext4Error::Corrupt(format!(
                "block {pblk} is past the end of the filesystem"
            )));
        }
        if let Some(c) = self.blocks.get(&pblk) {
            return Ok(c.data.clone());
        }
        let mut b = vec![0u8; self.bs as usize];
        self.dev
            .read_at(&mut b, pblk * self.bs)
            .map_err(io_err(format!("reading block {pblk}")))?;
        Ok(b)
    }

    fn cached(&mut self, pblk: u64) -> Result<&mut Cached> {
        if !self.blocks.contains_key(&pblk) {
            if self.blocks.len() >= MAX_CACHED_BLOCKS {
                return Err(Ext4Error::Unsupported(
                    "more than 256 Ki metadata blocks in one session".into(),
                ));
            }
            let data = self.read_block(pblk)?;
            self.blocks.insert(
                pblk,
                Cached {
                    data,
                    kind: Kind::Raw,
                    dirty: false,
                },
            );
        }
        Ok(self.blocks.get_mut(&pblk).expect("inserted"))
    }

    fn inode_location(&self, ino: InodeNo) -> Result<u64> {
        if ino == 0 || ino > self.sb.inodes_count() {
            return Err(Ext4Error::Corrupt(format!(
                "inode number {ino} out of range"
            )));
        }
        let ipg = self.sb.inodes_per_group();
        let g = (ino - 1) / ipg;
        let idx = (ino - 1) % ipg;
        Ok(self.groups[g as usize].inode_table() * self.bs
            + idx as u64 * self.sb.inode_size() as u64)
    }

    fn inode(&mut self, ino: InodeNo) -> Result<Inode> {
        if let Some(i) = self.inodes.get(&ino) {
            return Ok(i.clone());
        }
        let off = self.inode_location(ino)?;
        let mut raw = vec![0u8; self.sb.inode_size() as usize];
        self.dev
            .read_at(&mut raw, off)
            .map_err(io_err(format!("reading inode {ino}")))?;
        let i = Inode { raw };
        if self.csum() {
            i.verify(self.sb.csum_seed(), ino)?;
        }
        if i.extra_isize() as usize + 128 > i.raw.len() {
            return Err(Ext4Error::Corrupt(format!(
                "inode {ino}: i_extra_isize {} too large",
                i.extra_isize()
            )));
        }
        self.inodes.insert(ino, i.clone());
        Ok(i)
    }

    fn put_inode(&mut self, ino: InodeNo, i: Inode) {
        self.inodes.insert(ino, i);
        self.inode_dirty.insert(ino);
    }

    // ---------------------------------------------------------------- bitmaps

    fn block_bitmap(&mut self, g: u32) -> Result<&mut Vec<u8>> {
        if !self.block_bitmaps.contains_key(&g) {
            let gd = &self.groups[g as usize];
            let bs = self.bs as usize;
            let n = self.sb.group_block_count(g) as usize;
            let bm = if self.sb.group_csum() && gd.flags() & BG_BLOCK_UNINIT != 0 {
                let mut b = vec![0u8; bs];
                let first = self.sb.group_first_block(g);
                let end = first + n as u64;
                let mut mark = |blk: u64| {
                    if blk >= first && blk < end {
                        set_bit(&mut b, (blk - first) as usize);
                    }
                };
                for blk in self.sb.super_and_gdt_blocks(g) {
                    mark(blk);
                }
                let itb = (self.sb.inodes_per_group() as u64 * self.sb.inode_size() as u64)
                    .div_ceil(self.bs);
                for h in &self.groups {
                    mark(h.block_bitmap());
                    mark(h.inode_bitmap());
                    for t in 0..itb {
                        mark(h.inode_table() + t);
                    }
                }
                alloc::pad(&mut b, n);
                let free = alloc::count_zeros(&b, n) as u32;
                if free != gd.free_blocks() {
                    return Err(Ext4Error::Corrupt(format!(
                        "group {g}: uninitialised block bitmap would have {free} free blocks, the descriptor says {}; \
                         run e2fsck -f on the image first",
                        gd.free_blocks()
                    )));
                }
                b
            } else {
                let loc = gd.block_bitmap();
                let b = self.read_block(loc)?;
                if self.csum() {
                    let c = alloc::block_bitmap_csum(&self.sb, &b);
                    let stored = super::le16(&gd.raw, 0x18) as u32
                        | if gd.raw.len() >= 64 {
                            (super::le16(&gd.raw, 0x38) as u32) << 16
                        } else {
                            c & 0xFFFF0000
                        };
                    if stored != c {
                        return Err(Ext4Error::Checksum(format!("block bitmap of group {g}")));
                    }
                }
                b
            };
            self.block_bitmaps.insert(g, bm);
        }
        Ok(self.block_bitmaps.get_mut(&g).expect("inserted"))
    }

    fn inode_bitmap(&mut self, g: u32) -> Result<&mut Vec<u8>> {
        if !self.inode_bitmaps.contains_key(&g) {
            let gd = &self.groups[g as usize];
            let ipg = self.sb.inodes_per_group() as usize;
            let bm = if self.sb.group_csum() && gd.flags() & BG_INODE_UNINIT != 0 {
                let mut b = vec![0u8; self.bs as usize];
                alloc::pad(&mut b, ipg);
                b
            } else {
                let b = self.read_block(gd.inode_bitmap())?;
                if self.csum() {
                    let c = alloc::inode_bitmap_csum(&self.sb, &b);
                    let stored = super::le16(&gd.raw, 0x1A) as u32
                        | if gd.raw.len() >= 64 {
                            (super::le16(&gd.raw, 0x3A) as u32) << 16
                        } else {
                            c & 0xFFFF0000
                        };
                    if stored != c {
                        return Err(Ext4Error::Checksum(format!("inode bitmap of group {g}")));
                    }
                }
                b
            };
            self.inode_bitmaps.insert(g, bm);
        }
        Ok(self.inode_bitmaps.get_mut(&g).expect("inserted"))
    }

    fn alloc_inode(&mut self, near: InodeNo, is_dir: bool) -> Result<InodeNo> {
        let ngroups = self.sb.group_count();
        let ipg = self.sb.inodes_per_group();
        let start = (near.max(1) - 1) / ipg;
        for k in 0..ngroups {
            let g = (start + k) % ngroups;
            if self.groups[g as usize].free_inodes() == 0 {
                continue;
            }
            let first_ok = if g == 0 {
                self.sb.first_ino().saturating_sub(1) as usize
            } else {
                0
            };
            let bm = self.inode_bitmap(g)?;
            let Some(i) = alloc::find_zero(bm, first_ok, ipg as usize) else {
                continue;
            };
            set_bit(bm, i);
            self.ib_dirty.insert(g);
            let gd = &mut self.groups[g as usize];
            gd.set_free_inodes(gd.free_inodes() - 1);
            if is_dir {
                gd.set_used_dirs(gd.used_dirs() + 1);
            }
            if self.sb.group_csum() {
                gd.set_flags(gd.flags() & !BG_INODE_UNINIT);
                let unused = gd.itable_unused().min(ipg - (i as u32 + 1));
                gd.set_itable_unused(unused);
            }
            self.gd_dirty.insert(g);
            self.sb.set_free_inodes(self.sb.free_inodes() - 1);
            self.report.inodes_allocated += 1;
            let ino = g * ipg + i as u32 + 1;
            self.new_inodes.insert(ino);
            return Ok(ino);
        }
        Err(Ext4Error::NoSpace("no free inodes left".into()))
    }

    fn mark_blocks(&mut self, start: u64, len: u64) -> Result<()> {
        let bpg = self.sb.blocks_per_group() as u64;
        let fdb = self.sb.first_data_block() as u64;
        let mut b = start;
        while b < start + len {
            let g = ((b - fdb) / bpg) as u32;
            let idx = ((b - fdb) % bpg) as usize;
            let take = (bpg - idx as u64).min(start + len - b);
            let bm = self.block_bitmap(g)?;
            for i in idx..idx + take as usize {
                if test_bit(bm, i) {
                    return Err(Ext4Error::Corrupt(format!(
                        "allocator chose block {} which is in use",
                        b + (i - idx) as u64
                    )));
                }
                set_bit(bm, i);
            }
            self.bb_dirty.insert(g);
            let gd = &mut self.groups[g as usize];
            gd.set_free_blocks(gd.free_blocks() - take as u32);
            if self.sb.group_csum() {
                gd.set_flags(gd.flags() & !BG_BLOCK_UNINIT);
            }
            self.gd_dirty.insert(g);
            b += take;
        }
        self.sb.set_free_blocks(self.sb.free_blocks() - len);
        self.report.blocks_allocated += len;
        Ok(())
    }

    /// Next free run at or after block `from` (no wrap): (start, length up to `max`).
    fn next_free(&mut self, from: u64, max: u64) -> Result<Option<(u64, u64)>> {
        let bpg = self.sb.blocks_per_group() as u64;
        let fdb = self.sb.first_data_block() as u64;
        let total = self.sb.blocks_count();
        let mut b = from.max(fdb);
        while b < total {
            let g = ((b - fdb) / bpg) as u32;
            let n = self.sb.group_block_count(g) as usize;
            if self.groups[g as usize].free_blocks() == 0 {
                b = self.sb.group_first_block(g + 1);
                continue;
            }
            let idx = ((b - fdb) % bpg) as usize;
            let bm = self.block_bitmap(g)?;
            match alloc::find_zero(bm, idx, n) {
                None => b = self.sb.group_first_block(g + 1),
                Some(i) => {
                    let start = self.sb.group_first_block(g) + i as u64;
                    // Extend across group boundaries while blocks stay free.
                    let mut len = 0u64;
                    let mut cur = start;
                    while len < max && cur < total {
                        let cg = ((cur - fdb) / bpg) as u32;
                        let ci = ((cur - fdb) % bpg) as usize;
                        let cn = self.sb.group_block_count(cg) as usize;
                        let bm = self.block_bitmap(cg)?;
                        let r = alloc::zero_run(bm, ci, cn, (max - len) as usize) as u64;
                        len += r;
                        cur += r;
                        if ci + (r as usize) < cn {
                            break;
                        }
                    }
                    return Ok(Some((start, len)));
                }
            }
        }
        Ok(None)
    }

    /// Allocates `n` blocks (policy in [`super::alloc`]); returns the runs.
    fn alloc_blocks(&mut self, n: u64, goal: u64) -> Result<Vec<(u64, u64)>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > self.sb.free_blocks() {
            return Err(Ext4Error::NoSpace(format!(
                "needs {n} more blocks, {} free",
                self.sb.free_blocks()
            )));
        }
        let total = self.sb.blocks_count();
        let goal = if goal >= total { 0 } else { goal };
        // One contiguous run, first-fit from the goal, wrapping once.
        for (from, to) in [(goal, total), (0, goal)] {
            let mut b = from;
            while b < to {
                match self.next_free(b, n)? {
                    Some((s, l)) if s < to => {
                        if l >= n {
                            self.mark_blocks(s, n)?;
                            self.cursor = s + n;
                            return Ok(vec![(s, n)]);
                        }
                        b = s + l;
                    }
                    _ => break,
                }
            }
        }
        // Fragmented: first-fit runs from the goal.
        let mut runs = Vec::new();
        let mut left = n;
        for (from, to) in [(goal, total), (0, goal)] {
            let mut b = from;
            while left > 0 && b < to {
                match self.next_free(b, left)? {
                    Some((s, l)) if s < to => {
                        let l = l.min(to - s);
                        self.mark_blocks(s, l)?;
                        runs.push((s, l));
                        left -= l;
                        b = s + l;
                        self.cursor = b;
                    }
                    _ => break,
                }
            }
        }
        if left > 0 {
            return Err(Ext4Error::Corrupt(
                "free block counts disagree with the bitmaps".into(),
            ));
        }
        Ok(runs)
    }

    fn goal_for(&self, ino: InodeNo) -> u64 {
        if self.cursor != 0 {
            return self.cursor;
        }
        let g = (ino.max(1) - 1) / self.sb.inodes_per_group();
        self.sb.group_first_block(g)
    }

    // ---------------------------------------------------------------- mapping

    fn map_block(&mut self, ino: InodeNo, lblk: u32) -> Result<Option<u64>> {
        let i = self.inode(ino)?;
        let root = i.block_area().to_vec();
        let bs = self.bs as usize;
        let bc = self.sb.blocks_count();
        let r = if i.flags() & inode::FL_EXTENTS != 0 {
            extent::map(&root, lblk, self)?
        } else {
            blockmap::map(&root, lblk as u64, bs, self, bc)?
        };
        if let Some(p) = r {
            if p >= bc {
                return Err(Ext4Error::Corrupt(format!(
                    "inode {ino} maps block {p} past the end"
                )));
            }
        }
        Ok(r)
    }

    /// Builds the mapping of a new inode from its data runs.
    fn map_new(&mut self, ino: InodeNo, i: &mut Inode, runs: &[(u64, u64)]) -> Result<u64> {
        let bs = self.bs as usize;
        let goal = runs.last().map(|r| r.0 + r.1).unwrap_or(0);
        if self.extents() {
            let mut ext = Vec::new();
            let mut lblk = 0u32;
            for &(s, l) in runs {
                let mut off = 0;
                while off < l {
                    let len = (l - off).min(extent::MAX_LEN as u64) as u32;
                    ext.push(Run {
                        lblk,
                        pblk: s + off,
                        len,
                    });
                    lblk += len;
                    off += len as u64;
                }
            }
            self.meta_kind = Kind::Extent(ino);
            let mut root = [0u8; 60];
            let tree = extent::build(&mut root, &ext, bs, goal, self)?;
            i.block_area_mut().copy_from_slice(&root);
            i.set_flags(i.flags() | inode::FL_EXTENTS);
            Ok(tree.len() as u64)
        } else {
            self.meta_kind = Kind::Raw;
            let mut root = [0u8; 60];
            let mut tree = 0;
            let mut lblk = 0u64;
            for &(s, l) in runs {
                for k in 0..l {
                    tree += blockmap::set(&mut root, lblk, s + k, bs, self)?.len() as u64;
                    lblk += 1;
                }
            }
            i.block_area_mut().copy_from_slice(&root);
            Ok(tree)
        }
    }

    /// Adds one block at the end of directory `ino`; returns (logical, physical).
    fn grow_dir(&mut self, ino: InodeNo) -> Result<(u32, u64)> {
        let mut i = self.inode(ino)?;
        let bs = self.bs as usize;
        let lblk = (i.size() / self.bs) as u32;
        let goal = match lblk {
            0 => self.goal_for(ino),
            _ => self
                .map_block(ino, lblk - 1)?
                .map(|p| p + 1)
                .unwrap_or_else(|| self.goal_for(ino)),
        };
        let pblk = self.alloc_blocks(1, goal)?[0].0;
        let mut root = i.block_area().to_vec();
        let tree = if i.flags() & inode::FL_EXTENTS != 0 {
            self.meta_kind = Kind::Extent(ino);
            extent::append(&mut root, lblk, pblk, bs, self)?.len() as u64
        } else {
            self.meta_kind = Kind::Raw;
            blockmap::set(&mut root, lblk as u64, pblk, bs, self)?.len() as u64
        };
        i.block_area_mut().copy_from_slice(&root);
        i.set_size(i.size() + self.bs);
        i.set_sectors(i.sectors() + (1 + tree) * self.bs / 512)?;
        self.put_inode(ino, i);
        self.blocks.insert(
            pblk,
            Cached {
                data: dir::empty_block(bs, self.csum()),
                kind: Kind::DirLeaf(ino),
                dirty: true,
            },
        );
        Ok((lblk, pblk))
    }

    // ---------------------------------------------------------------- directories

    fn check_dir_inode(&mut self, ino: InodeNo) -> Result<Inode> {
        let i = self.inode(ino)?;
        if !i.is_dir() {
            return Err(Ext4Error::NotADirectory(format!("inode {ino}")));
        }
        if i.flags() & inode::FL_INLINE_DATA != 0 {
            return Err(Ext4Error::Unsupported(format!(
                "directory inode {ino} keeps its entries inline (inline_data)"
            )));
        }
        if i.flags() & inode::FL_ENCRYPT != 0 {
            return Err(Ext4Error::Refused(format!(
                "directory inode {ino} is encrypted"
            )));
        }
        if i.flags() & inode::FL_CASEFOLD != 0 {
            return Err(Ext4Error::Refused(format!(
                "directory inode {ino} is case-insensitive (casefold)"
            )));
        }
        if i.size() % self.bs != 0 || i.size() / self.bs > (1 << 24) {
            return Err(Ext4Error::Corrupt(format!(
                "directory inode {ino} has size {}",
                i.size()
            )));
        }
        Ok(i)
    }

    fn load_names(&mut self, ino: InodeNo) -> Result<()> {
        if self.names.contains_key(&ino) {
            return Ok(());
        }
        let i = self.check_dir_inode(ino)?;
        let nblocks = (i.size() / self.bs) as u32;
        let filetype = self.filetype();
        let seed = i.owner_seed(self.sb.csum_seed(), ino);
        let mut map = BTreeMap::new();
        for l in 0..nblocks {
            let Some(p) = self.map_block(ino, l)? else {
                continue;
            };
            let b = self.read_block(p)?;
            if self.csum() && dir::has_tail(&b) && !dir::verify_tail_checksum(&b, seed) {
                return Err(Ext4Error::Checksum(format!(
                    "directory inode {ino} block {l}"
                )));
            }
            for e in dir::parse(&b, filetype, &|| format!("directory inode {ino} block {l}"))? {
                if e.inode != 0 {
                    map.insert(e.name, (e.inode, e.file_type));
                }
            }
        }
        self.names.insert(ino, map);
        Ok(())
    }

    fn lookup_in(&mut self, dir_ino: InodeNo, name: &[u8]) -> Result<Option<(InodeNo, u8)>> {
        self.load_names(dir_ino)?;
        Ok(self.names[&dir_ino].get(name).copied())
    }

    fn read_symlink(&mut self, ino: InodeNo) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        let size = i.size();
        if size > self.bs || size == 0 {
            return Err(Ext4Error::Corrupt(format!(
                "symlink inode {ino} of size {size}"
            )));
        }
        if i.flags() & inode::FL_INLINE_DATA != 0 {
            return Err(Ext4Error::Unsupported(format!(
                "inline-data symlink inode {ino}"
            )));
        }
        if size < 60 && i.flags() & inode::FL_EXTENTS == 0 && i.sectors() == 0 {
            return Ok(i.block_area()[..size as usize].to_vec());
        }
        let p = self
            .map_block(ino, 0)?
            .ok_or_else(|| Ext4Error::Corrupt(format!("symlink inode {ino} has no block")))?;
        Ok(self.read_block(p)?[..size as usize].to_vec())
    }

    /// Resolves `path` from the root, following symlinks inside the filesystem
    /// (absolute targets restart at its root). `follow_last` follows a final symlink.
    fn resolve(&mut self, path: &str, follow_last: bool) -> Result<Option<InodeNo>> {
        let mut stack: Vec<Vec<u8>> = split_path(path)?
            .into_iter()
            .rev()
            .map(|c| c.to_vec())
            .collect();
        let mut cur = ROOT_INO;
        let mut follows = 0;
        while let Some(comp) = stack.pop() {
            let Some((ino, _)) = self.lookup_in(cur, &comp)? else {
                return Ok(None);
            };
            let i = self.inode(ino)?;
            if i.is_symlink() && (follow_last || !stack.is_empty()) {
                follows += 1;
                if follows > 40 {
                    return Err(Ext4Error::Refused(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = self.read_symlink(ino)?;
                let t = String::from_utf8_lossy(&target).into_owned();
                if t.starts_with('/') {
                    cur = ROOT_INO;
                }
                for c in split_path(&t)?.into_iter().rev() {
                    stack.push(c.to_vec());
                }
                continue;
            }
            if !stack.is_empty() && !i.is_dir() {
                return Err(Ext4Error::NotADirectory(path.to_string()));
            }
            cur = ino;
        }
        Ok(Some(cur))
    }

    /// The inode at `path`, symlinks followed (within the filesystem).
    pub fn lookup(&mut self, path: &str) -> Result<Option<InodeNo>> {
        self.resolve(path, true)
    }

    fn add_entry(
        &mut self,
        dir_ino: InodeNo,
        dir_path: &str,
        name: &[u8],
        ino: InodeNo,
        ft: u8,
    ) -> Result<()> {
        self.load_names(dir_ino)?;
        let i = self.check_dir_inode(dir_ino)?;
        if i.flags() & inode::FL_INDEX != 0 && self.sb.has_compat(superblock::COMPAT_DIR_INDEX) {
            self.htree_insert(dir_ino, name, ino, ft)?;
        } else if i.flags() & inode::FL_INDEX != 0 {
            return Err(Ext4Error::Unsupported(format!(
                "{dir_path}: indexed directory on a filesystem without dir_index"
            )));
        } else {
            self.linear_insert(dir_ino, name, ino, ft)?;
        }
        self.names
            .get_mut(&dir_ino)
            .expect("loaded")
            .insert(name.to_vec(), (ino, ft));
        if !self.new_inodes.contains(&dir_ino) {
            self.touched.entry(dir_ino).or_insert_with(|| {
                if dir_path.is_empty() {
                    "/".into()
                } else {
                    dir_path.into()
                }
            });
        }
        Ok(())
    }

    fn linear_insert(&mut self, dir_ino: InodeNo, name: &[u8], ino: InodeNo, ft: u8) -> Result<()> {
        let filetype = self.filetype();
        let nblocks = (self.inode(dir_ino)?.size() / self.bs) as u32;
        let hint = self.linear_hint.get(&dir_ino).copied().unwrap_or(0);
        for l in hint..nblocks {
            let Some(p) = self.map_block(dir_ino, l)? else {
                continue;
            };
            // try_insert changes the block only when it returns true.
            let c = self.cached(p)?;
            if dir::try_insert(&mut c.data, name, ino, ft, filetype)? {
                c.dirty = true;
                c.kind = Kind::DirLeaf(dir_ino);
                self.linear_hint.insert(dir_ino, l);
                return Ok(());
            }
        }
        if nblocks == 1 && self.sb.has_compat(superblock::COMPAT_DIR_INDEX) {
            self.make_indexed(dir_ino)?;
            return self.htree_insert(dir_ino, name, ino, ft);
        }
        let (l, p) = self.grow_dir(dir_ino)?;
        let c = self.cached(p)?;
        if !dir::try_insert(&mut c.data, name, ino, ft, filetype)? {
            return Err(Ext4Error::BadName(String::from_utf8_lossy(name).into()));
        }
        self.linear_hint.insert(dir_ino, l);
        Ok(())
    }

    fn hash_version(&self, stored: u8) -> u8 {
        if stored <= hash::TEA && self.sb.flags() & superblock::FLAGS_UNSIGNED_HASH != 0 {
            stored + 3
        } else {
            stored
        }
    }

    /// Turns a full one-block linear directory into an htree with one leaf (as the
    /// kernel's make_indexed_dir), moving its entries to the new leaf.
    fn make_indexed(&mut self, dir_ino: InodeNo) -> Result<()> {
        let filetype = self.filetype();
        let csum = self.csum();
        let bs = self.bs as usize;
        let p0 = self
            .map_block(dir_ino, 0)?
            .ok_or_else(|| Ext4Error::Corrupt("directory without block 0".into()))?;
        let b0 = self.read_block(p0)?;
        let mut parent = dir_ino;
        let mut moved = Vec::new();
        for e in dir::parse(&b0, filetype, &|| {
            format!("directory inode {dir_ino} block 0")
        })? {
            if e.inode == 0 {
                continue;
            }
            if e.name == b"." {
                continue;
            }
            if e.name == b".." {
                parent = e.inode;
                continue;
            }
            moved.push((e.inode, e.name, e.file_type));
        }
        let (l1, p1) = self.grow_dir(dir_ino)?;
        let c = self.cached(p1)?;
        dir::pack(&mut c.data, &moved, filetype, csum)?;
        let hv = self.sb.def_hash_version();
        if hv > hash::TEA {
            return Err(Ext4Error::Unsupported(format!("default hash version {hv}")));
        }
        let root = htree::new_root(bs, csum, dir_ino, parent, hv, filetype, &[(0, l1)]);
        self.blocks.insert(
            p0,
            Cached {
                data: root,
                kind: Kind::DxNode(dir_ino, htree::ROOT_COUNT_OFFSET),
                dirty: true,
            },
        );
        let mut i = self.inode(dir_ino)?;
        i.set_flags(i.flags() | inode::FL_INDEX);
        self.put_inode(dir_ino, i);
        Ok(())
    }

    fn htree_insert(&mut self, dir_ino: InodeNo, name: &[u8], ino: InodeNo, ft: u8) -> Result<()> {
        let filetype = self.filetype();
        let csum = self.csum();
        let seed = self.sb.hash_seed();
        let max_levels = if self.sb.has_incompat(superblock::INCOMPAT_LARGEDIR) {
            3
        } else {
            2
        };
        for _attempt in 0..8 {
            let p0 = self
                .map_block(dir_ino, 0)?
                .ok_or_else(|| Ext4Error::Corrupt("htree without block 0".into()))?;
            let root = self.read_block(p0)?;
            let info = htree::root_info(&root)?;
            if info.levels as usize >= max_levels {
                return Err(Ext4Error::Corrupt(format!(
                    "directory inode {dir_ino}: htree depth {}",
                    info.levels
                )));
            }
            let h = hash::dirhash(self.hash_version(info.hash_version), name, &seed)?;
            // path: (physical block, count offset, chosen index)
            let mut path: Vec<(u64, usize, usize)> = Vec::new();
            let mut node = root;
            let mut pblk = p0;
            let mut co = htree::ROOT_COUNT_OFFSET;
            let leaf_lblk;
            loop {
                htree::check_node(
                    &node,
                    co,
                    csum,
                    &format!("directory inode {dir_ino} htree node"),
                )?;
                let idx = htree::find(&node, co, h);
                path.push((pblk, co, idx));
                let child = htree::entry(&node, co, idx).1;
                if path.len() > info.levels as usize {
                    leaf_lblk = child;
                    break;
                }
                pblk = self
                    .map_block(dir_ino, child)?
                    .ok_or_else(|| Ext4Error::Corrupt("htree points at a hole".into()))?;
                node = self.read_block(pblk)?;
                co = htree::NODE_COUNT_OFFSET;
            }
            let leaf_p = self
                .map_block(dir_ino, leaf_lblk)?
                .ok_or_else(|| Ext4Error::Corrupt("htree leaf in a hole".into()))?;
            {
                let c = self.cached(leaf_p)?;
                if dir::try_insert(&mut c.data, name, ino, ft, filetype)? {
                    c.dirty = true;
                    c.kind = Kind::DirLeaf(dir_ino);
                    return Ok(());
                }
            }
            // The leaf is full: make room in its parent for one more index entry first.
            let (pp, pco, pidx) = *path.last().expect("root");
            let parent = self.read_block(pp)?;
            if htree::count(&parent, pco) >= htree::limit(&parent, pco) {
                self.make_index_room(dir_ino, &path, info.levels, max_levels)?;
                continue;
            }
            // Split the leaf by hash order, about half the bytes each side.
            let leaf = self.read_block(leaf_p)?;
            let hv = self.hash_version(info.hash_version);
            let mut ents = Vec::new();
            for e in dir::parse(&leaf, filetype, &|| {
                format!("directory inode {dir_ino} leaf {leaf_lblk}")
            })? {
                if e.inode != 0 {
                    let eh = hash::dirhash(hv, &e.name, &seed)?;
                    ents.push((eh, e.inode, e.name, e.file_type));
                }
            }
            ents.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
            let total: usize = ents.iter().map(|e| dir::needed(e.2.len())).sum();
            let mut acc = 0;
            let mut m = 0;
            while m < ents.len() && acc + dir::needed(ents[m].2.len()) <= total / 2 {
                acc += dir::needed(ents[m].2.len());
                m += 1;
            }
            let m0 = m.max(1);
            let mut split = None;
            for cand in (m0..ents.len()).chain((1..m0).rev()) {
                if ents[cand].0 != ents[cand - 1].0 {
                    split = Some(cand);
                    break;
                }
            }
            let Some(m) = split else {
                return Err(Ext4Error::Unsupported(
                    "a directory leaf full of one hash value".into(),
                ));
            };
            let hash2 = ents[m].0;
            let (new_l, new_p) = self.grow_dir(dir_ino)?;
            let lower: Vec<_> = ents[..m].iter().map(|e| (e.1, e.2.clone(), e.3)).collect();
            let upper: Vec<_> = ents[m..].iter().map(|e| (e.1, e.2.clone(), e.3)).collect();
            {
                let c = self.cached(leaf_p)?;
                dir::pack(&mut c.data, &lower, filetype, csum)?;
                c.dirty = true;
                c.kind = Kind::DirLeaf(dir_ino);
            }
            {
                let c = self.cached(new_p)?;
                dir::pack(&mut c.data, &upper, filetype, csum)?;
            }
            let c = self.cached(pp)?;
            htree::insert(&mut c.data, pco, pidx + 1, hash2, new_l);
            c.dirty = true;
            c.kind = Kind::DxNode(dir_ino, pco);
        }
        Err(Ext4Error::Unsupported(
            "htree insert did not converge".into(),
        ))
    }

    /// The index node above a full leaf is full: add a level under the root, or split
    /// the node into the root.
    fn make_index_room(
        &mut self,
        dir_ino: InodeNo,
        path: &[(u64, usize, usize)],
        levels: u8,
        max_levels: usize,
    ) -> Result<()> {
        let csum = self.csum();
        let bs = self.bs as usize;
        // Deepest full node whose parent has room, or the root.
        let mut k = path.len() - 1;
        loop {
            let b = self.read_block(path[k].0)?;
            if htree::count(&b, path[k].1) < htree::limit(&b, path[k].1) {
                k += 1; // path[k] is the full node to split, its parent has room
                break;
            }
            if k == 0 {
                break;
            }
            k -= 1;
        }
        if k == 0 {
            // The root and everything below it on the path are full: new level.
            if levels as usize + 1 >= max_levels {
                return Err(Ext4Error::Unsupported(format!(
                    "directory inode {dir_ino} is too large: its htree would need a level the filesystem does not allow (largedir)"
                )));
            }
            let root = self.read_block(path[0].0)?;
            let ents = htree::entries(&root, htree::ROOT_COUNT_OFFSET);
            let (nl, np) = self.grow_dir(dir_ino)?;
            self.blocks.insert(
                np,
                Cached {
                    data: htree::new_node(bs, csum, &ents),
                    kind: Kind::DxNode(dir_ino, htree::NODE_COUNT_OFFSET),
                    dirty: true,
                },
            );
            let c = self.cached(path[0].0)?;
            htree::fill(&mut c.data, htree::ROOT_COUNT_OFFSET, csum, &[(0, nl)]);
            htree::set_levels(&mut c.data, levels + 1);
            c.dirty = true;
            c.kind = Kind::DxNode(dir_ino, htree::ROOT_COUNT_OFFSET);
            return Ok(());
        }
        // Split node path[k] (an interior node) in two; the parent path[k-1] has room.
        let (np_blk, nco, _) = path[k];
        let node = self.read_block(np_blk)?;
        let ents = htree::entries(&node, nco);
        let m = ents.len() / 2;
        let upper: Vec<(u32, u32)> = ents[m..].to_vec();
        let hash2 = upper[0].0;
        let (nl, np) = self.grow_dir(dir_ino)?;
        let mut up = upper.clone();
        up[0].0 = 0;
        self.blocks.insert(
            np,
            Cached {
                data: htree::new_node(bs, csum, &up),
                kind: Kind::DxNode(dir_ino, nco),
                dirty: true,
            },
        );
        {
            let c = self.cached(np_blk)?;
            let lower = ents[..m].to_vec();
            htree::fill(&mut c.data, nco, csum, &lower);
            c.dirty = true;
            c.kind = Kind::DxNode(dir_ino, nco);
        }
        let (pp, pco, pidx) = path[k - 1];
        let c = self.cached(pp)?;
        htree::insert(&mut c.data, pco, pidx + 1, hash2, nl);
        c.dirty = true;
        c.kind = Kind::DxNode(dir_ino, pco);
        Ok(())
    }

    // ---------------------------------------------------------------- creating

    fn parent_and_name<'p>(&mut self, path: &'p str) -> Result<(InodeNo, String, &'p [u8])> {
        let comps = split_path(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(Ext4Error::BadName(path.to_string()));
        };
        if *last == b".." {
            return Err(Ext4Error::BadName(path.to_string()));
        }
        let ppath = parents
            .iter()
            .map(|c| String::from_utf8_lossy(c))
            .collect::<Vec<_>>()
            .join("/");
        let pino = self
            .resolve(&ppath, true)?
            .ok_or_else(|| Ext4Error::NotFound(format!("/{ppath}")))?;
        Ok((pino, format!("/{ppath}"), last))
    }

    fn new_inode(&self, mode: u16, meta: &Meta) -> Inode {
        let isz = self.sb.inode_size() as usize;
        let mut i = Inode::new(isz);
        if isz > 128 {
            let want = self.sb.want_extra_isize().max(32).min((isz - 128) as u16);
            super::put16(&mut i.raw, 0x80, want);
        }
        i.set_mode(mode | (meta.mode & 0o7777));
        i.set_owner(meta.uid, meta.gid);
        i.set_times(meta.atime, meta.mtime, meta.ctime, meta.crtime);
        i
    }

    /// Creates every missing directory of `path` (existing ones are kept as they are).
    pub fn mkdir_p(&mut self, path: &str, meta: &Meta) -> Result<InodeNo> {
        let comps = split_path(path)?;
        let mut cur = ROOT_INO;
        let mut cur_path = String::new();
        for comp in comps {
            let sub = format!("{cur_path}/{}", String::from_utf8_lossy(comp));
            match self.lookup_in(cur, comp)? {
                Some((ino, _)) => {
                    let i = self.inode(ino)?;
                    let target = if i.is_symlink() {
                        self.resolve(&sub, true)?
                            .ok_or_else(|| Ext4Error::NotFound(sub.clone()))?
                    } else {
                        ino
                    };
                    if !self.inode(target)?.is_dir() {
                        return Err(Ext4Error::NotADirectory(sub));
                    }
                    cur = target;
                }
                None => {
                    if comp == b".." {
                        return Err(Ext4Error::BadName(path.to_string()));
                    }
                    cur = self.mkdir_in(cur, &cur_path, comp, meta)?;
                }
            }
            cur_path = sub;
        }
        Ok(cur)
    }

    fn mkdir_in(
        &mut self,
        parent: InodeNo,
        parent_path: &str,
        name: &[u8],
        meta: &Meta,
    ) -> Result<InodeNo> {
        let ino = self.alloc_inode(parent, true)?;
        let bs = self.bs as usize;
        let pblk = self.alloc_blocks(1, self.goal_for(parent))?[0].0;
        let mut b = dir::empty_block(bs, self.csum());
        let ft = self.filetype();
        let end = dir::entries_end(&b);
        dir::write_entry(&mut b, 0, ino, 12, b".", dir::FT_DIR, ft);
        dir::write_entry(&mut b, 12, parent, end - 12, b"..", dir::FT_DIR, ft);
        self.blocks.insert(
            pblk,
            Cached {
                data: b,
                kind: Kind::DirLeaf(ino),
                dirty: true,
            },
        );
        let mut i = self.new_inode(inode::S_IFDIR, meta);
        i.set_links(2);
        i.set_size(self.bs);
        let tree = self.map_new(ino, &mut i, &[(pblk, 1)])?;
        i.set_sectors((1 + tree) * self.bs / 512)?;
        self.put_inode(ino, i);
        let mut names = BTreeMap::new();
        names.insert(b".".to_vec(), (ino, dir::FT_DIR));
        names.insert(b"..".to_vec(), (parent, dir::FT_DIR));
        self.names.insert(ino, names);
        self.add_entry(parent, parent_path, name, ino, dir::FT_DIR)?;
        let mut p = self.inode(parent)?;
        let links = p.links();
        if links >= MAX_LINKS || links == 1 {
            if !self.sb.has_ro_compat(superblock::RO_COMPAT_DIR_NLINK) {
                return Err(Ext4Error::Unsupported(
                    "a directory with more than 65000 subdirectories without dir_nlink".into(),
                ));
            }
            p.set_links(1);
        } else {
            p.set_links(links + 1);
        }
        self.put_inode(parent, p);
        self.report.directories += 1;
        Ok(ino)
    }

    /// Handles an existing `name` in `parent`: an error unless `replace`; with it, the
    /// entry is removed and its inode released (blocks freed only at the commit, so data
    /// written in this session never lands in them).
    fn take_existing(
        &mut self,
        parent: InodeNo,
        name: &[u8],
        full: &str,
        replace: bool,
        time: i64,
    ) -> Result<()> {
        let Some((old, _)) = self.lookup_in(parent, name)? else {
            return Ok(());
        };
        if !replace {
            return Err(Ext4Error::Exists(full.to_string()));
        }
        let mut oi = self.inode(old)?;
        if oi.is_dir() {
            return Err(Ext4Error::Refused(format!(
                "{full}: is a directory; only files and symlinks are replaced"
            )));
        }
        let file_acl =
            super::le32(&oi.raw, 0x68) as u64 | (super::le16(&oi.raw, 0x76) as u64) << 32;
        if file_acl != 0 || oi.flags() & inode::FL_INLINE_DATA != 0 {
            return Err(Ext4Error::Unsupported(format!(
                "{full}: replacing a file with an extended-attribute block or inline data"
            )));
        }
        self.remove_entry(parent, name)?;
        if oi.links() > 1 {
            oi.set_links(oi.links() - 1);
            oi.set_times(
                super::le32(&oi.raw, 0x8) as i64,
                super::le32(&oi.raw, 0x10) as i64,
                time,
                time,
            );
            self.put_inode(old, oi);
        } else {
            let bs = self.bs as usize;
            let bc = self.sb.blocks_count();
            let root = oi.block_area().to_vec();
            let fast_symlink =
                oi.is_symlink() && oi.flags() & inode::FL_EXTENTS == 0 && oi.sectors() == 0;
            if !fast_symlink {
                let mut blocks: Vec<u64> = Vec::new();
                if oi.flags() & inode::FL_EXTENTS != 0 {
                    let (runs, tree) = extent::collect(&root, self, bc)?;
                    for r in runs {
                        blocks.extend(r.pblk..r.pblk + r.len as u64);
                    }
                    blocks.extend(tree);
                } else {
                    let (data, tree) = blockmap::collect(&root, bs, self, bc)?;
                    blocks.extend(data);
                    blocks.extend(tree);
                }
                self.pending_free.extend(blocks);
            }
            oi.set_links(0);
            super::put32(&mut oi.raw, 0x14, time as u32);
            self.put_inode(old, oi);
            let ipg = self.sb.inodes_per_group();
            let g = (old - 1) / ipg;
            let bm = self.inode_bitmap(g)?;
            alloc::clear_bit(bm, ((old - 1) % ipg) as usize);
            self.ib_dirty.insert(g);
            let gd = &mut self.groups[g as usize];
            gd.set_free_inodes(gd.free_inodes() + 1);
            self.gd_dirty.insert(g);
            self.sb.set_free_inodes(self.sb.free_inodes() + 1);
        }
        self.names.get_mut(&parent).expect("loaded").remove(name);
        self.report.replaced += 1;
        Ok(())
    }

    /// Removes `name` from directory `dir_ino` (merging its record into the previous one).
    fn remove_entry(&mut self, dir_ino: InodeNo, name: &[u8]) -> Result<()> {
        let filetype = self.filetype();
        let nblocks = (self.inode(dir_ino)?.size() / self.bs) as u32;
        for l in 0..nblocks {
            let Some(p) = self.map_block(dir_ino, l)? else {
                continue;
            };
            let b = self.read_block(p)?;
            let ents = dir::parse(&b, filetype, &|| {
                format!("directory inode {dir_ino} block {l}")
            })?;
            for (k, e) in ents.iter().enumerate() {
                if e.inode == 0 || e.name != name {
                    continue;
                }
                let c = self.cached(p)?;
                if k == 0 {
                    super::put32(&mut c.data, e.offset, 0);
                } else {
                    let prev = &ents[k - 1];
                    super::put16(
                        &mut c.data,
                        prev.offset + 4,
                        (prev.rec_len + e.rec_len) as u16,
                    );
                }
                c.dirty = true;
                c.kind = Kind::DirLeaf(dir_ino);
                self.linear_hint.insert(dir_ino, 0);
                return Ok(());
            }
        }
        Err(Ext4Error::Corrupt(format!(
            "directory inode {dir_ino}: entry vanished"
        )))
    }

    /// Creates a regular file of `size` bytes read from `reader` (exactly that many).
    pub fn create_file(
        &mut self,
        path: &str,
        meta: &Meta,
        size: u64,
        reader: &mut dyn Read,
        replace: bool,
    ) -> Result<InodeNo> {
        let (parent, ppath, name) = self.parent_and_name(path)?;
        self.check_dir_inode(parent)?;
        self.take_existing(parent, name, path, replace, meta.ctime)?;
        if size >= 1 << 31 && !self.sb.has_ro_compat(superblock::RO_COMPAT_LARGE_FILE) {
            let ro = self.sb.ro_compat() | superblock::RO_COMPAT_LARGE_FILE;
            super::put32(&mut self.sb.raw, 0x64, ro);
        }
        let ino = self.alloc_inode(parent, false)?;
        let nblocks = size.div_ceil(self.bs);
        let runs = self.alloc_blocks(nblocks, self.goal_for(parent))?;
        // Stream the data into the runs, 1 MiB at a time.
        let mut left = size;
        let chunk_blocks = ((1 << 20) / self.bs).min(nblocks.max(1));
        let mut buf = vec![0u8; (chunk_blocks * self.bs) as usize];
        for &(s, l) in &runs {
            let mut off = 0;
            while off < l {
                let nb = (l - off).min(chunk_blocks);
                let bytes = (nb * self.bs) as usize;
                let want = (left.min(bytes as u64)) as usize;
                reader
                    .read_exact(&mut buf[..want])
                    .map_err(io_err(format!("reading the data of {path}")))?;
                buf[want..bytes].fill(0);
                self.dev
                    .write_at(&buf[..bytes], (s + off) * self.bs)
                    .map_err(io_err(format!("writing the data of {path}")))?;
                left -= want as u64;
                off += nb;
            }
        }
        let mut extra = [0u8; 1];
        if reader
            .read(&mut extra)
            .map_err(io_err(format!("reading the data of {path}")))?
            != 0
        {
            return Err(Ext4Error::Corrupt(format!(
                "{path}: the source is longer than the {size} bytes announced"
            )));
        }
        let mut i = self.new_inode(inode::S_IFREG, meta);
        i.set_links(1);
        i.set_size(size);
        let tree = self.map_new(ino, &mut i, &runs)?;
        i.set_sectors((nblocks + tree) * self.bs / 512)?;
        self.put_inode(ino, i);
        self.add_entry(parent, &ppath, name, ino, dir::FT_REG)?;
        self.report.files += 1;
        self.report.bytes += size;
        Ok(ino)
    }

    /// Creates a symlink: in the inode when the target is shorter than 60 bytes, else in
    /// one block.
    pub fn symlink(
        &mut self,
        path: &str,
        target: &[u8],
        meta: &Meta,
        replace: bool,
    ) -> Result<InodeNo> {
        if target.is_empty() || target.len() >= self.bs as usize || target.contains(&0) {
            return Err(Ext4Error::BadName(String::from_utf8_lossy(target).into()));
        }
        let (parent, ppath, name) = self.parent_and_name(path)?;
        self.check_dir_inode(parent)?;
        self.take_existing(parent, name, path, replace, meta.ctime)?;
        let ino = self.alloc_inode(parent, false)?;
        let mut i = self.new_inode(
            inode::S_IFLNK,
            &Meta {
                mode: 0o777,
                ..*meta
            },
        );
        i.set_links(1);
        i.set_size(target.len() as u64);
        if target.len() < 60 {
            i.block_area_mut()[..target.len()].copy_from_slice(target);
        } else {
            let runs = self.alloc_blocks(1, self.goal_for(parent))?;
            let mut b = vec![0u8; self.bs as usize];
            b[..target.len()].copy_from_slice(target);
            self.dev
                .write_at(&b, runs[0].0 * self.bs)
                .map_err(io_err(format!("writing symlink {path}")))?;
            let tree = self.map_new(ino, &mut i, &runs)?;
            i.set_sectors((1 + tree) * self.bs / 512)?;
        }
        self.put_inode(ino, i);
        self.add_entry(parent, &ppath, name, ino, dir::FT_SYMLINK)?;
        self.report.symlinks += 1;
        Ok(ino)
    }

    // ---------------------------------------------------------------- commit

    /// Writes all metadata (checksums computed last) and flushes the device.
    pub fn commit(mut self) -> Result<Report> {
        let csum = self.csum();
        let seed = self.sb.csum_seed();
        let bs = self.bs;
        let mut freed = std::mem::take(&mut self.pending_free);
        freed.sort_unstable();
        freed.dedup();
        let bpg = self.sb.blocks_per_group() as u64;
        let fdb = self.sb.first_data_block() as u64;
        for b in freed {
            let g = ((b - fdb) / bpg) as u32;
            let bm = self.block_bitmap(g)?;
            let i = ((b - fdb) % bpg) as usize;
            if !test_bit(bm, i) {
                return Err(Ext4Error::Corrupt(format!(
                    "block {b} of a replaced file was already free"
                )));
            }
            alloc::clear_bit(bm, i);
            self.bb_dirty.insert(g);
            let gd = &mut self.groups[g as usize];
            gd.set_free_blocks(gd.free_blocks() + 1);
            self.gd_dirty.insert(g);
            self.sb.set_free_blocks(self.sb.free_blocks() + 1);
        }
        let dirty: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(&p, _)| p)
            .collect();
        for p in dirty {
            let kind = self.blocks[&p].kind;
            if csum {
                let owner = match kind {
                    Kind::Raw => None,
                    Kind::Extent(o) | Kind::DirLeaf(o) | Kind::DxNode(o, _) => Some(o),
                };
                if let Some(o) = owner {
                    let os = self.inode(o)?.owner_seed(seed, o);
                    let c = self.blocks.get_mut(&p).expect("present");
                    match kind {
                        Kind::Extent(_) => extent::set_block_checksum(&mut c.data, os),
                        Kind::DirLeaf(_) => dir::set_tail_checksum(&mut c.data, os),
                        Kind::DxNode(_, co) => htree::set_checksum(&mut c.data, co, os),
                        Kind::Raw => {}
                    }
                }
            }
            let c = &self.blocks[&p];
            self.dev
                .write_at(&c.data, p * bs)
                .map_err(io_err(format!("writing metadata block {p}")))?;
            self.report.metadata_blocks_written += 1;
        }
        for ino in std::mem::take(&mut self.inode_dirty) {
            let mut i = self.inodes[&ino].clone();
            if csum {
                i.finish(seed, ino);
            }
            let off = self.inode_location(ino)?;
            self.dev
                .write_at(&i.raw, off)
                .map_err(io_err(format!("writing inode {ino}")))?;
        }
        for g in std::mem::take(&mut self.bb_dirty) {
            let b = self.block_bitmaps[&g].clone();
            let loc = self.groups[g as usize].block_bitmap();
            self.dev
                .write_at(&b, loc * bs)
                .map_err(io_err(format!("writing the block bitmap of group {g}")))?;
            if csum {
                let c = alloc::block_bitmap_csum(&self.sb, &b);
                self.groups[g as usize].set_block_bitmap_csum(c);
            }
        }
        for g in std::mem::take(&mut self.ib_dirty) {
            let b = self.inode_bitmaps[&g].clone();
            let loc = self.groups[g as usize].inode_bitmap();
            self.dev
                .write_at(&b, loc * bs)
                .map_err(io_err(format!("writing the inode bitmap of group {g}")))?;
            if csum {
                let c = alloc::inode_bitmap_csum(&self.sb, &b);
                self.groups[g as usize].set_inode_bitmap_csum(c);
            }
        }
        let per = self.sb.descs_per_block();
        let ds = self.sb.desc_size() as u64;
        for g in std::mem::take(&mut self.gd_dirty) {
            let sb = self.sb.clone();
            let gd = &mut self.groups[g as usize];
            gd.finish(&sb, g);
            let loc = sb.desc_block_location(g / per);
            let off = loc * bs + (g % per) as u64 * ds;
            self.dev
                .write_at(&gd.raw, off)
                .map_err(io_err(format!("writing group descriptor {g}")))?;
        }
        self.sb.finish();
        self.dev
            .write_at(&self.sb.raw, SUPERBLOCK_OFFSET)
            .map_err(io_err("writing the superblock"))?;
        self.dev.flush().map_err(io_err("flushing the image"))?;
        let mut report = std::mem::take(&mut self.report);
        report.existing_dirs_changed = self.touched.values().cloned().collect();
        report.existing_dirs_changed.sort();
        Ok(report)
    }
}

impl MetaIo for Ext4Writer<'_> {
    fn meta(&mut self, pblk: u64) -> Result<&mut Vec<u8>> {
        let kind = self.meta_kind;
        let c = self.cached(pblk)?;
        c.dirty = true;
        c.kind = kind;
        Ok(&mut c.data)
    }
    fn read(&mut self, pblk: u64) -> Result<Vec<u8>> {
        // Tree nodes (extent index/leaf, indirect blocks) are looked up once per mapped
        // block: keep them in the cache instead of reading the device each time.
        Ok(self.cached(pblk)?.data.clone())
    }
    fn alloc_meta(&mut self, goal: u64) -> Result<u64> {
        let p = self.alloc_blocks(1, goal)?[0].0;
        let kind = self.meta_kind;
        self.blocks.insert(
            p,
            Cached {
                data: vec![0; self.bs as usize],
                kind,
                dirty: true,
            },
        );
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_and_checked() {
        assert_eq!(
            split_path("/a//b/./c/").unwrap(),
            vec![b"a" as &[u8], b"b", b"c"]
        );
        assert!(split_path(&"x".repeat(256)).is_err());
        assert!(split_path("a/\0b").is_err());
    }
}
