//! ext2/ext3/ext4: reading (with ext4-view) and writing into an existing filesystem.
//! Filled in by the ext4 issue.
