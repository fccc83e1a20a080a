#!/usr/bin/env bash
# The main job on a built-in demo, for a fresh Debian 12 machine (as root):
# builds airgap-verify and a Sekoia-shaped sample release, verifies it, then
# verifies a tampered copy to show what a failure looks like. As root, then
# checks the perimeter services against the loopback lab (scripts/lab.sh up,
# left running), pushes the release's images into the lab registry with
# skopeo as the installer would, runs the main job (`check`) on the release
# and the whole lab, and deletes the pushed images again.
#
#   scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/demo.sh: cargo not found; install a Rust toolchain >= 1.86 (rustup) and re-run" >&2
  exit 2
fi
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v minisign >/dev/null 2>&1 || need+=(minisign)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
fi

echo "==> building airgap-verify (release)"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/airgap-verify"

work="${1:-$(mktemp -d /tmp/airgap-demo.XXXXXX)}"
mkdir -p "$work"
echo "==> writing the sample release into $work"
"$bin" sample "$work" --gzip >/dev/null
archive="$work/sekoia-self-hosted-v1.0.0.tar"
ls -l "$work"

# The vendor signs the release; the operator holds the vendor's public key.
minisign -G -W -p "$work/vendor.pub" -s "$work/vendor.key" >/dev/null
minisign -S -s "$work/vendor.key" -m "$archive" -t "sekoia-self-hosted v1.0.0" >/dev/null

# The sample also carries Sigstore bundles (beside the archive, and beside its
# manifest inside) signed by the test Sigstore instance built into
# airgap-verify, whose trusted root `sample` wrote beside the release: test
# trust material, standing in for the vendor's Sigstore instance.
sigstore=(--certificate-identity release@sekoia.example
  --certificate-oidc-issuer https://oidc.sekoia.example
  --trusted-root "$work/sample-trusted_root.json")

echo
echo "==> airgap-verify bundle $archive --pubkey vendor.pub \\"
echo "      ${sigstore[*]} --allow-host registry.sekoia.io"
echo "    (the vendor registry is mirrored inside this perimeter; without --allow-host its"
echo "     references in the Helm charts are reported as external)"
"$bin" bundle "$archive" --pubkey "$work/vendor.pub" "${sigstore[@]}" --allow-host registry.sekoia.io
good=$?

echo
echo "==> the same release after one byte of one image changed in transit"
tampered="$work/tampered/sekoia-self-hosted-v1.0.0.tar"
mkdir -p "$work/tampered"
cp "$archive" "$archive.sha256" "$archive.minisig" "$archive.sigstore.json" "$work/tampered/"
# Flip one byte in the middle of the archive (inside an image layer).
size=$(stat -c %s "$tampered")
printf '\x00' | dd of="$tampered" bs=1 seek=$((size / 2)) conv=notrunc status=none
set +e
"$bin" bundle "$tampered" --pubkey "$work/vendor.pub" "${sigstore[@]}" --allow-host registry.sekoia.io
bad=$?
set -e
echo
echo "==> exit codes: intact release $good (ready), tampered release $bad (not ready)"
echo "    JSON report: $bin bundle $archive --format json"

# The perimeter services (DNS, NTP, SMTP) against the loopback lab of scripts/lab.sh.
lab="${AIRGAP_LAB_DIR:-/var/tmp/airgap-lab}"
if [ "$(id -u)" -ne 0 ]; then
  echo
  echo "==> skipping the services demo: the loopback lab (scripts/lab.sh up) needs root"
elif ! "$bin" services --help >/dev/null 2>&1; then
  echo
  echo "==> skipping the services demo: this airgap-verify has no 'services' subcommand yet"
