#!/usr/bin/env bash
# airgap-verify network lab: a small multi-host network (load balancer, nodes,
# syslog server, client) built from network namespaces, for the firewall-flow,
# load-balancer and egress tests.
#
#   scripts/netlab.sh up                 install what is missing, (re)build the lab (tears down first)
#   scripts/netlab.sh down               kill everything in the lab's namespaces, delete them
#   scripts/netlab.sh status             one line per part; exit 1 if anything is missing
#   scripts/netlab.sh fw-reset [HOST...] empty the inet agvfw input/output chains (all hosts if none)
#   scripts/netlab.sh fw-perimeter       the perimeter in front of the nodes: from the client, the
#                                        ports the profile keeps blocked (10901, 30000-32767) drop
#   scripts/netlab.sh lb-mode MODE       haproxy to the nodes: plain | send-proxy | send-proxy-v2
#   scripts/netlab.sh airgap-lab [up|down|status]
#                                        scripts/lab.sh's service lab inside the agv-airgap namespace
#   scripts/netlab.sh selfcheck          prove the plumbing (socat/openssl); PASS/FAIL per line
#
# Topology (one L2 segment, 10.0.255.0/24, no default route anywhere):
#   agv-sw      switch: bridge br0, one veth port per host namespace
#   agv-client  10.0.255.2    test client
#   agv-lb      10.0.255.10   haproxy: 80 443 10514 11514 (tcp, to node1/node2 on the same
#                             port), 8080 (HTTP 301 to https), 8081 (HTTP 200, no redirect),
#                             8443 (TLS for lb.netlab.test, then tcp to node1:443)
#   agv-orch    10.0.255.20   orchestration node (runs Ansible in the cluster tests)
#   agv-node1..3  .21 .22 .23 nodes; nothing listens there until a test starts a responder
#                             (AIRGAP_NETLAB_NODES=6: node1..6, .21-.26)
#   orch, lb, every node and the client run an OpenSSH server on :22 with their own
#   hostname, machine id, /tmp and /root (see "sshd" below); $STATE/ansible/inventory.ini
#   lists them for Ansible (groups orchestration, load_balancer, managers, workers,
#   clients; the workers are the load balancer's backends), root with the lab's key
#   agv-syslog  10.0.255.30   rsyslog: RELP on 11514, syslog over TLS on 10514
#   agv-airgap  only lo: "airgap-lab" runs scripts/lab.sh there (not started by up)
# Every host namespace has an empty nftables table inet agvfw (chains input and
# output, policy accept) for the tests' rules. /etc/netns/agv-HOST/hosts maps
# HOST.netlab.test to the addresses (seen by "ip netns exec" only).
#
# The root namespace's networking is never changed: no address, route, link or
# nft rule is added there (veth ends are created directly inside the
# namespaces). State: ${AIRGAP_NETLAB_DIR:-/var/tmp/airgap-netlab}, with
# netlab.env (KEY=value lines, parse, do not source), pki/, lb/, syslog/, log/,
# ssh/ (keys, known_hosts), hosts/HOST/ (sshd config, /tmp, /root, machine id), ansible/.
# The air-gapped service lab lives in ${AIRGAP_NETLAB_LAB_DIR:-/var/tmp/airgap-lab-netns}.
# Needs root.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${AIRGAP_NETLAB_DIR:-/var/tmp/airgap-netlab}

# ---------------------------------------------------------------- the plan ---
# A second copy of the lab can run beside the shared one (a development copy, a
# benchmark): AIRGAP_NETLAB_DIR, AIRGAP_NETLAB_NS_PREFIX (default agv-) and
# AIRGAP_NETLAB_NET (the /24's first three octets, default 10.0.255) apart.
# AIRGAP_NETLAB_NODES (3-9, default 3) sets how many nodes there are.
# Later commands (down, fw-reset, status) on a copy need only its AIRGAP_NETLAB_DIR:
# the rest is read back from the netlab.env its "up" wrote.
if [ -r "$STATE/netlab.env" ]; then
  while IFS='=' read -r k v; do
    case $k in
      NETLAB_NS_PREFIX) : "${AIRGAP_NETLAB_NS_PREFIX:=$v}" ;;
      NETLAB_NET) : "${AIRGAP_NETLAB_NET:=$v}" ;;
      NETLAB_NODE_COUNT) : "${AIRGAP_NETLAB_NODES:=$v}" ;;
      *) ;;
    esac
  done <"$STATE/netlab.env"
fi
NET=${AIRGAP_NETLAB_NET:-10.0.255}
[[ $NET =~ ^10\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "netlab: error: AIRGAP_NETLAB_NET=$NET: give three octets under 10/8 (10.0.255)" >&2; exit 2; }
SUBNET=$NET.0/24
PREFIX=24
DOMAIN=netlab.test
NS_PREFIX=${AIRGAP_NETLAB_NS_PREFIX:-agv-}
[[ $NS_PREFIX =~ ^[a-z][a-z0-9]{0,5}-$ ]] || { echo "netlab: error: AIRGAP_NETLAB_NS_PREFIX=$NS_PREFIX: give a short prefix ending in - (agv-)" >&2; exit 2; }
NODES=${AIRGAP_NETLAB_NODES:-3}
[[ $NODES =~ ^[3-9]$ ]] || { echo "netlab: error: AIRGAP_NETLAB_NODES=$NODES: give 3 to 9" >&2; exit 2; }
# A second copy of the lab must never touch the shared copy's service lab.
if [ "$NS_PREFIX" = agv- ]; then
  AIRGAP_LAB=${AIRGAP_NETLAB_LAB_DIR:-/var/tmp/airgap-lab-netns}
else
  AIRGAP_LAB=${AIRGAP_NETLAB_LAB_DIR:-$STATE/airgap-lab}
fi
SW_NS=${NS_PREFIX}sw
BRIDGE=br0
AIRGAP_NS=${NS_PREFIX}airgap
HOSTS=(client lb orch)
declare -A ADDR=(
  [client]=$NET.2
  [lb]=$NET.10
  [orch]=$NET.20
  [syslog]=$NET.30
)
NODE_NAMES=()
for ((i = 1; i <= NODES; i++)); do
  HOSTS+=("node$i")
  NODE_NAMES+=("node$i")
  ADDR[node$i]=$NET.$((20 + i))
done
HOSTS+=(syslog)
# Hosts that run an OpenSSH server of their own (the cluster tests reach them
# through Ansible): each with its own hostname (UTS namespace), machine id,
# /tmp and /root (bind mounts in its mount namespace), so hosts that share
# this machine's filesystem do not see each other's files.
SSH_HOSTS=(orch lb "${NODE_NAMES[@]}" client)
NFT_TABLE=agvfw
LB_TCP_PORTS=(80 443 10514 11514) # forwarded to the same port on node1 and node2
LB_BACKENDS=(node1 node2)
LB_REDIRECT_PORT=8080
LB_NOREDIRECT_PORT=8081
LB_TLS_PORT=8443
LB_TLS_BACKEND=node1
LB_TLS_BACKEND_PORT=443
LB_CERT_NAME=lb.$DOMAIN
LB_MODES=(plain send-proxy send-proxy-v2)
SYSLOG_RELP_PORT=11514
SYSLOG_TLS_PORT=10514
SYSLOG_CERT_NAME=syslog.$DOMAIN
PKI_STAMP="airgap-netlab pki v1 $LB_CERT_NAME ${ADDR[lb]} $SYSLOG_CERT_NAME ${ADDR[syslog]}"
# openssh-server and ansible-core: the cluster tests; python3, lvm2, gettext-base:
# what the vendor requires on its nodes (the hosts share this machine's packages).
PACKAGES=(iproute2 nftables haproxy rsyslog rsyslog-relp rsyslog-gnutls socat ncat openssl util-linux procps
  openssh-server ansible-core python3 lvm2 gettext-base)
POLICY_RC=/usr/sbin/policy-rc.d
DAEMONS=(haproxy rsyslog)

# ---------------------------------------------------------------- helpers ----
# say, warn, die, need_root, wait_for, proc_starttime, recorded_pid, pgroup_*:
# shared with lab.sh
LOG_TAG=netlab
# shellcheck source=scripts/lab/common.sh
. "$SCRIPT_DIR/lab/common.sh"

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}

