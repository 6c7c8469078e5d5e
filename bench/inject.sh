#!/usr/bin/env bash
# graft inject against virt-customize --copy-in of the same unpacked tree, side by side in
# one run, on the 2 GiB Debian 12 qcow2 of tests/fixtures/debian-image.sh.
#
# Prints wall times and their ratio, each output's growth against the payload's bytes, and
# the number of 4 KiB blocks of the virtual disk that differ from the base.
# Needs libguestfs-tools (virt-customize; supermin needs a kernel in /boot, e.g. the
# linux-image-cloud-amd64 package) and, on the first run, the package index and
# Debian's mirror. libguestfs runs its appliance with LIBGUESTFS_BACKEND=direct; when KVM
# fails it is retried under TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg).
# Usage: bench/inject.sh [WORKDIR]   (default: target/bench-inject)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/bench-inject}
G=./target/release/graft
[ -x "$G" ] || cargo build --release
command -v virt-customize >/dev/null || { echo "virt-customize not found: apt-get install libguestfs-tools" >&2; exit 2; }
tests/fixtures/debian-image.sh target/fixtures/debian-12 >&2
BASE=target/fixtures/debian-12/debian-12.qcow2
mkdir -p "$WORK"
"$G" -q fetch --target debian-12
"$G" -q build --target debian-12 -o "$WORK/payload.tar.gz"
rm -rf "$WORK/tree" && mkdir "$WORK/tree"
tar -xzf "$WORK/payload.tar.gz" -C "$WORK/tree" --numeric-owner
PAYLOAD_BYTES=$(find "$WORK/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
UNIT=os-collect-config.service

now() { date +%s.%N; }

rm -f "$WORK/graft.qcow2"
t0=$(now)
"$G" -q inject "$BASE" -o "$WORK/graft.qcow2" --payload "$WORK/payload.tar.gz"
t1=$(now)
GRAFT_S=$(echo "$t1 - $t0" | bc)

# virt-customize edits in place: the copy of the base is part of its job.
# A KVM that is present but stalls would hang: the first attempt has a time limit.
vc() {
    rm -f "$WORK/vc.qcow2"
    cp --sparse=always "$BASE" "$WORK/vc.qcow2"
    LIBGUESTFS_BACKEND=direct timeout "${VC_TIMEOUT:-900}" virt-customize -q -a "$WORK/vc.qcow2" --no-network \
        --copy-in "$WORK/tree/opt/heat-agent:/opt" \
        --copy-in "$WORK/tree/etc/systemd/system/$UNIT:/etc/systemd/system" \
        --link "/etc/systemd/system/$UNIT:/etc/systemd/system/multi-user.target.wants/$UNIT"
}
t0=$(now)
if ! VC_TIMEOUT=${VC_KVM_TIMEOUT:-120} vc 2>"$WORK/vc.err"; then
    echo "virt-customize failed (KVM?), retrying under TCG: $(tail -1 "$WORK/vc.err")" >&2
    t0=$(now)
    LIBGUESTFS_BACKEND_SETTINGS=force_tcg vc
fi
t1=$(now)
VC_S=$(echo "$t1 - $t0" | bc)

base_size=$(stat -c %s "$BASE")
# Blocks of the virtual disk that differ from the base, compared 4 KiB at a time.
differing_blocks() {
    python3 - "$1" "$2" <<'PY'
import sys
a, b = (open(p, "rb") for p in sys.argv[1:3])
n = 0
while True:
    x, y = a.read(1 << 20), b.read(1 << 20)
    if not x and not y:
        break
    if x != y:
        for i in range(0, max(len(x), len(y)), 4096):
            if x[i:i + 4096] != y[i:i + 4096]:
                n += 1
print(n)
PY
}
qemu-img convert -O raw "$BASE" "$WORK/base.raw"
for which in graft vc; do
    qemu-img convert -O raw "$WORK/$which.qcow2" "$WORK/$which.raw"
done
GRAFT_DIFF=$(differing_blocks "$WORK/base.raw" "$WORK/graft.raw")
VC_DIFF=$(differing_blocks "$WORK/base.raw" "$WORK/vc.raw")
rm -f "$WORK/base.raw" "$WORK/graft.raw" "$WORK/vc.raw"

growth() { echo $(( $(stat -c %s "$1") - base_size )); }
GG=$(growth "$WORK/graft.qcow2")
VG=$(growth "$WORK/vc.qcow2")
printf 'payload: %d bytes in %d files\n' "$PAYLOAD_BYTES" "$(find "$WORK/tree" -type f | wc -l)"
printf '%-16s %9s %14s %10s %16s\n' tool seconds growth-bytes growth/payload differing-4KiB
printf '%-16s %9.2f %14d %10.3f %16d\n' "graft inject" "$GRAFT_S" "$GG" "$(echo "$GG / $PAYLOAD_BYTES" | bc -l)" "$GRAFT_DIFF"
printf '%-16s %9.2f %14d %10.3f %16d\n' virt-customize "$VC_S" "$VG" "$(echo "$VG / $PAYLOAD_BYTES" | bc -l)" "$VC_DIFF"
printf 'virt-customize / graft wall time: %.1fx\n' "$(echo "$VC_S / $GRAFT_S" | bc -l)"
