#!/usr/bin/env bash
# Makes the release of airgap-verify, verifiable by itself and by standard tools:
#
#   dist/airgap-verify-<version>-x86_64-linux.tar.gz          the release
#   dist/airgap-verify-<version>-x86_64-linux.tar.gz.sha256   its SHA-256 (read by `bundle`)
#   dist/airgap-verify-<version>-x86_64-linux.tar.gz.minisig  with MINISIGN_KEY=secret.key
#   dist/airgap-verify-<version>-x86_64-linux.debug           debug info of the binary (not shipped)
#   dist/airgap-verify_<version>-1_amd64.deb                  the same files for Debian 12 (cargo-deb)
#   dist/SHA256SUMS                                           all of the above
#
# Inside the tarball, under airgap-verify-<version>-x86_64-linux/:
#   bin/airgap-verify                       the static binary (scripts/build-static.sh)
#   share/man/man1/*.1.gz                   man pages  } generated from the clap
#   share/{bash-completion,zsh,fish}/...    completions} definitions (examples/dist-assets.rs)
#   README.md, docs/                        the documentation
#   licenses/                               every dependency's licence: dependencies.tsv
#                                           (`cargo deny list`) and the licence files each
#                                           crate ships (licenses/<crate>-<version>/)
#   SHA256SUMS                              every file but itself and manifest.json
#   manifest.json                           every file (this project's manifest format,
#                                           docs/bundle-format.md), written by
#                                           `airgap-verify manifest create`
#
# Then it checks what it made: `airgap-verify bundle` on the tarball (checksum,
# tar safety, SHA256SUMS, manifest.json, and the signature when signed) and
# `sha256sum -c` on the extracted files, and exits non-zero if either fails.
#
#   scripts/dist.sh                                  # unsigned
#   MINISIGN_KEY=release.key scripts/dist.sh         # signed (a key made with `minisign -G -W`,
#                                                    # or its password in MINISIGN_PASSWORD)
#   scripts/dist.sh --no-deb                         # without the .deb (no cargo-deb needed)
#
# Reproducible: file times are the last commit's (SOURCE_DATE_EPOCH), owners
# are 0:0, entries sorted, gzip without a name or time stamp.
set -euo pipefail
cd "$(dirname "$0")/.."

with_deb=1
[ "${1:-}" = "--no-deb" ] && with_deb=0

log() { printf '==> %s\n' "$*" >&2; }
# What it needs is installed when missing: Debian packages (as root), and
# cargo-deny (the licence list) and cargo-deb from crates.io.
need_pkgs=()
for cmd_pkg in objcopy:binutils sha256sum:coreutils gzip:gzip tar:tar python3:python3 gcc:gcc; do
  command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || need_pkgs+=("${cmd_pkg##*:}")
done
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/dist.sh: missing ${need_pkgs[*]}: apt-get install ${need_pkgs[*]} (as root)" >&2
    exit 2
  fi
  log "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
