#!/usr/bin/env bash
# shellcheck disable=SC2317 # cleanup and the c_* commands are called indirectly (trap, "c_$key")
# Benchmark `airgap-verify bundle` against the tools an operator uses today.
#
# Generates two release shapes, warms the page cache, then times side by
# side (round-robin, N runs each) and reports the median wall time of:
# - the Sekoia-shaped sample (`airgap-verify sample`: few text files, large
#   image files): openssl dgst -sha256 X.tar, sha256sum X.tar, gzip -dc
#   X.tar.gz, the operator path on X.tar and on X.tar.gz (sha256sum -c of
#   the archive, tar x, sha256sum -c of the files listed in
#   platform/v1.0.0/manifest.json), airgap-verify bundle --no-content X.tar
#   and X.tar.gz, and the full-content pass of X.tar against gzip -dc of its
#   nested images;
# - the text-heavy shape (scripts/gen-text-release.py: OCI layouts, about
#   3,300 small YAML/JSON files, ten 2-16 MiB SBOMs, about 10% text, a
#   SHA256SUMS at the top): airgap-verify bundle X.tar, default and
#   --no-content, against openssl dgst -sha256 X.tar;
# - the folder form of each shape (the archive extracted, untimed):
#   airgap-verify bundle FOLDER, default and --no-content, against
#   `find FOLDER -type f | xargs -P<cores> openssl dgst -sha256`;
# with the peak RSS of every airgap-verify run, the CPU seconds (user +
# system, median) of every command and the load average around each pass:
# on a machine others use, CPU seconds move much less than wall time.
# Then prints the acceptance ratios with PASS/FAIL and, unless --no-double,
# repeats everything at twice the size to check that time is linear and
# memory flat. It is a measurement: it exits 0 even when targets are missed.
#
# Usage: scripts/bench-bundle.sh [--size SIZE] [--runs N] [--workdir DIR] [--no-double] [--floor]
#   --size SIZE     release size, e.g. 512MiB, 1GiB (default 1GiB)
#   --runs N        timed runs per command (default 3)
#   --workdir DIR   where to write the archives; a fresh bench-bundle.XXXXXX
#                   folder is made inside it and removed at the end
#                   (default: a mktemp folder under /var/tmp)
#   --no-double     skip the run at twice the size
#   --floor         also time the fastest decompressors there are for the .tar.gz
#                   (libdeflate-gunzip, one core; rapidgzip -P <cores>, parallel;
#                   installed from Debian and PyPI) and openssl of the .tar.gz
#                   and the .tar, and print the lower bound on any verifier
#                   (the two SHA-256 passes, the archive's and its members',
#                   spread over the cores) and an estimate that adds the
#                   cheaper inflater's CPU time
#
# Honours CARGO_TARGET_DIR (otherwise the repository's target/).
# Needs root (or the tools already installed) on Debian: installs `time`,
# `openssl` and `jq` with apt-get when missing; python3 writes the text shape.

set -euo pipefail

# ---------------------------------------------------------------- arguments

SIZE_ARG=1GiB
RUNS=3
WORKDIR_BASE=
DOUBLE=1
FLOOR=0
MIN_FREE_BYTES=12000000000 # 12 GB

usage() {
    sed -n '3,/^set -euo/{/^#/!d;s/^# \{0,1\}//;p}' "$0"
}

die() {
    echo "bench-bundle: error: $*" >&2
    exit 1
}

log() {
    echo "bench-bundle: $*" >&2
}

while (($#)); do
    case $1 in
        --size) (($# >= 2)) || die "--size needs a value"; SIZE_ARG=$2; shift 2 ;;
        --size=*) SIZE_ARG=${1#*=}; shift ;;
        --runs) (($# >= 2)) || die "--runs needs a value"; RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --workdir) (($# >= 2)) || die "--workdir needs a value"; WORKDIR_BASE=$2; shift 2 ;;
        --workdir=*) WORKDIR_BASE=${1#*=}; shift ;;
        --no-double) DOUBLE=0; shift ;;
        --floor) FLOOR=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((10#$RUNS < 1)); then
    die "--runs must be a positive integer, got '$RUNS'"
fi
RUNS=$((10#$RUNS))

# Same units as airgap-verify's parse_size (src/cli.rs).
parse_size() {
    local s=$1 mult
    [[ $s =~ ^[[:space:]]*([0-9]+)[[:space:]]*([A-Za-z]*)[[:space:]]*$ ]] || return 1
    case ${BASH_REMATCH[2]} in
        '' | B) mult=1 ;;
        KiB | K | k) mult=$((1 << 10)) ;;
        MiB | M) mult=$((1 << 20)) ;;
        GiB | G) mult=$((1 << 30)) ;;
        KB | kB) mult=1000 ;;
        MB) mult=1000000 ;;
        GB) mult=1000000000 ;;
        *) return 1 ;;
    esac
    echo $((10#${BASH_REMATCH[1]} * mult))
}

SIZE_BYTES=$(parse_size "$SIZE_ARG") || die "--size: '$SIZE_ARG' is not a size such as 512MiB or 1GiB"
((SIZE_BYTES > 0)) || die "--size must be larger than 0"

human_size() {
    awk -v b="$1" 'BEGIN {
        if (b >= 1073741824 && b % 1073741824 == 0) printf "%dGiB", b / 1073741824
        else if (b >= 1048576 && b % 1048576 == 0) printf "%dMiB", b / 1048576
        else printf "%.1fMiB", b / 1048576 }'
}

