#!/usr/bin/env bash
# The main job on a built-in demo, for a fresh Debian 12 machine (as root):
# builds airgap-verify and a Sekoia-shaped sample release, verifies it, then
# verifies a tampered copy to show what a failure looks like.
#
#   scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/demo.sh: cargo not found; install a Rust toolchain >= 1.85 (rustup) and re-run" >&2
  exit 2
fi
if ! command -v cc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq gcc
fi

echo "==> building airgap-verify (release)"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/airgap-verify"

work="${1:-$(mktemp -d /tmp/airgap-demo.XXXXXX)}"
mkdir -p "$work"
echo "==> writing the sample release into $work"
"$bin" sample "$work" --gzip >/dev/null
archive="$work/sekoia-self-hosted-v1.0.0.tar"
ls -l "$work"

echo
echo "==> airgap-verify bundle $archive"
"$bin" bundle "$archive"
good=$?

echo
echo "==> the same release after one byte of one image changed in transit"
tampered="$work/tampered/sekoia-self-hosted-v1.0.0.tar"
mkdir -p "$work/tampered"
cp "$archive" "$archive.sha256" "$work/tampered/"
# Flip one byte in the middle of the archive (inside an image layer).
size=$(stat -c %s "$tampered")
printf '\x00' | dd of="$tampered" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$bin" bundle "$tampered"
bad=$?
set -e
echo
echo "==> exit codes: intact release $good (ready), tampered release $bad (not ready)"
echo "    JSON report: $bin bundle $archive --format json"
exit "$good"
