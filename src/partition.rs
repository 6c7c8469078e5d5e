//! Partition tables (GPT, MBR, none) turned into regions with the filesystem each holds.
//! Filled in by the disk-image issue.
