//! Checksums: crc32c as ext4 uses it (no final inversion, seeds chained), and the crc16
//! of the older `gdt_csum` feature.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/overview.html#checksums>

/// The kernel's `ext4_chksum`: raw crc32c (Castagnoli) continued from `seed`, no final xor.
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // The crate computes the standard CRC (inverted in and out); undo both inversions.
    !crc32c::crc32c_append(!seed, data)
}

/// crc16 (polynomial 0x8005, reflected), as `ext2fs_crc16`; used by `gdt_csum`.
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &byte in data {
        crc ^= byte as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_kernel_vectors() {
        // Vectors from the ext4-view crate's tests (seeded, unfinalised crc32c).
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(crc32c(!0, &data), 0x858c13d3);
        assert_eq!(crc32c(123, &data), 0xfc527a0a);
        // Chaining equals one pass.
        assert_eq!(crc32c(crc32c(!0, &data[..3]), &data[3..]), 0x858c13d3);
    }

    #[test]
    fn crc16_matches_arc_check_value() {
        // CRC-16/ARC check value for "123456789" (init 0) is 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
        // CRC-16/MODBUS (init 0xFFFF) is 0x4B37.
        assert_eq!(crc16(0xFFFF, b"123456789"), 0x4B37);
    }
}
