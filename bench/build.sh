#!/usr/bin/env bash
# Measures the payload of one target: compressed and unpacked size, file count, cold
# fetch time (empty cache), warm build time and peak memory (GNU time's maximum RSS).
#
# Usage: bench/build.sh [--lock FILE] [--target NAME] [--graft PATH]
# Default: lockfiles/heat-agent.lock, debian-12, target/release/graft (built if missing).
# Needs the package index for the cold fetch, and /usr/bin/time (Debian: `time`).
set -euo pipefail
cd "$(dirname "$0")/.."

lock=lockfiles/heat-agent.lock
target=debian-12
graft=target/release/graft
while [ $# -gt 0 ]; do
    case "$1" in
        --lock) lock=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --graft) graft=$2; shift 2 ;;
        *) echo "usage: $0 [--lock FILE] [--target NAME] [--graft PATH]" >&2; exit 2 ;;
    esac
done
[ -x "$graft" ] || cargo build --release
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=$work/cache

# Wall seconds, peak RSS in KB, CPU seconds (user + system), from GNU time.
timed() {
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/time"
}

read -r fetch_s _ _ < <(timed "$graft" -q --cache-dir "$cache" fetch --lock "$lock" --target "$target")
# Warm: everything cached, offline; the best of three runs for time, the largest RSS.
best=; best_cpu=; peak=0
for _ in 1 2 3; do
    read -r s kb cpu < <(timed "$graft" -q --offline --cache-dir "$cache" --json build --lock "$lock" \
        --target "$target" -o "$work/payload.tar.gz")
    if [ -z "$best" ] || awk "BEGIN{exit !($s < $best)}"; then best=$s; fi
    if [ -z "$best_cpu" ] || awk "BEGIN{exit !($cpu < $best_cpu)}"; then best_cpu=$cpu; fi
    [ "$kb" -gt "$peak" ] && peak=$kb
done
summary=$("$graft" -q --offline --cache-dir "$cache" --json build --lock "$lock" --target "$target" -o "$work/payload.tar.gz")
field() { printf '%s' "$summary" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

printf '%-32s %s\n' "target" "$target"
printf '%-32s %s bytes (%.1f MB)\n' "payload, compressed" "$(field archive_size)" "$(awk "BEGIN{print $(field archive_size)/1e6}")"
printf '%-32s %s bytes (%.1f MB)\n' "payload, unpacked (file bytes)" "$(field bytes_unpacked)" "$(awk "BEGIN{print $(field bytes_unpacked)/1e6}")"
printf '%-32s %s (%s entries)\n' "files" "$(field files)" "$(field entries)"
printf '%-32s %s s\n' "cold fetch (empty cache)" "$fetch_s"
printf '%-32s %s s wall, %s s CPU (best of 3; load average %s)\n' "warm build" "$best" "$best_cpu" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-32s %s MB\n' "warm build peak memory (RSS)" "$((peak / 1024))"
