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
    # Compressible but not trivial content: 2 GiB of repeated text blocks with the
    # offset mixed in, so every cluster is non-zero and compresses about 4:1.
    python3 - "$raw" <<'PY'
import sys, hashlib
size = 2 << 30
chunk = 1 << 20
with open(sys.argv[1], "wb") as f:
    for off in range(0, size, chunk):
        seed = hashlib.sha256(off.to_bytes(8, "little")).digest()
        line = (seed.hex() + " graft bench ").encode() * 4
        f.write((line * (chunk // len(line) + 1))[:chunk])
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

now() { date +%s.%N; }
t0=$(now); "$graft" inspect --read-all "$img" >/dev/null; t1=$(now)
qemu-img convert -O raw "$img" /dev/null; t2=$(now)
# Second round, page cache warm for both.
t3=$(now); "$graft" inspect --read-all "$img"; t4=$(now)
qemu-img convert -O raw "$img" /dev/null; t5=$(now)

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$(stat -c %s "$img")" <<'PY'
import sys
t = list(map(float, sys.argv[1:7]))
size = int(sys.argv[7])
g1, q1, g2, q2 = t[1]-t[0], t[2]-t[1], t[4]-t[3], t[5]-t[4]
print(f"image: 2 GiB virtual, {size/2**20:.0f} MiB compressed qcow2")
print(f"cold-ish: graft {g1:.2f} s   qemu-img convert {q1:.2f} s   graft/qemu = {g1/q1:.2f}")
print(f"warm:     graft {g2:.2f} s   qemu-img convert {q2:.2f} s   graft/qemu = {g2/q2:.2f}")
PY
