#!/usr/bin/env bash
# Builds the portable release binary: x86-64 Linux, linked statically against
# glibc (crt-static), stripped, with its debug info kept apart.
#
#   scripts/build-static.sh            # -> target/static/airgap-verify (+ .debug)
#   scripts/build-static.sh --dynamic  # the ordinary dynamic build, same steps,
#                                      #    -> target/dynamic/airgap-verify (for comparison)
#   scripts/build-static.sh --profile ci-static
#                                      # the same static link from a cheaper profile
#                                      #    (no optimisation, no LTO: scripts/test.sh)
#
# Why glibc crt-static and not musl: the musl standard library is a rustup
# component that cannot be downloaded on this network, and Debian's libc6-dev
# ships libc.a. A static glibc cannot load NSS modules, so the binary never
# calls getaddrinfo or getpw*: names are resolved by src/probe/system_resolver.rs
# (/etc/hosts, /etc/resolv.conf and the project's own DNS client). zlib, used by
# the vendored libgit2, is built from source (LIBZ_SYS_STATIC=1), not taken from
# the build host.
#
# Prints the output path. Needs gcc, libc6-dev (libc.a) and binutils (objcopy).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=static profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --dynamic) mode=dynamic ;;
    --profile) profile=$2; shift ;;
    *) echo "scripts/build-static.sh: unknown argument $1 (--dynamic, --profile NAME)" >&2; exit 2 ;;
  esac
  shift
done
triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-target}
# target/static whatever the profile: the last static build is the one
# scripts/dist.sh and the .deb ([package.metadata.deb]) pack.
out=target/$mode
mkdir -p "$out"

if [ "$mode" = static ]; then
  # --target keeps the flag off build scripts and proc-macros (they are
  # loaded by the compiler, which cannot load a static executable).
  RUSTFLAGS="-C target-feature=+crt-static" LIBZ_SYS_STATIC=1 \
    cargo build --profile "$profile" --locked --target "$triple" --bin airgap-verify >&2
  built=$target_dir/$triple/$profile/airgap-verify
else
  cargo build --profile "$profile" --locked --bin airgap-verify >&2
  built=$target_dir/$profile/airgap-verify
fi

# Debug info apart: the shipped file is stripped and names its companion
# (.gnu_debuglink), so gdb finds airgap-verify.debug when it is placed beside it.
cp "$built" "$out/airgap-verify.unstripped"
objcopy --only-keep-debug --compress-debug-sections=zlib "$out/airgap-verify.unstripped" "$out/airgap-verify.debug"
objcopy --strip-all --add-gnu-debuglink="$out/airgap-verify.debug" "$out/airgap-verify.unstripped" "$out/airgap-verify"
rm -f "$out/airgap-verify.unstripped"
echo "$out/airgap-verify"
