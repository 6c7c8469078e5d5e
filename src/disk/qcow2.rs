//! qcow2 images, read and written through the `imago` crate.
//!
//! Spec: <https://www.qemu.org/docs/master/interop/qcow2.html> ("Header", "Header
//! extensions", "Cluster mapping").
//!
//! Before imago sees an image, graft parses the header itself and walks the whole backing
//! chain: imago follows backing files recursively (a loop would never end) and reports
//! unsupported features only generically. The checks here refuse, with a message that
//! says what to do: encryption, external data files, unknown incompatible features,
//! images marked dirty or corrupt, loops and over-deep chains, L1/L2 entries that point
//! past the end of the file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder, StorageOpenOptions};

use super::open::{detect_format, Access, BackingInfo, DiskError, ImageFormat};
use super::{check_range, BlockDevice};

/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// A chain deeper than this is refused: real chains are a handful of images deep.
pub const MAX_CHAIN_DEPTH: usize = 32;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_EXTERNAL_DATA: u64 = 1 << 2;
const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

/// The incompatible features graft knows and refuses, in the order they are checked:
/// (bit, why, what to do).
const REFUSED_INCOMPAT: [(u64, &str, &str); 5] = [
    (
        INCOMPAT_DIRTY,
        "the image is marked dirty (it was not closed cleanly; refcounts may be stale)",
        "run `qemu-img check -r all` on it first",
    ),
    (
        INCOMPAT_CORRUPT,
        "the image is marked corrupt",
        "run `qemu-img check -r all` on it first",
    ),
    (
        INCOMPAT_EXTERNAL_DATA,
        "the image keeps its data in an external data file",
        "convert it to a self-contained image: qemu-img convert -O qcow2 IN OUT",
    ),
    (
        INCOMPAT_COMPRESSION_TYPE,
        "the image uses a compression type other than zlib (zstd)",
        "recompress it with zlib: qemu-img convert -c -o compression_type=zlib -O qcow2 IN OUT",
    ),
    (
        INCOMPAT_EXTENDED_L2,
        "the image uses extended L2 entries (subclusters)",
        "convert it without them: qemu-img convert -O qcow2 -o extended_l2=off IN OUT",
    ),
];

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_EXTERNAL_DATA_FILE: u32 = 0x4441_5441;

/// Entries of L1/L2 tables: bits 9..55 hold the host offset of a standard cluster.
const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_COMPRESSED: u64 = 1 << 62;

/// An L1 table bigger than this (entries) is refused before it is read: 32 Mi entries map
/// 4 PiB with 64 KiB clusters, far beyond any real image.
const MAX_L1_ENTRIES: u64 = 32 << 20;

