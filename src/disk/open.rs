//! Opening an image file: the container format is recognised by its magic, never by the
//! file name, and every format is checked before any of its data is trusted.
//!
//! - qcow2: `QFI\xfb` at offset 0 (<https://www.qemu.org/docs/master/interop/qcow2.html>)
//! - VHD: the 512-byte footer with cookie `conectix` at the end of the file
//!   (Microsoft Virtual Hard Disk Image Format Specification, "Hard Disk Footer Format")
//! - anything else is raw.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{qcow2, vhd, BlockDevice, RawFile};

/// Whether an image may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn writable(self) -> bool {
        self == Access::ReadWrite
    }
}

/// The container format of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    Raw,
    Qcow2,
    VhdFixed,
    VhdDynamic,
}

impl ImageFormat {
    /// The name used in `graft inspect --json` (`raw`, `qcow2`, `vhd-fixed`, `vhd-dynamic`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::VhdFixed => "vhd-fixed",
            ImageFormat::VhdDynamic => "vhd-dynamic",
        }
    }
}

/// One image below the top one in a qcow2 backing chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackingInfo {
    /// The file, resolved relative to the image that names it.
    pub path: PathBuf,
    pub format: ImageFormat,
    pub virtual_size: u64,
}

/// What `open_image` found out about a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// Bytes the guest sees.
    pub virtual_size: u64,
    /// Bytes the image file occupies on the host (its allocated blocks), without backing files.
    pub allocated_size: u64,
    /// The image file's length.
    pub file_size: u64,
    /// Backing images, nearest first. Empty when the image stands alone.
    pub backing_chain: Vec<BackingInfo>,
    /// qcow2 only: the version (2 = compat 0.10, 3 = compat 1.1).
    pub qcow2_version: Option<u32>,
    /// qcow2 only: the cluster size in bytes.
    pub cluster_size: Option<u64>,
}

/// Why an image cannot be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The bytes contradict the format: a checksum, a size, an offset past the end.
    #[error("{path}: {structure} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        structure: &'static str,
        offset: u64,
        reason: String,
    },
    /// A valid image using something graft does not handle; `hint` says what to do.
    #[error("{path}: {reason}; {hint}")]
    Unsupported {
        path: PathBuf,
        reason: String,
        hint: String,
    },
    /// The backing chain loops, is too deep, or names a file that cannot be used.
    #[error("{path}: backing chain: {reason}")]
    BackingChain { path: PathBuf, reason: String },
}

impl DiskError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        DiskError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn corrupt(
        path: &Path,
        structure: &'static str,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        DiskError::Corrupt {
            path: path.to_path_buf(),
            structure,
            offset,
            reason: reason.into(),
        }
    }
    pub(crate) fn unsupported(
        path: &Path,
        reason: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        DiskError::Unsupported {
            path: path.to_path_buf(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}

/// Recognises the container format from the file's bytes.
pub fn detect_format(path: &Path) -> Result<ImageFormat, DiskError> {
    let file = File::open(path).map_err(|e| DiskError::io(path, e))?;
    let len = file.metadata().map_err(|e| DiskError::io(path, e))?.len();
    let mut magic = [0u8; 4];
    if len >= 4 {
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| DiskError::io(path, e))?;
        if magic == qcow2::MAGIC {
            return Ok(ImageFormat::Qcow2);
        }
    }
    if len >= 512 {
        let mut footer = [0u8; 512];
        file.read_exact_at(&mut footer, len - 512)
            .map_err(|e| DiskError::io(path, e))?;
        if footer[..8] == *vhd::FOOTER_COOKIE {
            let parsed = vhd::Footer::parse(&footer)
                .map_err(|reason| DiskError::corrupt(path, "VHD footer", len - 512, reason))?;
            return match parsed.disk_type {
                vhd::DiskType::Fixed => Ok(ImageFormat::VhdFixed),
                vhd::DiskType::Dynamic => Ok(ImageFormat::VhdDynamic),
                vhd::DiskType::Differencing => Err(vhd::differencing_unsupported(path)),
            };
        }
    }
    // A dynamic VHD starts with a copy of its footer; without the one at the end it has
    // been truncated, and reading it as raw would silently return its metadata as data.
    if len >= 8 && magic_at(&file, 0, path)? == *vhd::FOOTER_COOKIE {
        return Err(DiskError::corrupt(
            path,
            "VHD footer",
            len.saturating_sub(512),
            "the file starts with a VHD footer copy but has no footer at its end: it is truncated",
        ));
    }
    Ok(ImageFormat::Raw)
}

fn magic_at(file: &File, offset: u64, path: &Path) -> Result<[u8; 8], DiskError> {
    let mut m = [0u8; 8];
    file.read_exact_at(&mut m, offset)
        .map_err(|e| DiskError::io(path, e))?;
    Ok(m)
}

/// Opens an image of any supported format, detected by magic.
///
/// qcow2 backing chains are opened read-only below the top image; VHD is read by graft's
/// own code; anything without a known magic is raw.
pub fn open_image(path: &Path, access: Access) -> Result<Box<dyn BlockDevice>, DiskError> {
    open_image_with_info(path, access).map(|(dev, _)| dev)
}

/// [`open_image`], also returning what was found about the container.
pub fn open_image_with_info(
    path: &Path,
    access: Access,
) -> Result<(Box<dyn BlockDevice>, ImageInfo), DiskError> {
    let format = detect_format(path)?;
    let meta = std::fs::metadata(path).map_err(|e| DiskError::io(path, e))?;
    let mut info = ImageInfo {
        format,
        virtual_size: 0,
        allocated_size: meta.blocks() * 512,
        file_size: meta.len(),
        backing_chain: Vec::new(),
        qcow2_version: None,
        cluster_size: None,
    };
    let dev: Box<dyn BlockDevice> = match format {
        ImageFormat::Raw => {
            Box::new(RawFile::open(path, access.writable()).map_err(|e| DiskError::io(path, e))?)
        }
        ImageFormat::Qcow2 => {
            let opened = qcow2::Qcow2Device::open(path, access)?;
            info.backing_chain = opened.backing_chain().to_vec();
            info.qcow2_version = Some(opened.header().version);
            info.cluster_size = Some(opened.header().cluster_size());
            Box::new(opened)
        }
        ImageFormat::VhdFixed | ImageFormat::VhdDynamic => {
            Box::new(vhd::VhdDevice::open(path, access)?)
        }
    };
    info.virtual_size = dev.len();
    Ok((dev, info))
}

/// What [`open_image_with_info`] reports, without keeping the image open.
pub fn image_info(path: &Path) -> Result<ImageInfo, DiskError> {
    open_image_with_info(path, Access::ReadOnly).map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bytes_are_raw_and_qcow2_magic_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a.img");
        std::fs::write(&raw, vec![7u8; 4096]).unwrap();
        assert_eq!(detect_format(&raw).unwrap(), ImageFormat::Raw);
        let tiny = dir.path().join("t.img");
        std::fs::write(&tiny, b"QF").unwrap();
        assert_eq!(detect_format(&tiny).unwrap(), ImageFormat::Raw);
        let q = dir.path().join("q.img");
        let mut bytes = vec![0u8; 512];
        bytes[..4].copy_from_slice(&qcow2::MAGIC);
        std::fs::write(&q, &bytes).unwrap();
        assert_eq!(detect_format(&q).unwrap(), ImageFormat::Qcow2);
        // A truncated qcow2 header is an error naming the file, not a panic.
        let err = open_image(&q, Access::ReadOnly)
            .err()
            .expect("truncated qcow2 must fail");
        assert!(err.to_string().contains("q.img"), "{err}");
    }
}
