//! Filesystem recognition by magic.
#![no_main]

use graft::disk::MemDevice;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = graft::fs::probe::probe_info(&MemDevice::new(data.to_vec()));
});
