#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after the other (one process, one
# core, under nice), each for SECONDS of wall time, then prints a summary:
# target, CPU seconds, executions, corpus files, crashes. Exits non-zero if
# any target found a crash, timeout or out-of-memory input (saved under
# fuzz/artifacts/TARGET/).
#
#   scripts/fuzz.sh                    # every target, 600 s each
#   scripts/fuzz.sh 60                 # every target, 60 s each
#   scripts/fuzz.sh 300 archive tar    # two targets, 300 s each
#
# New inputs are added to fuzz/corpus/TARGET/ (committed; minimise with
# `cargo +nightly fuzz cmin -s none -a TARGET` before committing). Seeds from
# fuzz/make_seeds.py are read from fuzz/seeds/TARGET/ when present.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
[ $# -gt 0 ] && shift
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz" >&2
  cargo install cargo-fuzz
fi

# No sanitizer (safe Rust; the C parts are not instrumented anyway), with
# debug assertions and overflow checks on so arithmetic bugs panic.
fuzz_flags=(-s none -a)
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
echo "==> building ${targets[*]}" >&2
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "${fuzz_flags[@]}" "$t" >&2
done

bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
# The Git bundle target writes libgit2's pack and index per input.
[ -d /dev/shm ] && export TMPDIR=/dev/shm
logs=fuzz/artifacts/logs
mkdir -p "$logs"
summary=()
failed=0
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  artifacts=fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  extra=()
  [ -d "fuzz/seeds/$t" ] && extra+=("fuzz/seeds/$t")
  case $t in
    archive | tar) max_len=65536 ;;
    git_bundle | config) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  before=$(find "$artifacts" -maxdepth 1 -type f | wc -l)
  log=$logs/$t.log
  echo "==> fuzzing $t for ${seconds}s (log: $log)" >&2
  # /usr/bin/time gives the fuzzer's own CPU time (user + system), which is
  # less than the wall time on a busy machine.
  rc=0
  /usr/bin/time -f '%U %S' -o "$logs/$t.time" \
    nice -n 10 "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "${extra[@]}" >"$log" 2>&1 || rc=$?
  # The last line: /usr/bin/time puts "Command exited with non-zero status" first.
  cpu=$(tail -n 1 "$logs/$t.time" 2>/dev/null | awk '{printf "%.0f", $1 + $2}')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  files=$(find "$corpus" -maxdepth 1 -type f | wc -l)
  after=$(find "$artifacts" -maxdepth 1 -type f | wc -l)
  crashes=$((after - before))
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  [ "$crashes" -gt 0 ] && failed=1
  summary+=("$(printf '%-12s %8s %12s %8s %8s' "$t" "$cpu" "${execs:-?}" "$files" "$crashes")")
done

printf '\n%-12s %8s %12s %8s %8s\n' target cpu_s executions corpus crashes
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "crash inputs are in fuzz/artifacts/TARGET/; logs in $logs/" >&2
  exit 1
fi
