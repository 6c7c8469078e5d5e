//! The VHD parser and its reads and writes, on arbitrary bytes.
#![no_main]

use std::path::Path;

use graft::disk::vhd::VhdDevice;
use graft::disk::{Access, BlockDevice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut dev) =
        VhdDevice::open_store(data.to_vec(), Path::new("fuzz.vhd"), Access::ReadWrite)
    else {
        return;
    };
    let len = dev.len();
    let mut buf = vec![0u8; 4096];
    // Reads at the start, the end, and inside each allocated block (bounded by the input).
    for off in [0, len / 2, len.saturating_sub(4096)] {
        let n = (len - off.min(len)).min(4096) as usize;
        let _ = dev.read_at(&mut buf[..n], off);
    }
    if let Some(bs) = dev.block_size() {
        for i in 0..dev.allocated_blocks().min(64) as u64 {
            let _ = dev.read_at(
                &mut buf[..512.min(len as usize)],
                (i * bs).min(len.saturating_sub(512)),
            );
        }
        // Writes allocate blocks in memory: only with sane block sizes.
        if bs <= 2 << 20 && len >= 4096 {
            let _ = dev.write_at(&[0xA5; 700], len / 3);
            let _ = dev.write_at(&[0; 512], 0);
            let mut back = vec![0u8; 700];
            if dev.read_at(&mut back, len / 3).is_ok() {
                assert!(back.iter().all(|&b| b == 0xA5), "a write did not read back");
            }
        }
    }
});