/// The header fields graft checks before trusting an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub incompatible_features: u64,
    pub compatible_features: u64,
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// Parses and checks the header of the qcow2 file at `path` (`file_len` bytes long).
    pub fn read(path: &Path, file: &File, file_len: u64) -> Result<Header, DiskError> {
        let corrupt =
            |offset: u64, reason: String| DiskError::corrupt(path, "qcow2 header", offset, reason);
        if file_len < 72 {
            return Err(corrupt(
                0,
                format!(
                    "the file is {file_len} bytes long, shorter than a qcow2 header (72 bytes)"
                ),
            ));
        }
        let mut h = [0u8; 112];
        let n = file_len.min(112) as usize;
        file.read_exact_at(&mut h[..n], 0)
            .map_err(|e| DiskError::io(path, e))?;
        let be32 = |o: usize| u32::from_be_bytes(h[o..o + 4].try_into().unwrap());
        let be64 = |o: usize| u64::from_be_bytes(h[o..o + 8].try_into().unwrap());
        if h[..4] != MAGIC {
            return Err(corrupt(0, "wrong magic: not a qcow2 file".into()));
        }
        let version = be32(4);
        if version != 2 && version != 3 {
            return Err(DiskError::unsupported(
                path,
                format!("qcow2 version {version} is not supported (only 2 and 3)"),
                "convert it with qemu-img convert -O qcow2",
            ));
        }
        let cluster_bits = be32(20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(
                20,
                format!("cluster_bits {cluster_bits} is outside 9..=21 (512 B to 2 MiB clusters)"),
            ));
        }
        let cluster_size = 1u64 << cluster_bits;
        let (incompatible_features, compatible_features, header_length) = if version == 3 {
            if file_len < 104 {
                return Err(corrupt(
                    72,
                    "the file ends inside the version 3 header".into(),
                ));
            }
            let header_length = be32(100) as u64;
            if header_length < 104 || header_length > cluster_size {
                return Err(corrupt(
                    100,
                    format!("header_length {header_length} is not within 104..={cluster_size}"),
                ));
            }
            (be64(72), be64(80), header_length)
        } else {
            (0, 0, 72)
        };
        let crypt_method = be32(32);
        if crypt_method != 0 {
            return Err(DiskError::unsupported(
                path,
                format!("the image is encrypted ({})", if crypt_method == 1 { "AES" } else { "LUKS" }),
                "decrypt it first: qemu-img convert --object secret,... --image-opts ... -O qcow2 OUT",
            ));
        }
        for (bit, reason, hint) in REFUSED_INCOMPAT {
            if incompatible_features & bit != 0 {
                return Err(DiskError::unsupported(path, reason, hint));
            }
        }
        let known = REFUSED_INCOMPAT.iter().fold(0, |m, r| m | r.0);
        let unknown = incompatible_features & !known;
        if unknown != 0 {
            return Err(DiskError::unsupported(
                path,
                format!("unknown incompatible feature bits {unknown:#x}"),
                "convert it with a qemu-img that knows them: qemu-img convert -O qcow2 IN OUT",
            ));
        }

        let size = be64(24);
        let l1_size = be32(36);
        let l1_table_offset = be64(40);
        let refcount_table_offset = be64(48);
        let refcount_table_clusters = be32(56);

        // Every guest cluster needs an L1 entry covering it.
        let l2_entries = cluster_size / 8;
        let needed_l1 = size.div_ceil(cluster_size).div_ceil(l2_entries);
        if (l1_size as u64) < needed_l1 {
            return Err(corrupt(
                36,
                format!("l1_size {l1_size} cannot map the virtual size {size} (needs {needed_l1})"),
            ));
        }
        if l1_size as u64 > MAX_L1_ENTRIES {
            return Err(corrupt(
                36,
                format!("l1_size {l1_size} is implausibly large"),
            ));
        }
        let table_end =
            |offset: u64, bytes: u64| offset.checked_add(bytes).filter(|&end| end <= file_len);
        if l1_size > 0
            && (l1_table_offset % cluster_size != 0
                || table_end(l1_table_offset, l1_size as u64 * 8).is_none())
        {
            return Err(corrupt(40, format!("the L1 table at {l1_table_offset} ({l1_size} entries) is unaligned or past the end of the file ({file_len} bytes)")));
        }
        if refcount_table_offset % cluster_size != 0
            || table_end(
                refcount_table_offset,
                refcount_table_clusters as u64 * cluster_size,
            )
            .is_none()
        {
            return Err(corrupt(48, format!("the refcount table at {refcount_table_offset} ({refcount_table_clusters} clusters) is unaligned or past the end of the file ({file_len} bytes)")));
        }

        let backing_offset = be64(8);
        let backing_len = be32(16) as u64;
        let backing_file = if backing_offset != 0 && backing_len != 0 {
            if backing_len > 1023
                || backing_offset
                    .checked_add(backing_len)
                    .is_none_or(|end| end > cluster_size.min(file_len))
            {
                return Err(corrupt(8, format!("the backing file name ({backing_len} bytes at {backing_offset}) is not inside the first cluster")));
            }
            let mut name = vec![0u8; backing_len as usize];
            file.read_exact_at(&mut name, backing_offset)
                .map_err(|e| DiskError::io(path, e))?;
            Some(String::from_utf8(name).map_err(|_| {
                corrupt(backing_offset, "the backing file name is not UTF-8".into())
            })?)
        } else {
            None
        };

        // Header extensions: only in the first cluster, each 8-byte aligned; bounded by it.
        let mut backing_format = None;
        if version == 3 {
            let limit = cluster_size.min(file_len);
            let mut off = header_length.next_multiple_of(8);
            loop {
                if off + 8 > limit {
                    break; // no end marker inside the cluster: treat as end (qemu does the same)
                }
                let mut eh = [0u8; 8];
                file.read_exact_at(&mut eh, off)
                    .map_err(|e| DiskError::io(path, e))?;
                let ext_type = u32::from_be_bytes(eh[..4].try_into().unwrap());
                let ext_len = u32::from_be_bytes(eh[4..].try_into().unwrap()) as u64;
                if ext_type == EXT_END {
                    break;
                }
                let data_off = off + 8;
                if data_off + ext_len > limit {
                    return Err(corrupt(off, format!("header extension {ext_type:#x} of {ext_len} bytes runs past the first cluster")));
                }
                if ext_type == EXT_BACKING_FORMAT {
                    let mut name = vec![0u8; ext_len as usize];
                    file.read_exact_at(&mut name, data_off)
                        .map_err(|e| DiskError::io(path, e))?;
                    backing_format = Some(String::from_utf8_lossy(&name).into_owned());
                } else if ext_type == EXT_EXTERNAL_DATA_FILE {
                    return Err(DiskError::unsupported(
                        path,
                        "the image names an external data file",
                        "convert it to a self-contained image: qemu-img convert -O qcow2 IN OUT",
                    ));
                }
                off = data_off + ext_len.next_multiple_of(8);
            }
        }

        Ok(Header {
            version,
            backing_file,
            backing_format,
            cluster_bits,
            size,
            crypt_method,
            l1_size,
            l1_table_offset,
            refcount_table_offset,
            refcount_table_clusters,
            incompatible_features,
            compatible_features,
        })
    }
}