# ---------------------------------------------------------------- tools

export DEBIAN_FRONTEND=noninteractive

apt_install() {
    command -v apt-get > /dev/null || die "cannot install $* (no apt-get); install it and rerun"
    log "installing $*"
    if ! apt-get install -y -q "$@" > /dev/null; then
        log "apt-get install failed, running apt-get update first"
        apt-get update -q > /dev/null
        apt-get install -y -q "$@" > /dev/null
    fi
}

[[ -x /usr/bin/time ]] || apt_install time
command -v openssl > /dev/null || apt_install openssl
command -v python3 > /dev/null || apt_install python3
for tool in sha256sum gzip tar awk sort df mktemp find xargs; do
    command -v "$tool" > /dev/null || die "$tool is missing"
done
# jq (or python3) turns manifest.json into a sha256sum list.
if ! command -v jq > /dev/null && ! command -v python3 > /dev/null; then
    apt_install jq
fi
command -v cargo > /dev/null || die "cargo is missing; install a Rust toolchain (rustup) first"
RAPIDGZIP=
if ((FLOOR)); then
    command -v libdeflate-gunzip > /dev/null || apt_install libdeflate-tools
    # rapidgzip (parallel speculative inflate) is on PyPI only: a venv of its own.
    venv=/var/tmp/bench-bundle-venv
    if [[ ! -x $venv/bin/rapidgzip ]]; then
        command -v python3 > /dev/null || apt_install python3
        python3 -m venv "$venv" > /dev/null 2>&1 || apt_install python3-venv
        [[ -x $venv/bin/pip ]] || python3 -m venv "$venv" || die "cannot create a venv in $venv"
        log "installing rapidgzip into $venv"
        "$venv/bin/pip" install -q --disable-pip-version-check rapidgzip > /dev/null ||
            die "pip install rapidgzip failed"
    fi
    RAPIDGZIP=$venv/bin/rapidgzip
fi

# manifest.json on stdin -> "<sha256>  <path>" lines on stdout.
manifest_to_sha256sum() {
    if command -v jq > /dev/null; then
        jq -r '.files[] | "\(.sha256)  \(.path)"'
    else
        python3 -c 'import json, sys
for f in json.load(sys.stdin)["files"]:
    print(f["sha256"] + "  " + f["path"])'
    fi
}

# ---------------------------------------------------------------- build

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log "building airgap-verify (cargo build --release) in $REPO"
(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"

# cargo resolves CARGO_TARGET_DIR (and .cargo/config) itself; ask it where.
TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
    if command -v jq > /dev/null; then
        jq -r .target_directory
    else
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
    fi)
BIN=$TARGET_DIR/release/airgap-verify
[[ -x $BIN ]] || die "built binary not found at $BIN"
log "binary: $BIN ($("$BIN" --version))"
# Where the pass takes a plain tar's digest depends on what a pair of
# SHA-256 digests costs on this CPU (see README, Benchmark): print it.
(cd "$REPO" && cargo build --release --quiet --example sha256-pair) || die "cargo build --example sha256-pair failed"
log "SHA-256 on this CPU: $("$TARGET_DIR/release/examples/sha256-pair" --cost)"

# ---------------------------------------------------------------- workdir

if [[ -z $WORKDIR_BASE ]]; then
    WORKDIR_BASE=/var/tmp
fi
mkdir -p "$WORKDIR_BASE" || die "cannot create $WORKDIR_BASE"

