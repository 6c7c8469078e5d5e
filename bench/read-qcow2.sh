#!/usr/bin/env bash
# Reads a 2 GiB compressed qcow2 end to end through graft's block layer and through
# `qemu-img convert -O raw ... /dev/null`, and prints the times and their ratio.
# Not a test: run by hand (`bench/read-qcow2.sh [WORKDIR]`). Needs qemu-img.
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

now() { date +%s.%N; }
t0=$(now); "$graft" inspect --read-all "$img" >/dev/null; t1=$(now)
qemu_read; t2=$(now)
# Second round, page cache warm for both.
t3=$(now); "$graft" inspect --read-all "$img"; t4=$(now)
qemu_read; t5=$(now)

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$(stat -c %s "$img")" <<'PY'
import sys
t = list(map(float, sys.argv[1:7]))
size = int(sys.argv[7])
g1, q1, g2, q2 = t[1]-t[0], t[2]-t[1], t[4]-t[3], t[5]-t[4]
print(f"image: 2 GiB virtual, {size/2**20:.0f} MiB compressed qcow2")
print(f"cold-ish: graft {g1:.2f} s   qemu-img convert {q1:.2f} s   graft/qemu = {g1/q1:.2f}")
print(f"warm:     graft {g2:.2f} s   qemu-img convert {q2:.2f} s   graft/qemu = {g2/q2:.2f}")
PY