/// Checks that every L1 entry and every L2 entry points inside the file, so that a hostile
/// table is a clear error at open time rather than a failed read later.
///
/// Reads the whole mapping metadata once: 1/8192 of the virtual size with 64 KiB clusters.
pub fn check_mappings(
    path: &Path,
    file: &File,
    file_len: u64,
    header: &Header,
) -> Result<(), DiskError> {
    let cs = header.cluster_size();
    let mut l1 = vec![0u8; header.l1_size as usize * 8];
    file.read_exact_at(&mut l1, header.l1_table_offset)
        .map_err(|e| DiskError::io(path, e))?;
    let mut l2 = vec![0u8; cs as usize];
    for (i, e) in l1.chunks_exact(8).enumerate() {
        let entry = u64::from_be_bytes(e.try_into().unwrap());
        let l2_offset = entry & L1E_OFFSET_MASK;
        if l2_offset == 0 {
            continue;
        }
        let entry_pos = header.l1_table_offset + i as u64 * 8;
        if l2_offset % cs != 0 || l2_offset.checked_add(cs).is_none_or(|end| end > file_len) {
            return Err(DiskError::corrupt(path, "qcow2 L1 entry", entry_pos, format!("L2 table offset {l2_offset} is unaligned or past the end of the file ({file_len} bytes)")));
        }
        file.read_exact_at(&mut l2, l2_offset)
            .map_err(|e| DiskError::io(path, e))?;
        for (j, e2) in l2.chunks_exact(8).enumerate() {
            let entry = u64::from_be_bytes(e2.try_into().unwrap());
            let pos = l2_offset + j as u64 * 8;
            let host = if entry & L2E_COMPRESSED != 0 {
                // Compressed descriptor: the host offset occupies the low (62 - (cluster_bits - 8)) bits.
                let offset_bits = 62 - (header.cluster_bits - 8);
                entry & ((1u64 << offset_bits) - 1)
            } else {
                entry & L1E_OFFSET_MASK
            };
            if host == 0 {
                continue;
            }
            if host >= file_len {
                return Err(DiskError::corrupt(
                    path,
                    "qcow2 L2 entry",
                    pos,
                    format!(
                        "data cluster offset {host} is past the end of the file ({file_len} bytes)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One link of a backing chain as found by walking headers.
#[derive(Debug, Clone)]
struct ChainLink {
    path: PathBuf,
    format: ImageFormat,
    header: Option<Header>,
}

/// Walks the chain from `top`, checking each qcow2 header, and refusing loops, chains deeper
/// than [`MAX_CHAIN_DEPTH`], and backing formats imago cannot read.
fn walk_chain(top: &Path) -> Result<Vec<ChainLink>, DiskError> {
    let mut links = Vec::new();
    let mut seen = BTreeSet::new();
    let mut current = top.to_path_buf();
    let mut format = ImageFormat::Qcow2;
    loop {
        let canonical = std::fs::canonicalize(&current).map_err(|e| DiskError::io(&current, e))?;
        if !seen.insert(canonical.clone()) {
            let names: Vec<String> = links
                .iter()
                .map(|l: &ChainLink| l.path.display().to_string())
                .collect();
            return Err(DiskError::BackingChain {
                path: top.to_path_buf(),
                reason: format!(
                    "loop: {} leads back to {}",
                    names.join(" -> "),
                    current.display()
                ),
            });
        }
        if links.len() >= MAX_CHAIN_DEPTH {
            return Err(DiskError::BackingChain {
                path: top.to_path_buf(),
                reason: format!("more than {MAX_CHAIN_DEPTH} images deep"),
            });
        }
        if format != ImageFormat::Qcow2 {
            links.push(ChainLink {
                path: current,
                format,
                header: None,
            });
            return Ok(links);
        }
        let file = File::open(&current).map_err(|e| DiskError::io(&current, e))?;
        let len = file
            .metadata()
            .map_err(|e| DiskError::io(&current, e))?
            .len();
        let header = Header::read(&current, &file, len)?;
        check_mappings(&current, &file, len, &header)?;
        let next = header.backing_file.clone();
        let next_format = header.backing_format.clone();
        links.push(ChainLink {
            path: current.clone(),
            format,
            header: Some(header),
        });
        let Some(name) = next else { return Ok(links) };
        // Relative names are relative to the directory of the image that holds them.
        let base_dir = current.parent().map(Path::to_path_buf).unwrap_or_default();
        let next_path = base_dir.join(&name);
        let probed = detect_format(&next_path)?;
        format = match next_format.as_deref() {
            Some("qcow2") => ImageFormat::Qcow2,
            Some("raw") | Some("file") => ImageFormat::Raw,
            Some(other) => {
                return Err(DiskError::BackingChain {
                    path: current.clone(),
                    reason: format!(
                    "backing file {} has format {other:?}, which graft reads only as qcow2 or raw",
                    next_path.display()
                ),
                })
            }
            None => probed,
        };
        if matches!(format, ImageFormat::VhdFixed | ImageFormat::VhdDynamic) {
            return Err(DiskError::BackingChain {
                path: current.clone(),
                reason: format!(
                    "backing file {} is a VHD; graft reads qcow2 or raw backing files only",
                    next_path.display()
                ),
            });
        }
        if format == ImageFormat::Qcow2 && probed != ImageFormat::Qcow2 {
            return Err(DiskError::BackingChain {
                path: current.clone(),
                reason: format!(
                    "backing file {} is declared qcow2 but has no qcow2 magic",
                    next_path.display()
                ),
            });
        }
        current = next_path;
    }
}

type ImagoImage = FormatAccess<ImagoFile>;

fn imago_err(path: &Path) -> impl Fn(io::Error) -> DiskError + '_ {
    move |e| {
        DiskError::io(
            path,
            io::Error::new(e.kind(), format!("qcow2 (imago): {e}")),
        )
    }
}

fn open_storage(path: &Path, writable: bool) -> Result<ImagoFile, DiskError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| DiskError::io(path, e))?;
    ImagoFile::from_open_file(
        file,
        StorageOpenOptions::new().filename(path).write(writable),
    )
    .map_err(imago_err(path))
}

/// A qcow2 image (with its backing chain) as a [`BlockDevice`].
pub struct Qcow2Device {
    access: ImagoImage,
    size: u64,
    header: Header,
    chain: Vec<BackingInfo>,
}

impl Qcow2Device {
    /// Opens the image and its whole backing chain; only the top image is ever written.
    pub fn open(path: &Path, access: Access) -> Result<Self, DiskError> {
        let links = walk_chain(path)?;
        // Open bottom-up, handing each layer to the one above as its backing image, so that
        // imago never opens anything on its own.
        let mut below: Option<ImagoImage> = None;
        let mut chain = Vec::new();
        for (depth, link) in links.iter().enumerate().rev() {
            let writable = depth == 0 && access.writable();
            let storage = open_storage(&link.path, writable)?;
            let layer = match link.format {
                ImageFormat::Qcow2 => {
                    let q = Qcow2::<ImagoFile>::builder(storage)
                        .write(writable)
                        .backing(below.take())
                        .data_file(None)
                        .open(DenyImplicitOpenGate::default())
                        .map_err(imago_err(&link.path))?;
                    FormatAccess::new(q)
                }
                _ => {
                    let r = Raw::builder(storage)
                        .write(false)
                        .open(DenyImplicitOpenGate::default())
                        .map_err(imago_err(&link.path))?;
                    FormatAccess::new(r)
                }
            };
            if depth > 0 {
                chain.push(BackingInfo {
                    path: link.path.clone(),
                    format: link.format,
                    virtual_size: layer.size(),
                });
            }
            below = Some(layer);
        }
        chain.reverse();
        let access_top = below.expect("the chain has at least the top image");
        let header = links[0].header.clone().expect("the top image is qcow2");
        Ok(Self {
            size: access_top.size(),
            access: access_top,
            header,
            chain,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Backing images, nearest first.
    pub fn backing_chain(&self) -> &[BackingInfo] {
        &self.chain
    }
}

impl BlockDevice for Qcow2Device {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.size)?;
        self.access.read(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.size)?;
        self.access.write(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.access.flush()?;
        self.access.sync()
    }
}

/// The "feature name table" header extension (qcow2 spec, "Feature name table").
const FEATURE_NAME_TABLE: u32 = 0x6803_f857;

/// Puts the entries of the feature name table in (type, bit) order. imago writes them in
/// hash-map order, which differs from run to run; qemu reads them in any order. Call after
/// the last write through imago, so that equal images are equal files.
pub fn sort_feature_name_table(path: &Path) -> Result<(), DiskError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| DiskError::io(path, e))?;
    let mut head = vec![0u8; 4096];
    let len = file
        .metadata()
        .map_err(|e| DiskError::io(path, e))?
        .len()
        .min(head.len() as u64) as usize;
    file.read_exact_at(&mut head[..len], 0)
        .map_err(|e| DiskError::io(path, e))?;
    let head = &mut head[..len];
    if len < 104 || head[..4] != MAGIC || u32::from_be_bytes(head[4..8].try_into().unwrap()) < 3 {
        return Ok(()); // version 2 has no header extensions
    }
    let mut off = u32::from_be_bytes(head[100..104].try_into().unwrap()) as usize;
    // Bounded: each step moves forward by at least 8 bytes inside the first 4 KiB.
    while off + 8 <= len {
        let ty = u32::from_be_bytes(head[off..off + 4].try_into().unwrap());
        let n = u32::from_be_bytes(head[off + 4..off + 8].try_into().unwrap()) as usize;
        if ty == 0 || off + 8 + n > len {
            break;
        }
        if ty == FEATURE_NAME_TABLE && n % 48 == 0 {
            let data = &mut head[off + 8..off + 8 + n];
            let mut entries: Vec<Vec<u8>> = data.chunks(48).map(<[u8]>::to_vec).collect();
            entries.sort();
            data.copy_from_slice(&entries.concat());
            file.write_all_at(data, (off + 8) as u64)
                .map_err(|e| DiskError::io(path, e))?;
            file.sync_all().map_err(|e| DiskError::io(path, e))?;
            break;
        }
        off += 8 + n.next_multiple_of(8);
    }
    Ok(())
}

/// Creates a standalone qcow2 image at `dst` (which must not exist) holding `src`'s
/// content; 1 MiB chunks that are all zeros are left unallocated. The layout depends only
/// on the content (imago appends clusters in write order), so equal inputs give equal files.
pub fn create_qcow2_from(src: &dyn BlockDevice, dst: &Path) -> Result<(), DiskError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| DiskError::io(dst, e))?;
    let storage =
        ImagoFile::from_open_file(file, StorageOpenOptions::new().filename(dst).write(true))
            .map_err(imago_err(dst))?;
    use imago::FormatCreateBuilder;
    Qcow2::<ImagoFile>::create_builder(storage)
        .size(src.len())
        .create()
        .map_err(imago_err(dst))?;
    let mut out = Qcow2Device::open(dst, Access::ReadWrite)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < src.len() {
        let n = (src.len() - off).min(buf.len() as u64) as usize;
        src.read_at(&mut buf[..n], off)
            .map_err(|e| DiskError::io(dst, e))?;
        if buf[..n].iter().any(|&b| b != 0) {
            out.write_at(&buf[..n], off)
                .map_err(|e| DiskError::io(dst, e))?;
        }
        off += n as u64;
    }
    out.flush().map_err(|e| DiskError::io(dst, e))?;
    Ok(())
}

/// Creates a qcow2 image at `dst` whose backing file is `base` (qcow2 or raw), of the
/// same virtual size, holding no data of its own.
///
/// The backing file name is stored as `base`'s file name when both are in the same
/// directory (the pair can then be moved together), else as `base`'s absolute path.
pub fn create_qcow2_overlay(base: &Path, dst: &Path) -> Result<(), DiskError> {
    let info = super::open::image_info(base)?;
    let format_name = match info.format {
        ImageFormat::Qcow2 => "qcow2",
        ImageFormat::Raw => "raw",
        _ => {
            return Err(DiskError::unsupported(
                base,
                "a qcow2 overlay can only have a qcow2 or raw backing file here",
                "convert the base to qcow2 first",
            ))
        }
    };
    let size = info.virtual_size;
    let base_abs = std::fs::canonicalize(base).map_err(|e| DiskError::io(base, e))?;
    let dst_dir = dst
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dst_dir_abs = std::fs::canonicalize(dst_dir).map_err(|e| DiskError::io(dst_dir, e))?;
    let backing_name = if base_abs.parent() == Some(dst_dir_abs.as_path()) {
        base_abs.file_name().unwrap().to_string_lossy().into_owned()
    } else {
        base_abs.to_string_lossy().into_owned()
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| DiskError::io(dst, e))?;
    let storage =
        ImagoFile::from_open_file(file, StorageOpenOptions::new().filename(dst).write(true))
            .map_err(imago_err(dst))?;
    use imago::FormatCreateBuilder;
    Qcow2::<ImagoFile>::create_builder(storage)
        .size(size)
        .backing(backing_name, format_name.to_string())
        .create()
        .map_err(imago_err(dst))?;
    Ok(())
}