free_kib=$(df -Pk "$WORKDIR_BASE" | awk 'NR == 2 { print $4 }')
free_bytes=$((free_kib * 1024))
# 12 GB floor (1 GiB + 2 GiB runs); more for larger --size: the double run
# holds a 2x .tar, its .gz and one extraction (about 6x), plus margin.
need_bytes=$MIN_FREE_BYTES
# Each pass also holds the sample's folder form and the text shape's .tar
# and folder (about 4x more).
if ((DOUBLE)); then est=$((SIZE_BYTES * 18)); else est=$((SIZE_BYTES * 9)); fi
((est > need_bytes)) && need_bytes=$est
if ((free_bytes < need_bytes)); then
    die "$(awk -v f="$free_bytes" -v n="$need_bytes" -v d="$WORKDIR_BASE" 'BEGIN {
        printf "only %.1f GB free on %s, need at least %.1f GB; free some space or pass --workdir on a larger disk", f / 1e9, d, n / 1e9 }')"
fi

WORK=
cleanup() {
    if [[ -n $WORK && -d $WORK ]]; then
        rm -rf -- "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
WORK=$(mktemp -d -p "$WORKDIR_BASE" bench-bundle.XXXXXX)
log "workdir: $WORK ($(awk -v f="$free_bytes" 'BEGIN { printf "%.1f GB free", f / 1e9 }'))"

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }

median() { # values as arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# PASS/FAIL: verdict VALUE OP TARGET, OP one of <= >=
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == "<=") ? (v <= t) : (v >= t); print ok ? "PASS" : "FAIL" }'
}

PASSES=0
FAILS=0
CUR_SIZE=''
FAILED_LINES=()
SUMMARY_LINES=()

# check LABEL VALUE TARGET VERDICT [DETAIL]: one acceptance line, counted.
check() {
    local label=$1 value=$2 target=$3 v=$4 detail=${5:-} line
    printf '  %-58s %10s  %-18s %s%s\n' "$label" "$value" "$target" "$v" "${detail:+  $detail}"
    line="${CUR_SIZE:+[$CUR_SIZE] }$label: $value (target $target) $v"
    SUMMARY_LINES+=("$line")
    if [[ $v == PASS ]]; then
        PASSES=$((PASSES + 1))
    else
        FAILS=$((FAILS + 1))
        FAILED_LINES+=("$line")
    fi
}

# ratio_line LABEL VALUE OP TARGET [UNIT]
ratio_line() {
    local label=$1 value=$2 op=$3 target=$4 unit=${5:-}
    check "$label" "$(printf '%.2f%s' "$value" "$unit")" "$op $target$unit" "$(verdict "$value" "$op" "$target")"
}

# Per-pass state, set by prepare_pass.
DIR='' TAR='' GZ='' TAR_NAME='' GZ_NAME='' SUMS='' EXTRACT='' RSS_FILE='' CPU_FILE=''
FOLDER='' TTAR='' TFOLDER=''

# The operator's path today: check the archive's .sha256, extract it, check
# every file listed in manifest.json. Removal is done afterwards, untimed.
operator_path() { # ARCHIVE_NAME TAR_FLAGS
    local name=$1 flags=$2
    (cd "$DIR" && sha256sum -c "$name.sha256" > /dev/null) || return 1
    mkdir "$EXTRACT" || return 1
    tar "$flags" "$DIR/$name" -C "$EXTRACT" || return 1
    (cd "$EXTRACT/platform/v1.0.0" && sha256sum -c --quiet "$SUMS") || return 1
}

remove_extraction() {
    rm -rf -- "$EXTRACT"
    sync
}

