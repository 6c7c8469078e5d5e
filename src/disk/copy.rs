//! Copying an image file so that unchanged clusters, compressed ones included, stay
//! byte-identical and holes stay holes: a reflink (FICLONE) where the filesystem shares
//! extents, else `copy_file_range` over each data extent found with SEEK_DATA/SEEK_HOLE,
//! else plain reads and writes of those extents.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::open::DiskError;

/// How [`copy_image`] copied the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// The destination shares the source's extents (btrfs, XFS with reflink, ...).
    Reflink,
    /// In-kernel copy of each data extent; holes skipped.
    CopyFileRange,
    /// Reads and writes of each data extent; holes skipped.
    ReadWrite,
}

// FICLONE = _IOW(0x94, 9, int)
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Copies the file `src` to `dst` (created, or truncated if it exists), keeping holes.
pub fn copy_image(src: &Path, dst: &Path) -> Result<CopyMethod, DiskError> {
    let input = File::open(src).map_err(|e| DiskError::io(src, e))?;
    let src_meta = input.metadata().map_err(|e| DiskError::io(src, e))?;
    let len = src_meta.len();
    // Truncating the destination must never truncate the source.
    if let Ok(dst_meta) = std::fs::metadata(dst) {
        use std::os::unix::fs::MetadataExt;
        if dst_meta.dev() == src_meta.dev() && dst_meta.ino() == src_meta.ino() {
            return Err(DiskError::io(
                dst,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("is the same file as {}", src.display()),
                ),
            ));
        }
    }
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .map_err(|e| DiskError::io(dst, e))?;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE takes the
    // source descriptor as its argument and touches no memory of ours.
    let rc = unsafe { libc::ioctl(output.as_raw_fd(), FICLONE as _, input.as_raw_fd()) };
    if rc == 0 {
        output.sync_all().map_err(|e| DiskError::io(dst, e))?;
        return Ok(CopyMethod::Reflink);
    }
    output.set_len(len).map_err(|e| DiskError::io(dst, e))?;
    let extents = data_extents(&input, len).map_err(|e| DiskError::io(src, e))?;
    let mut method = CopyMethod::CopyFileRange;
    for (start, end) in extents {
        if method == CopyMethod::CopyFileRange {
            match copy_range_kernel(&input, &output, start, end) {
                Ok(()) => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL)
                    ) =>
                {
                    method = CopyMethod::ReadWrite;
                }
                Err(e) => return Err(DiskError::io(dst, e)),
            }
        }
        copy_range_user(&input, &output, start, end).map_err(|e| DiskError::io(dst, e))?;
    }
    output.sync_all().map_err(|e| DiskError::io(dst, e))?;
    Ok(method)
}

/// The file's data extents `[start, end)`, by SEEK_DATA/SEEK_HOLE; the whole file when the
/// filesystem does not report holes.
fn data_extents(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        // SAFETY: lseek on an open descriptor has no memory effects.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENXIO) => Ok(extents), // only a hole remains
                Some(libc::EINVAL) if extents.is_empty() => Ok(vec![(0, len)]),
                _ => Err(err),
            };
        }
        let data = data as u64;
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let hole = (hole as u64).min(len);
        if hole <= data {
            break;
        }
        extents.push((data, hole));
        pos = hole;
    }
    Ok(extents)
}

fn copy_range_kernel(input: &File, output: &File, start: u64, end: u64) -> io::Result<()> {
    let mut off_in = start as libc::loff_t;
    let mut off_out = start as libc::loff_t;
    while (off_in as u64) < end {
        let want = (end - off_in as u64).min(1 << 30) as usize;
        // SAFETY: the offsets are valid pointers to locals; the descriptors are open.
        let n = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                &mut off_in,
                output.as_raw_fd(),
                &mut off_out,
                want,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source ended while copying",
            ));
        }
    }
    Ok(())
}

fn copy_range_user(input: &File, output: &File, start: u64, end: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        input.read_exact_at(&mut buf[..n], pos)?;
        output.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copy_keeps_bytes_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.img");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(&[9u8; 70_000], 40 << 20).unwrap();
        drop(f);
        let dst = dir.path().join("dst.img");
        let method = copy_image(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        // 64 MiB apparent, a few blocks allocated: the hole stayed a hole.
        let blocks = std::fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(blocks < 8 << 20, "{method:?} allocated {blocks} bytes");
    }
}
