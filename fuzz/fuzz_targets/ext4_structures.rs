//! ext4 on-disk structure parsers (superblock, group descriptor, inode checksum, extent
//! node, directory block, htree node) on hostile bytes: errors, never panics.
#![no_main]

use graft::fs::ext4::{dir, extent, group_desc, htree, inode, superblock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 1024 {
        if let Ok(sb) = superblock::Superblock::parse(&data[..1024]) {
            let _ = sb.check_writable();
            let g = sb.group_count().min(64);
            for i in 0..g {
                let _ = sb.super_and_gdt_blocks(i);
                let _ = sb.desc_block_location(i);
            }
            let _ = group_desc::parse(&sb, &data[1024..], 0);
        }
    }
    if data.len() >= 256 {
        let ino = inode::Inode {
            raw: data[..256].to_vec(),
        };
        let _ = ino.verify(0, 12);
        let _ = ino.size();
    }
    let _ = extent::header(data, "fuzz");
    for bs in [1024usize, 4096] {
        if data.len() >= bs {
            let block = &data[..bs];
            let _ = dir::parse(block, true, &|| "fuzz".into());
            let _ = dir::parse(block, false, &|| "fuzz".into());
            let mut b = block.to_vec();
            let _ = dir::try_insert(&mut b, b"name", 12, 1, true);
            let _ = htree::check_node(block, htree::NODE_COUNT_OFFSET, true, "fuzz");
            if htree::check_node(block, htree::ROOT_COUNT_OFFSET, false, "fuzz").is_ok() {
                let _ = htree::find(block, htree::ROOT_COUNT_OFFSET, 0x1234);
                let _ = htree::root_info(block);
            }
        }
    }
});
