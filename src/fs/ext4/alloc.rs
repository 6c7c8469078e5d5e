//! Block and inode bitmaps, and the fixed allocation policy.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/bitmaps.html> and
//! <https://www.kernel.org/doc/html/latest/filesystems/ext4/blockgroup.html#lazy-block-group-initialization>
//!
//! Policy (documented because the bytes written depend on it):
//! - inodes: first free inode of the parent directory's group, then the following groups
//!   in order, wrapping; `i_generation` is 0.
//! - blocks: a file's data goes in one contiguous run when one exists, first-fit from a
//!   cursor that starts at the parent directory's group and moves past each allocation;
//!   otherwise in the fewest first-fit runs from that cursor. Tree and directory blocks are
//!   single first-fit blocks from the same cursor.

use super::checksum::crc32c;
use super::superblock::Superblock;

pub fn test_bit(b: &[u8], i: usize) -> bool {
    b[i / 8] & (1 << (i % 8)) != 0
}
pub fn set_bit(b: &mut [u8], i: usize) {
    b[i / 8] |= 1 << (i % 8)
}
pub fn clear_bit(b: &mut [u8], i: usize) {
    b[i / 8] &= !(1 << (i % 8))
}

/// First clear bit in `[from, to)`.
pub fn find_zero(b: &[u8], from: usize, to: usize) -> Option<usize> {
    let mut i = from;
    while i < to {
        if i % 8 == 0 && i + 8 <= to && b[i / 8] == 0xFF {
            i += 8;
            continue;
        }
        if !test_bit(b, i) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Length of the clear run starting at `from`, at most `max`, not past `to`.
pub fn zero_run(b: &[u8], from: usize, to: usize, max: usize) -> usize {
    let mut i = from;
    let lim = to.min(from.saturating_add(max));
    while i < lim {
        if i % 8 == 0 && i + 8 <= lim && b[i / 8] == 0 {
            i += 8;
            continue;
        }
        if test_bit(b, i) {
            break;
        }
        i += 1;
    }
    i - from
}

pub fn count_zeros(b: &[u8], n: usize) -> usize {
    (0..n).filter(|&i| !test_bit(b, i)).count()
}

/// Sets the padding bits past the last real bit, as mke2fs leaves them.
pub fn pad(b: &mut [u8], used: usize) {
    for i in used..b.len() * 8 {
        set_bit(b, i);
    }
}

pub fn block_bitmap_csum(sb: &Superblock, b: &[u8]) -> u32 {
    crc32c(sb.csum_seed(), &b[..sb.blocks_per_group() as usize / 8])
}
pub fn inode_bitmap_csum(sb: &Superblock, b: &[u8]) -> u32 {
    crc32c(sb.csum_seed(), &b[..sb.inodes_per_group() as usize / 8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_scans() {
        let mut b = vec![0xFFu8; 4];
        clear_bit(&mut b, 13);
        clear_bit(&mut b, 14);
        assert_eq!(find_zero(&b, 0, 32), Some(13));
        assert_eq!(zero_run(&b, 13, 32, 10), 2);
        assert_eq!(find_zero(&b, 15, 32), None);
        let mut z = vec![0u8; 4];
        assert_eq!(zero_run(&z, 3, 32, 100), 29);
        pad(&mut z, 20);
        assert_eq!(count_zeros(&z, 32), 20);
    }
}
