#!/usr/bin/env bash
# Benchmark `airgap-verify services` against the loopback lab of real servers.
#
# 1. DNS, NTP and SMTP of the lab in one run: both unbound servers over UDP
#    and TCP, chrony, postfix on 25, 465 and 587 (STARTTLS, implicit TLS,
#    AUTH, relay check). Target: within 1.5 s in total.
#    Then the whole lab with Git, the OCI registry and S3 added, write probes
#    included (--write-probe). Target: within 3 s.
# 2. The same plus one blackholed target (NTP at the nft-dropped address) and
#    one tarpit (SMTP on a port that accepts and never answers), with a 2 s
#    deadline. Target: within the deadline plus 0.5 s, the healthy probes
#    unaffected.
# 3. The baseline: the same DNS, NTP and SMTP questions asked one after the
#    other with the usual tools (dig, a Python SNTP query, openssl s_client),
#    which is what an installer does by hand today; prints the ratio.
#
# Prints median wall times over N runs; a measurement, it exits 0 even when a
# target is missed. Needs the lab: brings it up with scripts/lab.sh when down.
#
# Usage: scripts/bench-services.sh [--runs N]   (AIRGAP_VERIFY_BIN=PATH: measure that build)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "bench-services: unknown argument $1" >&2; exit 2 ;;
  esac
done

LAB=${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}
if ! bash scripts/lab.sh status >/dev/null 2>&1; then
  bash scripts/lab.sh up >/dev/null
fi
# lab.env is KEY=value with no quoting (values may hold spaces): parse it,
# never source it.
while IFS='=' read -r key value; do
  case $key in '' | \#*) continue ;; esac
  export "$key=$value"
done <"$LAB/lab.env"
command -v dig >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-dnsutils >/dev/null; }

# AIRGAP_VERIFY_BIN measures a given build (an older one, to compare a
# change); by default the tree is built in release mode.
if [ -n "${AIRGAP_VERIFY_BIN:-}" ]; then
  BIN=$AIRGAP_VERIFY_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/airgap-verify