ns() { printf '%s%s\n' "$NS_PREFIX" "$1"; } # host -> namespace

all_namespaces() { # every namespace the lab may have made, switch first
  local h
  printf '%s\n' "$SW_NS"
  for h in "${HOSTS[@]}"; do ns "$h"; done
  printf '%s\n' "$AIRGAP_NS"
}

ns_exists() { [ -e "/run/netns/$1" ]; }

lock_lab() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock -w 60 9 || die "another netlab.sh holds $STATE/.lock"
}

listening() { # namespace proto(t|u) addr:port : something listens there, in that namespace
  ss -N "$1" -Hln"$2" "src $3" 2>/dev/null | grep -q .
}

daemon_pid() { recorded_pid "$STATE/run/$1.id"; } # name -> its PID, if still alive

start_daemon() { # name namespace command... : own session, logs to log/NAME.log
  local name=$1 netns=$2 pid start
  shift 2
  printf '\n==== %s starting in %s: %s\n' "$(date -Is)" "$netns" "$*" >>"$STATE/log/$name.log"
  # setsid and "ip netns exec" both exec: the PID is the daemon's, and it leads
  # its own process group (stopped as a group). 9>&-: not holding the lock.
  setsid ip netns exec "$netns" "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null 9>&- &
  pid=$!
  sleep 0.02
  start=$(proc_starttime "$pid") || {
    tail -n 20 "$STATE/log/$name.log" >&2
    die "$name exited at once"
  }
  printf '%s %s\n' "$pid" "$start" >"$STATE/run/$name.id"
}

stop_daemon() { # name
  local pid
  if pid=$(daemon_pid "$1"); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 30 pgroup_gone "$pid"; then
      warn "$1 (process group $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      wait_for 10 pgroup_gone "$pid" || warn "$1: process group $pid survived SIGKILL"
    fi
  fi
  rm -f "$STATE/run/$1.id"
}

ns_pids() { ip netns pids "$1" 2>/dev/null || true; }

no_pids() { [ -z "$(ns_pids "$1")" ]; }

kill_ns_processes() { # namespace: whatever still runs inside (daemons, test responders)
  local pids
  pids=$(ns_pids "$1")
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086 # one PID per word
  kill -TERM $pids 2>/dev/null || true
  if ! wait_for 20 no_pids "$1"; then
    pids=$(ns_pids "$1")
    warn "$1: sending SIGKILL to $(tr '\n' ' ' <<<"$pids")"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    wait_for 10 no_pids "$1" || warn "$1: processes $(ns_pids "$1" | tr '\n' ' ')survived SIGKILL"
  fi
}

# ---------------------------------------------------------------- packages ---
POLICY_ACTION=""
restore_policy_rc() {
  case $POLICY_ACTION in
    created) rm -f "$POLICY_RC" ;;
    replaced) mv -f "$POLICY_RC.airgap-netlab-saved" "$POLICY_RC" ;;
    *) ;;
  esac
  POLICY_ACTION=""
}

install_packages() {
  local missing=() p installed
  installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${PACKAGES[@]}" 2>/dev/null || true)"
  for p in "${PACKAGES[@]}"; do
    [[ $installed == *" $p=installed "* ]] || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  mkdir -p "$STATE/log"
  say "installing ${missing[*]} (log: $STATE/log/apt.log)"
  # Keep Debian from starting its own haproxy and rsyslog (the lab runs its
  # own instances, inside namespaces, with its own configs).
  if [ -e "$POLICY_RC" ] && ! grep -qs '^[[:space:]]*exit 101' "$POLICY_RC"; then
    mv -f "$POLICY_RC" "$POLICY_RC.airgap-netlab-saved"
    POLICY_ACTION=replaced
  fi
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\n# written by airgap-verify scripts/netlab.sh during package install\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    [ -n "$POLICY_ACTION" ] || POLICY_ACTION=created
  fi
  export DEBIAN_FRONTEND=noninteractive
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >>"$STATE/log/apt.log" 2>&1 || {
    restore_policy_rc
    tail -n 30 "$STATE/log/apt.log" >&2
    die "package install failed"
  }
  restore_policy_rc
  local unit
  for unit in haproxy rsyslog; do
    [[ " ${missing[*]} " == *" $unit "* ]] || continue
    if [ -e "/etc/init.d/$unit" ]; then update-rc.d "$unit" disable >/dev/null 2>&1 || true; fi
    if command -v systemctl >/dev/null; then systemctl disable "$unit.service" >/dev/null 2>&1 || true; fi
  done
}

check_tools() {
  local m
  for m in imrelp imtcp lmnsd_gtls; do
    [ -e "/usr/lib/x86_64-linux-gnu/rsyslog/$m.so" ] || [ -n "$(find /usr/lib -path "*/rsyslog/$m.so" -print -quit 2>/dev/null)" ] ||
      die "rsyslog module $m.so is missing (packages rsyslog, rsyslog-relp, rsyslog-gnutls)"
  done
  for m in haproxy rsyslogd socat openssl nft /usr/sbin/sshd ssh-keygen ansible-playbook; do
    command -v "$m" >/dev/null || die "$m is not installed"
  done
}

