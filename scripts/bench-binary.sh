#!/usr/bin/env bash
# Size and start-up budget of the release binary, static against dynamic,
# side by side: file size (stripped, as shipped), NEEDED entries, and the
# median wall time of `airgap-verify --version` and of `bundle` on the small
# sample release (4 MiB, `airgap-verify sample --size 4MiB`), warm cache,
# the two binaries alternated run by run.
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

# Median wall times in milliseconds of RUNS runs of the static and the
# dynamic binary with the same arguments, alternated run by run so that the
# load of a shared machine weighs on both alike (output discarded).
medians_ms() {
  python3 - "$runs" "$static" "$dynamic" "$@" <<'EOF'
import statistics, subprocess, sys, time
runs, bins, args = int(sys.argv[1]), sys.argv[2:4], sys.argv[4:]
times = {b: [] for b in bins}
for _ in range(runs):
    for b in bins:
        t = time.perf_counter()
        subprocess.run([b] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times[b].append((time.perf_counter() - t) * 1000)
print(" ".join("%.2f" % statistics.median(times[b]) for b in bins))
EOF
}

row() { printf '%-30s %20s %20s %16s\n' "$@"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
ratio() { awk -v s="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", s / d; else print "-" }'; }
needed() { readelf -d "$1" | grep -c '(NEEDED)' || true; }
sz() { stat -c %s "$1"; }

# As cargo leaves them (debug line tables in, symbols in): the "before".
target_dir=${CARGO_TARGET_DIR:-target}
s_raw=$(sz "$target_dir/x86_64-unknown-linux-gnu/release/airgap-verify")
d_raw=$(sz "$target_dir/release/airgap-verify")
s_size=$(sz "$static") d_size=$(sz "$dynamic")
s_dbg=$(sz "${static%/*}/airgap-verify.debug") d_dbg=$(sz "${dynamic%/*}/airgap-verify.debug")
read -r s_ver d_ver < <(medians_ms --version)
read -r s_bun d_bun < <(medians_ms bundle "$tar" --no-progress)

echo "airgap-verify $("$static" --version | awk '{print $2}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $runs runs each, medians"
row "" "static (crt-static)" "dynamic (glibc)" "static/dynamic"
row "cargo's output (unstripped)" "$(mib "$s_raw")" "$(mib "$d_raw")" "$(ratio "$s_raw" "$d_raw")"
row "file size (stripped)" "$(mib "$s_size")" "$(mib "$d_size")" "$(ratio "$s_size" "$d_size")"
row "debug info kept apart" "$(mib "$s_dbg")" "$(mib "$d_dbg")" "$(ratio "$s_dbg" "$d_dbg")"
row "NEEDED entries" "$(needed "$static")" "$(needed "$dynamic")" ""
row "--version (ms)" "$s_ver" "$d_ver" "$(ratio "$s_ver" "$d_ver")"
row "bundle, 4 MiB sample (ms)" "$s_bun" "$d_bun" "$(ratio "$s_bun" "$d_bun")"
