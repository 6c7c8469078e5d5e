#!/bin/sh
# Benchmark: `graft copy-in` of a ~145 MB, ~10,000-file tree into a 2 GiB ext4 image,
# against `mkfs.ext4 -d` populating a fresh filesystem with the same tree, and against
# `virt-copy-in` when libguestfs is installed. Prints seconds and ratios.
#
#   bench/copy-in.sh [TREE_DIR]      (default: a synthetic tree of the same shape)
#
# Needs a release build (cargo build --release) and e2fsprogs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
graft="$root/target/release/graft"
[ -x "$graft" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tree=${1:-}
if [ -z "$tree" ]; then
    tree="$work/tree"
    python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
total = 0
# ~10,000 files in ~600 directories, mostly small sources, a few large shared objects.
for d in range(600):
    dpath = os.path.join(root, "lib/python3/site-packages", f"pkg{d % 60}", f"mod{d}")
    os.makedirs(dpath, exist_ok=True)
    for f in range(16):
        size = rng.choice([0, 300, 1200, 4000, 9000, 15000])
        with open(os.path.join(dpath, f"file{f}.py"), "wb") as fh:
            fh.write(rng.randbytes(size))
        total += size
for i in range(12):
    size = 8 * 1024 * 1024
    with open(os.path.join(root, "lib", f"big{i}.so"), "wb") as fh:
        fh.write(rng.randbytes(size))
    total += size
os.makedirs(os.path.join(root, "bin"), exist_ok=True)
os.symlink("../lib/big0.so", os.path.join(root, "bin", "agent"))
print(f"synthetic tree: {total / 1e6:.0f} MB", file=sys.stderr)
PY
fi
files=$(find "$tree" -type f | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $files files, $((bytes / 1000000)) MB"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

truncate -s 2G "$work/base.img"
mkfs.ext4 -q -F "$work/base.img"
sync

t0=$(now)
"$graft" -q copy-in "$work/base.img" "$tree" /opt/heat -o "$work/out.img"
t1=$(now)
graft_s=$(elapsed "$t0" "$t1")
e2fsck -fn "$work/out.img" >/dev/null || { echo "e2fsck found problems in graft's output" >&2; exit 1; }

cp --sparse=always "$work/base.img" "$work/inplace.img"
t0=$(now)
"$graft" -q copy-in "$work/inplace.img" "$tree" /opt/heat --in-place
t1=$(now)
inplace_s=$(elapsed "$t0" "$t1")

rm -f "$work/fresh.img"
truncate -s 2G "$work/fresh.img"
t0=$(now)
mkfs.ext4 -q -F -d "$tree" "$work/fresh.img"
t1=$(now)
mkfs_s=$(elapsed "$t0" "$t1")

printf 'graft copy-in -o (standalone copy) %8.3f s\n' "$graft_s"
printf 'graft copy-in --in-place           %8.3f s\n' "$inplace_s"
printf 'mkfs.ext4 -d (fresh fs)            %8.3f s\n' "$mkfs_s"
printf 'ratio graft/mkfs.ext4 -d           %8s\n' "$(ratio "$graft_s" "$mkfs_s")"
if command -v virt-copy-in >/dev/null 2>&1; then
    cp --sparse=always "$work/base.img" "$work/virt.img"
    # libguestfs' appliance: KVM first; KVM can be present and still hang on these
    # machines, so it gets a time limit and the run is repeated under TCG.
    t0=$(now)
    if LIBGUESTFS_BACKEND=direct timeout "${VC_TIMEOUT:-300}" \
            virt-copy-in -a "$work/virt.img" "$tree" /opt >"$work/virt.log" 2>&1 \
        || { cp --sparse=always "$work/base.img" "$work/virt.img"; t0=$(now);
             LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
             timeout "${VC_TIMEOUT:-900}" virt-copy-in -a "$work/virt.img" "$tree" /opt \
                 >"$work/virt.log" 2>&1; }; then
        t1=$(now)
        virt_s=$(elapsed "$t0" "$t1")
        printf 'virt-copy-in                       %8.3f s\n' "$virt_s"
        printf 'ratio graft/virt-copy-in           %8s\n' "$(ratio "$graft_s" "$virt_s")"
    else
        echo "virt-copy-in: failed to run here (libguestfs appliance), skipped: $(head -1 "$work/virt.log")"
    fi
else
    echo "virt-copy-in: not installed (libguestfs-tools), skipped"
fi
