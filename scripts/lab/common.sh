# shellcheck shell=bash
# Helpers shared by scripts/lab.sh and scripts/netlab.sh, which source this
# file after setting LOG_TAG (the prefix of their messages: lab, netlab).

say() { printf '%s: %s\n' "$LOG_TAG" "$*"; }
warn() { printf '%s: warning: %s\n' "$LOG_TAG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$LOG_TAG" "$*" >&2
  exit 1
}

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

wait_for() { # tenths command... : true as soon as the command succeeds, false after tenths/10 s
  local i
  for ((i = 0; i < $1 * 2; i++)); do
    "${@:2}" && return 0
    sleep 0.05
  done
  "${@:2}"
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

recorded_pid() { # id-file ("PID STARTTIME") -> prints the PID if that process is still alive
  local pid start now
  read -r pid start 2>/dev/null <"$1" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(proc_starttime "$pid") || return 1
  [ "$now" = "$start" ] || return 1
  printf '%s\n' "$pid"
}

pgroup_alive() { # pgid: true while a non-zombie process is in that process group
  ps -A -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

pgroup_gone() { ! pgroup_alive "$1"; }
