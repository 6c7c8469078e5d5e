//! ext2/ext3/ext4: writing into an existing filesystem.
//!
//! Layout reference: the kernel's "ext4 Data Structures and Algorithms"
//! (<https://www.kernel.org/doc/html/latest/filesystems/ext4/index.html>). Each file here
//! holds one on-disk structure, parses it with bounds checks and verifies/sets its
//! checksum; [`writer::Ext4Writer`] ties them together.
//!
//! Everything new is built in memory and written by [`writer::Ext4Writer::commit`], except
//! file data, which is streamed into blocks that stay free in the on-disk bitmaps until the
//! commit: an error before the commit leaves the filesystem as consistent as it was.

pub mod alloc;
pub mod blockmap;
pub mod checksum;
pub mod dir;
pub mod extent;
pub mod group_desc;
pub mod hash;
pub mod htree;
pub mod inode;
pub mod superblock;
pub mod writer;

pub use writer::{Ext4Writer, Meta, Needs, Report};

/// Everything that can go wrong reading or writing ext2/3/4.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("I/O error {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("not an ext2/3/4 filesystem: {0}")]
    NotExt4(String),
    #[error("corrupt filesystem: {0} (run e2fsck on the image first)")]
    Corrupt(String),
    #[error("checksum mismatch in {0} (run e2fsck on the image first)")]
    Checksum(String),
    #[error("refusing to write: {0}")]
    Refused(String),
    #[error("not enough space: {0}")]
    NoSpace(String),
    #[error("{0}: already exists (pass replace to overwrite it)")]
    Exists(String),
    #[error("{0}: no such file or directory in the filesystem")]
    NotFound(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("invalid path or name {0:?}")]
    BadName(String),
    #[error("not implemented yet: {0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Ext4Error>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Ext4Error {
    let context = context.into();
    move |source| Ext4Error::Io { context, source }
}

pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
