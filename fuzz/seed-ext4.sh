#!/bin/sh
# Seeds for the ext4 fuzz targets, made by mke2fs (no binary images are committed):
#   fuzz/seed-ext4.sh && cargo fuzz run ext4_writer target/ext4-seeds/ext4_writer
set -eu
cd "$(dirname "$0")"
mkdir -p target/ext4-seeds/ext4_writer target/ext4-seeds/ext4_structures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/etc" "$tmp/src/d"
echo ID=seed > "$tmp/src/etc/os-release"
i=0
while [ $i -lt 100 ]; do : > "$tmp/src/d/entry-$i"; i=$((i + 1)); done
n=0
for opts in "-t ext4" "-t ext4 -O ^metadata_csum" "-t ext3" "-t ext2" "-t ext4 -O ^64bit,^flex_bg" "-t ext4 -I 128"; do
    n=$((n + 1))
    f="target/ext4-seeds/ext4_writer/seed-$n.img"
    rm -f "$f"
    truncate -s 2M "$f"
    # shellcheck disable=SC2086
    mke2fs -q -F $opts -b 1024 -N 200 -d "$tmp/src" "$f"
    e2fsck -fyD "$f" >/dev/null 2>&1 || true
    head -c 8192 "$f" | tail -c 7168 > "target/ext4-seeds/ext4_structures/head-$n"
done