fi
WORK=$(mktemp -d /tmp/bench-services.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

common() {
  cat <<YAML
ca_bundle: $CA_PEM
allowed_networks: [127.0.0.0/8]
dns:
  servers: [$DNS_AUTH_ADDR, $DNS_FORWARDER_ADDR]
  expect:
    - {name: $SMTP_HOST, addresses: [$SMTP_ADDR]}
    - {name: $NTP_HOST, addresses: [$NTP_ADDR]}
    - {name: $DNS_CNAME_NAME, addresses: [$DNS_CNAME_ADDR]}
YAML
}
{
  common
  cat <<YAML
ntp:
  servers: [$NTP_HOST]
smtp:
  - {host: $SMTP_HOST, port: 25}
  - {host: $SMTP_HOST, port: 465, tls: true, username: $SMTP_USER, password_env: SMTP_PASSWORD}
  - {host: $SMTP_HOST, port: 587, username: $SMTP_USER, password_env: SMTP_PASSWORD, mail_from: probe@$LAB_ZONE, rcpt_to: soc@$LAB_ZONE}
YAML
} >"$WORK/lab.yml"
{
  cat "$WORK/lab.yml"
  cat <<YAML
git: {url: $GIT_REPO_URL, branch: main, username: $GIT_USER, password_env: GIT_PASSWORD}
registry: {url: $REGISTRY_URL, project: sekoia, username: $REGISTRY_USER, password_env: REGISTRY_PASSWORD, images: [$REGISTRY_SEEDED_IMAGE@$REGISTRY_SEEDED_DIGEST]}
s3: {endpoint: $S3_ENDPOINT, region: $S3_REGION, buckets: [$S3_BUCKET], access_key: $S3_ACCESS_KEY, secret_key_env: S3_SECRET_KEY}
YAML
} >"$WORK/all.yml"
{
  common
  cat <<YAML
ntp:
  servers: [$NTP_HOST, $BLACKHOLE_ADDR]
smtp:
  - {host: $SMTP_HOST, port: 25}
  - {host: $SMTP_HOST, port: 465, tls: true, username: $SMTP_USER, password_env: SMTP_PASSWORD}
  - {host: $SMTP_HOST, port: 587, username: $SMTP_USER, password_env: SMTP_PASSWORD, mail_from: probe@$LAB_ZONE, rcpt_to: soc@$LAB_ZONE}
  - {host: $TARPIT_ADDR, port: 25}
YAML
} >"$WORK/faults.yml"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

time_av() { # config timeout [args] -> seconds; also keeps the last JSON report
  local t0 t1 cfg=$1 timeout=$2
  shift 2
  t0=$(now)
  "$BIN" services --config "$cfg" --timeout "$timeout" --format json --no-progress "$@" >"$WORK/last.json" || true
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

baseline() { # the same questions, one tool after the other
  local s
  for s in "$DNS_AUTH_ADDR" "$DNS_FORWARDER_ADDR"; do
    for n in "$SMTP_HOST" "$NTP_HOST" "$DNS_CNAME_NAME" example.com; do
      dig +time=2 +tries=1 @"$s" "$n" A >/dev/null
      dig +tcp +time=2 +tries=1 @"$s" "$n" A >/dev/null
    done
  done
  python3 - "$NTP_ADDR" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"\x23" + 47 * b"\0", (sys.argv[1], 123)); s.recv(512)
PY
  for p in 25 587; do
    timeout 5 openssl s_client -brief -starttls smtp -CAfile "$CA_PEM" -verify_return_error \
      -connect "$SMTP_ADDR:$p" -servername "$SMTP_HOST" </dev/null >/dev/null 2>&1 || true
  done
  timeout 5 openssl s_client -brief -CAfile "$CA_PEM" -verify_return_error \
    -connect "$SMTP_ADDR:465" -servername "$SMTP_HOST" </dev/null >/dev/null 2>&1 || true
}

time_baseline() {
  local t0 t1
  t0=$(now)
  baseline
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

command -v bc >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }

lab_t=() fault_t=() base_t=() all_t=()
for _ in $(seq "$RUNS"); do
  lab_t+=("$(time_av "$WORK/lab.yml" 1s)")
  all_t+=("$(time_av "$WORK/all.yml" 1s --write-probe)")
  base_t+=("$(time_baseline)")
  fault_t+=("$(time_av "$WORK/faults.yml" 2s)")
done
lab_m=$(printf '%s\n' "${lab_t[@]}" | median)
fault_m=$(printf '%s\n' "${fault_t[@]}" | median)
base_m=$(printf '%s\n' "${base_t[@]}" | median)
fault_max=$(printf '%s\n' "${fault_t[@]}" | sort -n | tail -1)
lab_max=$(printf '%s\n' "${lab_t[@]}" | sort -n | tail -1)
all_m=$(printf '%s\n' "${all_t[@]}" | median)
all_max=$(printf '%s\n' "${all_t[@]}" | sort -n | tail -1)
"$BIN" services --config "$WORK/all.yml" --timeout 1s --write-probe --format json --no-progress >"$WORK/all.json" || true
allsum=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["findings"]), d["summary"])' "$WORK/all.json")

"$BIN" services --config "$WORK/lab.yml" --timeout 1s --format json --no-progress >"$WORK/lab.json" || true
"$BIN" services --config "$WORK/faults.yml" --timeout 2s --format json --no-progress >"$WORK/faults.json" || true
probes=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["findings"]), d["summary"])' "$WORK/lab.json")
faults=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sorted({f["code"]+" "+f["target"] for f in d["findings"] if f["status"]=="fail"}))' "$WORK/faults.json")

verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo PASS; else echo FAIL; fi; }
printf '\nairgap-verify services, %s runs each (median, max), on %s cores\n' "$RUNS" "$(nproc)"
printf '  whole lab (findings, summary: %s)\n' "$probes"
printf '    %-44s %6.3f s  (max %.3f)  target <= 1.5 s: %s\n' "airgap-verify, --timeout 1s" "$lab_m" "$lab_max" "$(verdict "$lab_max <= 1.5")"
printf '    %-44s %6.3f s\n' "baseline: dig + SNTP + openssl s_client, serial" "$base_m"
printf '    %-44s %6.2f x\n' "ratio airgap-verify / baseline" "$(echo "$lab_m / $base_m" | bc -l)"
printf '  whole lab with Git, registry and S3, --write-probe (findings, summary: %s)\n' "$allsum"
printf '    %-44s %6.3f s  (max %.3f)  target <= 3 s: %s\n' "airgap-verify, --timeout 1s" "$all_m" "$all_max" "$(verdict "$all_max <= 3")"
printf '  lab + blackhole (NTP %s) + tarpit (SMTP %s:25), --timeout 2s\n' "$BLACKHOLE_ADDR" "$TARPIT_ADDR"
printf '    %-44s %6.3f s  (max %.3f)  target <= 2.5 s: %s\n' "airgap-verify" "$fault_m" "$fault_max" "$(verdict "$fault_max <= 2.5")"
printf '    failing: %s\n' "$faults"
