#!/usr/bin/env bash
# Size and start-up budget of the release binary, static against dynamic,
# side by side: file size (stripped, as shipped), NEEDED entries, and the
# median wall time of `airgap-verify --version` and of `bundle` on the small
# sample release (4 MiB, `airgap-verify sample --size 4MiB`), warm cache.
#
#   scripts/bench-binary.sh [RUNS]      # default 21 runs each
#
# Builds both with scripts/build-static.sh (and --dynamic): two release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-21}

static=$(bash scripts/build-static.sh)
dynamic=$(bash scripts/build-static.sh --dynamic)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$static" sample "$work/sample" --size 4MiB >/dev/null
tar=$(ls "$work"/sample/*.tar | head -n1)

# Median wall time in milliseconds of RUNS runs of "$@" (output discarded).
median_ms() {
  python3 - "$runs" "$@" <<'EOF'
import statistics, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times.append((time.perf_counter() - t) * 1000)
print("%.2f" % statistics.median(times))
EOF
}

row() { printf '%-34s %18s %18s\n' "$@"; }
size() { stat -c %s "$1" | awk '{printf "%.1f MiB", $1 / 1048576}'; }
needed() { readelf -d "$1" | grep -c '(NEEDED)' || true; }

echo "airgap-verify $("$static" --version | awk '{print $2}'), $(nproc) cores, $runs runs each, medians"
row "" "static (crt-static)" "dynamic (glibc)"
row "file size (stripped)" "$(size "$static")" "$(size "$dynamic")"
row "debug info kept apart" "$(size "${static%/*}/airgap-verify.debug")" "$(size "${dynamic%/*}/airgap-verify.debug")"
row "NEEDED entries" "$(needed "$static")" "$(needed "$dynamic")"
row "--version (ms)" "$(median_ms "$static" --version)" "$(median_ms "$dynamic" --version)"
row "bundle, 4 MiB sample (ms)" \
  "$(median_ms "$static" bundle "$tar" --no-progress)" \
  "$(median_ms "$dynamic" bundle "$tar" --no-progress)"