# ---------------------------------------------------------------- pki --------
make_pki() {
  local pki="$STATE/pki"
  if [ "$(cat "$pki/.stamp" 2>/dev/null)" = "$PKI_STAMP" ] &&
    openssl x509 -checkend 2592000 -noout -in "$pki/lb.pem" >/dev/null 2>&1 &&
    openssl x509 -checkend 2592000 -noout -in "$pki/syslog.pem" >/dev/null 2>&1; then
    return 0
  fi
  rm -rf "$pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
    -out "$pki/ca.pem" -subj "/O=airgap-netlab/CN=airgap-netlab test CA" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>>"$pki/openssl.log" || die "pki: CA"
  local name cn ip
  for name in lb syslog; do
    cn=$name.$DOMAIN ip=${ADDR[$name]}
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$name.key" \
      -subj "/O=airgap-netlab/CN=$cn" -out "$pki/$name.csr" 2>>"$pki/openssl.log" || die "pki: $name key"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 825 -sha256 -out "$pki/$name.pem" -extfile <(
        printf 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n'
        printf 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:%s\n' "$cn" "$ip"
      ) 2>>"$pki/openssl.log" || die "pki: $name certificate"
    openssl verify -CAfile "$pki/ca.pem" -verify_hostname "$cn" -verify_ip "$ip" "$pki/$name.pem" \
      >/dev/null || die "pki: $name.pem does not verify"
  done
  cat "$pki/lb.pem" "$pki/lb.key" >"$pki/lb-haproxy.pem" # haproxy wants cert and key in one file
  chmod 600 "$pki"/*.key "$pki/lb-haproxy.pem"
  printf '%s\n' "$PKI_STAMP" >"$pki/.stamp"
  say "pki: new test CA and certificates for $LB_CERT_NAME, $SYSLOG_CERT_NAME in $pki"
}

# ---------------------------------------------------------------- topology ---
# Why a switch namespace: a bridge in the root namespace would change the
# machine's own networking, and veth pairs between every two hosts would not be
# one segment. One namespace holding only a bridge is the vendor's flat LB
# subnet, and a host's only way out is its single veth to that bridge.
build_topology() {
  local h n
  ip netns add "$SW_NS"
  {
    echo "link set lo up"
    echo "link add $BRIDGE type bridge stp_state 0"
    echo "link set $BRIDGE up"
  } | ip -n "$SW_NS" -batch -
  for h in "${HOSTS[@]}"; do
    n=$(ns "$h")
    ip netns add "$n"
    # both ends are created inside namespaces: the root namespace never sees them
    ip -n "$SW_NS" link add "$h" type veth peer name eth0 netns "$n"
    ip -n "$SW_NS" link set "$h" master "$BRIDGE" up
    {
      echo "link set lo up"
      echo "addr add ${ADDR[$h]}/$PREFIX dev eth0"
      echo "link set eth0 up"
    } | ip -n "$n" -batch -
    # only the connected /24: no default route, so anything else is unreachable
    fw_table "$n"
  done
  ip netns add "$AIRGAP_NS"
  ip -n "$AIRGAP_NS" link set lo up
}

fw_table() { # namespace: (re)create inet agvfw with empty chains; drops whatever a test added
  ip netns exec "$1" nft -f - <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
  comment "airgap-verify netlab: tests add their rules here"
  chain input {
    type filter hook input priority 0; policy accept;
  }
  chain output {
    type filter hook output priority 0; policy accept;
  }
}
EOF
}

write_netns_hosts() { # /etc/netns/NS/hosts: "ip netns exec" bind-mounts it over /etc/hosts
  local h n
  for h in "${HOSTS[@]}"; do
    n=$(ns "$h")
    mkdir -p "/etc/netns/$n"
    {
      printf '# written by airgap-verify scripts/netlab.sh up; removed by down\n'
      printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
      local o
      for o in "${HOSTS[@]}"; do printf '%s\t%s.%s %s\n' "${ADDR[$o]}" "$o" "$DOMAIN" "$o"; done
    } >"/etc/netns/$n/hosts"
    # Its own name and machine id (cloned VMs share one; the cluster check
    # must see distinct ones here). "ip netns exec" mounts both over /etc's.
    printf '%s\n' "$h" >"/etc/netns/$n/hostname"
    [ -s "$STATE/hosts/$h/machine-id" ] || {
      mkdir -p "$STATE/hosts/$h"
      od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$STATE/hosts/$h/machine-id"
      echo >>"$STATE/hosts/$h/machine-id"
    }
    cp "$STATE/hosts/$h/machine-id" "/etc/netns/$n/machine-id"
  done
}

remove_netns_hosts() {
  local h f
  for h in "${HOSTS[@]}"; do
    rm -f "/etc/netns/$(ns "$h")/hosts" "/etc/netns/$(ns "$h")/hostname" "/etc/netns/$(ns "$h")/machine-id"
    rmdir "/etc/netns/$(ns "$h")" 2>/dev/null || true
  done
  # the one lab.sh writes for agv-airgap, should its own down not have run
  f=/etc/netns/$AIRGAP_NS/hosts
  if [[ -f $f && $(head -n1 "$f") == "# airgap-lab: /etc/hosts of network namespace $AIRGAP_NS "* ]]; then
    rm -f "$f"
    rmdir "/etc/netns/$AIRGAP_NS" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- haproxy ----
# No health checks: a test starts a responder on one node or both, and checks
# would both delay it (a server is "up" only after a check) and reach the
# responder as extra connections. Instead a refused connect is redispatched to
# the other node at once (retries 1, option redispatch 1), so "only node1
# listens" still works, and with both listening the nodes alternate
# (roundrobin).
haproxy_conf() { # mode
  local opt="" port b
  case $1 in
    plain) opt="" ;;
    send-proxy) opt=" send-proxy" ;;
    send-proxy-v2) opt=" send-proxy-v2" ;;
    *) die "unknown lb mode $1" ;;
  esac
  cat <<EOF
# airgap-verify netlab load balancer, mode $1 (scripts/netlab.sh lb-mode)
global
    log stdout format raw local0 info
    stats socket $STATE/lb/haproxy.sock mode 600 level admin
    maxconn 1024
    tune.ssl.default-dh-param 2048

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout client-fin 5s
    timeout server-fin 5s
    retries 1
    option redispatch 1

EOF
  for port in "${LB_TCP_PORTS[@]}"; do
    printf 'frontend tcp_%s\n    bind %s:%s\n    default_backend nodes_%s\n\n' "$port" "${ADDR[lb]}" "$port" "$port"
    printf 'backend nodes_%s\n    balance roundrobin\n' "$port"
    for b in "${LB_BACKENDS[@]}"; do
      printf '    server %s %s:%s%s\n' "$b" "${ADDR[$b]}" "$port" "$opt"
    done
    echo
  done
  cat <<EOF
# the "correct LB": plain HTTP is redirected to HTTPS
frontend http_redirect
    mode http
    option httplog
    timeout http-request 5s
    bind ${ADDR[lb]}:$LB_REDIRECT_PORT
    http-request redirect scheme https code 301

# the faulty LB: plain HTTP answered as is
frontend http_noredirect
    mode http
    option httplog
    timeout http-request 5s
    bind ${ADDR[lb]}:$LB_NOREDIRECT_PORT
    http-request return status 200 content-type text/plain string "airgap-netlab: served over plain HTTP"

# TLS terminated here ($LB_CERT_NAME, netlab CA), then tcp to $LB_TLS_BACKEND:$LB_TLS_BACKEND_PORT
frontend tls_$LB_TLS_PORT
    bind ${ADDR[lb]}:$LB_TLS_PORT ssl crt $STATE/pki/lb-haproxy.pem
    default_backend tls_backend

backend tls_backend
    server $LB_TLS_BACKEND ${ADDR[$LB_TLS_BACKEND]}:$LB_TLS_BACKEND_PORT$opt
EOF
}

lb_ready() {
  local p
  for p in "${LB_TCP_PORTS[@]}" "$LB_REDIRECT_PORT" "$LB_NOREDIRECT_PORT" "$LB_TLS_PORT"; do
    listening "$(ns lb)" t "${ADDR[lb]}:$p" || return 1
  done
}

# Restart, not reload: a reload (-sf or master-worker USR2) leaves the old
# process serving its open connections in the old mode, and haproxy 2.6 says
# nothing about when the new one is ready. A restart takes ~50 ms, and once
# lb-mode returns every connection, open or new, is in the new mode (open
# ones were cut).
start_lb() { # mode
  mkdir -p "$STATE/lb"
  haproxy_conf "$1" >"$STATE/lb/haproxy.cfg.new"
  haproxy -c -q -f "$STATE/lb/haproxy.cfg.new" || die "haproxy: bad config $STATE/lb/haproxy.cfg.new"
  mv -f "$STATE/lb/haproxy.cfg.new" "$STATE/lb/haproxy.cfg"
  stop_daemon haproxy
  start_daemon haproxy "$(ns lb)" haproxy -db -f "$STATE/lb/haproxy.cfg"
  wait_for 50 lb_ready || {
    tail -n 20 "$STATE/log/haproxy.log" >&2
    die "haproxy did not listen on ${ADDR[lb]} within 5 s"
  }
  printf '%s\n' "$1" >"$STATE/lb/mode"
}

# ---------------------------------------------------------------- rsyslog ----
write_rsyslog() {
  local dir="$STATE/syslog"
  mkdir -p "$dir/work"
  : >"$dir/received.log"
  cat >"$dir/rsyslog.conf" <<EOF
# airgap-verify netlab syslog server: rsyslogd -n -f THIS_FILE -i $dir/rsyslogd.pid
# (a config of its own: no imuxsock, nothing from /etc/rsyslog.conf)
global(
  workDirectory="$dir/work"
  defaultNetstreamDriverCAFile="$STATE/pki/ca.pem"
  defaultNetstreamDriverCertFile="$STATE/pki/syslog.pem"
  defaultNetstreamDriverKeyFile="$STATE/pki/syslog.key"
)
module(load="imrelp")
# syslog over TLS (RFC 5425 style), server certificate only: anon = no client certificate asked
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imrelp" port="$SYSLOG_RELP_PORT" name="relp")
input(type="imtcp" port="$SYSLOG_TLS_PORT" name="tls")

# one line per received message: when, from, input (relp|tls), the message as received
template(name="netlab" type="string"
  string="%timegenerated:::date-rfc3339% %fromhost-ip% %inputname% %rawmsg%\n")
if \$inputname == "relp" or \$inputname == "tls" then {
  action(type="omfile" file="$dir/received.log" template="netlab")
  stop
}
# rsyslogd's own messages
action(type="omfile" file="$dir/rsyslogd-internal.log")
EOF
  rsyslogd -N1 -f "$dir/rsyslog.conf" >"$dir/check.log" 2>&1 || {
    cat "$dir/check.log" >&2
    die "rsyslog: bad config $dir/rsyslog.conf"
  }
}

syslog_ready() {
  listening "$(ns syslog)" t "*:$SYSLOG_RELP_PORT" || listening "$(ns syslog)" t "0.0.0.0:$SYSLOG_RELP_PORT" ||
    return 1
  listening "$(ns syslog)" t "*:$SYSLOG_TLS_PORT" || listening "$(ns syslog)" t "0.0.0.0:$SYSLOG_TLS_PORT"
}

start_syslog() {
  local dir="$STATE/syslog"
  rm -f "$dir/rsyslogd.pid"
  start_daemon rsyslog "$(ns syslog)" rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid"
}

wait_syslog() {
  wait_for 50 syslog_ready || {
    tail -n 20 "$STATE/log/rsyslog.log" >&2
    die "rsyslog did not listen on $SYSLOG_RELP_PORT and $SYSLOG_TLS_PORT within 5 s"
  }
}

# ---------------------------------------------------------------- sshd -------
# Each host in SSH_HOSTS runs Debian's OpenSSH server on ADDR:22, started as
#   ip netns exec NS unshare --uts --mount sh hosts/HOST/boot.sh
# so it has its own hostname, and its own /tmp, /root (with .ssh, for sshd's
# strict modes) and /var/lib/dbus/machine-id (Ansible reads that one before
# /etc/machine-id) bound from $STATE/hosts/HOST/; its sessions inherit all
# of it. Root logs in with the lab's key only ($STATE/ssh/id_ed25519); the
# hosts' keys are in $STATE/ssh/known_hosts. Keys survive "up"; "down"
# removes them with the rest.
make_ssh_keys() {
  local dir="$STATE/ssh" h
  mkdir -p "$dir"
  chmod 700 "$dir"
  [ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "airgap-netlab operator" -f "$dir/id_ed25519"
  : >"$dir/known_hosts.new"
  for h in "${SSH_HOSTS[@]}"; do
    [ -s "$dir/host-$h" ] || ssh-keygen -q -t ed25519 -N '' -C "airgap-netlab $h" -f "$dir/host-$h"
    printf '%s,%s.%s,%s %s\n' "${ADDR[$h]}" "$h" "$DOMAIN" "$h" "$(cut -d' ' -f1,2 "$dir/host-$h.pub")" >>"$dir/known_hosts.new"
  done
  mv -f "$dir/known_hosts.new" "$dir/known_hosts"
  chmod 644 "$dir/known_hosts"
}

write_ssh_hosts() {
  local h d
  for h in "${SSH_HOSTS[@]}"; do
    d="$STATE/hosts/$h"
    # a fresh /tmp and /root on every up: nothing a run left there survives
    rm -rf "$d/tmp" "$d/root"
    mkdir -p "$d/tmp" "$d/root/.ssh"
    chmod 1777 "$d/tmp"
    chmod 700 "$d/root" "$d/root/.ssh"
    cp "$STATE/ssh/id_ed25519.pub" "$d/root/.ssh/authorized_keys"
    chmod 600 "$d/root/.ssh/authorized_keys"
    cat >"$d/sshd_config" <<EOF
# airgap-verify netlab: sshd of host $h (scripts/netlab.sh)
ListenAddress ${ADDR[$h]}:22
HostKey $STATE/ssh/host-$h
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes yes
MaxStartups 64:30:128
MaxSessions 64
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    cat >"$d/boot.sh" <<EOF
# run by scripts/netlab.sh in namespace $(ns "$h") under unshare --uts --mount
set -e
hostname $h
mount --bind $d/tmp /tmp
mount --bind $d/root /root
if [ -e /var/lib/dbus/machine-id ]; then mount --bind $d/machine-id /var/lib/dbus/machine-id; fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f $d/sshd_config
EOF
  done
}

ssh_ready() { # host
  listening "$(ns "$1")" t "${ADDR[$1]}:22"
}

start_sshd() {
  local h
  mkdir -p /run/sshd # its privilege separation folder, which the test wants too
  /usr/sbin/sshd -t -f "$STATE/hosts/${SSH_HOSTS[0]}/sshd_config" 2>"$STATE/log/sshd-test.log" || {
    cat "$STATE/log/sshd-test.log" >&2
    die "sshd: bad config $STATE/hosts/${SSH_HOSTS[0]}/sshd_config"
  }
  for h in "${SSH_HOSTS[@]}"; do
    start_daemon "sshd-$h" "$(ns "$h")" unshare --uts --mount --propagation private sh "$STATE/hosts/$h/boot.sh"
  done
  for h in "${SSH_HOSTS[@]}"; do
    wait_for 50 ssh_ready "$h" || {
      tail -n 20 "$STATE/log/sshd-$h.log" >&2
      die "sshd of $h did not listen on ${ADDR[$h]}:22 within 5 s"
    }
  done
}

# The lab's cluster as an Ansible inventory: orch runs Ansible (local
# connection), lb is the load balancer, its backends (LB_BACKENDS) are the
# workers, the other nodes the managers, and client plays the client.
write_inventory() {
  local h b backend
  mkdir -p "$STATE/ansible"
  {
    printf '# airgap-verify netlab inventory, written by scripts/netlab.sh up\n'
    printf '[orchestration]\norch ansible_host=%s ansible_connection=local\n\n' "${ADDR[orch]}"
    printf '[load_balancer]\nlb ansible_host=%s\n\n' "${ADDR[lb]}"
    printf '[clients]\nclient ansible_host=%s\n\n' "${ADDR[client]}"
    printf '[managers]\n'
    for h in "${NODE_NAMES[@]}"; do
      backend=no
      for b in "${LB_BACKENDS[@]}"; do [ "$b" = "$h" ] && backend=yes; done
      [ $backend = no ] && printf '%s ansible_host=%s\n' "$h" "${ADDR[$h]}"
    done
    printf '\n[workers]\n'
    for h in "${LB_BACKENDS[@]}"; do printf '%s ansible_host=%s\n' "$h" "${ADDR[$h]}"; done
    printf '\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s/ssh/id_ed25519\n' "$STATE"
    printf 'ansible_ssh_common_args=-o UserKnownHostsFile=%s/ssh/known_hosts -o StrictHostKeyChecking=yes\n' "$STATE"
    printf 'ansible_python_interpreter=/usr/bin/python3\n'
  } >"$STATE/ansible/inventory.ini"
}

# ---------------------------------------------------------------- env --------
write_env() {
  local h H tmp lb_mode airgap_up=no
  lb_mode=$(cat "$STATE/lb/mode" 2>/dev/null || echo plain)
  [ ! -e "$STATE/run/airgap-lab" ] || airgap_up=yes
  tmp=$(mktemp "$STATE/.netlab.env.XXXXXX")
  {
    printf '# airgap-verify netlab plan, written by scripts/netlab.sh: KEY=value, no quoting needed\n'
    printf 'NETLAB_DIR=%s\nNETLAB_SUBNET=%s\nNETLAB_PREFIX=%s\nNETLAB_DOMAIN=%s\n' "$STATE" "$SUBNET" "$PREFIX" "$DOMAIN"
    printf 'NETLAB_HOSTS=%s\n' "$(IFS=,; echo "${HOSTS[*]}")"
    printf 'NS_SWITCH=%s\nSWITCH_BRIDGE=%s\n' "$SW_NS" "$BRIDGE"
    for h in "${HOSTS[@]}"; do
      H=${h^^}
      printf 'NS_%s=%s\nADDR_%s=%s\nHOST_%s=%s.%s\n' "$H" "$(ns "$h")" "$H" "${ADDR[$h]}" "$H" "$h" "$DOMAIN"
    done
    printf 'HOST_IFACE=eth0\n'
    printf 'NS_AIRGAP=%s\n' "$AIRGAP_NS"
    printf 'NETLAB_NODES=%s\nNETLAB_NODE_COUNT=%s\n' "$(IFS=,; echo "${NODE_NAMES[*]}")" "$NODES"
    printf 'NETLAB_NS_PREFIX=%s\nNETLAB_NET=%s\n' "$NS_PREFIX" "$NET"
    printf 'SSH_HOSTS=%s\nSSH_USER=root\nSSH_KEY=%s/ssh/id_ed25519\nSSH_KNOWN_HOSTS=%s/ssh/known_hosts\n' \
      "$(IFS=,; echo "${SSH_HOSTS[*]}")" "$STATE" "$STATE"
    printf 'ANSIBLE_INVENTORY=%s/ansible/inventory.ini\n' "$STATE"
    for h in "${SSH_HOSTS[@]}"; do printf 'HOSTDIR_%s=%s/hosts/%s\n' "${h^^}" "$STATE" "$h"; done
    printf 'NFT_FAMILY=inet\nNFT_TABLE=%s\nNFT_CHAINS=input,output\n' "$NFT_TABLE"
    printf 'CA_PEM=%s/pki/ca.pem\nCA_KEY=%s/pki/ca.key\n' "$STATE" "$STATE"
    printf 'LB_MODE=%s\nLB_MODES=%s\n' "$lb_mode" "$(IFS=,; echo "${LB_MODES[*]}")"
    printf 'LB_TCP_PORTS=%s\n' "$(IFS=,; echo "${LB_TCP_PORTS[*]}")"
    printf 'LB_BACKENDS=%s\n' "$(for b in "${LB_BACKENDS[@]}"; do printf '%s,' "${ADDR[$b]}"; done | sed 's/,$//')"
    printf 'LB_BALANCE=roundrobin\n'
    printf 'LB_REDIRECT_PORT=%s\nLB_NOREDIRECT_PORT=%s\n' "$LB_REDIRECT_PORT" "$LB_NOREDIRECT_PORT"
    printf 'LB_TLS_PORT=%s\nLB_TLS_BACKEND=%s:%s\n' "$LB_TLS_PORT" "${ADDR[$LB_TLS_BACKEND]}" "$LB_TLS_BACKEND_PORT"
    printf 'LB_CERT_NAME=%s\nLB_CERT=%s/pki/lb.pem\nLB_KEY=%s/pki/lb.key\n' "$LB_CERT_NAME" "$STATE" "$STATE"
    printf 'LB_CONFIG=%s/lb/haproxy.cfg\nLB_LOG=%s/log/haproxy.log\n' "$STATE" "$STATE"
    printf 'SYSLOG_RELP_PORT=%s\nSYSLOG_TLS_PORT=%s\n' "$SYSLOG_RELP_PORT" "$SYSLOG_TLS_PORT"
    printf 'SYSLOG_CERT_NAME=%s\nSYSLOG_CERT=%s/pki/syslog.pem\n' "$SYSLOG_CERT_NAME" "$STATE"
    printf 'SYSLOG_RECEIVED=%s/syslog/received.log\n' "$STATE"
    printf 'AIRGAP_LAB_UP=%s\n' "$airgap_up"
    if [ "$airgap_up" = yes ]; then
      printf 'AIRGAP_LAB_NETNS=%s\nAIRGAP_LAB_DIR=%s\nAIRGAP_LAB_ENV=%s/lab.env\n' "$AIRGAP_NS" "$AIRGAP_LAB" "$AIRGAP_LAB"
    fi
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$STATE/netlab.env" # readers never see half a file
}

# ---------------------------------------------------------------- selfcheck --
# Proves the plumbing with socat and openssl only (no airgap-verify): LB modes,
# TLS termination, redirects, a drop rule, RELP and TLS syslog. It switches the
# LB mode (restored at the end) and rewrites node3's agvfw table (left empty).
SC_DIR=""
SC_FAILS=0
SC_PIDS=()
SC_PREV_MODE=""

sc_result() { # ok(0/1) name detail
  if [ "$1" -eq 0 ]; then
    printf 'PASS  %s\n' "$2"
  else
    printf 'FAIL  %s: %s\n' "$2" "$3"
    SC_FAILS=$((SC_FAILS + 1))
  fi
}

sc_cleanup() {
  local pid
  for pid in "${SC_PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${SC_PIDS[@]}"; do
    wait_for 20 pgroup_gone "$pid" || kill -KILL -- "-$pid" 2>/dev/null || true
  done
  SC_PIDS=()
  if [ -n "$SC_PREV_MODE" ] && [ "$(cat "$STATE/lb/mode" 2>/dev/null)" != "$SC_PREV_MODE" ]; then
    start_lb "$SC_PREV_MODE" && write_env
  fi
  ns_exists "$(ns node3)" && fw_table "$(ns node3)"
}

# The reply goes first: a TLS client (openssl s_client) does not half-close, so
# a responder that waited for EOF before answering would never answer.
sc_responder() { # host port reply : socat on HOST:PORT; each connection's bytes go to SC_DIR/HOST-PORT.N.in
  local h=$1 port=$2 reply=$3
  setsid ip netns exec "$(ns "$h")" socat "TCP-LISTEN:$port,bind=${ADDR[$h]},reuseaddr,fork" \
    SYSTEM:"echo $reply; cat >$SC_DIR/$h-$port.\$\$.in" >>"$SC_DIR/socat.log" 2>&1 </dev/null 9>&- &
  SC_PIDS+=($!)
  wait_for 20 listening "$(ns "$h")" t "${ADDR[$h]}:$port"
}

sc_client() { # host addr port : send stdin over TCP from HOST, print the reply (2 s at most)
  ip netns exec "$(ns "$1")" timeout 5 socat -t2 -T3 - "TCP:$2:$3,connect-timeout=2" 2>&1
}

sc_received() { # host port : what the single connection since the last sc_clear sent
  cat "$SC_DIR/$1-$2".*.in 2>/dev/null
}

sc_clear() { rm -f "$SC_DIR"/*.in; }

sc_lb_mode() { # mode: switch, and say so on failure
  local out
  out=$(start_lb "$1" 2>&1) || {
    sc_result 1 "lb-mode $1" "$out"
    return 1
  }
}

sc_wait_line() { # file input token : a line from that input with that token appears within 3 s
  wait_for 30 grep -qE -- " $2 .*$3" "$1"
}

cmd_selfcheck() {
  need_root
  lock_lab
  [ -r "$STATE/netlab.env" ] || die "the netlab is not up ('scripts/netlab.sh up')"
  local t0 out h ok lb=${ADDR[lb]} token
  t0=$(date +%s%N)
  # every probe below is expected to fail in some runs: results are collected, not fatal
  set +e
  SC_DIR="$STATE/selfcheck"
  rm -rf "$SC_DIR"
  mkdir -p "$SC_DIR"
  SC_PREV_MODE=$(cat "$STATE/lb/mode" 2>/dev/null || echo plain)
  trap sc_cleanup EXIT

  # isolation: no default route anywhere; the air-gapped namespace has only lo
  ok=0 out=""
  for h in "${HOSTS[@]}"; do
    if [ -n "$(ip -n "$(ns "$h")" route show default)" ] || ip -n "$(ns "$h")" route get 192.0.2.1 >/dev/null 2>&1; then
      ok=1 out+="$(ns "$h") has a route out; "
    fi
  done
  sc_result "$ok" "no default route in any host namespace" "$out"
  out=$(ip -n "$AIRGAP_NS" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
  [ "$out" = "lo " ]
  sc_result $? "$AIRGAP_NS has only lo" "links: $out"
  out=$(ip netns exec "$(ns node1)" timeout 3 socat -T1 /dev/null "TCP:${ADDR[node2]}:1,connect-timeout=1" 2>&1)
  [[ $out == *"Connection refused"* ]]
  sc_result $? "node1 reaches node2 over the bridge (closed port answers RST)" "$out"

  sc_responder node1 443 node1 || sc_result 1 "responder on node1:443" "socat did not listen"
  sc_responder node1 80 node1 || sc_result 1 "responder on node1:80" "socat did not listen"

  # plain: the backend sees the client's bytes first, and the reply comes back
  sc_lb_mode plain && {
    sc_clear
    out=$(printf 'hello-plain\n' | sc_client client "$lb" 443)
    [ "$out" = node1 ] && [ "$(sc_received node1 443)" = hello-plain ]
    sc_result $? "plain: client -> lb:443 -> node1:443 (node2 closed: redispatched)" \
      "reply '$out', node1 got '$(sc_received node1 443 | head -c 200)'"
  }
  # send-proxy: a PROXY v1 line first
  sc_lb_mode send-proxy && {
    sc_clear
    out=$(printf 'hello-v1\n' | sc_client client "$lb" 443)
    [ "$out" = node1 ] && sc_received node1 443 | head -n1 |
      grep -qE "^PROXY TCP4 ${ADDR[client]//./\\.} ${lb//./\\.} [0-9]+ 443"$'\r'"\$"
    sc_result $? "send-proxy: node1:443 sees 'PROXY TCP4 ${ADDR[client]} $lb <port> 443' first" \
      "reply '$out', node1 got '$(sc_received node1 443 | head -n1 | cat -v)'"
  }
  # send-proxy-v2: the 12-byte binary signature first
  sc_lb_mode send-proxy-v2 && {
    sc_clear
    out=$(printf 'hello-v2\n' | sc_client client "$lb" 80)
    [ "$out" = node1 ] && [ "$(sc_received node1 80 | head -c 12 | od -An -tx1 | tr -d ' \n')" = 0d0a0d0a000d0a515549540a ]
    sc_result $? "send-proxy-v2: node1:80 sees the PROXY v2 signature first" \
      "reply '$out', node1 got $(sc_received node1 80 | head -c 16 | od -An -tx1 | tr -s ' ')"
  }
  sc_lb_mode plain && {
    # TLS terminated by the LB with the netlab CA's certificate, then plain tcp to node1:443
    sc_clear
    out=$({
      printf 'hello-tls\n'
      sleep 1
    } | ip netns exec "$(ns client)" timeout 5 openssl s_client -connect "$lb:$LB_TLS_PORT" \
      -servername "$LB_CERT_NAME" -CAfile "$STATE/pki/ca.pem" -verify_return_error \
      -verify_hostname "$LB_CERT_NAME" -verify_ip "$lb" -quiet -no_ign_eof 2>&1)
    [[ $out == *node1* ]] && [ "$(sc_received node1 443)" = hello-tls ]
    sc_result $? "tls: lb:$LB_TLS_PORT verifies as $LB_CERT_NAME and $lb (netlab CA), forwards to node1:443" \
      "$(tail -n 3 <<<"$out" | tr '\n' ' ') / node1 got '$(sc_received node1 443 | head -c 100)'"
  }

  # HTTP: the correct LB redirects to https, the faulty one does not
  out=$(printf 'GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$LB_CERT_NAME" | sc_client client "$lb" "$LB_REDIRECT_PORT")
  [[ $out == "HTTP/1.1 301 "* ]] && grep -qi "^location: https://$LB_CERT_NAME/x"$'\r'"\$" <<<"$out"
  sc_result $? "redirect: lb:$LB_REDIRECT_PORT answers 301 Location https://$LB_CERT_NAME/x" "$(head -n 3 <<<"$out" | tr -d '\r' | tr '\n' ' ')"
  out=$(printf 'GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$LB_CERT_NAME" | sc_client client "$lb" "$LB_NOREDIRECT_PORT")
  [[ $out == "HTTP/1.1 200 "* ]] && ! grep -qi '^location:' <<<"$out"
  sc_result $? "no redirect: lb:$LB_NOREDIRECT_PORT answers 200 without Location" "$(head -n 3 <<<"$out" | tr -d '\r' | tr '\n' ' ')"

  # firewall: closed (RST / ICMP port unreachable) versus filtered (silence)
  local n3=${ADDR[node3]} tcp_out udp_out
  tcp_out=$(ip netns exec "$(ns client)" timeout 4 socat -T1 /dev/null "TCP:$n3:2380,connect-timeout=1" 2>&1)
  udp_out=$(echo probe | ip netns exec "$(ns client)" timeout 4 socat -T1 - "UDP:$n3:8472" 2>&1)
  [[ $tcp_out == *"Connection refused"* ]] && [[ $udp_out == *"Connection refused"* ]]
  sc_result $? "firewall: node3 tcp/2380 and udp/8472 closed (refused) with no rule" "tcp: $tcp_out / udp: $udp_out"
  ip netns exec "$(ns node3)" nft add rule inet "$NFT_TABLE" input udp dport 8472 drop
  ip netns exec "$(ns node3)" nft add rule inet "$NFT_TABLE" input tcp dport 2380 drop
  tcp_out=$(ip netns exec "$(ns client)" timeout 4 socat -T1 /dev/null "TCP:$n3:2380,connect-timeout=1" 2>&1)
  udp_out=$(echo probe | ip netns exec "$(ns client)" timeout 4 socat -T1 - "UDP:$n3:8472" 2>&1)
  [[ $tcp_out == *"timed out"* ]] && [[ $udp_out != *refused* ]]
  sc_result $? "firewall: a drop rule makes node3 tcp/2380 and udp/8472 filtered (no answer)" "tcp: $tcp_out / udp: $udp_out"
  fw_table "$(ns node3)"
  tcp_out=$(ip netns exec "$(ns client)" timeout 4 socat -T1 /dev/null "TCP:$n3:2380,connect-timeout=1" 2>&1)
  [[ $tcp_out == *"Connection refused"* ]]
  sc_result $? "firewall: fw-reset node3 makes tcp/2380 closed again" "tcp: $tcp_out"

  # RELP (librelp framing: TXNR SP COMMAND SP DATALEN [SP DATA] LF)
  local syslog=${ADDR[syslog]} data msg
  token="netlab-selfcheck-relp-$$-$RANDOM"
  data=$'relp_version=0\nrelp_software=netlab-selfcheck\ncommands=syslog'
  msg="<13>1 $(date -u +%Y-%m-%dT%H:%M:%SZ) client netlab-selfcheck - - - $token"
  out=$(printf '1 open %d %s\n2 syslog %d %s\n3 close 0\n' "${#data}" "$data" "${#msg}" "$msg" |
    sc_client client "$syslog" "$SYSLOG_RELP_PORT")
  [[ $out == "1 rsp "*" 200 OK"* ]] && grep -q '^2 rsp 6 200 OK' <<<"$out"
  sc_result $? "relp: open and syslog answered '200 OK' by $syslog:$SYSLOG_RELP_PORT" "$(tr '\n' '|' <<<"$out")"
  sc_wait_line "$STATE/syslog/received.log" relp "$token"
  sc_result $? "relp: the message is in $STATE/syslog/received.log" "$(tail -n 2 "$STATE/syslog/received.log")"

  # syslog over TLS: server certificate from the netlab CA, no client certificate
  token="netlab-selfcheck-tls-$$-$RANDOM"
  msg="<13>1 $(date -u +%Y-%m-%dT%H:%M:%SZ) client netlab-selfcheck - - - $token"
  out=$({
    printf '%s\n' "$msg"
    sleep 0.5
  } | ip netns exec "$(ns client)" timeout 5 openssl s_client -connect "$syslog:$SYSLOG_TLS_PORT" \
    -CAfile "$STATE/pki/ca.pem" -verify_return_error -verify_hostname "$SYSLOG_CERT_NAME" -brief 2>&1)
  [[ $out == *"Verification: OK"* ]]
  sc_result $? "tls syslog: handshake with $syslog:$SYSLOG_TLS_PORT verifies as $SYSLOG_CERT_NAME" "$(tr '\n' ' ' <<<"$out" | head -c 300)"
  sc_wait_line "$STATE/syslog/received.log" tls "$token"
  sc_result $? "tls syslog: the message is in $STATE/syslog/received.log" "$(tail -n 2 "$STATE/syslog/received.log")"

  sc_cleanup
  trap - EXIT
  printf '%d failed, selfcheck took %d ms\n' "$SC_FAILS" "$((($(date +%s%N) - t0) / 1000000))"
  [ "$SC_FAILS" -eq 0 ]
}

# ---------------------------------------------------------------- commands ---
teardown() {
  local n
  # the air-gapped service lab first, by its own script (it knows its process groups)
  if [ -e "$STATE/run/airgap-lab" ] || compgen -G "$AIRGAP_LAB/run/*.id" >/dev/null; then
    airgap_lab_call down || warn "scripts/lab.sh down (air-gapped lab) failed"
    rm -f "$STATE/run/airgap-lab"
  fi
  mkdir -p "$STATE/run"
  for n in "${DAEMONS[@]}"; do stop_daemon "$n"; done
  for n in "$STATE"/run/sshd-*.id; do
    [ -e "$n" ] || continue
    n=${n##*/}
    stop_daemon "${n%.id}"
  done
  while read -r n; do
    ns_exists "$n" || continue
    kill_ns_processes "$n"
    ip netns del "$n" || warn "could not delete namespace $n"
  done < <(all_namespaces)
  remove_netns_hosts
}

