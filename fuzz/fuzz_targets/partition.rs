//! The partition table scan (GPT with backup fallback, MBR and the EBR chain).
#![no_main]

use graft::disk::MemDevice;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = MemDevice::new(data.to_vec());
    if let Ok(table) = graft::partition::scan(&dev) {
        for p in &table.partitions {
            assert!(p
                .start
                .checked_add(p.size)
                .is_some_and(|end| end <= data.len() as u64));
        }
    }
});
