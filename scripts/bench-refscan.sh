#!/usr/bin/env bash
# Micro-benchmark of the external-reference scan alone, on one core
# (examples/refscan.rs): generated release-like text (Kubernetes YAML, SBOM
# JSON) fed in 64 KiB buffers to refscan::LineScanner, side by side with
# counting its lines (what reading it costs) and the per-line scan it
# replaced. Prints medians, MB/s and PASS/FAIL against 1 GB/s. A
# measurement: exits 0 even when the target is missed.
#
# Usage: scripts/bench-refscan.sh [MiB] [RUNS]   (default 256 MiB, 5 runs)
# Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet --example refscan
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# taskset: one core, as the target says.
if command -v taskset > /dev/null; then
    exec taskset -c 0 "$target/release/examples/refscan" "${1:-256}" "${2:-5}"
fi
exec "$target/release/examples/refscan" "${1:-256}" "${2:-5}"
