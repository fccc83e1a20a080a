#!/usr/bin/env bash
# Benchmark `airgap-verify flows` on a matrix of 3 nodes in the namespace lab
# (scripts/netlab.sh), against what an installer does by hand today.
#
# The matrix: `flows --role node` from the orchestration host's namespace,
# profile sekoia-1.0.0, all three nodes managers and workers, and the
# perimeter's DNS, NTP and SMTP services placed on the same three hosts, so
# each node is the target of more than 20 flows (TCP, UDP and ICMP). It runs
# in four mixes, set up with real responders and real nft rules:
#   answer   every node runs `airgap-verify listen --role node`
#   reject   every node resets TCP (nothing listens: UDP gets ICMP unreachable)
#   drop     every node drops everything: all flows run into the deadline
#   mixed    node1 answers, node2 rejects, node3 drops
# Target (issue #6): each mix within the flows deadline plus 1 s.
#
# The baseline tests the same (protocol, host, port) list the tool reported,
# with the usual shell tools and the same deadline: bash's /dev/tcp under
# timeout(1) for TCP, `nc -u -z` for UDP, `ping -c 1` for ICMP; once one
# after the other (what a runbook does) and once all at the same time. The
# baseline's verdicts are compared with the tool's: `nc -u -z` only sends a
# datagram, so it calls every UDP flow open, dropped or not.
#
# Every timed run starts 6 s after the one before, so that each node's ICMP
# error budget is full again (see settle below), as it is for a single run.
#
# Prints median wall times over N runs and the ratios; a measurement, it
# exits 0 even when a target is missed. Needs root; brings the namespace lab
# up when it is not.
#
# Usage: scripts/bench-flows.sh [--runs N] [--deadline SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DEADLINE=2
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --deadline) DEADLINE=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "bench-flows: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-flows: needs root (network namespaces)" >&2; exit 2; }
# The baseline's tools (Debian packages), installed when missing.
need=()
command -v ping >/dev/null || need+=(iputils-ping)
command -v nc >/dev/null || need+=(netcat-openbsd)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  echo "bench-flows: installing ${need[*]} for the baseline" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

export AIRGAP_NETLAB_DIR=${AIRGAP_NETLAB_DIR:-/var/tmp/airgap-netlab}
if ! bash scripts/netlab.sh status >/dev/null 2>&1; then
  echo "bench-flows: bringing the namespace lab up (scripts/netlab.sh up)" >&2
  bash scripts/netlab.sh up >/dev/null
fi

cargo build --release --quiet
BIN=$PWD/target/release/airgap-verify
WORK=$(mktemp -d /tmp/bench-flows.XXXXXX)
RESPONDERS=()
stop_responders() {
  local p
  for p in "${RESPONDERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${RESPONDERS[@]}"; do wait "$p" 2>/dev/null || true; done
  RESPONDERS=()
}
cleanup() {
  stop_responders
  bash scripts/netlab.sh fw-reset >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

N1=10.0.255.21 N2=10.0.255.22 N3=10.0.255.23
cat >"$WORK/perimeter.yml" <<EOF
allowed_networks: [10.0.255.0/24]
ca_bundle: $AIRGAP_NETLAB_DIR/pki/ca.pem
flows:
  profile: sekoia-1.0.0
  deadline: ${DEADLINE}s
  load_balancer: 10.0.255.10
  orchestration: 10.0.255.20
  managers: [$N1, $N2, $N3]
  workers: [$N1, $N2, $N3]
dns: {servers: [$N1, $N2, $N3], public_names: []}
ntp: {servers: [$N1, $N2, $N3]}
smtp:
  - {host: $N1, port: 25}
  - {host: $N2, port: 587}
  - {host: $N3, port: 465, tls: true}
  - {host: $N1, port: 587}
  - {host: $N2, port: 25}
  - {host: $N3, port: 25}
  - {host: $N1, port: 465, tls: true}
  - {host: $N2, port: 465, tls: true}
  - {host: $N3, port: 587}
git: {url: "https://$N1/sekoia/stacks.git"}
registry: {url: "https://$N2", project: sekoia}
s3: {endpoint: "https://$N3"}
EOF

respond() { # host
  local err=$WORK/listen-$1.err
  ip netns exec "agv-$1" "$BIN" listen --role node --name "$1" --deadline 300s \
    --format json >/dev/null 2>"$err" &
  RESPONDERS+=($!)
  local i
  for i in $(seq 100); do
    grep -q 'listen: ready' "$err" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-flows: the responder on $1 is not ready: $(cat "$err")" >&2
  exit 1
}
reject() { ip netns exec "agv-$1" nft add rule inet agvfw input tcp dport != 0 reject with tcp reset; }
drop() { ip netns exec "agv-$1" nft add rule inet agvfw input drop; }

setup() { # mix
  stop_responders
  bash scripts/netlab.sh fw-reset >/dev/null
  case $1 in
    answer) respond node1; respond node2; respond node3 ;;
    reject) reject node1; reject node2; reject node3 ;;
    drop) drop node1; drop node2; drop node3 ;;
    mixed) respond node1; reject node2; drop node3 ;;
  esac
}

