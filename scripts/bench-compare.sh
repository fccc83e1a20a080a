#!/usr/bin/env bash
# Compares two builds of airgap-verify on the same release, side by side with
# the baseline (`openssl dgst -sha256` of the archive), to show a change
# costs nothing (or what it costs).
#
#   scripts/bench-compare.sh OLD_BIN NEW_BIN [--size 1GiB] [--runs 3] [--workdir DIR]
#
# Writes the Sekoia-shaped sample release (`NEW_BIN sample`, .tar and
# .tar.gz), warms the page cache, then runs round-robin, RUNS times each:
# openssl dgst of the .tar; OLD and NEW `bundle --no-content` and `bundle`
# of the .tar and of the .tar.gz. Prints the median wall time, the peak RSS
# and the ratio to openssl of each, and NEW/OLD per case. Exits 0: it is a
# measurement. Builds nothing: give it release binaries.
set -euo pipefail

old=${1:?usage: $0 OLD_BIN NEW_BIN [--size SIZE] [--runs N] [--workdir DIR]}
new=${2:?usage: $0 OLD_BIN NEW_BIN [--size SIZE] [--runs N] [--workdir DIR]}
shift 2
size=1GiB runs=3 workdir=/var/tmp
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { apt-get install -y -qq time >/dev/null; }
work=$(mktemp -d "$workdir/bench-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$new" sample "$work/s" --size "$size" --gzip >/dev/null
tar_file=$(find "$work/s" -name '*.tar' | head -1)
gz_file=$(find "$work/s" -name '*.tar.gz' | head -1)
cat "$tar_file" "$gz_file" >/dev/null

# name | command
cases=(
  "openssl-tar|openssl dgst -sha256 $tar_file"
  "old-nocontent-tar|$old bundle $tar_file --no-content --no-progress"
  "new-nocontent-tar|$new bundle $tar_file --no-content --no-progress"
  "old-default-tar|$old bundle $tar_file --no-progress"
  "new-default-tar|$new bundle $tar_file --no-progress"
  "old-default-gz|$old bundle $gz_file --no-progress"
  "new-default-gz|$new bundle $gz_file --no-progress"
)
declare -A times rss
for ((r = 0; r < runs; r++)); do
  for c in "${cases[@]}"; do
    name=${c%%|*} cmd=${c#*|}
    # Verdicts do not matter here (exit 1 is fine); time and RSS do.
    /usr/bin/time -f '%e %M' -o "$work/t" $cmd >/dev/null 2>&1 || true
    # The last line: /usr/bin/time writes "Command exited with ..." first.
    read -r t m < <(tail -n 1 "$work/t")
    times[$name]+="$t "
    rss[$name]+="$m "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo "${times[openssl-tar]}" | median)
printf '%-20s %9s %9s %10s\n' case "median s" "x openssl" "peak MiB"
for c in "${cases[@]}"; do
  name=${c%%|*}
  t=$(echo "${times[$name]}" | median)
  m=$(echo "${rss[$name]}" | median)
  printf '%-20s %9.3f %9.2f %10.1f\n' "$name" "$t" "$(awk -v a="$t" -v b="$base" 'BEGIN{print a/b}')" "$(awk -v m="$m" 'BEGIN{print m/1024}')"
done
echo
for k in nocontent-tar default-tar default-gz; do
  o=$(echo "${times[old-$k]}" | median) n=$(echo "${times[new-$k]}" | median)
  printf 'new/old %-14s %.3f\n' "$k" "$(awk -v a="$n" -v b="$o" 'BEGIN{print a/b}')"
done
echo "($(stat -c %s "$tar_file") bytes .tar, $runs runs each, round-robin)"
