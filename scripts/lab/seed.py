#!/usr/bin/env python3
"""Put the lab's initial data into freshly started servers (scripts/lab.sh up).

  s3        once the S3 gateway answers, create bucket S3_BUCKET, the bucket
            S3_VERSIONED_BUCKET with versioning enabled, the 16 event buckets
            <S3_EVENT_PREFIX>self-hosted-events-0..f, and those of
            S3_PARTIAL_PREFIX but S3_PARTIAL_MISSING (admin keys)
  registry  once registry A answers, push REGISTRY_SEEDED_LAYOUT with skopeo as
            REGISTRY_SEEDED_IMAGE, check the pushed digest, then copy A's storage
            to the token (B) and plain-HTTP (C) registries' storage folders

    seed.py --env /var/tmp/airgap-lab/lab.env [--timeout 20] [--only s3|registry]

Every request goes to a 127.0.0.0/8 address from lab.env. Exits 1 if a step failed.
"""

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
import labhttp  # noqa: E402  (scripts/lab/ is on sys.path: it holds this script)


def load_env(path):
    env = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def retry(deadline, what, fn):
    last = None
    while True:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - retried until the deadline
            last = f"{type(err).__name__}: {err}"
        if time.monotonic() + 0.2 >= deadline:
            raise RuntimeError(f"{what}: {last}")
        time.sleep(0.2)


def seed_s3(env, deadline):
    tls = labhttp.tls_context(env["CA_PEM"])
    addr, host, port = env["S3_ADDR"], env["S3_HOST"], int(env["S3_PORT"])
    keys = (env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"], env["S3_REGION"])
    bucket = env["S3_BUCKET"]

    def list_buckets():
        r = labhttp.s3_request(addr, host, port, "GET", "/", *keys, tls=tls)
        if r.status != 200:
            raise RuntimeError(f"ListBuckets answered {r.status} {labhttp.s3_error_code(r)}")
        return r

    retry(deadline, "S3 gateway not ready", list_buckets)

    def create(name):
        r = labhttp.s3_request(addr, host, port, "PUT", f"/{name}", *keys, tls=tls)
        if r.status == 200 or labhttp.s3_error_code(r) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return r
        raise RuntimeError(f"CreateBucket {name} answered {r.status} {labhttp.s3_error_code(r)}")

    retry(deadline, f"create bucket {bucket}", lambda: create(bucket))
    events = []
    for prefix in (env.get("S3_EVENT_PREFIX"), env.get("S3_PARTIAL_PREFIX")):
        if prefix is not None:
            events += [f"{prefix}self-hosted-events-{i:x}" for i in range(16)]
    events = [b for b in events if b != env.get("S3_PARTIAL_MISSING")]
    for name in events:
        retry(deadline, f"create bucket {name}", lambda name=name: create(name))
    versioned = env.get("S3_VERSIONED_BUCKET")
    if not versioned:
        return f"bucket {bucket} and {len(events)} event buckets created"
    retry(deadline, f"create bucket {versioned}", lambda: create(versioned))
    body = (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Status>Enabled</Status></VersioningConfiguration>")

    def enable():
        r = labhttp.s3_request(addr, host, port, "PUT", f"/{versioned}", *keys,
                               query={"versioning": ""}, body=body, tls=tls)
        if r.status != 200:
            raise RuntimeError(f"PutBucketVersioning answered {r.status} {labhttp.s3_error_code(r)}")
        r = labhttp.s3_request(addr, host, port, "GET", f"/{versioned}", *keys,
                               query={"versioning": ""}, tls=tls)
        if "<Status>Enabled</Status>" not in r.text():
            raise RuntimeError(f"versioning of {versioned} reads back as {r.text()[:200]!r}")
        return r

    retry(deadline, f"enable versioning on {versioned}", enable)
    return f"buckets {bucket}, {versioned} (versioned) and {len(events)} event buckets created"


def seed_registry(env, deadline):
    tls = labhttp.tls_context(env["CA_PEM"])
    addr, host = env["REGISTRY_ADDR"], env["REGISTRY_HOST"]

    def ping():
        r = labhttp.request(addr, host, 443, "GET", "/v2/", tls=tls)
        if r.status != 401:
            raise RuntimeError(f"/v2/ answered {r.status}, want 401")

    retry(deadline, "registry not ready", ping)
    lab = env["AIRGAP_LAB_DIR"]
    image = f"{host}/{env['REGISTRY_SEEDED_IMAGE']}"
    cmd = [
        "skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
        "--dest-creds", f"{env['REGISTRY_USER']}:{env['REGISTRY_PASSWORD']}",
        "--dest-cert-dir", os.path.join(lab, "registry", "certs"),
        f"oci:{env['REGISTRY_SEEDED_LAYOUT']}:{env['REGISTRY_SEEDED_TAG']}", f"docker://{image}",
    ]
    child_env = dict(os.environ, HOME=os.path.join(lab, "registry"),
                     REGISTRY_AUTH_FILE=os.path.join(lab, "registry", "skopeo-auth.json"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env,
                          timeout=max(5.0, deadline - time.monotonic()), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo copy failed ({proc.returncode}): {proc.stderr.strip()}")

    repo, tag = env["REGISTRY_SEEDED_REPO"], env["REGISTRY_SEEDED_TAG"]
    headers = dict(labhttp.basic_auth(env["REGISTRY_USER"], env["REGISTRY_PASSWORD"]),
                   Accept=env["REGISTRY_SEEDED_MEDIA_TYPE"])
    r = labhttp.request(addr, host, 443, "HEAD", f"/v2/{repo}/manifests/{tag}", headers=headers, tls=tls)
    digest = r.header("Docker-Content-Digest")
    if r.status != 200 or digest != env["REGISTRY_SEEDED_DIGEST"]:
        raise RuntimeError(f"pushed manifest: {r.status} digest {digest!r}, "
                           f"want {env['REGISTRY_SEEDED_DIGEST']}")

    # Distribution keeps no state outside its storage folder: B and C serve a copy
    src = os.path.join(env["REGISTRY_DATA_DIR"], "docker")
    for key in ("REGISTRY_TOKEN_DATA_DIR", "REGISTRY_HTTP_DATA_DIR"):
        shutil.copytree(src, os.path.join(env[key], "docker"), dirs_exist_ok=True)
    return f"pushed {image}@{digest} with skopeo, copied to the token and plain-HTTP registries"


STEPS = {"s3": seed_s3, "registry": seed_registry}


def main():
    p = argparse.ArgumentParser(description="seed the airgap-lab servers")
    p.add_argument("--env", required=True)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--only", action="append", choices=sorted(STEPS))
    args = p.parse_args()
    env = load_env(args.env)
    deadline = time.monotonic() + args.timeout
    results = {}

    def run(name):
        started = time.monotonic()
        try:
            results[name] = (True, STEPS[name](env, deadline))
        except Exception as err:  # noqa: BLE001 - reported below
            results[name] = (False, str(err))
        results[name] += (time.monotonic() - started,)

    names = args.only or sorted(STEPS)
    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout + 30)
    ok = True
    for name in names:
        good, detail, took = results.get(name, (False, "did not finish", 0.0))
        ok &= good
        print(f"  [{'ok  ' if good else 'FAIL'}] seed {name:<9} {detail} ({took:.1f}s)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
