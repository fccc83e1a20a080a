#!/usr/bin/env python3
"""Write a tiny, byte-for-byte reproducible OCI image layout (no network).

One gzip layer holding a single file, an image config, an OCI image manifest
and index.json naming it with --tag. The same arguments always give the same
manifest digest, which is printed on stdout (sha256:...).

    oci_layout.py --out DIR --tag 1.0.0 [--name sekoia/collector]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = 1577836800  # 2020-01-01T00:00:00Z: fixed, so digests never change


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(name, tag):
    content = f"airgap-lab test image {name}:{tag}\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("etc", "etc/airgap-lab"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        info = tarfile.TarInfo("etc/airgap-lab/image.txt")
        info.size, info.mode, info.mtime = len(content), 0o644, EPOCH
        tar.addfile(info, io.BytesIO(content))
    uncompressed = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=9, filename="") as fh:
        fh.write(uncompressed)
    return uncompressed, gz.getvalue()


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", digest)
    with open(path, "wb") as fh:
        fh.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build(out, name, tag):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    uncompressed, compressed = layer_tar(name, tag)
    layer = {"mediaType": MT_LAYER, **write_blob(out, compressed)}
    created = "2020-01-01T00:00:00Z"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Labels": {"org.opencontainers.image.title": name,
                              "org.opencontainers.image.version": tag}},
        "rootfs": {"type": "layers",
                   "diff_ids": [f"sha256:{hashlib.sha256(uncompressed).hexdigest()}"]},
        "history": [{"created": created, "created_by": "airgap-lab oci_layout.py"}],
    }
    config_desc = {"mediaType": MT_CONFIG, **write_blob(out, canonical(config))}
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config_desc, "layers": [layer]}
    manifest_desc = {"mediaType": MT_MANIFEST, **write_blob(out, canonical(manifest)),
                     "annotations": {"org.opencontainers.image.ref.name": tag}}
    with open(os.path.join(out, "index.json"), "wb") as fh:
        fh.write(canonical({"schemaVersion": 2, "manifests": [manifest_desc]}))
    with open(os.path.join(out, "oci-layout"), "wb") as fh:
        fh.write(canonical({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc["digest"]


def main():
    p = argparse.ArgumentParser(description="write a tiny reproducible OCI image layout")
    p.add_argument("--out", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--name", default="sekoia/collector", help="only used in the file and labels")
    args = p.parse_args()
    print(build(args.out, args.name, args.tag))


if __name__ == "__main__":
    main()
