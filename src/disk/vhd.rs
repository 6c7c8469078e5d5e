//! VHD images (fixed and dynamic), read and written by graft's own code.
//!
//! Spec: Microsoft, "Virtual Hard Disk Image Format Specification", version 1.0
//! (October 2006): "Hard Disk Footer Format", "Dynamic Disk Header Format", "Block
//! Allocation Table and Data Blocks", "Appendix: CHS Calculation". Mirrored as markdown at
//! <https://github.com/afeique/vhd-image-format>. All fields are big-endian; sectors are
//! 512 bytes.
//!
//! Layout: a fixed disk is the data followed by a 512-byte footer. A dynamic disk is a
//! footer copy, the dynamic header, the block allocation table (BAT), blocks (each a
//! sector bitmap then the block's data) and the footer. Everything read from the file is
//! checked at open time (checksums, sizes, every BAT entry inside the file), so reads and
//! writes later only meet consistent metadata.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::open::{Access, DiskError};
use super::{check_range, BlockDevice};

pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
pub const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
pub const SECTOR: u64 = 512;
const FOOTER_SIZE: usize = 512;
const HEADER_SIZE: usize = 1024;
const FORMAT_VERSION: u32 = 0x0001_0000;
const UNUSED_BAT: u32 = 0xffff_ffff;
/// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
pub const VHD_EPOCH_UNIX: i64 = 946_684_800;
/// The largest BAT graft accepts (16 MiB of entries: 8 TiB with 2 MiB blocks).
const MAX_BAT_ENTRIES: u32 = 4 << 20;
/// Default block size of dynamic disks (the spec's and every tool's).
pub const DEFAULT_BLOCK_SIZE: u32 = 2 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

/// The 512-byte hard disk footer (the spec's "Hard Disk Footer Format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub data_offset: u64,
    pub timestamp: u32,
    pub creator_app: [u8; 4],
    pub original_size: u64,
    pub current_size: u64,
    pub geometry: (u16, u8, u8),
    pub disk_type: DiskType,
    pub uuid: [u8; 16],
    raw: [u8; FOOTER_SIZE],
}

/// One's complement of the byte sum, skipping the 4-byte checksum field at `skip`.
fn checksum(bytes: &[u8], skip: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |acc, (_, &b)| acc.wrapping_add(b as u32));
    !sum
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().unwrap())
}
fn be64(b: &[u8], o: usize) -> u64 {
    u64::from_be_bytes(b[o..o + 8].try_into().unwrap())
}

impl Footer {
    /// Parses and checks a footer; the error says which field is wrong.
    pub fn parse(b: &[u8]) -> Result<Footer, String> {
        if b.len() < FOOTER_SIZE {
            return Err(format!("footer is {} bytes, needs 512", b.len()));
        }
        let b: [u8; FOOTER_SIZE] = b[..FOOTER_SIZE].try_into().unwrap();
        if b[..8] != *FOOTER_COOKIE {
            return Err("cookie is not \"conectix\"".into());
        }
        let stored = be32(&b, 64);
        let computed = checksum(&b, 64);
        if stored != computed {
            return Err(format!(
                "checksum field (offset 64) is {stored:#010x}, the bytes sum to {computed:#010x}"
            ));
        }
        let version = be32(&b, 12);
        if version >> 16 != 1 {
            return Err(format!("file format version {version:#010x} is not 1.x"));
        }
        let disk_type = match be32(&b, 60) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            other => {
                return Err(format!(
                "disk type (offset 60) is {other}, not 2 (fixed), 3 (dynamic) or 4 (differencing)"
            ))
            }
        };
        let geometry = be32(&b, 56);
        Ok(Footer {
            data_offset: be64(&b, 16),
            timestamp: be32(&b, 24),
            creator_app: b[28..32].try_into().unwrap(),
            original_size: be64(&b, 40),
            current_size: be64(&b, 48),
            geometry: (
                (geometry >> 16) as u16,
                (geometry >> 8) as u8,
                geometry as u8,
            ),
            disk_type,
            uuid: b[68..84].try_into().unwrap(),
            raw: b,
        })
    }

    pub fn bytes(&self) -> &[u8; FOOTER_SIZE] {
        &self.raw
    }
}

