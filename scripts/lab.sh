#!/usr/bin/env bash
# airgap-verify test lab: real DNS, NTP and SMTP servers (plus a blackholed
# address and a tarpit) on loopback addresses, for integration tests.
#
#   scripts/lab.sh up       install what is missing, (re)start the lab, verify it
#   scripts/lab.sh down     stop what the lab started, remove its nft table and hosts block
#   scripts/lab.sh status   one line per service; exit 1 if anything is down
#
# Addresses (all 127.0.0.0/8; names under perimeter.test, in the zone and /etc/hosts):
#   .10 ns1/dns        unbound, authoritative for perimeter.test only (REFUSED otherwise)
#   .11 resolver       unbound forwarding to .10 only: public names SERVFAIL
#   .12 leaky          unbound forwarding perimeter.test to .10, and answering
#                      example.com / www.example.com as if it reached the internet
#   .20 ntp            chrony, synchronised (local stratum 8)
#   .21 ntp-unsync     chrony, unsynchronised (LI=3)
#   .30 smtp/mail      postfix: 25 STARTTLS, 587 STARTTLS+AUTH, 465 TLS+AUTH (lab CA)
#   .31 smtp-expired   same postfix: 25 STARTTLS and 465 TLS serving an expired cert
#   .32 smtp-rogue     ... a cert signed by a CA outside the lab's trust (rogue CA)
#   .33 smtp-wrongname ... a lab-CA cert whose only name is wrong-name.invalid
#   .34 smtp-plain     ... 25 without STARTTLS, 587 with AUTH PLAIN/LOGIN in clear text
#   .250 blackhole     nft drops everything sent there;  .251 tarpit: 25/443 accept, silent
#
# Environment: AIRGAP_LAB_DIR (state folder), AIRGAP_LAB_TIMEOUT (readiness
# deadline, default 20 s), AIRGAP_LAB_SMTP_PASSWORD (else a random one, kept).
#
# State lives in ${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}: lab.env (the plan, as
# KEY=value lines), perimeter.yml, pki/, one folder per service, run/ (pid
# files), log/. Needs root. Only ever binds and probes 127.0.0.0/8 addresses.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPERS="$SCRIPT_DIR/lab"
LAB=${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}
READY_TIMEOUT=${AIRGAP_LAB_TIMEOUT:-20}
PY=/usr/bin/python3

# ---------------------------------------------------------------- the plan ---
ZONE=perimeter.test
DNS_AUTH_ADDR=127.0.0.10
DNS_FORWARDER_ADDR=127.0.0.11
NTP_ADDR=127.0.0.20
NTP_UNSYNC_ADDR=127.0.0.21
NTP_STRATUM=8
DNS_LEAKY_ADDR=127.0.0.12
PUBLIC_NAME=example.com          # what the leaky resolver "resolves" (DNS data only)
PUBLIC_LEAK_ADDR=93.184.215.14   # example.com's public address; never contacted
SMTP_ADDR=127.0.0.30
SMTP_EXPIRED_ADDR=127.0.0.31     # TLS faults and clear-text SMTP, same postfix instance
SMTP_ROGUE_ADDR=127.0.0.32
SMTP_WRONGNAME_ADDR=127.0.0.33
SMTP_PLAIN_ADDR=127.0.0.34
GIT_ADDR=127.0.0.40        # names only for now: no server runs there yet
REGISTRY_ADDR=127.0.0.41
S3_ADDR=127.0.0.42
BLACKHOLE_ADDR=127.0.0.250
TARPIT_ADDR=127.0.0.251
TARPIT_PORTS=(25 443)
TARPIT_HOLD=120
SMTP_USER=probe
LEAK_ADDR=203.0.113.10     # TEST-NET-3 documentation address: DNS data only, never contacted
CNAME_NAME=mirror.$ZONE
CNAME_TARGET=registry.$ZONE

# name -> address, for the zone, /etc/hosts and the server certificate
HOST_PLAN=(
  "ns1 $DNS_AUTH_ADDR"
  "dns $DNS_AUTH_ADDR"
  "resolver $DNS_FORWARDER_ADDR"
  "leaky $DNS_LEAKY_ADDR"
  "ntp $NTP_ADDR"
  "ntp-unsync $NTP_UNSYNC_ADDR"
  "smtp $SMTP_ADDR"
  "mail $SMTP_ADDR"
  "smtp-expired $SMTP_EXPIRED_ADDR"
  "smtp-rogue $SMTP_ROGUE_ADDR"
  "smtp-wrongname $SMTP_WRONGNAME_ADDR"
  "smtp-plain $SMTP_PLAIN_ADDR"
  "git $GIT_ADDR"
  "registry $REGISTRY_ADDR"
  "s3 $S3_ADDR"
  "blackhole $BLACKHOLE_ADDR"
  "tarpit $TARPIT_ADDR"
)

# processes the lab starts, in start order (stopped in reverse)
SERVICES=(dns-auth dns-forwarder dns-leaky ntp ntp-unsync smtp tarpit)
PACKAGES=(unbound chrony postfix sasl2-bin libsasl2-modules openssl nftables util-linux python3)
NFT_TABLE=airgap_lab
HOSTS_FILE=/etc/hosts
HOSTS_BEGIN="# BEGIN airgap-lab"
HOSTS_END="# END airgap-lab"
POLICY_RC=/usr/sbin/policy-rc.d
PKI_STAMP="airgap-lab pki v2 $ZONE"