cmd_up() {
  need_root
  local t0
  t0=$(date +%s%N)
  lock_lab
  mkdir -p "$STATE/log" "$STATE/run"
  trap restore_policy_rc EXIT
  install_packages
  check_tools
  teardown
  make_pki
  make_ssh_keys
  build_topology
  write_netns_hosts
  write_ssh_hosts
  write_inventory
  start_sshd
  write_rsyslog
  # rsyslog takes 0.5-1 s to open its TLS listener: haproxy starts meanwhile
  start_syslog
  start_lb plain
  wait_syslog
  write_env
  say "up in $((($(date +%s%N) - t0) / 1000000)) ms: $STATE/netlab.env"
}

cmd_down() {
  need_root
  local t0
  t0=$(date +%s%N)
  lock_lab
  teardown
  rm -f "$STATE/netlab.env" "$STATE/lb/mode"
  rm -rf "$STATE/hosts" "$STATE/ssh" "$STATE/ansible"
  say "down in $((($(date +%s%N) - t0) / 1000000)) ms"
}

cmd_fw_reset() {
  need_root
  local h hosts=("$@")
  [ $# -gt 0 ] || hosts=("${HOSTS[@]}")
  for h in "${hosts[@]}"; do
    h=${h#"$NS_PREFIX"}
    [ -n "${ADDR[$h]:-}" ] || die "unknown host $h (one of: ${HOSTS[*]})"
    ns_exists "$(ns "$h")" || die "namespace $(ns "$h") does not exist ('scripts/netlab.sh up')"
    fw_table "$(ns "$h")"
  done
}

# What the perimeter firewall does in front of a real cluster: the client
# (outside) does not reach the ports the profile keeps blocked from outside
# (Traefik's 10901, the NodePort range); everything else is left open.
# Cleared by fw-reset, like any test rule.
cmd_fw_perimeter() {
  need_root
  local h rule
  for h in "${NODE_NAMES[@]}"; do
    ns_exists "$(ns "$h")" || die "namespace $(ns "$h") does not exist ('scripts/netlab.sh up')"
    for rule in "tcp dport 10901" "tcp dport 30000-32767" "udp dport 30000-32767"; do
      # shellcheck disable=SC2086 # the rule is words
      ip netns exec "$(ns "$h")" nft add rule inet "$NFT_TABLE" input ip saddr "${ADDR[client]}" $rule drop
    done
  done
}

cmd_lb_mode() {
  need_root
  local mode=${1:-} m ok=no
  for m in "${LB_MODES[@]}"; do [ "$mode" != "$m" ] || ok=yes; done
  [ "$ok" = yes ] || die "lb-mode takes one of: ${LB_MODES[*]}"
  lock_lab
  ns_exists "$(ns lb)" || die "namespace $(ns lb) does not exist ('scripts/netlab.sh up')"
  start_lb "$mode"
  write_env
  say "lb mode $mode"
}

airgap_lab_call() { # lab.sh command, in the agv-airgap namespace
  AIRGAP_LAB_NETNS=$AIRGAP_NS AIRGAP_LAB_DIR=$AIRGAP_LAB bash "$SCRIPT_DIR/lab.sh" "$@" 9>&-
}

cmd_airgap_lab() {
  need_root
  local sub=${1:-up}
  lock_lab
  case $sub in
    up)
      ns_exists "$AIRGAP_NS" || die "namespace $AIRGAP_NS does not exist ('scripts/netlab.sh up')"
      rm -f "$STATE/run/airgap-lab"
      airgap_lab_call up || die "scripts/lab.sh up in $AIRGAP_NS failed"
      : >"$STATE/run/airgap-lab"
      ;;
    down)
      airgap_lab_call down
      rm -f "$STATE/run/airgap-lab"
      ;;
    status)
      airgap_lab_call status
      return
      ;;
    *) die "airgap-lab takes up, down or status" ;;
  esac
  [ ! -d "$STATE/run" ] || write_env
}

