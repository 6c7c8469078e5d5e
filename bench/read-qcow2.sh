#!/usr/bin/env bash
# Reads a 2 GiB compressed qcow2 end to end through graft's block layer and through
# `qemu-img convert -O raw ... /dev/null`, and prints the times and their ratio.
# Not a test: run by hand (`bench/read-qcow2.sh [WORKDIR]`). Needs qemu-img and GNU time
# (/usr/bin/time). Prints wall and CPU seconds: qemu-img decompresses on several threads,
# graft on one, so on a loaded machine the wall ratio and the CPU ratio differ.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-$(mktemp -d)}
mkdir -p "$work"
img="$work/bench-2g.qcow2"
if [[ ! -f $img ]]; then
    raw="$work/bench-2g.raw"
    # Every cluster non-zero and about 2:1 compressible, like an OS image: each 4 KiB is
    # 2 KiB of (seeded, reproducible) random bytes and 2 KiB of text.
    python3 - "$raw" <<'PY'
import random, sys
size = 2 << 30
chunk = 1 << 20
rng = random.Random(20261125)
text = (b"graft bench: the quick brown fox jumps over the lazy dog. " * 40)[:2048]
with open(sys.argv[1], "wb") as f:
    for off in range(0, size, chunk):
        noise = rng.randbytes(chunk // 2)
        f.write(b"".join(noise[i:i + 2048] + text for i in range(0, chunk // 2, 2048)))
PY
    qemu-img convert -c -O qcow2 "$raw" "$img"
    rm -f "$raw"
fi

# GRAFT=path/to/graft to time an existing binary (e.g. a debug build, whose
# dependencies -- imago, miniz_oxide -- are optimised anyway); else a release build.
graft=${GRAFT:-}
if [[ -z $graft ]]; then
    cargo build --release --quiet
    graft=target/release/graft
fi

# `qemu-img convert -O raw IMG /dev/null`; qemu-img versions that refuse to "grow" a
# device file get the same read path into qemu's null driver instead.
vsize=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
qemu_read() {
    qemu-img convert -O raw "$img" /dev/null 2>/dev/null ||
        qemu-img convert -n -f qcow2 "$img" --target-image-opts "driver=null-co,size=$vsize"
}

# Wall and CPU (user+sys) seconds of a command, via GNU time.
measure() {
    local out
    out=$(mktemp)
    /usr/bin/time -f "%e %U %S" -o "$out" "$@" >/dev/null
    cat "$out"
    rm -f "$out"
}

export img vsize
export -f qemu_read
g1=$(measure "$graft" inspect --read-all "$img")
q1=$(measure bash -c qemu_read)
# Second round, page cache warm for both.
g2=$(measure "$graft" inspect --read-all "$img")
q2=$(measure bash -c qemu_read)

python3 - "$(stat -c %s "$img")" "$g1" "$q1" "$g2" "$q2" <<'PY'
import sys
size = int(sys.argv[1])
def parse(s):
    wall, user, sys_ = map(float, s.split())
    return wall, user + sys_
print(f"image: 2 GiB virtual, {size/2**20:.0f} MiB compressed qcow2")
for label, g, q in (("first", sys.argv[2], sys.argv[3]), ("warm", sys.argv[4], sys.argv[5])):
    (gw, gc), (qw, qc) = parse(g), parse(q)
    print(f"{label:5}: graft {gw:6.2f} s wall {gc:6.2f} s cpu | qemu-img convert {qw:6.2f} s wall {qc:6.2f} s cpu"
          f" | graft/qemu wall {gw/qw:.2f}, cpu {gc/qc:.2f}")
PY