# A closed UDP port answers with an ICMP port unreachable, and Linux sends
# about one ICMP error a second to the same peer once a burst of 6 is spent:
# runs back to back would see closed ports as filtered. Every timed run
# starts with the nodes' budgets full again, as a single real run would.
settle() { sleep 6; }

now() { date +%s.%N; }
calc() { awk "BEGIN {print ($*)}"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The tool: `flows`, timed; the report is kept for the baseline's list.
run_tool() { # out
  local t0 t1
  settle
  t0=$(now)
  ip netns exec agv-orch "$BIN" flows --role node --config "$WORK/perimeter.yml" \
    --format json --no-progress >"$1" 2>/dev/null || true
  t1=$(now)
  calc "$t1 - $t0"
}

# "proto host port tool-verdict" per tested flow, from the tool's report.
flow_list() { # report
  python3 - "$1" <<'EOF'
import json, sys
for f in json.load(open(sys.argv[1]))["findings"]:
    code = f["code"]
    if code not in ("flow:open", "flow:closed", "flow:filtered"):
        continue
    proto, _, rest = f["target"].partition(" ")
    host, _, port = rest.rpartition(":") if proto != "icmp" else (rest, "", "-")
    print(proto, host, port, code.split(":")[1])
EOF
}

# One baseline check in the agv-orch namespace; prints its verdict.
baseline_one() { # proto host port
  local rc=0
  case $1 in
    tcp)
      ip netns exec agv-orch timeout "$DEADLINE" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null || rc=$?
      case $rc in 0) echo open ;; 124) echo filtered ;; *) echo closed ;; esac ;;
    udp)
      ip netns exec agv-orch nc -u -z -w "$DEADLINE" "$2" "$3" 2>/dev/null || rc=$?
      [ $rc -eq 0 ] && echo open || echo closed ;;
    icmp)
      ip netns exec agv-orch ping -n -q -c 1 -W "$DEADLINE" "$2" >/dev/null 2>&1 || rc=$?
      [ $rc -eq 0 ] && echo open || echo filtered ;;
  esac
}

run_baseline_serial() { # list out
  local t0 t1 proto host port _
  settle
  t0=$(now)
  : >"$2"
  while read -r proto host port _; do
    echo "$proto $host $port $(baseline_one "$proto" "$host" "$port")" >>"$2"
  done <"$1"
  t1=$(now)
  calc "$t1 - $t0"
}

run_baseline_parallel() { # list out
  local t0 t1 proto host port _ i=0
  settle
  t0=$(now)
  while read -r proto host port _; do
    i=$((i + 1))
    (echo "$proto $host $port $(baseline_one "$proto" "$host" "$port")" >"$WORK/par.$i") &
  done <"$1"
  wait
  cat "$WORK"/par.* >"$2"
  rm -f "$WORK"/par.*
  t1=$(now)
  calc "$t1 - $t0"
}

printf 'airgap-verify flows --role node, profile sekoia-1.0.0, 3 nodes, deadline %s s, %s runs each (median), on %s cores\n' \
  "$DEADLINE" "$RUNS" "$(nproc)"
target=$(calc "$DEADLINE + 1")
for mix in answer reject drop mixed; do
  setup "$mix"
  times=()
  for _ in $(seq "$RUNS"); do
    times+=("$(run_tool "$WORK/report.json")")
  done
  tool=$(printf '%s\n' "${times[@]}" | median)
  max=$(printf '%s\n' "${times[@]}" | sort -g | tail -1)
  flow_list "$WORK/report.json" >"$WORK/list"
  total=$(wc -l <"$WORK/list")
  per_node=$(awk -v n="$N1" '$2 == n' "$WORK/list" | wc -l)
  mix_text=$(awk '{c[$4]++} END {printf "%d open, %d closed, %d filtered", c["open"], c["closed"], c["filtered"]}' "$WORK/list")
  serial=$(run_baseline_serial "$WORK/list" "$WORK/serial")
  parallel=$(run_baseline_parallel "$WORK/list" "$WORK/parallel")
  # Flows the baseline judged differently from the tool.
  join -j1 <(awk '{print $1"/"$2"/"$3, $4}' "$WORK/list" | sort) \
    <(awk '{print $1"/"$2"/"$3, $4}' "$WORK/serial" | sort) | awk '$2 != $3' >"$WORK/unlike"
  nwrong=$(wc -l <"$WORK/unlike")
  verdict=$(calc "$max <= $target")
  printf '  %-7s %d flows (%d to node1; %s)\n' "$mix" "$total" "$per_node" "$mix_text"
  printf '    airgap-verify flows                  %6.3f s (max %.3f)  target <= %s s: %s\n' \
    "$tool" "$max" "$target" "$([ "$verdict" = 1 ] && echo PASS || echo FAIL)"
  printf '    baseline, one after the other        %6.3f s   ratio %.3f x\n' "$serial" "$(calc "$tool / $serial")"
  printf '    baseline, all at once                %6.3f s   ratio %.3f x\n' "$parallel" "$(calc "$tool / $parallel")"
  printf '    baseline verdicts unlike the tool    %d of %d\n' "$nwrong" "$total"
  awk '{split($1, k, "/"); printf "      e.g. %s %s%s: tool %s, baseline %s\n", k[1], k[2], (k[3] == "-" ? "" : ":" k[3]), $2, $3}' \
    "$WORK/unlike" | head -3
done
