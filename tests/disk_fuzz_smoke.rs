//! A bounded, stable-toolchain stand-in for the cargo-fuzz targets in `fuzz/`: the same
//! three entry points (VHD parser, partition scan, filesystem probe) on random bytes and
//! on random mutations of the seed corpus. Any panic fails the test.

use std::path::Path;

use graft::disk::vhd::VhdDevice;
use graft::disk::{Access, BlockDevice, MemDevice};
use proptest::prelude::*;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn exercise_vhd(data: Vec<u8>) {
    let Ok(mut dev) = VhdDevice::open_store(data, Path::new("smoke.vhd"), Access::ReadWrite) else {
        return;
    };
    let len = dev.len();
    let mut buf = vec![0u8; 4096];
    for off in [0, len / 2, len.saturating_sub(4096)] {
        let n = (len - off.min(len)).min(4096) as usize;
        let _ = dev.read_at(&mut buf[..n], off);
    }
    if dev.block_size().is_some_and(|bs| bs <= 2 << 20) && len >= 4096 {
        dev.write_at(&[0xA5; 700], len / 3).unwrap();
        let mut back = vec![0u8; 700];
        dev.read_at(&mut back, len / 3).unwrap();
        assert!(back.iter().all(|&b| b == 0xA5));
    }
}

fn exercise_partition(data: Vec<u8>) {
    let n = data.len() as u64;
    if let Ok(t) = graft::partition::scan(&MemDevice::new(data)) {
        for p in &t.partitions {
            assert!(p.start + p.size <= n);
        }
    }
}

/// Flips, overwrites and truncates bytes of a seed.
fn mutate(mut seed: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if seed.is_empty() {
        return seed;
    }
    let len = seed.len();
    for &(pos, byte) in edits {
        seed[pos % len] ^= byte | 1;
    }
    if let Some(c) = cut {
        seed.truncate(c % (len + 1));
    }
    seed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x67_7261_6674), ..ProptestConfig::default() })]

    #[test]
    fn vhd_random(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        exercise_vhd(data);
    }

    #[test]
    fn vhd_mutated(seed in 0usize..8, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12), cut in proptest::option::of(any::<usize>())) {
        let seeds = corpus("vhd");
        exercise_vhd(mutate(seeds[seed % seeds.len()].clone(), &edits, cut));
    }

    #[test]
    fn partition_mutated(seed in 0usize..8, edits in proptest::collection::vec((0usize..2048, any::<u8>()), 0..12), cut in proptest::option::of(any::<usize>())) {
        let seeds = corpus("partition");
        exercise_partition(mutate(seeds[seed % seeds.len()].clone(), &edits, cut));
    }

    #[test]
    fn probe_mutated(seed in 0usize..8, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12), cut in proptest::option::of(any::<usize>())) {
        let seeds = corpus("probe");
        let _ = graft::fs::probe::probe_info(&MemDevice::new(mutate(seeds[seed % seeds.len()].clone(), &edits, cut)));
    }
}