# ---------------------------------------------------------------- helpers ----
say() { printf 'lab: %s\n' "$*"; }
warn() { printf 'lab: warning: %s\n' "$*" >&2; }
die() {
  printf 'lab: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

check_lab_dir() {
  case $LAB in
    /*) ;;
    *) LAB="$PWD/$LAB" ;;
  esac
  LAB=${LAB%/}
  [ -n "$LAB" ] || die "AIRGAP_LAB_DIR must not be /"
  [[ $LAB != *[[:space:]\"\'\$\\]* ]] || die "AIRGAP_LAB_DIR must not contain spaces, quotes, \$ or \\: $LAB"
}

lock_lab() {
  mkdir -p "$LAB"
  exec 9>"$LAB/.lock"
  flock -w 120 9 || die "another lab.sh holds $LAB/.lock"
}

# Process identity: PID plus its start time (field 22 of /proc/PID/stat), so a
# recycled PID is never mistaken for a lab process.
proc_starttime() {
  local stat rest fields
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  rest=${stat##*) }
  read -r -a fields <<<"$rest"
  [ "${fields[0]}" != Z ] || return 1 # zombie: already dead
  printf '%s\n' "${fields[19]}"
}

record_pid() { # service pid
  local start
  start=$(proc_starttime "$2") || return 1
  printf '%s\n' "$2" >"$LAB/run/$1.pid"
  printf '%s %s\n' "$2" "$start" >"$LAB/run/$1.id"
}

svc_pid() { # service -> prints the PID if the recorded process is still alive
  local id="$LAB/run/$1.id" pid start now
  [ -r "$id" ] || return 1
  read -r pid start <"$id" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(proc_starttime "$pid") || return 1
  [ "$now" = "$start" ] || return 1
  printf '%s\n' "$pid"
}

wait_for() { # tenths command... : true as soon as the command succeeds, false after tenths/10 s
  local i
  for ((i = 0; i < $1; i++)); do
    "${@:2}" && return 0
    sleep 0.1
  done
  "${@:2}"
}

svc_gone() { ! svc_pid "$1" >/dev/null; }

stop_svc() { # service
  local svc=$1 pid
  if pid=$(svc_pid "$svc"); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 50 svc_gone "$svc"; then
      warn "$svc (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    say "stopped $svc (pid $pid)"
  fi
  rm -f "$LAB/run/$svc.pid" "$LAB/run/$svc.id"
}

start_bg() { # service command... : detached (own session), logs to log/SERVICE.log
  local svc=$1
  shift
  printf '\n==== %s starting: %s\n' "$(date -Is)" "$*" >>"$LAB/log/$svc.log"
  # 9>&-: the daemons must not inherit (and so hold) the lab lock
  setsid "$@" >>"$LAB/log/$svc.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  sleep 0.05
  record_pid "$svc" "$pid" || {
    log_tail "$svc"
    die "$svc exited at once ('scripts/lab.sh down' stops what did start)"
  }
}

# ---------------------------------------------------------------- packages ---
POLICY_ACTION=""
restore_policy_rc() {
  case $POLICY_ACTION in
    created) rm -f "$POLICY_RC" ;;
    replaced) mv -f "$POLICY_RC.airgap-lab-saved" "$POLICY_RC" ;;
    *) ;;
  esac
  POLICY_ACTION=""
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing ${missing[*]} (log: $LAB/log/apt.log)"
  # Keep Debian from starting chrony/postfix/unbound with their default configs.
  if [ -e "$POLICY_RC" ] && ! grep -qs '^[[:space:]]*exit 101' "$POLICY_RC"; then
    mv -f "$POLICY_RC" "$POLICY_RC.airgap-lab-saved"
    POLICY_ACTION=replaced
  fi
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\n# written by airgap-verify scripts/lab.sh during package install\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    [ -n "$POLICY_ACTION" ] || POLICY_ACTION=created
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
  } >>"$LAB/log/apt.log" 2>&1 || {
    restore_policy_rc
    tail -n 30 "$LAB/log/apt.log" >&2
    die "package install failed"
  }
  restore_policy_rc
  # The lab runs these daemons with its own configs only: keep Debian's default
  # instances (chrony would query the public NTP pool) from starting at boot.
  local unit
  for unit in chrony unbound unbound-resolvconf postfix; do
    [[ " ${missing[*]} " == *" ${unit%%-*} "* ]] || continue
    # update-rc.d disables the sysv links and the systemd unit; systemctl
    # disable works offline too and covers unbound-resolvconf (no init script)
    if [ -e "/etc/init.d/$unit" ]; then update-rc.d "$unit" disable >/dev/null 2>&1 || true; fi
    if command -v systemctl >/dev/null; then systemctl disable "$unit.service" >/dev/null 2>&1 || true; fi
  done
}

# ---------------------------------------------------------------- pki --------
openssl_cnf() {
  cat <<'EOF'
[ ca ]
default_ca = lab_ca

[ lab_ca ]
dir              = $ENV::CA_DIR
database         = $dir/index.txt
new_certs_dir    = $dir/newcerts
serial           = $dir/serial
default_md       = sha256
default_days     = 825
policy           = policy_any
unique_subject   = no
copy_extensions  = none
email_in_dn      = no

[ policy_any ]
organizationName = optional
commonName       = supplied

[ req ]
distinguished_name = req_dn
prompt             = no

[ req_dn ]
CN = unused

[ ext_ca ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash

[ ext_server ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
subjectAltName         = $ENV::SAN
EOF
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

new_ca() { # name subject
  local name=$1
  export CA_DIR="$PKI/ca-db/$name" SAN=DNS:unused
  mkdir -p "$CA_DIR/newcerts"
  : >"$CA_DIR/index.txt"
  openssl rand -hex 8 >"$CA_DIR/serial"
  new_key "$PKI/$name.key"
  openssl req -new -config "$PKI/openssl.cnf" -key "$PKI/$name.key" -subj "$2" -out "$CA_DIR/$name.csr"
  openssl ca -batch -notext -config "$PKI/openssl.cnf" -selfsign -keyfile "$PKI/$name.key" \
    -in "$CA_DIR/$name.csr" -out "$PKI/$name.pem" -extensions ext_ca \
    -startdate 20190101000000Z -enddate 20491231235959Z 2>>"$PKI/openssl.log"
}

new_leaf() { # ca name cn san [startdate enddate]
  local ca=$1 name=$2 dates=()
  export CA_DIR="$PKI/ca-db/$ca" SAN=$4
  [ $# -lt 6 ] || dates=(-startdate "$5" -enddate "$6")
  new_key "$PKI/$name.key"
  openssl req -new -config "$PKI/openssl.cnf" -key "$PKI/$name.key" -subj "/O=airgap-lab/CN=$3" \
    -out "$CA_DIR/$name.csr"
  openssl ca -batch -notext -config "$PKI/openssl.cnf" -cert "$PKI/$ca.pem" -keyfile "$PKI/$ca.key" \
    -in "$CA_DIR/$name.csr" -out "$PKI/$name.pem" -extensions ext_server "${dates[@]}" 2>>"$PKI/openssl.log"
}

make_pki() {
  PKI="$LAB/pki"
  if [ -f "$PKI/.stamp" ] && [ "$(cat "$PKI/.stamp")" = "$PKI_STAMP" ] &&
    openssl x509 -checkend 2592000 -noout -in "$PKI/server.pem" >/dev/null 2>&1; then
    say "pki: reusing $PKI"
    return 0
  fi
  rm -rf "$PKI"
  mkdir -p "$PKI"
  openssl_cnf >"$PKI/openssl.cnf"
  local san="" entry name addr ips=""
  for entry in "${HOST_PLAN[@]}"; do
    read -r name addr <<<"$entry"
    san+="DNS:$name.$ZONE,"
    [[ ,$ips, == *",IP:$addr,"* ]] || ips+="IP:$addr,"
  done
  san+=${ips%,}

  new_ca ca "/O=airgap-lab/CN=airgap-lab test CA"
  new_leaf ca server "smtp.$ZONE" "$san"
  new_leaf ca expired "smtp.$ZONE" "$san" 20200101000000Z 20210101000000Z
  new_leaf ca wrong-name "wrong-name.invalid" "DNS:wrong-name.invalid"
  new_ca rogue-ca "/O=airgap-lab rogue/CN=airgap-lab rogue CA"
  new_leaf rogue-ca rogue-server "smtp.$ZONE" "$san"
  chmod 600 "$PKI"/*.key

  # sanity: the good one verifies, the bad ones fail for the intended reason
  openssl verify -CAfile "$PKI/ca.pem" -verify_hostname "smtp.$ZONE" "$PKI/server.pem" >/dev/null ||
    die "pki: server.pem does not verify"
  local out
  out=$(openssl verify -CAfile "$PKI/ca.pem" "$PKI/expired.pem" 2>&1) && die "pki: expired.pem verifies"
  [[ $out == *"certificate has expired"* ]] || die "pki: expired.pem fails for another reason: $out"
  # ... and expiry is its only fault (2020-07-01, inside its validity)
  openssl verify -CAfile "$PKI/ca.pem" -attime 1593561600 -verify_hostname "smtp-expired.$ZONE" \
    "$PKI/expired.pem" >/dev/null || die "pki: expired.pem has a fault besides its dates"
  openssl verify -CAfile "$PKI/ca.pem" "$PKI/rogue-server.pem" >/dev/null 2>&1 &&
    die "pki: rogue-server.pem verifies against the lab CA"
  openssl verify -CAfile "$PKI/rogue-ca.pem" -verify_hostname "smtp-rogue.$ZONE" "$PKI/rogue-server.pem" \
    >/dev/null || die "pki: rogue-server.pem does not verify against its own (rogue) CA"
  openssl verify -CAfile "$PKI/ca.pem" -verify_hostname "smtp.$ZONE" "$PKI/wrong-name.pem" >/dev/null 2>&1 &&
    die "pki: wrong-name.pem matches smtp.$ZONE"
  openssl verify -CAfile "$PKI/ca.pem" -verify_hostname wrong-name.invalid "$PKI/wrong-name.pem" >/dev/null ||
    die "pki: wrong-name.pem has a fault besides its name"
  printf '%s\n' "$PKI_STAMP" >"$PKI/.stamp"
  say "pki: new test CA, server, expired, wrong-name and rogue certificates in $PKI"
}

# ---------------------------------------------------------------- plan files -
smtp_password() {
  local f="$LAB/smtp/password" pw=${AIRGAP_LAB_SMTP_PASSWORD:-}
  mkdir -p "$LAB/smtp"
  if [ -n "$pw" ]; then
    [[ $pw =~ ^[A-Za-z0-9._-]+$ ]] || die "AIRGAP_LAB_SMTP_PASSWORD may hold only [A-Za-z0-9._-]"
  elif [ -s "$f" ]; then
    pw=$(cat "$f")
  else
    pw="lab-$(openssl rand -hex 12)"
  fi
  (umask 077 && printf '%s\n' "$pw" >"$f")
  SMTP_PASSWORD=$pw
}

write_env() {
  local ports
  ports=$(
    IFS=,
    echo "${TARPIT_PORTS[*]}"
  )
  cat >"$LAB/lab.env" <<EOF
# airgap-verify lab plan, written by scripts/lab.sh up: KEY=value, no quoting needed
AIRGAP_LAB_DIR=$LAB
LAB_ZONE=$ZONE
ALLOWED_NETWORKS=127.0.0.0/8
DNS_AUTH_ADDR=$DNS_AUTH_ADDR
DNS_AUTH_HOST=ns1.$ZONE
DNS_AUTH_PORT=53
DNS_FORWARDER_ADDR=$DNS_FORWARDER_ADDR
DNS_FORWARDER_HOST=resolver.$ZONE
DNS_FORWARDER_PORT=53
DNS_LEAKY_ADDR=$DNS_LEAKY_ADDR
DNS_LEAKY_HOST=leaky.$ZONE
DNS_LEAKY_PORT=53
DNS_PUBLIC_NAME=$PUBLIC_NAME
DNS_PUBLIC_LEAK_ADDR=$PUBLIC_LEAK_ADDR
DNS_CNAME_NAME=$CNAME_NAME
DNS_CNAME_TARGET=$CNAME_TARGET
DNS_CNAME_ADDR=$REGISTRY_ADDR
DNS_LEAK_NAME=leak.$ZONE
DNS_LEAK_ADDR=$LEAK_ADDR
DNS_LEAK_CNAME_NAME=cdn.$ZONE
DNS_EXTERNAL_CNAME_NAME=external.$ZONE
DNS_EXTERNAL_CNAME_TARGET=$PUBLIC_NAME
NTP_ADDR=$NTP_ADDR
NTP_HOST=ntp.$ZONE
NTP_PORT=123
NTP_STRATUM=$NTP_STRATUM
NTP_UNSYNC_ADDR=$NTP_UNSYNC_ADDR
NTP_UNSYNC_HOST=ntp-unsync.$ZONE
NTP_UNSYNC_PORT=123
SMTP_ADDR=$SMTP_ADDR
SMTP_HOST=smtp.$ZONE
SMTP_PORT=25
SMTP_SUBMISSION_PORT=587
SMTPS_PORT=465
SMTP_USER=$SMTP_USER
SMTP_SASL_REALM=$ZONE
SMTP_PASSWORD=$SMTP_PASSWORD
SMTP_EXPIRED_ADDR=$SMTP_EXPIRED_ADDR
SMTP_EXPIRED_HOST=smtp-expired.$ZONE
SMTP_ROGUE_ADDR=$SMTP_ROGUE_ADDR
SMTP_ROGUE_HOST=smtp-rogue.$ZONE
SMTP_WRONGNAME_ADDR=$SMTP_WRONGNAME_ADDR
SMTP_WRONGNAME_HOST=smtp-wrongname.$ZONE
SMTP_PLAIN_ADDR=$SMTP_PLAIN_ADDR
SMTP_PLAIN_HOST=smtp-plain.$ZONE
GIT_ADDR=$GIT_ADDR
GIT_HOST=git.$ZONE
REGISTRY_ADDR=$REGISTRY_ADDR
REGISTRY_HOST=registry.$ZONE
S3_ADDR=$S3_ADDR
S3_HOST=s3.$ZONE
BLACKHOLE_ADDR=$BLACKHOLE_ADDR
BLACKHOLE_HOST=blackhole.$ZONE
TARPIT_ADDR=$TARPIT_ADDR
TARPIT_HOST=tarpit.$ZONE
TARPIT_PORTS=$ports
TARPIT_HOLD_SECS=$TARPIT_HOLD
NFT_FAMILY=inet
NFT_TABLE=$NFT_TABLE
CA_PEM=$LAB/pki/ca.pem
CA_KEY=$LAB/pki/ca.key
SERVER_CERT=$LAB/pki/server.pem
SERVER_KEY=$LAB/pki/server.key
EXPIRED_CERT=$LAB/pki/expired.pem
EXPIRED_KEY=$LAB/pki/expired.key
WRONG_NAME_CERT=$LAB/pki/wrong-name.pem
WRONG_NAME_KEY=$LAB/pki/wrong-name.key
WRONG_NAME_HOST=wrong-name.invalid
ROGUE_CA_PEM=$LAB/pki/rogue-ca.pem
ROGUE_CA_KEY=$LAB/pki/rogue-ca.key
ROGUE_CERT=$LAB/pki/rogue-server.pem
ROGUE_KEY=$LAB/pki/rogue-server.key
PERIMETER_YML=$LAB/perimeter.yml
EOF
}

write_perimeter_yml() {
  cat >"$LAB/perimeter.yml" <<EOF
# airgap-verify perimeter description of the loopback lab (scripts/lab.sh up)
ca_bundle: $LAB/pki/ca.pem
allowed_networks: [127.0.0.0/8]
dns:
  servers: [$DNS_AUTH_ADDR, $DNS_FORWARDER_ADDR]
  expect:
    - name: smtp.$ZONE
      addresses: [$SMTP_ADDR]
    - name: ntp.$ZONE
      addresses: [$NTP_ADDR]
    - name: git.$ZONE
      addresses: [$GIT_ADDR]
    - name: registry.$ZONE
      addresses: [$REGISTRY_ADDR]
    - name: s3.$ZONE
      addresses: [$S3_ADDR]
    - name: $CNAME_NAME
      addresses: [$REGISTRY_ADDR]
ntp:
  servers: [$NTP_ADDR]
smtp:
  host: smtp.$ZONE
  port: 587
  starttls: true
  username: $SMTP_USER
  password_env: SMTP_PASSWORD
EOF
}

# ---------------------------------------------------------------- DNS --------
# unbound never sends a query to anything but loopback: every other IPv4
# address is listed in do-not-query-address (and IPv6 is off).
UNBOUND_NO_UPSTREAM="    do-not-query-address: 0.0.0.0/2
    do-not-query-address: 64.0.0.0/3
    do-not-query-address: 96.0.0.0/4
    do-not-query-address: 112.0.0.0/5
    do-not-query-address: 120.0.0.0/6
    do-not-query-address: 124.0.0.0/7
    do-not-query-address: 126.0.0.0/8
    do-not-query-address: 128.0.0.0/1"

unbound_common() { # dir addr
  cat <<EOF
server:
    verbosity: 1
    interface: $2
    port: 53
    interface-automatic: no
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    so-reuseport: no
    username: ""
    chroot: ""
    directory: "$1"
    pidfile: "$1/unbound.pid"
    use-syslog: no
    logfile: ""
    log-time-ascii: yes
    log-queries: yes
    log-replies: yes
    module-config: "iterator"
    qname-minimisation: no
    hide-identity: yes
    hide-version: yes
    # Debian's unbound serves a built-in empty "test." zone that shadows *.test
    local-zone: "test." nodefault
$UNBOUND_NO_UPSTREAM
EOF
}

unbound_forward() { # zone addr : forward a zone to the lab's authoritative server, nothing else
  cat <<EOF

forward-zone:
    name: "$1"
    forward-addr: $2@53
    forward-first: no
EOF
}

# Resolvers: loopback clients only; the only upstream is the auth server on loopback.
UNBOUND_RESOLVER="    access-control: 0.0.0.0/0 refuse
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    cache-max-ttl: 60
    cache-max-negative-ttl: 5"

write_dns() {
  local auth="$LAB/dns-auth" entry name addr svc
  mkdir -p "$LAB/dns-auth" "$LAB/dns-forwarder" "$LAB/dns-leaky"
  {
    printf '%s\n' "\$ORIGIN $ZONE." "\$TTL 300"
    printf '@\tIN SOA ns1.%s. hostmaster.%s. %s 3600 600 86400 300\n' "$ZONE" "$ZONE" "$(date +%s)"
    printf '@\tIN NS ns1.%s.\n' "$ZONE"
    printf '@\tIN MX 10 smtp.%s.\n' "$ZONE"
    for entry in "${HOST_PLAN[@]}"; do
      read -r name addr <<<"$entry"
      printf '%s\tIN A %s\n' "$name" "$addr"
    done
    printf '%s\tIN CNAME %s.\n' "${CNAME_NAME%."$ZONE"}" "$CNAME_TARGET"
    printf '; outside the perimeter: data only, never contacted by the lab\n'
    printf 'leak\tIN A %s\n' "$LEAK_ADDR"
    printf 'cdn\tIN CNAME leak.%s.\n' "$ZONE"
    printf 'external\tIN CNAME %s.\n' "$PUBLIC_NAME"
    printf '@\tIN TXT "airgap-verify lab zone"\n'
  } >"$auth/$ZONE.zone"

  {
    unbound_common "$auth" "$DNS_AUTH_ADDR"
    cat <<EOF
    # authoritative only: answer from the auth-zone, REFUSE everything else
    access-control: 0.0.0.0/0 refuse
    access-control: 127.0.0.0/8 refuse_non_local
    do-not-query-localhost: yes

auth-zone:
    name: "$ZONE."
    zonefile: "$auth/$ZONE.zone"
    for-downstream: yes
    for-upstream: no
    fallback-enabled: no

remote-control:
    control-enable: no
EOF
  } >"$auth/unbound.conf"

  # the forwarder sends everything to the auth server: public names fail
  {
    unbound_common "$LAB/dns-forwarder" "$DNS_FORWARDER_ADDR"
    printf '%s\n' "$UNBOUND_RESOLVER"
    unbound_forward . "$DNS_AUTH_ADDR"
    printf '\nremote-control:\n    control-enable: no\n'
  } >"$LAB/dns-forwarder/unbound.conf"

  # The leaky resolver behaves as if it reached the internet: the lab zone comes
  # from the auth server, $PUBLIC_NAME from a local copy of "its" zone that the
  # iterator treats as fetched (auth-zone for-upstream, so answers are recursive,
  # not authoritative, and CNAME chains such as external.$ZONE are followed).
  # Nothing is ever fetched: any other public name fails, since
  # do-not-query-address blocks the root servers.
  {
    printf '%s\n' "\$ORIGIN $PUBLIC_NAME." "\$TTL 300"
    printf '@\tIN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n' "$PUBLIC_NAME" "$PUBLIC_NAME"
    printf '@\tIN NS ns.%s.\n' "$PUBLIC_NAME"
    printf '%s\tIN A %s\n' @ "$PUBLIC_LEAK_ADDR" www "$PUBLIC_LEAK_ADDR" ns "$PUBLIC_LEAK_ADDR"
  } >"$LAB/dns-leaky/$PUBLIC_NAME.zone"
  {
    unbound_common "$LAB/dns-leaky" "$DNS_LEAKY_ADDR"
    printf '%s\n' "$UNBOUND_RESOLVER"
    unbound_forward "$ZONE." "$DNS_AUTH_ADDR"
    cat <<EOF

auth-zone:
    name: "$PUBLIC_NAME."
    zonefile: "$LAB/dns-leaky/$PUBLIC_NAME.zone"
    for-downstream: no
    for-upstream: yes
    fallback-enabled: no

remote-control:
    control-enable: no
EOF
  } >"$LAB/dns-leaky/unbound.conf"

  for svc in dns-auth dns-forwarder dns-leaky; do
    unbound-checkconf "$LAB/$svc/unbound.conf" >/dev/null || die "$svc: bad unbound config"
  done
}

# ---------------------------------------------------------------- NTP --------
write_ntp() { # service addr synced(yes/no)
  local dir="$LAB/$1"
  mkdir -p "$dir/run"
  {
    printf '# airgap-lab %s: chronyd -x (never touches the system clock)\n' "$1"
    printf 'bindaddress %s\nport 123\nallow 127.0.0.0/8\n' "$2"
    if [ "$3" = yes ]; then
      printf '# no sources: serve the local clock as a synchronised stratum-%s server\n' "$NTP_STRATUM"
      printf 'local stratum %s\n' "$NTP_STRATUM"
    else
      printf '# no sources and no local reference: answers with LI=3 (unsynchronised)\n'
    fi
    printf 'cmdport 0\nbindcmdaddress %s/run/chronyd.sock\n' "$dir"
    printf 'pidfile %s/run/chronyd.pid\ndriftfile %s/chrony.drift\n' "$dir" "$dir"
  } >"$dir/chrony.conf"
  # chronyd drops to _chrony: it must own its folders; the socket folder must be 0770 or stricter
  chown -R _chrony:_chrony "$dir"
  chmod 0750 "$dir"
  chmod 0770 "$dir/run"
}

# ---------------------------------------------------------------- SMTP -------
# master.cf lines for the fault listeners: the same postfix instance, each
# address with its own certificate (or none) through -o overrides.
smtp_fault_listeners() {
  local entry name addr cert
  for entry in "expired $SMTP_EXPIRED_ADDR expired" "rogue $SMTP_ROGUE_ADDR rogue-server" \
    "wrongname $SMTP_WRONGNAME_ADDR wrong-name"; do
    read -r name addr cert <<<"$entry"
    cat <<EOF
# smtp-$name.$ZONE: TLS with $cert.pem (STARTTLS on 25, implicit TLS on 465)
$addr:25        inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/$name-smtp
  -o myhostname=smtp-$name.$ZONE
  -o smtpd_tls_cert_file=$LAB/pki/$cert.pem
  -o smtpd_tls_key_file=$LAB/pki/$cert.key
  -o smtpd_tls_security_level=may
$addr:465       inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/$name-smtps
  -o myhostname=smtp-$name.$ZONE
  -o smtpd_tls_cert_file=$LAB/pki/$cert.pem
  -o smtpd_tls_key_file=$LAB/pki/$cert.key
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
EOF
  done
  cat <<EOF
# smtp-plain.$ZONE: no TLS at all; 587 takes the password in clear text
$SMTP_PLAIN_ADDR:25        inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/plain-smtp
  -o myhostname=smtp-plain.$ZONE
  -o smtpd_tls_security_level=none
$SMTP_PLAIN_ADDR:587       inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/plain-submission
  -o myhostname=smtp-plain.$ZONE
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=no
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
EOF
}

write_smtp() {
  local dir="$LAB/smtp" conf="$LAB/smtp/etc"
  mkdir -p "$conf/sasl" "$dir/queue" "$dir/data"
  chown postfix:postfix "$dir/data"
  cat >"$conf/main.cf" <<EOF
# airgap-lab postfix instance: postfix -c $conf ...
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $LAB
maillog_file = $LAB/log/smtp.log

myhostname = smtp.$ZONE
mydomain = $ZONE
myorigin = \$mydomain
mydestination = \$myhostname, \$mydomain, localhost
# postfix refuses a 127.0.0.x other than 127.0.0.1 here: master.cf binds $SMTP_ADDR
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks =
smtpd_banner = \$myhostname ESMTP airgap-lab
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled

# nothing ever leaves the lab: accepted mail is discarded
local_transport = discard:airgap-lab
default_transport = discard:airgap-lab
relay_transport = discard:airgap-lab

smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =

smtpd_tls_cert_file = $LAB/pki/server.pem
smtpd_tls_key_file = $LAB/pki/server.key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtp_tls_security_level = none

smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $conf/sasl
smtpd_sasl_auth_enable = no
smtpd_sasl_local_domain = $ZONE
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = yes
broken_sasl_auth_clients = no
EOF
  cat >"$conf/master.cf" <<EOF
# service            type  private unpriv chroot wakeup maxproc command
$SMTP_ADDR:25        inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/smtp
$SMTP_ADDR:587       inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
$SMTP_ADDR:465       inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
$(smtp_fault_listeners)
pickup               unix  n       -      n      60     1       pickup
cleanup              unix  n       -      n      -      0       cleanup
qmgr                 unix  n       -      n      300    1       qmgr
tlsmgr               unix  -       -      n      1000?  1       tlsmgr
rewrite              unix  -       -      n      -      -       trivial-rewrite
bounce               unix  -       -      n      -      0       bounce
defer                unix  -       -      n      -      0       bounce
trace                unix  -       -      n      -      0       bounce
verify               unix  -       -      n      -      1       verify
flush                unix  n       -      n      1000?  0       flush
proxymap             unix  -       -      n      -      -       proxymap
proxywrite           unix  -       -      n      -      1       proxymap
showq                unix  n       -      n      -      -       showq
error                unix  -       -      n      -      -       error
retry                unix  -       -      n      -      -       error
discard              unix  -       -      n      -      -       discard
anvil                unix  -       -      n      -      1       anvil
scache               unix  -       -      n      -      1       scache
postlog              unix-dgram n  -      n      -      1       postlogd
# deliberately no smtp/relay/lmtp client: the lab cannot deliver mail anywhere
EOF
  cat >"$conf/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $dir/sasldb2
mech_list: PLAIN LOGIN
EOF
  rm -f "$dir/sasldb2"
  printf '%s' "$SMTP_PASSWORD" | saslpasswd2 -c -p -f "$dir/sasldb2" -u "$ZONE" "$SMTP_USER" ||
    die "smtp: saslpasswd2 failed"
  chown root:postfix "$dir/sasldb2"
  chmod 0640 "$dir/sasldb2"
}

postfix_cmd() { # args... : postfix prints its errors only to a tty or syslog
  script -qec "postfix -c $LAB/smtp/etc $*" /dev/null </dev/null 9>&-
}

record_master() { # true once postfix's master has written its pid and is alive
  local pid
  pid=$(tr -d ' \n' <"$LAB/smtp/queue/pid/master.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && record_pid smtp "$pid"
}

start_smtp() {
  local out
  # "postfix start" runs the same integrity checks as "postfix check" (create-missing,
  # permissions) and prints their errors through script(1)'s terminal
  printf '\n==== %s postfix start\n' "$(date -Is)" >>"$LAB/log/smtp-start.log"
  if ! out=$(postfix_cmd start 2>&1); then
    printf '%s\n' "$out" >>"$LAB/log/smtp-start.log"
    printf '%s\n' "$out" >&2
    die "smtp: postfix start failed"
  fi
  printf '%s\n' "$out" >>"$LAB/log/smtp-start.log"
  wait_for 50 record_master ||
    die "smtp: postfix master did not write $LAB/smtp/queue/pid/master.pid"
}

pgroup_alive() { # pgid: true while a non-zombie process is in that process group
  local f stat rest fields
  for f in /proc/[0-9]*/stat; do
    read -r stat 2>/dev/null <"$f" || continue
    rest=${stat##*) }
    read -r -a fields <<<"$rest"
    [ "${fields[2]}" = "$1" ] && [ "${fields[0]}" != Z ] && return 0
  done
  return 1
}

pgroup_gone() { ! pgroup_alive "$1"; }

stop_smtp() {
  local pid
  if pid=$(svc_pid smtp); then
    # the master leads its own process group and takes its children down with it
    stop_svc smtp
    if ! wait_for 30 pgroup_gone "$pid"; then
      warn "smtp: postfix children of $pid still alive, sending SIGKILL to the group"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$LAB/run/smtp.pid" "$LAB/run/smtp.id"
}

# ---------------------------------------------------------------- nft/hosts --
nft_up() {
  nft -f - <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
  comment "airgap-verify lab: blackhole $BLACKHOLE_ADDR"
  chain input {
    type filter hook input priority -10; policy accept;
    ip daddr $BLACKHOLE_ADDR counter drop
  }
}
EOF
}

nft_down() {
  if nft list table inet "$NFT_TABLE" >/dev/null 2>&1; then
    nft delete table inet "$NFT_TABLE"
    say "removed nft table inet $NFT_TABLE"
  fi
}

hosts_down() {
  grep -qxF "$HOSTS_BEGIN" "$HOSTS_FILE" 2>/dev/null || return 0
  local tmp
  tmp=$(mktemp)
  awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0==b{skip=1;next} $0==e{skip=0;next} !skip' \
    "$HOSTS_FILE" >"$tmp"
  cat "$tmp" >"$HOSTS_FILE" # rewrite in place: /etc/hosts may be a bind mount
  rm -f "$tmp"
  say "removed the airgap-lab block from $HOSTS_FILE"
}

hosts_up() {
  hosts_down >/dev/null
  local entry name addr
  [ ! -s "$HOSTS_FILE" ] || [ -z "$(tail -c1 "$HOSTS_FILE")" ] || echo >>"$HOSTS_FILE"
  {
    printf '%s\n' "$HOSTS_BEGIN"
    for entry in "${HOST_PLAN[@]}"; do
      read -r name addr <<<"$entry"
      printf '%s\t%s.%s\n' "$addr" "$name" "$ZONE"
    done
    printf '%s\n' "$HOSTS_END"
  } >>"$HOSTS_FILE"
}

# ---------------------------------------------------------------- ports ------
port_conflicts() { # fails (listing them) if anything already holds a lab address:port
  local want=(
    "udp $DNS_AUTH_ADDR:53" "tcp $DNS_AUTH_ADDR:53"
    "udp $DNS_FORWARDER_ADDR:53" "tcp $DNS_FORWARDER_ADDR:53"
    "udp $DNS_LEAKY_ADDR:53" "tcp $DNS_LEAKY_ADDR:53"
    "udp $NTP_ADDR:123" "udp $NTP_UNSYNC_ADDR:123"
    "tcp $SMTP_ADDR:25" "tcp $SMTP_ADDR:465" "tcp $SMTP_ADDR:587"
    "tcp $SMTP_EXPIRED_ADDR:25" "tcp $SMTP_EXPIRED_ADDR:465"
    "tcp $SMTP_ROGUE_ADDR:25" "tcp $SMTP_ROGUE_ADDR:465"
    "tcp $SMTP_WRONGNAME_ADDR:25" "tcp $SMTP_WRONGNAME_ADDR:465"
    "tcp $SMTP_PLAIN_ADDR:25" "tcp $SMTP_PLAIN_ADDR:587"
  )
  local p
  for p in "${TARPIT_PORTS[@]}"; do want+=("tcp $TARPIT_ADDR:$p"); done
  local listening busy=0 w proto ap port
  listening=$(ss -Hlnutp 2>/dev/null || true)
  for w in "${want[@]}"; do
    read -r proto ap <<<"$w"
    port=${ap##*:}
    # exact address, or a wildcard bind on the same port
    if awk -v proto="$proto" -v ap="$ap" -v port="$port" '
        $1 == proto && ($5 == ap || $5 == "0.0.0.0:" port || $5 == "*:" port) { print; found=1 }
        END { exit !found }' <<<"$listening" >&2; then
      warn "$proto $ap is already in use (see the line above)"
      busy=1
    fi
  done
  [ "$busy" -eq 0 ] || die "lab ports are busy: stop whatever holds them (lab.sh down stops only what it recorded)"
}

# ---------------------------------------------------------------- commands ---
stop_all() { # in reverse start order
  local i svc
  mkdir -p "$LAB/run"
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    svc=${SERVICES[i]}
    if [ "$svc" = smtp ]; then stop_smtp; else stop_svc "$svc"; fi
  done
}

log_tail() { # service
  local f
  for f in "$LAB/log/$1.log" "$LAB/log/$1-start.log"; do
    [ -s "$f" ] || continue
    printf -- '---- %s (this run, last 25 lines)\n' "$f" >&2
    awk '/^==== /{n=0} {buf[n++]=$0} END{for(i=(n>25?n-25:0);i<n;i++) print buf[i]}' "$f" >&2
  done
}

cmd_up() {
  need_root
  check_lab_dir
  local t0=$SECONDS
  lock_lab
  mkdir -p "$LAB/log" "$LAB/run"
  trap restore_policy_rc EXIT
  install_packages
  stop_all
  nft_down >/dev/null
  port_conflicts

  make_pki
  smtp_password
  write_env
  write_perimeter_yml
  write_dns
  write_ntp ntp "$NTP_ADDR" yes
  write_ntp ntp-unsync "$NTP_UNSYNC_ADDR" no
  write_smtp
  hosts_up
  nft_up || die "could not load the nft table inet $NFT_TABLE"

  local svc
  for svc in dns-auth dns-forwarder dns-leaky; do
    start_bg "$svc" unbound -d -c "$LAB/$svc/unbound.conf"
  done
  start_bg ntp chronyd -x -d -f "$LAB/ntp/chrony.conf"
  start_bg ntp-unsync chronyd -x -d -f "$LAB/ntp-unsync/chrony.conf"
  local port_args=() p
  for p in "${TARPIT_PORTS[@]}"; do port_args+=(--port "$p"); done
  start_bg tarpit "$PY" "$HELPERS/tarpit.py" --host "$TARPIT_ADDR" "${port_args[@]}" --hold "$TARPIT_HOLD"
  start_smtp

  say "checking the services (deadline ${READY_TIMEOUT}s)"
  local failed="$LAB/run/failed"
  if ! "$PY" "$HELPERS/check.py" 9>&- --env "$LAB/lab.env" --timeout "$READY_TIMEOUT" --failed-file "$failed"; then
    while read -r svc; do
      [ "$svc" != blackhole ] || {
        nft list table inet "$NFT_TABLE" >&2 || true
        continue
      }
      svc_pid "$svc" >/dev/null || warn "$svc: process is not running"
      log_tail "$svc"
    done <"$failed"
    die "lab is not healthy (services left running for inspection; 'scripts/lab.sh down' stops them)"
  fi
  rm -f "$failed"
  say "up in $((SECONDS - t0))s: lab.env and perimeter.yml in $LAB"
}

cmd_down() {
  need_root
  check_lab_dir
  if [ -d "$LAB" ]; then
    lock_lab
    stop_all
  fi
  nft_down
  hosts_down
  say "down"
}

cmd_status() {
  check_lab_dir
  local svc pid bad=0
  for svc in "${SERVICES[@]}"; do
    if pid=$(svc_pid "$svc"); then
      printf '%-14s up    pid %s\n' "$svc" "$pid"
    else
      printf '%-14s DOWN\n' "$svc"
      bad=1
    fi
  done
  if nft list table inet "$NFT_TABLE" >/dev/null 2>&1; then
    printf '%-14s up    nft table inet %s drops %s\n' blackhole "$NFT_TABLE" "$BLACKHOLE_ADDR"
  else
    printf '%-14s DOWN  (no nft table inet %s)\n' blackhole "$NFT_TABLE"
    bad=1
  fi
  if grep -qxF "$HOSTS_BEGIN" "$HOSTS_FILE" 2>/dev/null; then
    printf '%-14s up    block in %s\n' hosts "$HOSTS_FILE"
  else
    printf '%-14s DOWN  (no airgap-lab block in %s)\n' hosts "$HOSTS_FILE"
    bad=1
  fi
  return "$bad"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
