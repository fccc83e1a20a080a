#!/usr/bin/env python3
"""Writes the text-heavy release shape of scripts/bench-bundle.sh, deterministic.

Usage: gen-text-release.py FOLDER SIZE_BYTES

FOLDER/release/ gets, per GiB of SIZE (scaled linearly):
  images/<name>/     OCI layouts (oci-layout, index.json, blobs/sha256/...):
                     incompressible gzip layers (stored blocks), manifest and
                     config JSON; they fill what the text leaves
  charts/, manifests/, config/
                     about 3,300 small YAML and JSON files (Helm charts
                     unpacked, Kubernetes manifests, configuration)
  sbom/              ten CycloneDX-like SBOM JSON files of 2 to 16 MiB
  SHA256SUMS         at the top, every file above
about 100 MiB of text in all. The same SIZE always gives the same bytes.
"""
import gzip
import hashlib
import json
import os
import random
import sys

GIB = 1 << 30
MIB = 1 << 20


def write(root, rel, data, sums):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    sums.append((hashlib.sha256(data).hexdigest(), rel))
    return len(data)


def deployment(rng, i):
    name = f"svc-{i}"
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n"
        f"  labels:\n    app.kubernetes.io/name: {name}\n    app.kubernetes.io/part-of: platform\n"
        f"spec:\n  replicas: {rng.randint(1, 5)}\n  selector:\n    matchLabels:\n      app: {name}\n"
        f"  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n"
        f"        - name: main\n          image: registry.sekoia.io/platform/{name}:1.{rng.randint(0, 40)}.0\n"
        f"          args: [\"--listen\", \"0.0.0.0:8080\", \"--log-level\", \"info\"]\n"
        f"          env:\n            - name: UPSTREAM\n              value: http://svc-{i + 1}.platform.svc:8080/api\n"
        f"            - name: KAFKA\n              value: kafka-0.kafka.platform.svc:9092\n"
        f"          resources:\n            limits: {{cpu: {rng.randint(1, 8) * 100}m, memory: {rng.randint(1, 16) * 64}Mi}}\n"
        f"          readinessProbe:\n            httpGet: {{path: /healthz, port: 8080}}\n---\n"
    )


def small_text(rng, i, kind):
    """A file of a few KiB: a chart's template or values, a manifest, a config."""
    parts = []
    target = rng.randint(2, 10) * 1024
    n = 0
    while sum(map(len, parts)) < target:
        if kind == "config" and n % 2:
            parts.append(json.dumps({"key": f"k{i}.{n}", "value": rng.random(), "tags": [f"t{rng.randint(0, 99)}" for _ in range(8)]}, indent=2) + "\n")
        else:
            parts.append(deployment(rng, i * 100 + n))
        n += 1
    return "".join(parts).encode()


def sbom(rng, size, k):
    out = ['{\n  "bomFormat": "CycloneDX",\n  "specVersion": "1.5",\n  "components": [\n']
    total = 0
    i = 0
    while total < size:
        i += 1
        v = f"v1.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        c = (
            f'    {{\n      "bom-ref": "pkg:golang/github.com/acme{k}/lib{i}@{v}",\n'
            f'      "type": "library",\n      "name": "github.com/acme{k}/lib{i}",\n      "version": "{v}",\n'
            f'      "purl": "pkg:golang/github.com/acme{k}/lib{i}@{v}",\n'
            f'      "licenses": [{{"license": {{"id": "Apache-2.0"}}}}],\n'
            f'      "externalReferences": [{{"type": "vcs", "url": "https://github.com/acme{k}/lib{i}"}}],\n'
            f'      "hashes": [{{"alg": "SHA-256", "content": "{rng.getrandbits(256):064x}"}}]\n    }},\n'
        )
        out.append(c)
        total += len(c)
    out.append('    {"type": "library", "name": "end"}\n  ]\n}\n')
    return "".join(out).encode()


def oci_image(root, base, rng, layer_sizes, sums):
    written = 0

    def blob(data):
        nonlocal written
        d = hashlib.sha256(data).hexdigest()
        written += write(root, f"{base}/blobs/sha256/{d}", data, sums)
        return d

    layers, diff_ids = [], []
    for size in layer_sizes:
        raw = rng.randbytes(size)
        gz = gzip.compress(raw, compresslevel=0, mtime=0)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + blob(gz), "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd = blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(config)},
                           "layers": layers}).encode()
    md = blob(manifest)
    written += write(root, f"{base}/oci-layout", b'{"imageLayoutVersion":"1.0.0"}', sums)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md,
                                       "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "1.0.0"}}]}).encode()
    written += write(root, f"{base}/index.json", index, sums)
    return written


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    folder, size = sys.argv[1], int(sys.argv[2])
    root = os.path.join(folder, "release")
    scale = size / GIB
    rng = random.Random(21)
    sums = []
    text = 0
    n_small = max(1, round(3300 * scale))
    kinds = ["charts", "manifests", "config"]
    for i in range(n_small):
        kind = kinds[i % 3]
        if kind == "charts":
            rel = f"charts/chart-{i // 30:03}/templates/t{i:05}.yaml"
        elif kind == "manifests":
            rel = f"manifests/ns-{i // 50:03}/m{i:05}.yaml"
        else:
            rel = f"config/c{i // 40:03}/c{i:05}.json"
        text += write(root, rel, small_text(rng, i, kind), sums)
    sbom_mib = [2, 3, 4, 5, 6, 8, 10, 12, 14, 16]
    n_sbom = max(1, round(10 * scale))
    for k in range(n_sbom):
        text += write(root, f"sbom/component-{k:02}.cdx.json", sbom(rng, sbom_mib[k % 10] * MIB, k), sums)
    # Images fill the rest: layers of 1 to 64 MiB, a few per image.
    left = max(0, size - text)
    img = 0
    while left > MIB:
        n = rng.randint(2, 5)
        sizes = []
        for _ in range(n):
            s = min(left, rng.randint(1, 64) * MIB)
            if s <= 0:
                break
            sizes.append(s)
            left -= s
        left -= oci_image(root, f"images/app-{img:02}", rng, sizes, sums) - sum(sizes)
        img += 1
    sums.sort(key=lambda s: s[1])
    with open(os.path.join(root, "SHA256SUMS"), "w") as f:
        for d, rel in sums:
            f.write(f"{d}  {rel}\n")
    print(f"{len(sums)} files, {text} bytes of text, {img} images")


if __name__ == "__main__":
    main()
