//! Block devices: the containers an image can come in (raw, qcow2, VHD) behind one small
//! trait, and [`Region`], the byte window a partition or filesystem sees.
//!
//! A filesystem never knows whether it sits in a qcow2 file or a raw one: it is handed a
//! `&mut dyn BlockDevice` that is a [`Region`] of the container.
//!
//! Entry points:
//! - [`open_image`] / [`open_image_with_info`]: any supported image, format detected by
//!   magic, with [`ImageInfo`] (format, virtual and allocated size, backing chain).
//! - [`copy_image`]: a standalone output that starts as a byte-identical, hole-preserving
//!   copy of the base (reflink, else `copy_file_range`, else read/write of data extents).
//! - [`create_qcow2_overlay`]: a qcow2 whose backing file is the base.
//! - [`vhd::create_fixed`] / [`vhd::create_dynamic`]: a VHD holding another device's
//!   content, with a derived (never clock- or random-based) timestamp and UUID.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub mod copy;
pub mod open;
pub mod qcow2;
pub mod vhd;

pub use copy::copy_image;
pub use open::{
    image_info, open_image, open_image_with_info, Access, BackingInfo, DiskError, ImageFormat,
    ImageInfo,
};
pub use qcow2::{create_qcow2_from, create_qcow2_overlay};

/// Random access to a virtual disk's bytes.
///
/// `read_at` fills the whole buffer or fails; reading past `len()` is an error
/// (`UnexpectedEof`), never a short read, so callers need no retry loops.
pub trait BlockDevice {
    /// Virtual size in bytes.
    fn len(&self) -> u64;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`; the device does not grow.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable (metadata included).
    fn flush(&mut self) -> io::Result<()>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Fails with `UnexpectedEof` when `[offset, offset+len)` is not inside `size`.
pub fn check_range(offset: u64, len: usize, size: u64) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("access of {len} bytes at offset {offset} is past the end of the device ({size} bytes)"),
        )),
    }
}

/// A window `[start, start+len)` of another device, addressed from 0.
pub struct Region<'a> {
    inner: &'a mut dyn BlockDevice,
    start: u64,
    len: u64,
}

impl<'a> Region<'a> {
    /// Fails when the window does not lie inside the device.
    pub fn new(inner: &'a mut dyn BlockDevice, start: u64, len: u64) -> io::Result<Self> {
        let size = inner.len();
        match start.checked_add(len) {
            Some(end) if end <= size => Ok(Self { inner, start, len }),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("region at {start} of {len} bytes does not fit a device of {size} bytes"),
            )),
        }
    }

    pub fn start(&self) -> u64 {
        self.start
    }
}

impl BlockDevice for Region<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.read_at(buf, self.start + offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len)?;
        self.inner.write_at(buf, self.start + offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A device held in memory: tests, and small scratch images.
#[derive(Debug, Clone, Default)]
pub struct MemDevice {
    pub bytes: Vec<u8>,
}

impl MemDevice {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }
}

impl BlockDevice for MemDevice {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len())?;
        let o = offset as usize;
        self.bytes[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A raw image: the file's bytes are the disk's bytes.
pub struct RawFile {
    file: File,
    len: u64,
    writable: bool,
}

impl RawFile {
    pub fn open(path: &Path, writable: bool) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            len,
            writable,
        })
    }
}

impl BlockDevice for RawFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len(), self.len)?;
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "raw image opened read-only",
            ));
        }
        check_range(offset, buf.len(), self.len)?;
        self.file.write_all_at(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_translates_and_bounds_accesses() {
        let mut dev = MemDevice::new((0..=255u8).collect());
        let mut region = Region::new(&mut dev, 16, 32).unwrap();
        let mut b = [0u8; 4];
        region.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [16, 17, 18, 19]);
        assert!(region.read_at(&mut b, 29).is_err());
        assert!(region.read_at(&mut b, u64::MAX - 1).is_err());
        region.write_at(&[9, 9], 30).unwrap();
        assert_eq!(dev.bytes[46..48], [9, 9]);
        assert!(Region::new(&mut dev, 250, 10).is_err());
    }
}