/// The spec's CHS algorithm ("Appendix: CHS Calculation"): a geometry whose product does
/// not exceed the size. Stored for tools that want it; graft sizes the disk by
/// `current_size` alone.
pub fn chs_geometry(size: u64) -> (u16, u8, u8) {
    let mut total = size / SECTOR;
    total = total.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255u64;
        heads = 16u64;
        cth = total / spt;
    } else {
        let mut s = 17u64;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads).min(65535) as u16, heads as u8, spt as u8)
}

/// Builds a footer. `creator_app` is `qem2` on purpose: qemu's vpc driver sizes a disk by
/// its CHS geometry unless the creator is one it knows to store an exact `current_size`,
/// and `qem2` is the one qemu itself writes for exact sizes; Hyper-V and Azure read
/// `current_size` whatever the creator.
fn build_footer(
    size: u64,
    disk_type: DiskType,
    data_offset: u64,
    timestamp: u32,
    uuid: [u8; 16],
) -> Footer {
    let mut b = [0u8; FOOTER_SIZE];
    b[..8].copy_from_slice(FOOTER_COOKIE);
    b[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: "reserved", always set
    b[12..16].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    b[16..24].copy_from_slice(&data_offset.to_be_bytes());
    b[24..28].copy_from_slice(&timestamp.to_be_bytes());
    b[28..32].copy_from_slice(b"qem2");
    b[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // creator version
    b[36..40].copy_from_slice(b"Wi2k"); // creator host OS, as Windows tools write it
    b[40..48].copy_from_slice(&size.to_be_bytes());
    b[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = chs_geometry(size);
    b[56..58].copy_from_slice(&c.to_be_bytes());
    b[58] = h;
    b[59] = s;
    let t = match disk_type {
        DiskType::Fixed => 2u32,
        DiskType::Dynamic => 3,
        DiskType::Differencing => 4,
    };
    b[60..64].copy_from_slice(&t.to_be_bytes());
    b[68..84].copy_from_slice(&uuid);
    let sum = checksum(&b, 64);
    b[64..68].copy_from_slice(&sum.to_be_bytes());
    Footer::parse(&b).expect("a footer graft builds is valid")
}

/// The dynamic disk header (the spec's "Dynamic Disk Header Format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    pub table_offset: u64,
    pub max_table_entries: u32,
    pub block_size: u32,
}

impl DynamicHeader {
    pub fn parse(b: &[u8]) -> Result<DynamicHeader, String> {
        if b.len() < HEADER_SIZE {
            return Err(format!("dynamic header is {} bytes, needs 1024", b.len()));
        }
        if b[..8] != *HEADER_COOKIE {
            return Err("cookie is not \"cxsparse\"".into());
        }
        let stored = be32(b, 36);
        let computed = checksum(&b[..HEADER_SIZE], 36);
        if stored != computed {
            return Err(format!(
                "checksum field (offset 36) is {stored:#010x}, the bytes sum to {computed:#010x}"
            ));
        }
        let version = be32(b, 24);
        if version >> 16 != 1 {
            return Err(format!("header version {version:#010x} is not 1.x"));
        }
        let block_size = be32(b, 32);
        if !block_size.is_power_of_two() || !(SECTOR as u32..=(256 << 20)).contains(&block_size) {
            return Err(format!(
                "block size (offset 32) {block_size} is not a power of two from 512 B to 256 MiB"
            ));
        }
        Ok(DynamicHeader {
            table_offset: be64(b, 16),
            max_table_entries: be32(b, 28),
            block_size,
        })
    }

    fn build(table_offset: u64, max_table_entries: u32, block_size: u32) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[..8].copy_from_slice(HEADER_COOKIE);
        b[8..16].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: unused
        b[16..24].copy_from_slice(&table_offset.to_be_bytes());
        b[24..28].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        b[28..32].copy_from_slice(&max_table_entries.to_be_bytes());
        b[32..36].copy_from_slice(&block_size.to_be_bytes());
        let sum = checksum(&b, 36);
        b[36..40].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// Where a VHD's bytes live: a host file, or memory (tests and fuzzing).
pub trait VhdStore {
    fn store_len(&self) -> io::Result<u64>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
}

impl VhdStore for File {
    fn store_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
}

impl VhdStore for Vec<u8> {
    fn store_len(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len() as u64)?;
        buf.copy_from_slice(&self[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let end = offset as usize + buf.len();
        if end > self.len() {
            self.resize(end, 0);
        }
        self[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.resize(len as usize, 0);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Dynamic {
    bat: Vec<u32>,
    bat_offset: u64,
    block_size: u64,
    /// Bytes of a block's sector bitmap, padded to whole sectors.
    bitmap_bytes: u64,
    /// Where the trailing footer starts; new blocks go here.
    footer_pos: u64,
}

/// A VHD image as a [`BlockDevice`].
pub struct VhdDevice<S: VhdStore = File> {
    store: S,
    path: PathBuf,
    writable: bool,
    footer: Footer,
    size: u64,
    dynamic: Option<Dynamic>,
}

impl VhdDevice<File> {
    pub fn open(path: &Path, access: Access) -> Result<Self, DiskError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(access.writable())
            .open(path)
            .map_err(|e| DiskError::io(path, e))?;
        Self::open_store(file, path, access)
    }
}

impl<S: VhdStore> VhdDevice<S> {
    /// Opens a VHD held by `store`; `path` only names it in errors.
    pub fn open_store(store: S, path: &Path, access: Access) -> Result<Self, DiskError> {
        let corrupt =
            |structure, offset, reason: String| DiskError::corrupt(path, structure, offset, reason);
        let len = store.store_len().map_err(|e| DiskError::io(path, e))?;
        if len < FOOTER_SIZE as u64 {
            return Err(corrupt(
                "VHD footer",
                0,
                format!("the file is {len} bytes long, shorter than a footer"),
            ));
        }
        let footer_pos = len - FOOTER_SIZE as u64;
        let mut fb = [0u8; FOOTER_SIZE];
        store
            .read_exact_at(&mut fb, footer_pos)
            .map_err(|e| DiskError::io(path, e))?;
        let footer = Footer::parse(&fb).map_err(|r| corrupt("VHD footer", footer_pos, r))?;
        let size = footer.current_size;
        let dynamic = match footer.disk_type {
            DiskType::Differencing => return Err(differencing_unsupported(path)),
            DiskType::Fixed => {
                if size > footer_pos {
                    return Err(corrupt("VHD footer", footer_pos + 48, format!("current size {size} is larger than the data before the footer ({footer_pos} bytes)")));
                }
                None
            }
            DiskType::Dynamic => Some(Self::open_dynamic(&store, path, &footer, footer_pos)?),
        };
        if access.writable() && footer_pos % SECTOR != 0 && dynamic.is_some() {
            return Err(corrupt(
                "VHD footer",
                footer_pos,
                "the file length is not a multiple of 512; refusing to allocate blocks in it"
                    .into(),
            ));
        }
        Ok(Self {
            store,
            path: path.to_path_buf(),
            writable: access.writable(),
            footer,
            size,
            dynamic,
        })
    }

    fn open_dynamic(
        store: &S,
        path: &Path,
        footer: &Footer,
        footer_pos: u64,
    ) -> Result<Dynamic, DiskError> {
        let corrupt =
            |structure, offset, reason: String| DiskError::corrupt(path, structure, offset, reason);
        let hoff = footer.data_offset;
        if hoff
            .checked_add(HEADER_SIZE as u64)
            .is_none_or(|end| end > footer_pos)
        {
            return Err(corrupt("VHD footer", footer_pos + 16, format!("data offset {hoff} does not leave room for the dynamic header before the footer")));
        }
        let mut hb = [0u8; HEADER_SIZE];
        store
            .read_exact_at(&mut hb, hoff)
            .map_err(|e| DiskError::io(path, e))?;
        let header =
            DynamicHeader::parse(&hb).map_err(|r| corrupt("VHD dynamic header", hoff, r))?;
        let bs = header.block_size as u64;
        let needed = footer.current_size.div_ceil(bs);
        let entries = header.max_table_entries;
        if entries > MAX_BAT_ENTRIES {
            return Err(corrupt(
                "VHD dynamic header",
                hoff + 28,
                format!("max table entries {entries} exceeds graft's limit of {MAX_BAT_ENTRIES}"),
            ));
        }
        if (entries as u64) < needed {
            return Err(corrupt("VHD dynamic header", hoff + 28, format!("max table entries {entries} cannot map the current size {} with {bs}-byte blocks (needs {needed})", footer.current_size)));
        }
        let bat_offset = header.table_offset;
        let bat_bytes = entries as u64 * 4;
        if bat_offset
            .checked_add(bat_bytes)
            .is_none_or(|end| end > footer_pos)
        {
            return Err(corrupt("VHD dynamic header", hoff + 16, format!("the BAT at {bat_offset} ({entries} entries) runs past the footer at {footer_pos}")));
        }
        let mut raw = vec![0u8; bat_bytes as usize];
        store
            .read_exact_at(&mut raw, bat_offset)
            .map_err(|e| DiskError::io(path, e))?;
        let bitmap_bytes = (bs / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
        let mut bat = Vec::with_capacity(entries as usize);
        for (i, e) in raw.chunks_exact(4).enumerate() {
            let entry = u32::from_be_bytes(e.try_into().unwrap());
            if entry != UNUSED_BAT {
                let start = entry as u64 * SECTOR;
                if start
                    .checked_add(bitmap_bytes + bs)
                    .is_none_or(|end| end > footer_pos)
                {
                    return Err(corrupt(
                        "VHD BAT entry",
                        bat_offset + i as u64 * 4,
                        format!("block {i} at sector {entry} (byte {start}) runs past the footer at {footer_pos}"),
                    ));
                }
            }
            bat.push(entry);
        }
        Ok(Dynamic {
            bat,
            bat_offset,
            block_size: bs,
            bitmap_bytes,
            footer_pos,
        })
    }

    /// The block size of a dynamic disk; `None` for a fixed one.
    pub fn block_size(&self) -> Option<u64> {
        self.dynamic.as_ref().map(|d| d.block_size)
    }

    /// How many blocks of a dynamic disk are allocated (0 for a fixed one).
    pub fn allocated_blocks(&self) -> usize {
        self.dynamic
            .as_ref()
            .map_or(0, |d| d.bat.iter().filter(|&&e| e != UNUSED_BAT).count())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives back the store (tests and fuzzing look at the bytes written).
    pub fn into_store(self) -> S {
        self.store
    }

    fn read_dynamic(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let d = self.dynamic.as_ref().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let block = (pos / d.block_size) as usize;
            let within = pos % d.block_size;
            let n = ((d.block_size - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match d.bat.get(block).copied() {
                None | Some(UNUSED_BAT) => out.fill(0),
                Some(entry) => {
                    let block_start = entry as u64 * SECTOR;
                    let data_start = block_start + d.bitmap_bytes;
                    // Sectors whose bitmap bit is clear hold no data and read as zeros.
                    let first = within / SECTOR;
                    let last = (within + n as u64 - 1) / SECTOR;
                    let mut bitmap = vec![0u8; (last / 8 - first / 8 + 1) as usize];
                    self.store
                        .read_exact_at(&mut bitmap, block_start + first / 8)?;
                    let bit =
                        |s: u64| bitmap[(s / 8 - first / 8) as usize] & (0x80 >> (s % 8)) != 0;
                    let mut s = first;
                    while s <= last {
                        let present = bit(s);
                        let mut e = s;
                        while e < last && bit(e + 1) == present {
                            e += 1;
                        }
                        let lo = (s * SECTOR).max(within);
                        let hi = ((e + 1) * SECTOR).min(within + n as u64);
                        let piece = &mut out[(lo - within) as usize..(hi - within) as usize];
                        if present {
                            self.store.read_exact_at(piece, data_start + lo)?;
                        } else {
                            piece.fill(0);
                        }
                        s = e + 1;
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Appends a zeroed block with every bitmap bit set (as qemu and Hyper-V do), moves the
    /// footer behind it and records it in the BAT, in that order: a crash in between leaves
    /// at worst an unreferenced block.
    fn allocate_block(&mut self, block: usize) -> io::Result<u32> {
        let d = self.dynamic.as_mut().unwrap();
        let start = d.footer_pos;
        let sector = u32::try_from(start / SECTOR)
            .ok()
            .filter(|&s| s != UNUSED_BAT)
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{}: VHD is full: a block at byte {start} is beyond the 32-bit sector range",
                    self.path.display()
                ))
            })?;
        let new_footer_pos = start + d.bitmap_bytes + d.block_size;
        self.store.set_len(new_footer_pos + FOOTER_SIZE as u64)?;
        // The old footer's bytes are inside the new bitmap and are overwritten here.
        self.store
            .write_all_at(&vec![0xffu8; d.bitmap_bytes as usize], start)?;
        self.store
            .write_all_at(self.footer.bytes(), new_footer_pos)?;
        self.store
            .write_all_at(&sector.to_be_bytes(), d.bat_offset + block as u64 * 4)?;
        d.footer_pos = new_footer_pos;
        d.bat[block] = sector;
        Ok(sector)
    }

    fn write_dynamic(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let (block_size, bitmap_bytes) = {
                let d = self.dynamic.as_ref().unwrap();
                (d.block_size, d.bitmap_bytes)
            };
            let pos = offset + done as u64;
            let block = (pos / block_size) as usize;
            let within = pos % block_size;
            let n = ((block_size - within) as usize).min(buf.len() - done);
            let data = &buf[done..done + n];
            let entry = self.dynamic.as_ref().unwrap().bat[block];
            let entry = if entry == UNUSED_BAT {
                if data.iter().all(|&b| b == 0) {
                    done += n;
                    continue; // an unallocated block already reads as zeros
                }
                self.allocate_block(block)?
            } else {
                entry
            };
            let block_start = entry as u64 * SECTOR;
            let data_start = block_start + bitmap_bytes;
            // Sectors not yet marked present may hold stale bytes: zero them, then mark them.
            let first = within / SECTOR;
            let last = (within + n as u64 - 1) / SECTOR;
            let bm_lo = first / 8;
            let mut bitmap = vec![0u8; (last / 8 - bm_lo + 1) as usize];
            self.store.read_exact_at(&mut bitmap, block_start + bm_lo)?;
            let mut changed = false;
            for s in first..=last {
                let byte = &mut bitmap[(s / 8 - bm_lo) as usize];
                let mask = 0x80u8 >> (s % 8);
                if *byte & mask == 0 {
                    self.store
                        .write_all_at(&[0u8; SECTOR as usize], data_start + s * SECTOR)?;
                    *byte |= mask;
                    changed = true;
                }
            }
            self.store.write_all_at(data, data_start + within)?;
            if changed {
                self.store.write_all_at(&bitmap, block_start + bm_lo)?;
            }
            done += n;
        }
        Ok(())
    }
}

impl<S: VhdStore> BlockDevice for VhdDevice<S> {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.size)?;
        if buf.is_empty() {
            return Ok(());
        }
        if self.dynamic.is_some() {
            self.read_dynamic(buf, offset)
        } else {
            self.store.read_exact_at(buf, offset)
        }
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: VHD opened read-only", self.path.display()),
            ));
        }
        check_range(offset, buf.len(), self.size)?;
        if buf.is_empty() {
            return Ok(());
        }
        if self.dynamic.is_some() {
            self.write_dynamic(buf, offset)
        } else {
            self.store.write_all_at(buf, offset)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.store.sync()
    }
}

/// Where a new VHD's footer timestamp and UUID come from: never the clock or a random
/// source, so the same input gives the same bytes.
#[derive(Debug, Clone, Default)]
pub struct VhdIdentity {
    /// Seconds since 1970 for the footer's timestamp (e.g. the lockfile's epoch); before
    /// 2000 is stored as 0. `None`: 0.
    pub epoch: Option<i64>,
    /// Bytes the UUID is derived from (sha256, first 16 bytes, RFC 9562 version 8).
    /// `None`: the sha256 of the disk's content and size.
    pub uuid_seed: Option<Vec<u8>>,
}

impl VhdIdentity {
    fn timestamp(&self) -> u32 {
        self.epoch
            .map(|e| (e - VHD_EPOCH_UNIX).clamp(0, u32::MAX as i64) as u32)
            .unwrap_or(0)
    }
    fn uuid(&self, content_digest: &[u8]) -> [u8; 16] {
        let digest = match &self.uuid_seed {
            Some(seed) => Sha256::digest(seed).to_vec(),
            None => content_digest.to_vec(),
        };
        let mut u: [u8; 16] = digest[..16].try_into().unwrap();
        u[6] = (u[6] & 0x0f) | 0x80; // version 8: custom, derived
        u[8] = (u[8] & 0x3f) | 0x80; // RFC variant
        u
    }
}

const COPY_CHUNK: usize = 1 << 20;

/// Reads `src` in 1 MiB chunks, handing each non-zero chunk to `sink`, and returns the
/// sha256 of the content (with its length) for the derived UUID.
fn for_each_data_chunk(
    src: &dyn BlockDevice,
    mut sink: impl FnMut(&[u8], u64) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    hasher.update(src.len().to_be_bytes());
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut off = 0u64;
    while off < src.len() {
        let n = (src.len() - off).min(COPY_CHUNK as u64) as usize;
        src.read_at(&mut buf[..n], off)?;
        hasher.update(&buf[..n]);
        if buf[..n].iter().any(|&b| b != 0) {
            sink(&buf[..n], off)?;
        }
        off += n as u64;
    }
    Ok(hasher.finalize().to_vec())
}

/// Writes a fixed VHD holding `src`'s content: the size is rounded up to a multiple of
/// 1 MiB (Azure requires it), `current_size` is that size exactly, zero ranges stay holes.
/// The output is written under `dst` directly; callers wanting atomicity pass a temp name.
pub fn create_fixed(
    src: &dyn BlockDevice,
    dst: &Path,
    identity: &VhdIdentity,
) -> Result<(), DiskError> {
    let size = src.len().next_multiple_of(1 << 20);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .map_err(|e| DiskError::io(dst, e))?;
    file.set_len(size + FOOTER_SIZE as u64)
        .map_err(|e| DiskError::io(dst, e))?;
    let digest = for_each_data_chunk(src, |chunk, off| FileExt::write_all_at(&file, chunk, off))
        .map_err(|e| DiskError::io(dst, e))?;
    let footer = build_footer(
        size,
        DiskType::Fixed,
        u64::MAX,
        identity.timestamp(),
        identity.uuid(&digest),
    );
    FileExt::write_all_at(&file, footer.bytes(), size).map_err(|e| DiskError::io(dst, e))?;
    file.sync_all().map_err(|e| DiskError::io(dst, e))?;
    Ok(())
}

/// Writes an empty dynamic VHD of `size` bytes (rounded up to 1 MiB) into `store`, with
/// 2 MiB blocks; returns the footer written.
fn write_empty_dynamic<S: VhdStore>(
    store: &mut S,
    size: u64,
    timestamp: u32,
    uuid: [u8; 16],
) -> io::Result<Footer> {
    let size = size.next_multiple_of(1 << 20);
    let entries = u32::try_from(size.div_ceil(DEFAULT_BLOCK_SIZE as u64))
        .ok()
        .filter(|&e| e <= MAX_BAT_ENTRIES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{size} bytes is too large for a VHD"),
            )
        })?;
    let header_offset = FOOTER_SIZE as u64;
    let bat_offset = header_offset + HEADER_SIZE as u64;
    let bat_bytes = (entries as u64 * 4).next_multiple_of(SECTOR);
    let footer = build_footer(size, DiskType::Dynamic, header_offset, timestamp, uuid);
    store.set_len(0)?;
    store.write_all_at(footer.bytes(), 0)?;
    store.write_all_at(
        &DynamicHeader::build(bat_offset, entries, DEFAULT_BLOCK_SIZE),
        header_offset,
    )?;
    store.write_all_at(&vec![0xffu8; bat_bytes as usize], bat_offset)?;
    store.write_all_at(footer.bytes(), bat_offset + bat_bytes)?;
    Ok(footer)
}

/// Writes a dynamic VHD holding `src`'s content (size rounded up to 1 MiB, 2 MiB blocks);
/// blocks that are all zeros are left unallocated.
pub fn create_dynamic(
    src: &dyn BlockDevice,
    dst: &Path,
    identity: &VhdIdentity,
) -> Result<(), DiskError> {
    // The UUID depends on the content, which is only known after reading it all: hash
    // first, then write.
    let digest = for_each_data_chunk(src, |_, _| Ok(())).map_err(|e| DiskError::io(dst, e))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .map_err(|e| DiskError::io(dst, e))?;
    write_empty_dynamic(
        &mut file,
        src.len(),
        identity.timestamp(),
        identity.uuid(&digest),
    )
    .map_err(|e| DiskError::io(dst, e))?;
    let mut dev = VhdDevice::open_store(file, dst, Access::ReadWrite)?;
    for_each_data_chunk(src, |chunk, off| dev.write_at(chunk, off))
        .map_err(|e| DiskError::io(dst, e))?;
    dev.flush().map_err(|e| DiskError::io(dst, e))?;
    Ok(())
}

/// An empty dynamic VHD in memory (tests, fuzz seeds).
pub fn empty_dynamic_bytes(size: u64) -> Vec<u8> {
    let mut v = Vec::new();
    write_empty_dynamic(&mut v, size, 0, [0; 16]).expect("in-memory writes do not fail");
    v
}

/// Why a differencing VHD (one with a parent) is refused, and what to do.
pub(crate) fn differencing_unsupported(path: &Path) -> DiskError {
    DiskError::unsupported(
        path,
        "VHD differencing disks are not supported",
        "convert it first: qemu-img convert -O vpc -o subformat=dynamic IN OUT",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDevice;

    fn open_mem(bytes: Vec<u8>, access: Access) -> Result<VhdDevice<Vec<u8>>, DiskError> {
        VhdDevice::open_store(bytes, Path::new("mem.vhd"), access)
    }

    #[test]
    fn chs_follows_the_spec_examples() {
        // 127 GiB and above saturate at 65535/16/255.
        assert_eq!(chs_geometry(200 << 30), (65535, 16, 255));
        // Small disks use 17 sectors per track and at least 4 heads.
        let (c, h, s) = chs_geometry(10 << 20);
        assert_eq!((h, s), (4, 17));
        assert!(c as u64 * h as u64 * s as u64 * 512 <= 10 << 20);
    }

    #[test]
    fn dynamic_write_allocates_and_reads_back() {
        let bytes = empty_dynamic_bytes(8 << 20);
        let mut dev = open_mem(bytes, Access::ReadWrite).unwrap();
        assert_eq!(dev.len(), 8 << 20);
        let mut b = vec![1u8; 4096];
        dev.read_at(&mut b, 0).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        // A write straddling two blocks allocates both.
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let at = (2 << 20) - 3000;
        dev.write_at(&data, at).unwrap();
        let mut back = vec![0u8; data.len()];
        dev.read_at(&mut back, at).unwrap();
        assert_eq!(back, data);
        // Zero writes to unallocated blocks allocate nothing.
        dev.write_at(&vec![0u8; 4096], 6 << 20).unwrap();
        let store = dev.into_store();
        // Reopen: the BAT, footer copy and checksums must all still parse.
        let dev = open_mem(store.clone(), Access::ReadOnly).unwrap();
        let d = dev.dynamic.as_ref().unwrap();
        assert_eq!(d.bat.iter().filter(|&&e| e != UNUSED_BAT).count(), 2);
        let mut back2 = vec![0u8; data.len()];
        dev.read_at(&mut back2, at).unwrap();
        assert_eq!(back2, data);
        assert_eq!(store[store.len() - 512..], store[..512]);
    }

    #[test]
    fn sectors_with_a_clear_bitmap_bit_read_as_zeros() {
        let mut dev = open_mem(empty_dynamic_bytes(4 << 20), Access::ReadWrite).unwrap();
        dev.write_at(&[9u8; 2048], 0).unwrap();
        let mut store = dev.into_store();
        // Block 0 starts where the first footer was; clear the bits of sectors 1 and 2 and
        // leave stale bytes there, as another tool might.
        let block0 = u32::from_be_bytes(store[1536..1540].try_into().unwrap()) as usize * 512;
        store[block0] = 0b1001_1111;
        let mut dev = open_mem(store, Access::ReadWrite).unwrap();
        let mut b = vec![0u8; 2048];
        dev.read_at(&mut b, 0).unwrap();
        assert!(b[..512].iter().all(|&x| x == 9));
        assert!(b[512..1536].iter().all(|&x| x == 0));
        assert!(b[1536..].iter().all(|&x| x == 9));
        // A 10-byte write into sector 1 marks it present and zero-fills the rest of it.
        dev.write_at(&[5u8; 10], 600).unwrap();
        dev.read_at(&mut b, 0).unwrap();
        assert!(b[512..600].iter().all(|&x| x == 0));
        assert!(b[600..610].iter().all(|&x| x == 5));
        assert!(b[610..1024].iter().all(|&x| x == 0));
        assert!(b[1024..1536].iter().all(|&x| x == 0));
        let store = dev.into_store();
        assert_eq!(store[block0], 0b1101_1111);
    }

    #[test]
    fn hostile_dynamic_images_are_errors_not_panics() {
        let good = empty_dynamic_bytes(4 << 20);
        // Wrong footer checksum.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 512 + 40] ^= 1;
        let e = open_mem(bad, Access::ReadOnly).err().unwrap().to_string();
        assert!(e.contains("checksum"), "{e}");
        // BAT entry pointing past the end.
        let mut bad = good.clone();
        bad[1536..1540].copy_from_slice(&0x00ff_0000u32.to_be_bytes());
        let e = open_mem(bad, Access::ReadOnly).err().unwrap().to_string();
        assert!(
            e.contains("BAT entry") && e.contains("past the footer"),
            "{e}"
        );
        // Max table entries too small for the size (an overflow-style lie).
        let mut bad = good.clone();
        let mut h = DynamicHeader::build(1536, 1, DEFAULT_BLOCK_SIZE);
        h[28..32].copy_from_slice(&1u32.to_be_bytes());
        bad[512..1536].copy_from_slice(&h);
        let e = open_mem(bad, Access::ReadOnly).err().unwrap().to_string();
        assert!(e.contains("max table entries"), "{e}");
        // Truncated.
        let e = open_mem(good[..300].to_vec(), Access::ReadOnly)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("shorter than a footer"), "{e}");
        // A huge current size in a fixed footer.
        let mut f = build_footer(u64::MAX - 5, DiskType::Fixed, u64::MAX, 0, [0; 16])
            .bytes()
            .to_vec();
        f.splice(0..0, vec![0u8; 1024]);
        let e = open_mem(f, Access::ReadOnly).err().unwrap().to_string();
        assert!(e.contains("current size"), "{e}");
    }

    #[test]
    fn identity_is_derived() {
        let id = VhdIdentity {
            epoch: Some(1_700_000_000),
            uuid_seed: None,
        };
        assert_eq!(id.timestamp(), (1_700_000_000 - VHD_EPOCH_UNIX) as u32);
        assert_eq!(id.uuid(&[7u8; 32]), id.uuid(&[7u8; 32]));
        assert_ne!(id.uuid(&[7u8; 32]), id.uuid(&[8u8; 32]));
        let dev = MemDevice::new(vec![3u8; 5000]);
        let d1 = for_each_data_chunk(&dev, |_, _| Ok(())).unwrap();
        let d2 = for_each_data_chunk(&dev, |_, _| Ok(())).unwrap();
        assert_eq!(d1, d2);
    }
}
