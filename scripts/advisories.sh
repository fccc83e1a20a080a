#!/usr/bin/env bash
# cargo deny --offline check advisories against a RustSec advisory database
# snapshot, printing the snapshot's date (scripts/test.sh runs it; deny.toml
# says how a newer snapshot is brought in).
#
#   scripts/advisories.sh                          # ../shared/advisory-db/advisory-db.tar.gz
#   AIRGAP_ADVISORY_DB=advisory-db.tar.gz scripts/advisories.sh
#
# Exit 0 when no advisory applies, or when there is no database at all (then it
# says plainly on stderr that advisories were NOT checked); non-zero when one
# applies.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
if ! command -v cargo-deny >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo-deny" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi

# Advisories need the RustSec database, which only a git fetch brings and the
# network here does not allow. A snapshot is brought in as a tarball (see
# deny.toml): $AIRGAP_ADVISORY_DB, else ../shared/advisory-db/advisory-db.tar.gz
# beside the repository. It is unpacked into target/advisory-db (never into
# ~/.cargo) under the folder name cargo-deny derives from the default database
# URL, and a copy of deny.toml pointing db-path there is used.
advisory_tar=${AIRGAP_ADVISORY_DB:-../shared/advisory-db/advisory-db.tar.gz}
if [ -f "$advisory_tar" ]; then
  db_root="$PWD/target/advisory-db"
  db_dir="$db_root/advisory-db-3157b0e258782691"
  rm -rf "$db_root"
  mkdir -p "$db_dir"
  tar xzf "$advisory_tar" --no-same-owner -C "$db_dir"
  sed "s|^db-path = .*|db-path = \"$db_root\"|" deny.toml >target/deny-advisories.toml
  db_date=$(git -c safe.directory="*" -C "$db_dir" log -1 --format=%cI 2>/dev/null || echo unknown)
  db_commit=$(git -c safe.directory="*" -C "$db_dir" log -1 --format=%h 2>/dev/null || echo unknown)
  log "cargo deny check advisories (RustSec snapshot of $db_date, commit $db_commit, from $advisory_tar; not fetched)"
  cargo deny --offline --log-level error --config target/deny-advisories.toml check advisories
  echo "advisories checked against the RustSec database as of $db_date: advisories ok"
elif compgen -G "$HOME/.cargo/advisory-db/*" >/dev/null; then
  db_date=$(git -c safe.directory="*" -C "$(compgen -G "$HOME/.cargo/advisory-db/*" | head -n1)" log -1 --format=%cI 2>/dev/null || echo unknown)
  log "cargo deny check advisories (database in ~/.cargo/advisory-db as of $db_date; not fetched)"
  cargo deny --offline --log-level error check advisories
else
  echo "scripts/advisories.sh: advisories NOT checked: no RustSec snapshot at $advisory_tar (set AIRGAP_ADVISORY_DB) nor in ~/.cargo/advisory-db; it cannot be fetched here (see deny.toml)" >&2
fi

