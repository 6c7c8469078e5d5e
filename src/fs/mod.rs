//! Filesystems inside a region: probing by magic, reading, and writing ext2/3/4.

pub mod ext4;
pub mod probe;