cmd_status() {
  local bad=0 n h pid
  while read -r n; do
    if ns_exists "$n"; then
      case $n in
        "$SW_NS") printf '%-12s up    bridge %s, %s ports\n' "$n" "$BRIDGE" \
          "$(ip -n "$n" -o link show master "$BRIDGE" 2>/dev/null | wc -l)" ;;
        "$AIRGAP_NS") printf '%-12s up    links: %s\n' "$n" "$(ip -n "$n" -o link show | awk -F': ' '{printf "%s ", $2}')" ;;
        *) printf '%-12s up    %s\n' "$n" "$(ip -n "$n" -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}')" ;;
      esac
    else
      printf '%-12s DOWN\n' "$n"
      bad=1
    fi
  done < <(all_namespaces)
  for h in "${HOSTS[@]}"; do
    ns_exists "$(ns "$h")" || continue
    ip netns exec "$(ns "$h")" nft list table inet "$NFT_TABLE" >/dev/null 2>&1 || {
      printf '%-12s DOWN  no nft table inet %s in %s\n' nft "$NFT_TABLE" "$(ns "$h")"
      bad=1
    }
  done
  if pid=$(daemon_pid haproxy) && lb_ready; then
    printf '%-12s up    pid %-7s mode %s, %s:%s,%s,%s,%s\n' haproxy "$pid" "$(cat "$STATE/lb/mode" 2>/dev/null)" \
      "${ADDR[lb]}" "$(IFS=,; echo "${LB_TCP_PORTS[*]}")" "$LB_REDIRECT_PORT" "$LB_NOREDIRECT_PORT" "$LB_TLS_PORT"
  else
    printf '%-12s DOWN\n' haproxy
    bad=1
  fi
  if pid=$(daemon_pid rsyslog) && syslog_ready; then
    printf '%-12s up    pid %-7s relp %s:%s, tls %s:%s\n' rsyslog "$pid" "${ADDR[syslog]}" "$SYSLOG_RELP_PORT" \
      "${ADDR[syslog]}" "$SYSLOG_TLS_PORT"
  else
    printf '%-12s DOWN\n' rsyslog
    bad=1
  fi
  for h in "${SSH_HOSTS[@]}"; do
    if pid=$(daemon_pid "sshd-$h") && ssh_ready "$h"; then
      printf '%-12s up    pid %-7s %s:22, hostname %s\n' "sshd-$h" "$pid" "${ADDR[$h]}" "$h"
    else
      printf '%-12s DOWN\n' "sshd-$h"
      bad=1
    fi
  done
  if [ -e "$STATE/run/airgap-lab" ]; then
    printf '%-12s started (scripts/netlab.sh airgap-lab status for details), %s\n' airgap-lab "$AIRGAP_LAB"
  else
    printf '%-12s not started\n' airgap-lab
  fi
  return "$bad"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  fw-reset) cmd_fw_reset "${@:2}" ;;
  fw-perimeter) cmd_fw_perimeter ;;
  lb-mode) cmd_lb_mode "${@:2}" ;;
  airgap-lab) cmd_airgap_lab "${@:2}" ;;
  selfcheck) cmd_selfcheck ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