fi
[ -d "$HOME/.cargo/bin" ] && export PATH="$PATH:$HOME/.cargo/bin"
cargo_tool() { # cargo_tool COMMAND CRATE
  command -v "$1" >/dev/null 2>&1 && return
  log "installing $2 from crates.io (cargo install --locked $2)"
  cargo install --locked --quiet "$2" >&2
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
name=airgap-verify-$version-x86_64-linux
# Not exported to cargo: cc-based build scripts (ring, libgit2-sys, zstd-sys,
# libz-sys) rerun when SOURCE_DATE_EPOCH changes, so a build under it and
# one without (cargo test) would rebuild each other's C dependencies.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# AIRGAP_STATIC_BIN: a binary scripts/build-static.sh already made (scripts/test.sh).
log "static binary (scripts/build-static.sh)"
bin=${AIRGAP_STATIC_BIN:-$(bash scripts/build-static.sh)}
# The .deb packs target/static/ ([package.metadata.deb]): the same file.
if [ "$(realpath "$bin")" != "$(realpath -m target/static/airgap-verify)" ]; then
  mkdir -p target/static
  install -m 0755 "$bin" target/static/airgap-verify
  install -m 0644 "${bin%/*}/airgap-verify.debug" target/static/airgap-verify.debug
fi

log "man pages and completions from the clap definitions"
assets=target/dist-assets
rm -rf "$assets"
cargo run --quiet --locked --example dist-assets -- "$assets" >&2
gzip -9nf "$assets"/man/man1/*.1

mkdir -p dist
# What an earlier run made goes first (a stale .deb would otherwise be
# listed in SHA256SUMS beside a new tarball).
rm -rf dist/airgap-verify-* dist/airgap-verify_* dist/SHA256SUMS
stage=dist/$name
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/share/man/man1" \
  "$stage/share/bash-completion/completions" "$stage/share/zsh/site-functions" \
  "$stage/share/fish/vendor_completions.d" "$stage/licenses"
install -m 0755 "$bin" "$stage/bin/airgap-verify"
install -m 0644 "$assets"/man/man1/*.1.gz "$stage/share/man/man1/"
install -m 0644 "$assets/completions/airgap-verify.bash" "$stage/share/bash-completion/completions/airgap-verify"
install -m 0644 "$assets/completions/_airgap-verify" "$stage/share/zsh/site-functions/_airgap-verify"
install -m 0644 "$assets/completions/airgap-verify.fish" "$stage/share/fish/vendor_completions.d/airgap-verify.fish"
install -m 0644 README.md "$stage/README.md"
cp -r docs "$stage/docs"
cp "${bin%/*}/airgap-verify.debug" "dist/$name.debug"

log "licences of every dependency"
cargo_tool cargo-deny cargo-deny
cargo-deny --offline --log-level error list --layout crate --format tsv >"$stage/licenses/dependencies.tsv"
# The licence files each crate of the shipped binary's tree carries
# (normal dependencies for Linux x86-64; build and dev tools excluded).
cargo metadata --locked --format-version 1 --filter-platform x86_64-unknown-linux-gnu \
  | python3 -c '
import json, os, shutil, sys
meta = json.load(sys.stdin)
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]
seen, todo = set(), [root]
while todo:
    i = todo.pop()
    if i in seen:
        continue
    seen.add(i)
    for d in nodes[i]["deps"]:
        if any(k["kind"] is None for k in d["dep_kinds"]):
            todo.append(d["pkg"])
out = sys.argv[1]
for i in sorted(seen - {root}):
    p = pkgs[i]
    src = os.path.dirname(p["manifest_path"])
    dest = os.path.join(out, "%s-%s" % (p["name"], p["version"]))
    os.makedirs(dest, exist_ok=True)
    files = [f for f in os.listdir(src) if f.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE", "UNLICENSE"))]
    for f in sorted(files):
        if os.path.isfile(os.path.join(src, f)):
            shutil.copyfile(os.path.join(src, f), os.path.join(dest, f))
    if p.get("license_file"):
        lf = os.path.join(src, p["license_file"])
        if os.path.isfile(lf):
            shutil.copyfile(lf, os.path.join(dest, os.path.basename(lf)))
    with open(os.path.join(dest, "LICENSE-EXPRESSION"), "w") as fh:
        fh.write((p.get("license") or "see the licence files") + "\n")
' "$stage/licenses"

log "SHA256SUMS and manifest.json"
(cd "$stage" && find . -type f ! -name SHA256SUMS ! -name manifest.json -printf '%P\n' | LC_ALL=C sort \
  | xargs -d '\n' sha256sum) >"$stage/SHA256SUMS"
# Written beside the folder, then moved in: the tool refuses to write inside
# the folder it reads.
"$bin" manifest create "$stage" --product airgap-verify --release-version "$version" \
  --output "dist/$name.manifest.json" >&2
mv "dist/$name.manifest.json" "$stage/manifest.json"
find "$stage" -exec touch -h -d "@$epoch" {} +

log "dist/$name.tar.gz"
tarball=dist/$name.tar.gz
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C dist -cf - "$name" | gzip -9n >"$tarball"
(cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
verify_args=()
rm -f "$tarball.minisig"
if [ -n "${MINISIGN_KEY:-}" ]; then
  log "minisign signature ($MINISIGN_KEY)"
  pub=${MINISIGN_PUBKEY:-${MINISIGN_KEY%.key}.pub}
  printf '%s\n' "${MINISIGN_PASSWORD:-}" | minisign -S -s "$MINISIGN_KEY" -m "$tarball" \
    -t "airgap-verify $version x86_64-linux" >&2
  [ -f "$pub" ] && verify_args=(--pubkey "$pub")
fi

if [ "$with_deb" = 1 ]; then
  log ".deb (cargo-deb)"
  cargo_tool cargo-deb cargo-deb
  # The same files as the tarball: [package.metadata.deb] in Cargo.toml
  # names target/static/airgap-verify and target/dist-assets.
  SOURCE_DATE_EPOCH=$epoch cargo deb --no-build --no-strip --locked --output "dist/" >&2
fi
(cd dist && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
  | xargs -d '\n' sha256sum) >dist/SHA256SUMS

log "check: airgap-verify bundle $tarball ${verify_args[*]:-}"
# It must pass (exit 0), and its only warnings may be refs:external: the
# README, docs and licence texts name upstream URLs, which the reference
# scan reports for a reviewer; anything else (unauthenticated, a skipped
# check) fails this script.
check_json=$(mktemp)
"$bin" bundle "$tarball" --no-progress --format json "${verify_args[@]}" >"$check_json"
python3 - "$check_json" <<'EOF'
import collections, json, sys
report = json.load(open(sys.argv[1]))
seen = collections.Counter((f["code"], f["status"]) for f in report["findings"])
for (code, status), n in sorted(seen.items()):
    print("  %-5s %-28s x%d" % (status, code, n), file=sys.stderr)
bad = [k for k in seen if k[1] != "pass" and k != ("refs:external", "warn")]
if bad:
    sys.exit("scripts/dist.sh: the release does not verify cleanly: %s" % bad)
EOF
rm -f "$check_json"
log "check: sha256sum -c on the extracted files"
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
tar xzf "$tarball" -C "$check"
(cd "$check/$name" && sha256sum --quiet --strict -c SHA256SUMS)
(cd dist && sha256sum --quiet --strict -c SHA256SUMS)
rm -rf "$stage"
ls -l dist/ >&2
echo "$tarball"
