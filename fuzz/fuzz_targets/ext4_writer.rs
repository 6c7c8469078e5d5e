//! The whole writer on a hostile filesystem image: open, look up, add a directory, a file
//! and a symlink, commit. Any error is fine; a panic, hang or huge allocation is a bug.
#![no_main]

use graft::disk::MemDevice;
use graft::fs::ext4::{Ext4Writer, Meta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 4 << 20 {
        return;
    }
    let mut dev = MemDevice::new(data.to_vec());
    let Ok(mut w) = Ext4Writer::open(&mut dev) else {
        return;
    };
    let m = Meta::new(0o644, 0, 0, 0);
    let _ = w.lookup("/etc/os-release");
    if w.mkdir_p("/opt/fuzz/a", &m).is_err() {
        return;
    }
    let _ = w.create_file("/opt/fuzz/a/f", &m, 5000, &mut &[7u8; 5000][..], false);
    let _ = w.symlink("/opt/fuzz/l", &[b'x'; 100], &m, false);
    let _ = w.commit();
});
