#!/bin/sh
# A bounded fuzz run of every target, as CI does it: each target starts from its kept
# corpus (fuzz/corpus/<target>, or mke2fs seeds for the ext4 targets) and runs for
# FUZZ_SECONDS (default 30). A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/; `cargo fuzz run -s none -a <target> <that file>` replays it.
#
# Runs on the stable toolchain: `-s none` asks for no sanitizer (the only nightly-only
# flag); `-a` turns on debug assertions, so an arithmetic overflow is a crash too.
set -eu
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

./seed-ext4.sh
cargo fuzz build -s none -a

for target in vhd partition probe ext4_structures ext4_writer; do
    # Unless told, libFuzzer grows inputs from the seeds' size but never past 1 MiB: the
    # writer's seeds are whole 2 MiB filesystems, and a truncated one is refused at once
    # (a shallow run: 240 covered edges instead of 1300).
    max_len=
    case $target in
        ext4_writer) seeds=target/ext4-seeds/$target max_len=-max_len=2097152 ;;
        ext4_*) seeds=target/ext4-seeds/$target ;;
        *) seeds=corpus/$target ;;
    esac
    # New inputs go to a scratch directory: the kept corpus changes only when someone
    # minimises a longer run into it (see README, "Fuzzing").
    found=target/ci-corpus/$target
    rm -rf "$found"
    mkdir -p "$found"
    echo "fuzz: $target for ${seconds}s from $seeds"
    cargo fuzz run -s none -a "$target" "$found" "$seeds" -- \
        -max_total_time="$seconds" $max_len -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: every target ran ${seconds}s without a crash"
