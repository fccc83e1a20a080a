#!/usr/bin/env bash
# Wall time of `airgap-verify cluster` on the network lab with 3 and 6 nodes,
# split into Ansible's own cost and our probes, against the vendor-style
# check of the same node-to-node TCP flows: sequential TCP connects from
# each node to every other node, one at a time, 1 s timeout each.
#
#   sudo scripts/bench-cluster.sh [NODES...]      (default: 3 6)
#
# Runs on a lab copy of its own (scripts/netlab.sh with AIRGAP_NETLAB_DIR
# /var/tmp/airgap-netlab-bench, namespaces agb-*, 10.0.252.0/24), brought
# up per node count and taken down at the end; the shared lab is not
# touched. The binary: $AIRGAP_BIN, else target/release/airgap-verify, else
# target/debug/airgap-verify without its debug information.
#
# "probes" is the same flows run from every node at once, without Ansible
# (as the playbook runs them); "Ansible" is the rest of the cluster run's
# wall time: SSH, copying the binary, Python modules, fetching.
# The vendor-style figure is measured twice: every port open (responders
# running), and with one node dropping everything from the others, where
# each of its ports costs a full connect timeout per source.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || {
  echo "bench-cluster: needs root (network namespaces)" >&2
  exit 2
}
NODE_COUNTS=("$@")
[ ${#NODE_COUNTS[@]} -gt 0 ] || NODE_COUNTS=(3 6)

export AIRGAP_NETLAB_DIR=/var/tmp/airgap-netlab-bench
export AIRGAP_NETLAB_NS_PREFIX=agb-
export AIRGAP_NETLAB_NET=10.0.252
work=$(mktemp -d /var/tmp/bench-cluster.XXXXXX)
RESP_PIDS=()
cleanup() {
  local p
  for p in "${RESP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  bash scripts/netlab.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bin=${AIRGAP_BIN:-}
if [ -z "$bin" ]; then
  if [ -x target/release/airgap-verify ]; then
    bin=target/release/airgap-verify
  else
    [ -x target/debug/airgap-verify ] || cargo build -q
    strip --strip-debug -o "$work/airgap-verify" target/debug/airgap-verify
    bin=$work/airgap-verify
  fi
fi
bin=$(realpath "$bin")
echo "binary: $bin ($(du -h "$bin" | cut -f1))"

ms() { echo $(($(date +%s%N) / 1000000)); }
# CPU time of the whole machine so far, in ms (every lab host shares it).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print int(($2 + $3 + $4 + $7 + $8) * 1000 / hz); exit }' /proc/stat; }
envv() { grep "^$1=" "$AIRGAP_NETLAB_DIR/netlab.env" | cut -d= -f2-; }

# The TCP ports a node serves (the responder's), from `host --dry-run`.
mapfile -t PORTS < <("$bin" host --role node --dry-run | tr ' ' '\n' | sed -n 's|^tcp/||p')

results=()
for n in "${NODE_COUNTS[@]}"; do
  echo "== $n nodes: netlab up"
  AIRGAP_NETLAB_NODES=$n bash scripts/netlab.sh up >"$work/up-$n.log" 2>&1 || {
    tail "$work/up-$n.log" >&2
    exit 1
  }
  cat >"$work/perimeter.yml" <<EOF
allowed_networks: [$(envv NETLAB_SUBNET)]
flows:
  profile: sekoia-1.0.0
  deadline: 1s
  orchestration: $(envv ADDR_ORCH)
EOF
  IFS=, read -r -a nodes <<<"$(envv NETLAB_NODES)"
  # The perimeter in front of the nodes, as in a real cluster (the client's
  # blocked flows are dropped, not answered).
  bash scripts/netlab.sh fw-perimeter

  # airgap-verify cluster, through Ansible.
  t0=$(ms)
  c0=$(cpu_ms)
  ip netns exec "${AIRGAP_NETLAB_NS_PREFIX}orch" "$bin" cluster --inventory "$(envv ANSIBLE_INVENTORY)" \
    --config "$work/perimeter.yml" --format json --output "json=$work/cluster-$n.json" --no-progress >/dev/null 2>"$work/cluster-$n.err" || true
  wall=$(($(ms) - t0))
  cpu=$(($(cpu_ms) - c0))
  read -r cells hosts < <(python3 - "$work/cluster-$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
checked = sum(1 for f in r["findings"] if f["code"] == "cluster:host-checked")
print(len(r.get("matrix", {}).get("cells", [])), checked)
PY
  )
  # The same flows the playbook runs, without Ansible: every node at once.
  {
    cat "$work/perimeter.yml"
    echo "  load_balancer: $(envv ADDR_LB)"
    echo "  managers: [$(envv ADDR_NODE1)]"
    printf '  workers: ['
    for h in "${nodes[@]:1}"; do printf '%s,' "$(envv "ADDR_${h^^}")"; done | sed 's/,$//'
    echo "]"
  } >"$work/perimeter-hosts.yml"
  our_flows() {
    local h pids=()
    for h in "${nodes[@]}"; do
      ip netns exec "${AIRGAP_NETLAB_NS_PREFIX}$h" "$bin" flows --role node --config "$work/perimeter-hosts.yml" \
        --format json --no-progress >/dev/null 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
  }

  # Vendor-style: sequential connects, every port open (responders up).
  RESP_PIDS=()
  for h in "${nodes[@]}"; do
    ip netns exec "${AIRGAP_NETLAB_NS_PREFIX}$h" "$bin" listen --role node --deadline 300s --name "$h" \
      --format json >/dev/null 2>"$work/listen-$h.err" &
    RESP_PIDS+=($!)
  done
  for h in "${nodes[@]}"; do
    for _ in $(seq 100); do grep -q "listen: ready" "$work/listen-$h.err" && break; sleep 0.1; done
  done
  seq_connects() {
    local src dst p addr count=0
    for src in "${nodes[@]}"; do
      for dst in "${nodes[@]}"; do
        [ "$src" != "$dst" ] || continue
        addr=$(envv "ADDR_${dst^^}")
        for p in "${PORTS[@]}"; do
          ip netns exec "${AIRGAP_NETLAB_NS_PREFIX}$src" timeout 1 bash -c "exec 3<>/dev/tcp/$addr/$p" 2>/dev/null || true
          count=$((count + 1))
        done
      done
    done
    echo "$count"
  }
  t0=$(ms)
  our_flows
  probes=$(($(ms) - t0))
  t0=$(ms)
  connects=$(seq_connects)
  vendor_open=$(($(ms) - t0))
  # One node drops everything the others send it.
  last=${nodes[-1]}
  ip netns exec "${AIRGAP_NETLAB_NS_PREFIX}$last" nft add rule inet agvfw input ip saddr "$(envv NETLAB_SUBNET)" tcp dport != 22 drop
  t0=$(ms)
  our_flows
  probes_drop=$(($(ms) - t0))
  t0=$(ms)
  seq_connects >/dev/null
  vendor_drop=$(($(ms) - t0))
  bash scripts/netlab.sh fw-reset "$last"
  for p in "${RESP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  RESP_PIDS=()

  results+=("$(awk -v n="$n" -v h="$hosts" -v w="$wall" -v cpu="$cpu" -v cores="$(nproc)" -v p="$probes" -v pd="$probes_drop" \
    -v c="$cells" -v k="$connects" -v vo="$vendor_open" -v vd="$vendor_drop" 'BEGIN {
      printf "%5d %5d %8.1f s %7.1f s %5.0f%% %7.1f s %8.1f s %6d %8d | %9.1f s          | %6.1f s %11.1f s %11.1f",
        n, h, w / 1000, cpu / 1000, 100 * cpu / (cores * w), p / 1000, (w - p) / 1000, c, k, vo / 1000, pd / 1000, vd / 1000, vd / pd }')")
  bash scripts/netlab.sh down >/dev/null
done

echo
echo "                                                                   |  every port open     | one node dropping them"
echo "nodes hosts   cluster  cluster CPU  busy    probes   Ansible  cells connects | vendor seq.          | probes    vendor seq.        ratio"
printf '%s\n' "${results[@]}"
echo
echo "cluster = the whole run through Ansible (hosts: orchestration, load balancer, nodes, client); probes = the"
echo "same flows run from every node at once without Ansible (flows deadline 1 s); Ansible = cluster - probes."
echo "cluster CPU = CPU time the whole machine spent during the cluster run (every lab host shares its"
echo "$(nproc) cores: Ansible's controller, each host's sshd and Python modules, our binary); busy = that CPU"
echo "time / (cores x wall time): near 100%, the run waits for this machine's cores, which a real cluster's"
echo "hosts do not share."
echo "vendor seq. = sequential TCP connects from each node to every other node, the same TCP ports, 1 s"
echo "timeout each; 'one node dropping them' = the same with one node's firewall dropping them; ratio ="
echo "vendor seq. / ours with that node dropping."