else
  echo
  echo "==> scripts/lab.sh up (real DNS, NTP and SMTP servers on 127.0.0.x; left running)"
  if AIRGAP_LAB_DIR="$lab" bash scripts/lab.sh up >"$work/lab-up.log" 2>&1; then
    tail -n 1 "$work/lab-up.log"
    labvar() { sed -n "s/^$1=//p" "$lab/lab.env"; }
    SMTP_PASSWORD=$(labvar SMTP_PASSWORD) GIT_PASSWORD=$(labvar GIT_PASSWORD)
    REGISTRY_PASSWORD=$(labvar REGISTRY_PASSWORD) S3_SECRET_KEY=$(labvar S3_SECRET_KEY)
    export SMTP_PASSWORD GIT_PASSWORD REGISTRY_PASSWORD S3_SECRET_KEY
    echo
    echo "==> airgap-verify services --config $lab/perimeter.yml   (DNS, NTP, SMTP)"
    set +e
    "$bin" services --config "$lab/perimeter.yml"
    services=$?
    set -e
    echo "==> services exit code $services"
    # The main job: the release and every service of the lab in one report.
    {
      cat "$lab/perimeter.yml"
      echo "git: {url: $(labvar GIT_REPO_URL), username: $(labvar GIT_USER), password_env: GIT_PASSWORD}"
      echo "registry: {url: $(labvar REGISTRY_URL), project: sekoia, username: $(labvar REGISTRY_USER), password_env: REGISTRY_PASSWORD}"
      echo "s3: {endpoint: $(labvar S3_ENDPOINT), buckets: [$(labvar S3_BUCKET)], access_key: $(labvar S3_ACCESS_KEY), secret_key_env: S3_SECRET_KEY}"
    } >"$work/perimeter.yml"
    # The installer's push, done here with skopeo (which the lab installs):
    # the release's images land in the lab registry, so that the main job
    # finds each of them; they are deleted again at the end.
    pushed=()
    unpush() {
      local ref
      for ref in "${pushed[@]}"; do
        skopeo delete --cert-dir "$work/certs" --creds "$(labvar REGISTRY_USER):$REGISTRY_PASSWORD" \
          "docker://$ref" >/dev/null 2>&1 || echo "==> could not delete $ref from the lab registry" >&2
      done
      pushed=()
    }
    if command -v skopeo >/dev/null 2>&1; then
      echo
      echo "==> pushing the release's images into the lab registry (skopeo), as the installer would"
      mkdir -p "$work/images" "$work/certs"
      cp "$(labvar CA_PEM)" "$work/certs/ca.crt"
      tar -xf "$archive" -C "$work/images" --wildcards 'platform/*/images/*.tar.gz'
      trap unpush EXIT
      for image in "$work"/images/platform/*/images/*.tar.gz; do
        name=$(basename "$image" .tar.gz)
        version=$(basename "$(dirname "$(dirname "$image")")")
        gunzip -c "$image" >"$work/images/$name.tar"
        transport=docker-archive
        tar -tf "$work/images/$name.tar" | grep -qx oci-layout && transport=oci-archive
        ref="$(labvar REGISTRY_HOST)/sekoia/$name:$version"
        skopeo copy -q --dest-cert-dir "$work/certs" \
          --dest-creds "$(labvar REGISTRY_USER):$REGISTRY_PASSWORD" \
          "$transport:$work/images/$name.tar" "docker://$ref"
        pushed+=("$ref")
      done
      echo "    ${#pushed[@]} images pushed"
    fi
    echo
    echo "==> airgap-verify check --bundle $archive --pubkey vendor.pub ${sigstore[*]} --config $work/perimeter.yml --write-probe"
    if ((${#pushed[@]} == 0)); then
      echo "    (skopeo is missing, so the release's images are not in the lab registry: each is reported missing)"
    fi
    if "$bin" check --help >/dev/null 2>&1; then
      set +e
      "$bin" check --bundle "$archive" --pubkey "$work/vendor.pub" "${sigstore[@]}" --config "$work/perimeter.yml" \
        --write-probe --allow-host registry.sekoia.io --no-progress
      checked=$?
      set -e
      unpush
      echo "==> check exit code $checked; the pushed images were deleted again ('scripts/lab.sh down' stops the lab)"
    fi
  else
    tail -n 30 "$work/lab-up.log" >&2
    echo "==> scripts/lab.sh up failed (log: $work/lab-up.log); skipping the services demo" >&2
  fi
fi

# The whole cluster: the network lab's hosts (namespaces with their own sshd),
# reached by the real Ansible from the orchestration host, one merged report.
if [ "$(id -u)" -eq 0 ] && "$bin" cluster --help >/dev/null 2>&1; then
  netlab="${AIRGAP_NETLAB_DIR:-/var/tmp/airgap-netlab}"
  echo
  echo "==> scripts/netlab.sh up (load balancer, 3 nodes, orchestration host, a client, each with its own sshd; left running)"
  if AIRGAP_NETLAB_DIR="$netlab" bash scripts/netlab.sh up >"$work/netlab-up.log" 2>&1; then
    nl() { sed -n "s/^$1=//p" "$netlab/netlab.env"; }
    printf 'allowed_networks: [%s]\nflows:\n  profile: sekoia-1.0.0\n  deadline: 1s\n  orchestration: %s\n' \
      "$(nl NETLAB_SUBNET)" "$(nl ADDR_ORCH)" >"$work/cluster-perimeter.yml"
    # The perimeter firewall in front of the nodes, as a real one would be:
    # the client (outside) does not reach the ports that must stay blocked.
    AIRGAP_NETLAB_DIR="$netlab" bash scripts/netlab.sh fw-reset >/dev/null &&
      AIRGAP_NETLAB_DIR="$netlab" bash scripts/netlab.sh fw-perimeter
    # The HTML report when this build has it, else JSON.
    out="json=$work/cluster.json"
    if "$bin" cluster --help | grep -q html; then out="html=$work/cluster.html"; fi
    echo "==> airgap-verify cluster --inventory $(nl ANSIBLE_INVENTORY) --config cluster-perimeter.yml --output $out"
    set +e
    ip netns exec "$(nl NS_ORCH)" "$bin" cluster --inventory "$(nl ANSIBLE_INVENTORY)" \
      --config "$work/cluster-perimeter.yml" --output "$out" --no-progress
    clustered=$?
    set -e
    echo "==> cluster exit code $clustered; report: ${out#*=} ('scripts/netlab.sh down' stops the network lab)"
  else
    tail -n 30 "$work/netlab-up.log" >&2
    echo "==> scripts/netlab.sh up failed (log: $work/netlab-up.log); skipping the cluster demo" >&2
  fi
fi
exit "$good"
