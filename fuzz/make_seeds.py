#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/.

The seeds are small real inputs: a Sekoia-shaped release in miniature (tar,
tar.gz, multi-member gzip, tar.zst), tar oddities (links, PAX and GNU long
names, escapes), manifests, checksum files, a Git bundle made by `git bundle
create`, NTP packets, DNS replies, SMTP replies and configuration files from
testdata/ and docs/. `scripts/fuzz.sh --seed` merges them into the committed
corpus. Needs python3, git and zstd.
"""
import gzip, hashlib, io, json, os, re, shutil, struct, subprocess, sys, tarfile, tempfile, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tar_of(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, data) for files, or (name, TarInfo-kwargs dict)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, v in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if isinstance(v, (bytes, bytearray)):
                ti.size = len(v)
                t.addfile(ti, io.BytesIO(v))
            else:
                for k, x in v.items():
                    setattr(ti, k, x)
                t.addfile(ti)
    return buf.getvalue()


def gz(b, name=None):
    out = io.BytesIO()
    with gzip.GzipFile(filename=name or "", mode="wb", fileobj=out, mtime=0) as g:
        g.write(b)
    return out.getvalue()


def zst(b):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=b, capture_output=True, check=True).stdout


def git_bundle():
    d = tempfile.mkdtemp()
    try:
        env = dict(os.environ, GIT_AUTHOR_NAME="r", GIT_AUTHOR_EMAIL="r@x.invalid",
                   GIT_COMMITTER_NAME="r", GIT_COMMITTER_EMAIL="r@x.invalid",
                   GIT_AUTHOR_DATE="1700000000 +0000", GIT_COMMITTER_DATE="1700000000 +0000")
        run = lambda *a: subprocess.run(["git", "-C", d, *a], env=env, check=True, capture_output=True)
        run("init", "-q", "-b", "main")
        open(os.path.join(d, "README.md"), "w").write("# stacks\n")
        run("add", "README.md")
        run("commit", "-q", "-m", "one")
        open(os.path.join(d, "stacks.yaml"), "w").write("kind: ApplicationSet\n")
        run("add", "stacks.yaml")
        run("commit", "-q", "-m", "two")
        run("tag", "v1")
        out = {}
        run("bundle", "create", "-q", os.path.join(d, "all.bundle"), "--all")
        out["v2"] = open(os.path.join(d, "all.bundle"), "rb").read()
        run("bundle", "create", "-q", "--version=3", os.path.join(d, "v3.bundle"), "main")
        out["v3"] = open(os.path.join(d, "v3.bundle"), "rb").read()
        run("bundle", "create", "-q", os.path.join(d, "range.bundle"), "main~1..main")
        out["range"] = open(os.path.join(d, "range.bundle"), "rb").read()
        return out
    finally:
        shutil.rmtree(d)


def docker_image(ref):
    layer = tar_of([("etc/os-release", b"ID=distroless\n"), ("app/run", b"#!/bin/sh\n")])
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
    cname = sha(config) + ".json"
    ldir = sha(layer) + "/layer.tar"
    manifest = json.dumps([{"Config": cname, "RepoTags": [ref], "Layers": [ldir]}]).encode()
    repo, tag = ref.rsplit(":", 1)
    repos = json.dumps({repo: {tag: sha(layer)}}).encode()
    return tar_of([(cname, config), (ldir, layer), ("manifest.json", manifest), ("repositories", repos)])


def oci_image(ref):
    layer = gz(tar_of([("usr/bin/c", b"\x7fELF")]))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(gzip.decompress(layer))]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + sha(manifest), "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": ref}}]}).encode()
    return tar_of([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                   ("blobs/sha256/" + sha(config), config), ("blobs/sha256/" + sha(manifest), manifest),
                   ("blobs/sha256/" + sha(layer), layer), ("index.json", index)])


def chart(name, image):
    return gz(tar_of([(f"{name}/Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n".encode()),
                      (f"{name}/values.yaml", f"image:\n  repository: {image}\n".encode()),
                      (f"{name}/templates/d.yaml", b"image: registry.sekoia.io/x:1\nurl: https://example.com/\n")]))


def release(bundles):
    p = "platform/v1.0.0"
    files = {
        f"{p}/images/api.tar.gz": gz(docker_image("registry.sekoia.io/sekoia/api:v1.0.0")),
        f"{p}/images/collector-oci.tar.gz": gz(oci_image("registry.sekoia.io/sekoia/collector:v1.0.0")),
        f"{p}/charts/api-1.0.0.tgz": chart("api", "registry.sekoia.io/sekoia/api:v1.0.0"),
        f"{p}/argo-stacks/api/app-0.yaml": b"repoURL: https://git.perimeter.internal/sekoia/stacks.git\n",
        f"{p}/git/argo-stacks.bundle": bundles["v2"],
    }
    doc = {"schema_version": 1, "product": "sekoia-self-hosted", "version": "1.0.0",
           "files": [{"path": k[len(p) + 1:], "size": len(v), "sha256": sha(v)} for k, v in files.items()],
           "images": [{"ref": "registry.sekoia.io/sekoia/api:v1.0.0", "path": "images/api.tar.gz"}]}
    entries = [("platform/", {"type": tarfile.DIRTYPE, "mode": 0o755}), (p + "/", {"type": tarfile.DIRTYPE})]
    entries += list(files.items())
    entries.append((f"{p}/manifest.json", json.dumps(doc, indent=1).encode()))
    sums = "".join(f"{sha(v)}  {k[len(p) + 1:]}\n" for k, v in files.items()).encode()
    entries.append((f"{p}/SHA256SUMS", sums))
    rules = gz(tar_of([("rules-2025.01.7/0001.yml", b"uuid: 1\nname: r\n")]))
    entries += [("data/rules/rules-2025.01.7.tar.gz", rules), ("data/rules/latest", b"2025.01.7\n")]
    return tar_of(entries), doc, sums


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    bundles = git_bundle()
    rel, doc, sums = release(bundles)
    small = tar_of([("release/manifest.json", json.dumps({"schema_version": 1, "product": "p", "version": "1", "files": [{"path": "a", "size": 2, "sha256": sha(b"a\n")}], "images": []}).encode()),
                    ("release/a", b"a\n"), ("release/SHA256SUMS", f"{sha(b'a')}  a\n".encode())])
    odd = tar_of([
        ("ok/file", b"x"),
        ("ok/../../escape", b"y"),
        ("/abs/path", b"z"),
        ("ok/link", {"type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}),
        ("ok/inner", {"type": tarfile.SYMTYPE, "linkname": "file"}),
        ("ok/hard", {"type": tarfile.LNKTYPE, "linkname": "ok/file"}),
        ("ok/hard2", {"type": tarfile.LNKTYPE, "linkname": "missing"}),
        ("ok/fifo", {"type": tarfile.FIFOTYPE}),
        ("ok/dev", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
        ("ok/setuid", {"type": tarfile.REGTYPE, "mode": 0o4755}),
        ("ok/file", b"dup"),
        ("OK/FILE", b"case"),
        ("ok/" + "d" * 150 + "/long-name-file", b"long"),
        ("ok/link/through", b"via symlink"),
    ])
    pax = tar_of([("pax/" + "p" * 200, b"paxdata"), ("pax/sym", {"type": tarfile.SYMTYPE, "linkname": "l" * 120})], fmt=tarfile.PAX_FORMAT)
    ustar = tar_of([("u/a", b"1"), ("u/b/", {"type": tarfile.DIRTYPE})], fmt=tarfile.USTAR_FORMAT)
    for name, t in [("release.tar", rel), ("small.tar", small), ("odd.tar", odd), ("pax.tar", pax),
                    ("ustar.tar", ustar), ("empty.tar", b"\0" * 1024), ("truncated.tar", small[:700])]:
        put("tar", name, t)
        put("archive", name, t)
    put("archive", "release.tar.gz", gz(rel))
    put("archive", "small.tar.gz", gz(small, "small.tar"))
    put("archive", "multi.tar.gz", gz(small[:512]) + gz(small[512:]))
    put("archive", "padded.tar.gz", gz(small) + b"\0" * 100)
    put("archive", "trailing.tar.gz", gz(small) + b"junk")
    # Header with FEXTRA, FNAME, FCOMMENT and FHCRC.
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = body.compress(odd) + body.flush()
    hdr = b"\x1f\x8b\x08\x1e" + b"\0\0\0\0\0\xff" + struct.pack("<H", 4) + b"ab\x01\x00" + b"n.tar\0" + b"comment\0"
    hdr += struct.pack("<H", zlib.crc32(hdr) & 0xffff)
    put("archive", "flags.tar.gz", hdr + raw + struct.pack("<II", zlib.crc32(odd), len(odd)))
    put("archive", "release.tar.zst", zst(rel))
    put("archive", "multi.tar.zst", zst(small[:1024]) + zst(small[1024:]))
    put("archive", "skippable.tar.zst", b"\x50\x2a\x4d\x18" + struct.pack("<I", 4) + b"skip" + zst(ustar))

    # Manifests: first byte selects the parser (0 json, 1 sums, 2 sums lines, 3 .sha256 file).
    put("manifest", "json", b"\x00" + json.dumps(doc, indent=1).encode())
    put("manifest", "json-docker", b"\x00" + json.dumps([{"Config": "c.json", "RepoTags": ["a:b"], "Layers": []}]).encode())
    put("manifest", "json-bad", b"\x00" + b'{"schema_version": 1, "product": "p", "version": "1", "files": [{"path": "../x", "size": 1, "sha256": "zz"}]}')
    put("manifest", "sums", b"\x01" + sums)
    put("manifest", "sums-bsd", b"\x01" + f"# comment\r\nSHA256 (a b/c) = {sha(b'')}\r\n\r\n{sha(b'x')} *bin\n".encode())
    put("manifest", "sums-lines", b"\x02" + sums + f"SHA256 (x) = {sha(b'x')}\n{sha(b'x')}\tt\n".encode())
    put("manifest", "sha256-file", b"\x03" + f"{sha(rel)}  release.tar.gz\n{sha(b'')}  other.tar\n".encode())
    put("manifest", "sha256-bare", b"\x03" + sha(rel).encode() + b"\n")

    put("git_bundle", "v2.bundle", bundles["v2"])
    put("git_bundle", "v3.bundle", bundles["v3"])
    put("git_bundle", "range.bundle", bundles["range"])
    hdr_end = bundles["v3"].index(b"\n\n") + 2
    put("git_bundle", "v3-header-only", bundles["v3"][:hdr_end])
    put("git_bundle", "filter", b"# v3 git bundle\n@object-format=sha1\n@filter=blob:none\n" + bundles["v3"][bundles["v3"].index(b"\n", 16) + 1:])
    put("git_bundle", "sha256", b"# v3 git bundle\n@object-format=sha256\n" + b"a" * 64 + b" refs/heads/main\n\nPACK")

    # NTP: 8-byte "sent" timestamp, then the packet.
    sent = 0xE9B1C2D3_12345678
    def ntp(first, stratum, refid, origin=sent, recv=sent + 1000, xmit=sent + 2000):
        return struct.pack(">Q", sent) + bytes([first, stratum, 6, 0xE9]) + struct.pack(">II", 0x10, 0x20) + refid + struct.pack(">QQQQ", sent - 5000, origin, recv, xmit)
    put("ntp", "server", ntp(0x24, 2, bytes([192, 0, 2, 1])))
    put("ntp", "stratum1", ntp(0x24, 1, b"GPS\0"))
    put("ntp", "kiss-rate", ntp(0xE4, 0, b"RATE", recv=0, xmit=0))
    put("ntp", "unsynced", ntp(0xDC, 16, b"INIT", recv=0, xmit=0))
    put("ntp", "ntpv3-ext", ntp(0x1C, 3, b"\x7f\0\0\1") + b"\0" * 20)

    # DNS replies: first byte selects (bit0: use the reply's id; bit1: AAAA).
    def name(n):
        return b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\0"
    q = name("example.com") + struct.pack(">HH", 1, 1)
    a = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([93, 184, 215, 14])
    put("dns", "a", b"\x00" + struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + q + a)
    cname = b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(name("www.example.net"))) + name("www.example.net")
    a2 = b"\xc0\x29" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes([10, 0, 0, 1])
    put("dns", "cname", b"\x01" + struct.pack(">HHHHHH", 0x4242, 0x8580, 1, 2, 0, 0) + q + cname + a2)
    q6 = name("example.com") + struct.pack(">HH", 28, 1)
    aaaa = b"\xc0\x0c" + struct.pack(">HHIH", 28, 1, 300, 16) + bytes(range(16))
    put("dns", "aaaa", b"\x02" + struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + q6 + aaaa)
    put("dns", "refused-noq", b"\x00" + struct.pack(">HHHHHH", 0x1234, 0x8185, 0, 0, 0, 0))
    put("dns", "nxdomain-soa", b"\x01" + struct.pack(">HHHHHH", 7, 0x8183, 1, 0, 1, 1) + q
        + b"\xc0\x0c" + struct.pack(">HHIH", 6, 1, 60, 2 + 2 + 20) + b"\xc0\x0c\xc0\x0c" + struct.pack(">IIIII", 1, 2, 3, 4, 5)
        + b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0))
    put("dns", "txt-mx", b"\x01" + struct.pack(">HHHHHH", 9, 0x8180, 1, 2, 0, 0) + q
        + b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, 6) + b"\x05hello"
        + b"\xc0\x0c" + struct.pack(">HHIH", 15, 1, 60, 4) + b"\x00\x0a\xc0\x0c")

    put("smtp", "greeting", b"220 mail.perimeter.internal ESMTP Postfix\r\n")
    put("smtp", "ehlo", b"250-mail.perimeter.internal\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
    put("smtp", "queued", b"250 2.0.0 Ok: queued as 4Z1abc2XyzQ\r\n250 2.0.0 OK id=1u2v3w-000ABC-XY\r\n")
    put("smtp", "errors", b"530 5.7.0 Must issue a STARTTLS command first\r\n554-a\r\n554 b\r\n421 4.3.2 shutting down\r\n")
    put("smtp", "bad", b"250-a\r\n251 b\r\n250 bare\n99 x\r\n250\r\n")

    # Configuration: first byte 0 perimeter.yml, 1 config.yml, 2 both split at NUL.
    docs = open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8").read()
    n = 0
    for block in re.findall(r"```ya?ml\n(.*?)```", docs, re.S):
        put("config", f"docs-{n}", b"\x00" + block.encode())
        n += 1
    tmpl = os.path.join(ROOT, "src", "config", "template.yml")
    put("config", "template", b"\x00" + open(tmpl, "rb").read())
    for f in sorted(os.listdir(os.path.join(ROOT, "testdata", "sekoia"))):
        text = open(os.path.join(ROOT, "testdata", "sekoia", f), "rb").read()
        put("config", "sekoia-" + f, b"\x01" + text)
        put("config", "both-" + f, b"\x02" + text + b"\0" + open(tmpl, "rb").read())


if __name__ == "__main__":
    main()