c_openssl() { openssl dgst -sha256 "$TAR" > /dev/null; }
c_sha256sum() { sha256sum "$TAR" > /dev/null; }
c_gzip() { gzip -dc "$GZ" > /dev/null; }
c_op_tar() { operator_path "$TAR_NAME" xf; }
c_op_gz() { operator_path "$GZ_NAME" xzf; }
# The archive pass (issue: container, entries, manifests) runs with
# --no-content; the full-content pass (images, charts, bundles validated
# inside the same single pass) is measured separately against gzip -dc of
# the nested image files it has to decompress.
c_av_tar() { /usr/bin/time -f %M -o "$RSS_FILE" "$BIN" bundle "$TAR" --no-content --no-progress --format json > /dev/null; }
c_av_gz() { /usr/bin/time -f %M -o "$RSS_FILE" "$BIN" bundle "$GZ" --no-content --no-progress --format json > /dev/null; }
c_av_full() { /usr/bin/time -f %M -o "$RSS_FILE" "$BIN" bundle "$TAR" --no-progress --format json > /dev/null; }
# The same full-content pass with the sample's Sigstore bundles verified
# (beside the archive, beside its manifest, its OCI image's signature and
# attestations) against the sample's own trusted root: what verifying the
# signatures adds to the pass.
c_av_signed() {
    /usr/bin/time -f %M -o "$RSS_FILE" "$BIN" bundle "$TAR" --no-progress --format json \
        --certificate-identity release@sekoia.example --certificate-oidc-issuer https://oidc.sekoia.example \
        --trusted-root "$DIR/sample-trusted_root.json" > /dev/null
}
c_gzip_img() { gzip -dc "$IMGDIR"/platform/v1.0.0/images/*.tar.gz > /dev/null; }
# Folders: every file hashed by openssl, <cores> processes at a time, 64
# files each (fewer processes than -n 16, and as fast on 2 cores).
hash_folder() { find "$1" -type f -print0 | xargs -0 -n 64 -P "$(nproc)" openssl dgst -sha256 > /dev/null; }
av_rss() { /usr/bin/time -f %M -o "$RSS_FILE" "$BIN" bundle "$@" --no-progress --format json > /dev/null; }
c_fold_ssl() { hash_folder "$FOLDER"; }
c_av_fold_nc() { av_rss "$FOLDER" --no-content; }
c_av_fold() { av_rss "$FOLDER"; }
c_t_openssl() { openssl dgst -sha256 "$TTAR" > /dev/null; }
c_t_av_nc() { av_rss "$TTAR" --no-content; }
c_t_av() { av_rss "$TTAR"; }
c_t_fold_ssl() { hash_folder "$TFOLDER"; }
c_t_av_fold_nc() { av_rss "$TFOLDER" --no-content; }
c_t_av_fold() { av_rss "$TFOLDER"; }
# --floor: CPU seconds (user + system) go to $CPU_FILE.
c_libdeflate() { /usr/bin/time -f '%U %S' -o "$CPU_FILE" libdeflate-gunzip -c "$GZ" > /dev/null; }
c_rapidgzip() { /usr/bin/time -f '%U %S' -o "$CPU_FILE" "$RAPIDGZIP" -d -c -P "$(nproc)" "$GZ" > /dev/null; }
c_openssl_gz() { /usr/bin/time -f '%U %S' -o "$CPU_FILE" openssl dgst -sha256 "$GZ" > /dev/null; }
c_openssl_tar() { /usr/bin/time -f '%U %S' -o "$CPU_FILE" openssl dgst -sha256 "$TAR" > /dev/null; }

KEYS=(openssl sha256sum gzip op_tar op_gz av_tar av_gz gzip_img av_full av_signed
    fold_ssl av_fold_nc av_fold
    t_openssl t_av_nc t_av t_fold_ssl t_av_fold_nc t_av_fold)
# The airgap-verify runs, whose peak RSS is kept.
AV_KEYS=(av_tar av_gz av_full av_signed av_fold_nc av_fold t_av_nc t_av t_av_fold_nc t_av_fold)
is_av() { [[ " ${AV_KEYS[*]} " == *" $1 "* ]]; }
declare -A LABEL=(
    [openssl]="openssl dgst -sha256 X.tar"
    [sha256sum]="sha256sum X.tar"
    [gzip]="gzip -dc X.tar.gz > /dev/null"
    [op_tar]="operator path on X.tar"
    [op_gz]="operator path on X.tar.gz"
    [av_tar]="airgap-verify bundle --no-content X.tar"
    [av_gz]="airgap-verify bundle --no-content X.tar.gz"
    [gzip_img]="gzip -dc images/*.tar.gz (nested)"
    [av_full]="airgap-verify bundle X.tar (full content)"
    [av_signed]="same, Sigstore signatures verified"
    [fold_ssl]="find F | xargs -P<cores> openssl dgst"
    [av_fold_nc]="airgap-verify bundle --no-content F/"
    [av_fold]="airgap-verify bundle F/ (default)"
    [t_openssl]="text: openssl dgst -sha256 X.tar"
    [t_av_nc]="text: airgap-verify --no-content X.tar"
    [t_av]="text: airgap-verify X.tar (default)"
    [t_fold_ssl]="text: find F | xargs -P<cores> openssl"
    [t_av_fold_nc]="text: airgap-verify --no-content F/"
    [t_av_fold]="text: airgap-verify F/ (default)"
    [libdeflate]="libdeflate-gunzip -c X.tar.gz (1 core)"
    [rapidgzip]="rapidgzip -d -P <cores> X.tar.gz"
    [openssl_gz]="openssl dgst -sha256 X.tar.gz"
    [openssl_tar]="openssl dgst -sha256 X.tar (CPU)"
)
((FLOOR)) && KEYS+=(libdeflate rapidgzip openssl_gz openssl_tar)
declare -A CPU=()

# Results per pass (index 1 = base size, 2 = double size).
declare -A MED=() RSS=() TAR_BYTES=() GZ_BYTES=() TTAR_BYTES=() RUN_TIMES=()
# CPU seconds (user + system, the command and every process it waited for)
# of each command, median of the runs: unlike wall time, hardly moved by
# other work on a shared machine. And the load average around each pass.
declare -A CPU_MED=() LOAD=()

# The shell's children's CPU seconds so far, from a file `times` wrote
# (`times` itself runs in this shell: a subshell has no children yet).
children_cpu() { # FILE
    awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        printf "%.3f", t }' "$1"
}

prepare_pass() { # PASS SIZE_BYTES
    local pass=$1 bytes=$2 t0 t1
    DIR=$WORK/sample-$(human_size "$bytes")
    EXTRACT=$WORK/extract
    RSS_FILE=$WORK/rss.txt
    CPU_FILE=$WORK/cpu.txt
    log "pass $pass: generating a $(human_size "$bytes") sample in $DIR"
    t0=$(now)
    "$BIN" sample "$DIR" --size "$bytes" --gzip > /dev/null || die "airgap-verify sample failed"
    t1=$(now)
    log "pass $pass: sample written in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    TAR_NAME=sekoia-self-hosted-v1.0.0.tar
    GZ_NAME=$TAR_NAME.gz
    TAR=$DIR/$TAR_NAME
    GZ=$DIR/$GZ_NAME
    for f in "$TAR" "$TAR.sha256" "$TAR.sigstore.json" "$GZ" "$GZ.sha256" "$DIR/sample-trusted_root.json"; do
        [[ -f $f ]] || die "airgap-verify sample did not write $f"
    done
    TAR_BYTES[$pass]=$(stat -c %s "$TAR")
    GZ_BYTES[$pass]=$(stat -c %s "$GZ")

    # Checksum list for the operator path, converted once, untimed.
    SUMS=$DIR/manifest.sha256sum
    tar -xOf "$TAR" platform/v1.0.0/manifest.json | manifest_to_sha256sum > "$SUMS" ||
        die "cannot read platform/v1.0.0/manifest.json from $TAR"
    [[ -s $SUMS ]] || die "platform/v1.0.0/manifest.json lists no files"
    log "pass $pass: .tar $(human_size "${TAR_BYTES[$pass]}"), .tar.gz $(human_size "${GZ_BYTES[$pass]}"), $(wc -l < "$SUMS") files in manifest.json"

    # The nested image files, extracted once (untimed) for the gzip -dc baseline.
    IMGDIR=$DIR/images-extracted
    rm -rf -- "$IMGDIR"
    mkdir -p "$IMGDIR"
    tar -xf "$TAR" -C "$IMGDIR" platform/v1.0.0/images || die "cannot extract the images from $TAR"

    # The sample's folder form: the archive extracted once, untimed.
    FOLDER=$DIR/folder
    mkdir -p "$FOLDER"
    tar -xf "$TAR" -C "$FOLDER" || die "cannot extract $TAR"

    # The text-heavy shape, its .tar (reproducible: sorted, no owners or
    # times) and its checksum; the folder it was made from is its folder form.
    log "pass $pass: generating the $(human_size "$bytes") text-heavy shape"
    python3 "$REPO/scripts/gen-text-release.py" "$DIR/text" "$bytes" >&2 || die "gen-text-release.py failed"
    TFOLDER=$DIR/text/release
    TTAR=$DIR/text-release.tar
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$TTAR" -C "$TFOLDER" . ||
        die "cannot write $TTAR"
    (cd "$DIR" && sha256sum "$(basename "$TTAR")" > "$TTAR.sha256")
    TTAR_BYTES[$pass]=$(stat -c %s "$TTAR")

    # Flush the freshly written files, then warm the page cache once.
    sync
    cat "$TAR" "$TAR.sha256" "$GZ" "$GZ.sha256" "$SUMS" "$IMGDIR"/platform/v1.0.0/images/* "$TTAR" > /dev/null
    find "$FOLDER" "$TFOLDER" -type f -exec cat {} + > /dev/null
}

run_pass() { # PASS
    local pass=$1 round key t0 t1 dt rc rss cpu c0 c1
    LOAD[$pass]="load $(cut -d' ' -f1-3 /proc/loadavg)"
    declare -A cpu_runs=()
    declare -A times=() cpus=()
    declare -A max_rss=()
    for ((round = 1; round <= RUNS; round++)); do
        for key in "${KEYS[@]}"; do
            rm -f -- "$RSS_FILE"
            t0=$(now)
            rc=0
            times > "$WORK/times0"
            "c_$key" || rc=$?
            times > "$WORK/times1"
            t1=$(now)
            c0=$(children_cpu "$WORK/times0")
            c1=$(children_cpu "$WORK/times1")
            cpu_runs[$key]="${cpu_runs[$key]:-} $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')"
            case $key in
                op_tar | op_gz)
                    remove_extraction
                    ((rc == 0)) || die "operator path (${LABEL[$key]}) failed with exit code $rc; the sample or the tools are broken"
                    ;;
                av_* | t_av*)
                    if ((rc != 0)); then
                        local target
                        case $key in
                            av_gz) target=$GZ ;;
                            av_fold*) target=$FOLDER ;;
                            t_av_fold*) target=$TFOLDER ;;
                            t_av*) target=$TTAR ;;
                            *) target=$TAR ;;
                        esac
                        echo "bench-bundle: error: airgap-verify bundle $target exited with $rc; its report:" >&2
                        "$BIN" bundle "$target" --no-progress --format human --color never >&2 || true
                        die "airgap-verify bundle must exit 0 on the generated releases (exit code $rc)"
                    fi
                    rss=$(tail -n 1 "$RSS_FILE")
                    [[ $rss =~ ^[0-9]+$ ]] || die "cannot read peak RSS from /usr/bin/time: $(cat "$RSS_FILE")"
                    ((rss > ${max_rss[$key]:-0})) && max_rss[$key]=$rss
                    ;;
                libdeflate | rapidgzip | openssl_gz | openssl_tar)
                    ((rc == 0)) || die "${LABEL[$key]} failed with exit code $rc"
                    cpu=$(tail -n 1 "$CPU_FILE" | awk '{ printf "%.3f", $1 + $2 }')
                    cpus[$key]="${cpus[$key]:-} $cpu"
                    ;;
                *)
                    ((rc == 0)) || die "${LABEL[$key]} failed with exit code $rc"
                    ;;
            esac
            dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
            times[$key]="${times[$key]:-} $dt"
            RUN_TIMES[$pass,$key]=${times[$key]}
            log "pass $pass run $round/$RUNS: $(printf '%-30s' "${LABEL[$key]}") ${dt} s"
        done
    done
    LOAD[$pass]="${LOAD[$pass]} at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    for key in "${KEYS[@]}"; do
        # shellcheck disable=SC2086 # word splitting of the run list is wanted
        MED[$pass,$key]=$(median ${times[$key]})
        # shellcheck disable=SC2086 # word splitting of the run list is wanted
        CPU_MED[$pass,$key]=$(median ${cpu_runs[$key]})
        # shellcheck disable=SC2086 # word splitting of the run list is wanted
        [[ -n ${cpus[$key]:-} ]] && CPU[$pass,$key]=$(median ${cpus[$key]})
    done
    for key in "${AV_KEYS[@]}"; do
        RSS[$pass,$key]=${max_rss[$key]}
    done
}

mib_per_s() { # BYTES SECONDS
    awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", b / 1048576 / s; else print "inf" }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print 0 }'; }
to_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

print_pass() { # PASS
    local pass=$1 key rss bytes tb=${TAR_BYTES[$1]} gb=${GZ_BYTES[$1]}
    CUR_SIZE=$(human_size "$tb")
    echo
    echo "== $CUR_SIZE sample: .tar $tb bytes, .tar.gz $gb bytes ($(human_size "$gb")), $(wc -l < "$SUMS") files in manifest.json"
    echo "   median wall time of $RUNS runs, page cache warm, $(nproc) cores; MiB/s = uncompressed .tar MiB / median (text: its own .tar)"
    echo "   CPU s = median user + system seconds; ${LOAD[$pass]}"
    printf '  %-42s %9s %7s %10s %8s  %s\n' "command" "median s" "MiB/s" "peak RSS" "CPU s" "runs (s)"
    for key in "${KEYS[@]}"; do
        rss=-
        is_av "$key" && rss="$(to_mib "${RSS[$pass,$key]}") MiB"
        bytes=$tb
        [[ $key == t_* ]] && bytes=${TTAR_BYTES[$pass]}
        printf '  %-42s %9.3f %7s %10s %8.3f  %s\n' "${LABEL[$key]}" "${MED[$pass,$key]}" \
            "$(mib_per_s "$bytes" "${MED[$pass,$key]}")" "$rss" "${CPU_MED[$pass,$key]}" "${RUN_TIMES[$pass,$key]# }"
    done
    echo
    echo "  acceptance ($CUR_SIZE):"
    ratio_line "airgap-verify(.tar) / openssl" "$(ratio "${MED[$pass,av_tar]}" "${MED[$pass,openssl]}")" "<=" 1.2
    ratio_line "airgap-verify(.tar.gz) / gzip -dc" "$(ratio "${MED[$pass,av_gz]}" "${MED[$pass,gzip]}")" "<=" 0.35
    ratio_line "operator path(.tar) / airgap-verify(.tar)" "$(ratio "${MED[$pass,op_tar]}" "${MED[$pass,av_tar]}")" ">=" 6
    ratio_line "operator path(.tar.gz) / airgap-verify(.tar.gz)" "$(ratio "${MED[$pass,op_gz]}" "${MED[$pass,av_gz]}")" ">=" 6
    ratio_line "airgap-verify(.tar) peak RSS" "$(to_mib "${RSS[$pass,av_tar]}")" "<=" 64 " MiB"
    ratio_line "airgap-verify(.tar.gz) peak RSS" "$(to_mib "${RSS[$pass,av_gz]}")" "<=" 64 " MiB"
    ratio_line "airgap-verify full content / gzip -dc of nested images" "$(ratio "${MED[$pass,av_full]}" "${MED[$pass,gzip_img]}")" "<=" 1.3
    ratio_line "airgap-verify full content peak RSS" "$(to_mib "${RSS[$pass,av_full]}")" "<=" 64 " MiB"
    ratio_line "airgap-verify full content(.tar) / openssl" "$(ratio "${MED[$pass,av_full]}" "${MED[$pass,openssl]}")" "<=" 1.3
    ratio_line "full content, signatures verified / full content" "$(ratio "${MED[$pass,av_signed]}" "${MED[$pass,av_full]}")" "<=" 1.05
    ratio_line "sample folder: default / find|xargs openssl" "$(ratio "${MED[$pass,av_fold]}" "${MED[$pass,fold_ssl]}")" "<=" 1.1
    ratio_line "sample folder: --no-content / find|xargs openssl" "$(ratio "${MED[$pass,av_fold_nc]}" "${MED[$pass,fold_ssl]}")" "<=" 1.1
    echo "  text-heavy shape: .tar ${TTAR_BYTES[$pass]} bytes"
    ratio_line "text .tar: --no-content / openssl" "$(ratio "${MED[$pass,t_av_nc]}" "${MED[$pass,t_openssl]}")" "<=" 1.05
    ratio_line "text .tar: default / openssl" "$(ratio "${MED[$pass,t_av]}" "${MED[$pass,t_openssl]}")" "<=" 1.15
    ratio_line "text folder: default / find|xargs openssl" "$(ratio "${MED[$pass,t_av_fold]}" "${MED[$pass,t_fold_ssl]}")" "<=" 1.1
    ratio_line "text folder: --no-content / find|xargs openssl" "$(ratio "${MED[$pass,t_av_fold_nc]}" "${MED[$pass,t_fold_ssl]}")" "<=" 1.1
    for key in av_fold_nc av_fold t_av_nc t_av t_av_fold_nc t_av_fold; do
        ratio_line "${LABEL[$key]} peak RSS" "$(to_mib "${RSS[$pass,$key]}")" "<=" 64 " MiB"
    done
    # Information, not acceptance: what each pass costs in CPU against
    # openssl's, which the load of other work barely moves (a pass that
    # uses both cores can take at best half its CPU time in wall time).
    echo "  CPU seconds against openssl's (information: less sensitive to the machine's load than wall time):"
    local k b
    for k in av_tar av_full t_av_nc t_av; do
        b=openssl
        [[ $k == t_* ]] && b=t_openssl
        printf '  %-58s %10s\n' "${LABEL[$k]} / ${LABEL[$b]}" \
            "$(printf '%.2f' "$(ratio "${CPU_MED[$pass,$k]}" "${CPU_MED[$pass,$b]}")")"
    done
    ((FLOOR)) && print_floor "$pass"
    return 0
}

# What the fastest decompressors there are put under any .tar.gz verifier
# on this machine: a reference, not an acceptance line.
print_floor() { # PASS
    local pass=$1 n g floor estimate
    n=$(nproc)
    g=${MED[$pass,gzip]}
    # The two SHA-256 passes a verifier cannot skip, spread over every core
    # without any loss: a true lower bound (inflating costs more than zero).
    floor=$(awk -v b="${CPU[$pass,openssl_gz]}" -v c="${CPU[$pass,openssl_tar]}" -v n="$n" \
        'BEGIN { printf "%.3f", (b + c) / n }')
    # Plus the cheaper of the two inflaters' CPU time: an estimate only.
    # Each pays for its own output handling (libdeflate-gunzip allocates the
    # whole output, rapidgzip its parallel machinery), so on a stream of
    # stored blocks a plain streaming inflater can beat it.
    estimate=$(awk -v a="${CPU[$pass,rapidgzip]}" -v d="${CPU[$pass,libdeflate]}" -v b="${CPU[$pass,openssl_gz]}" \
        -v c="${CPU[$pass,openssl_tar]}" -v n="$n" 'BEGIN { m = a < d ? a : d; printf "%.3f", (m + b + c) / n }')
    echo
    echo "  floor (.tar.gz), $n cores: CPU seconds, median of $RUNS runs"
    printf '  %-52s %8.3f s CPU  %5.2f x gzip -dc (wall %.3f s)\n' "libdeflate-gunzip, 1 core" "${CPU[$pass,libdeflate]}" \
        "$(ratio "${MED[$pass,libdeflate]}" "$g")" "${MED[$pass,libdeflate]}"
    printf '  %-52s %8.3f s CPU  %5.2f x gzip -dc (wall %.3f s)\n' "rapidgzip -P $n, inflate alone" "${CPU[$pass,rapidgzip]}" \
        "$(ratio "${MED[$pass,rapidgzip]}" "$g")" "${MED[$pass,rapidgzip]}"
    printf '  %-52s %8.3f s CPU\n' "SHA-256 of the .tar.gz (the archive's checksum)" "${CPU[$pass,openssl_gz]}"
    printf '  %-52s %8.3f s CPU\n' "SHA-256 of the .tar (every member's digest)" "${CPU[$pass,openssl_tar]}"
    printf '  %-52s %8.3f s      %5.2f x gzip -dc\n' "lower bound: both SHA-256 / $n cores" "$floor" "$(ratio "$floor" "$g")"
    printf '  %-52s %8.3f s      %5.2f x gzip -dc\n' "estimate: (cheaper inflate + both SHA-256) / $n cores" "$estimate" "$(ratio "$estimate" "$g")"
    printf '  %-52s %8.3f s      %5.2f x gzip -dc\n' "airgap-verify bundle --no-content X.tar.gz" "${MED[$pass,av_gz]}" "$(ratio "${MED[$pass,av_gz]}" "$g")"
}

print_scaling() {
    local size_ratio tr per_byte pct abs kind key label v
    size_ratio=$(ratio "${TAR_BYTES[2]}" "${TAR_BYTES[1]}")
    CUR_SIZE="$(human_size "${TAR_BYTES[1]}") -> $(human_size "${TAR_BYTES[2]}")"
    echo
    echo "== scaling $CUR_SIZE (.tar bytes x$(printf '%.3f' "$size_ratio"))"
    for kind in tar gz full fold_nc fold t_av_nc t_av t_av_fold_nc t_av_fold; do
        case $kind in
            tar | gz | full | fold_nc | fold) key=av_$kind ;;
            *) key=$kind ;;
        esac
        label=${LABEL[$key]}
        # The text shape's byte ratio is its own .tar's.
        size_ratio=$(ratio "${TAR_BYTES[2]}" "${TAR_BYTES[1]}")
        [[ $key == t_* ]] && size_ratio=$(ratio "${TTAR_BYTES[2]}" "${TTAR_BYTES[1]}")
        tr=$(ratio "${MED[2,$key]}" "${MED[1,$key]}")
        # Linear when the time ratio follows the byte ratio (~2); 15% tolerance.
        per_byte=$(ratio "$tr" "$size_ratio")
        v=$(awk -v r="$per_byte" 'BEGIN { print (r >= 0.85 && r <= 1.15) ? "PASS" : "FAIL" }')
        check "$label: time 2x / 1x" "$(printf '%.2f' "$tr")" \
            "~$(printf '%.2f' "$size_ratio") +-15%" "$v" \
            "$(printf '%.3fs -> %.3fs' "${MED[1,$key]}" "${MED[2,$key]}")"
        pct=$(awk -v a="${RSS[1,$key]}" -v b="${RSS[2,$key]}" \
            'BEGIN { if (a > 0) printf "%.1f", (b - a) / a * 100; else print 0 }')
        abs=${pct#-}
        check "$label: peak RSS 2x vs 1x" "$(printf '%+.1f%%' "$pct")" \
            "within +-10%" "$(verdict "$abs" "<=" 10)" \
            "$(to_mib "${RSS[1,$key]}") MiB -> $(to_mib "${RSS[2,$key]}") MiB"
    done
}

# ---------------------------------------------------------------- main

prepare_pass 1 "$SIZE_BYTES"
run_pass 1
print_pass 1

if ((DOUBLE)); then
    # Free the first pass's files before writing the double-size archives.
    rm -rf -- "$DIR"
    prepare_pass 2 $((SIZE_BYTES * 2))
    run_pass 2
    print_pass 2
    print_scaling
fi

echo
echo "== summary: $PASSES PASS, $FAILS FAIL"
for line in "${SUMMARY_LINES[@]}"; do
    echo "  $line"
done
if ((FAILS)); then
    echo "  missed targets:"
    for line in "${FAILED_LINES[@]}"; do
        echo "    - $line"
    done
fi
echo "  (a measurement: exit status is 0 even when targets are missed)"
exit 0
