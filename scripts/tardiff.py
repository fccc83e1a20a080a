#!/usr/bin/env python3
"""Differential test of airgap-verify's tar reading against the real extractors.

Generates tar archives header by header (every type flag, PAX local and global
headers, Solaris X headers, GNU long names and links, GNU and PAX sparse
headers, ustar prefixes, v7/ustar/GNU magic, every checksum form, names with
`..`, `/`, NUL, long and short forms, malformed records), lists each with
GNU tar (`tar -tv`), bsdtar (`bsdtar -tv`) and Python's `tarfile`, and runs
`airgap-verify bundle` on it. An archive on which one of the extractors lists
an entry that would land outside the extraction folder (an absolute name, a
`..` that climbs out, a link whose target leaves the root) while airgap-verify
says "ready" (exit 0) is a bypass: the script prints it and exits 1.

It also runs the peer corpora when they are installed (Go's archive/tar test
data from Debian's golang-1.19-src, CPython's tarfile test data from
libpython3.11-testsuite) through the same oracle, and checks the verdicts
their own test suites give those files (see PEER_VERDICTS).

    scripts/tardiff.py --bin target/debug/airgap-verify [--count 2000] [--seed 1]
                       [--keep DIR] [--jobs N] [--corpus DIR]...

--corpus adds the files of a folder, a fuzzer's corpus for example
(fuzz/corpus/tar): the inputs coverage-guided fuzzing found are then judged
against the same three extractors (differential fuzzing, run after the
fuzzer rather than inside it, since each oracle is a separate process).

Prints one summary line per source and a closing line
`tardiff: N passed, M failed`. Writes archives only under a temporary folder
(or --keep DIR); extracts nothing.
"""

import argparse
import codecs
import concurrent.futures as cf
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

BLOCK = 512

# --------------------------------------------------------------------------
# Writing headers by hand


def octal(n, width):
    return (b"%0*o" % (width - 1, n)) + b"\0"


def pax_record(key, value, bad=None):
    payload = b" " + key + b"=" + value + b"\n"
    n = len(payload)
    while len(str(n).encode()) + len(payload) != n:
        n = len(str(n).encode()) + len(payload)
    rec = str(n).encode() + payload
    if bad == "long":
        rec = str(n + 7).encode() + payload
    elif bad == "short":
        rec = str(n - 2).encode() + payload
    elif bad == "nokey":
        rec = pax_record(b"", value)
    elif bad == "zero":
        rec = b"0 " + key + b"=" + value + b"\n"
    elif bad == "garbage":
        rec = b"xx" + payload
    return rec


def header(name=b"", typ=b"0", size=0, mode=0o644, link=b"", magic="ustar",
           prefix=b"", chk="std", realsize=None, sparse=None, extended=False):
    h = bytearray(BLOCK)
    h[0:100] = name[:100].ljust(100, b"\0")
    h[100:108] = octal(mode, 8)
    h[108:116] = octal(0, 8)
    h[116:124] = octal(0, 8)
    h[124:136] = octal(size, 12)
    h[136:148] = octal(0, 12)
    h[156:157] = typ
    h[157:257] = link[:100].ljust(100, b"\0")
    if magic == "ustar":
        h[257:265] = b"ustar\x0000"
    elif magic == "gnu":
        h[257:265] = b"ustar  \0"
    if prefix:
        h[345:500] = prefix[:155].ljust(155, b"\0")
    if sparse is not None:
        for i, (off, n) in enumerate(sparse[:4]):
            at = 386 + 24 * i
            h[at:at + 12] = octal(off, 12)
            h[at + 12:at + 24] = octal(n, 12)
        h[482] = 1 if extended else 0
        h[483:495] = octal(realsize or 0, 12)
    h[148:156] = b" " * 8
    if chk == "signed":
        s = sum((b - 256 if b > 127 else b) for b in h)
        h[148:156] = (b"%06o" % (s & 0o777777)) + b"\0 "
    elif chk == "spaces":
        h[148:156] = (b"%6o" % sum(h)) + b" \0"
    elif chk == "bad":
        h[148:156] = b"%06o\0 " % ((sum(h) + 1) & 0o777777)
    else:
        h[148:156] = (b"%06o" % sum(h)) + b"\0 "
    return bytes(h)


def padded(data):
    return data + b"\0" * (-len(data) % BLOCK)


def ext(typ, data, name=b"././@PaxHeader", magic="ustar"):
    return header(name, typ, len(data), magic=magic) + padded(data)


# --------------------------------------------------------------------------
# The generator

SAFE = [b"a.txt", b"dir/b.yaml", b"./c", b"d/", b"x" * 120, b"deep/" * 30 + b"f"]
HOSTILE = [b"../x", b"../../../tmp/x", b"/etc/x", b"a/../../x", b"..", b"/",
           b"d/" * 60 + b"../" * 70 + b"x", b"/" + b"a/" * 60 + b"z"]
NUL = [b"safe\0../../x", b"../..\0xxx", b"ok\0", b"\0../x"]
LINKS = [b"a.txt", b"../x", b"../../etc/passwd", b"/etc/shadow", b"dir/../..",
         b"sub/../a.txt", b"../..\0xxx", b"x" * 130]
TYPES = [b"0", b"\0", b"5", b"2", b"1", b"7", b"3", b"6", b"S", b"V", b"Z", b"D"]


def pick_name(r):
    roll = r.random()
    if roll < 0.45:
        return r.choice(SAFE)
    if roll < 0.85:
        return r.choice(HOSTILE)
    return r.choice(NUL)


def pax_ext(r, kind):
    recs = []
    for _ in range(r.randint(1, 3)):
        what = r.random()
        bad = r.choice(["long", "short", "nokey", "zero", "garbage"]) if r.random() < 0.08 else None
        if what < 0.45:
            recs.append(pax_record(b"path", pick_name(r), bad))
        elif what < 0.7:
            recs.append(pax_record(b"linkpath", r.choice(LINKS), bad))
        elif what < 0.8:
            recs.append(pax_record(b"mtime", b"1700000000.5", bad))
        elif what < 0.86:
            recs.append(pax_record(b"SCHILY.xattr.user.a" + (b"\0b" if r.random() < 0.5 else b""), b"v"))
        elif what < 0.92:
            recs.append(pax_record(b"GNU.sparse.name", pick_name(r)))
        else:
            recs.append(pax_record(b"comment", b"x"))
    return ext(kind, b"".join(recs))


def member(r, name, typ):
    magic = r.choice(["ustar", "ustar", "gnu", "v7"])
    chk = r.choice(["std"] * 6 + ["signed", "spaces"])
    prefix = b""
    if r.random() < 0.15:
        prefix = r.choice([b"pre", b"/etc", b"..", b"a/b"])
    link = b""
    if typ in (b"1", b"2"):
        link = r.choice(LINKS)[:100]
    data = b""
    if typ in (b"0", b"\0", b"7", b"Z", b"D") and r.random() < 0.7:
        data = b"hello %d\n" % r.randint(0, 99)
    if typ == b"S":
        body = b"A" * 10 + b"B" * 5
        return header(name, b"S", len(body), magic="gnu", chk=chk, realsize=100,
                      sparse=[(0, 10), (50, 5)]) + padded(body)
    size = len(data)
    if typ in (b"2", b"5") and r.random() < 0.05:
        size, data = 512, b"\0" * 512  # data on a type that has none
    return header(name, typ, size, link=link, magic=magic, prefix=prefix, chk=chk) + padded(data)


def generate(r):
    out = []
    for _ in range(r.randint(1, 4)):
        for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
            kind = r.random()
            if kind < 0.3:
                out.append(pax_ext(r, b"x"))
            elif kind < 0.4:
                out.append(pax_ext(r, b"X"))
            elif kind < 0.5:
                out.append(pax_ext(r, b"g"))
            elif kind < 0.8:
                out.append(ext(b"L", pick_name(r) + b"\0", b"././@LongLink", "gnu"))
            else:
                out.append(ext(b"K", r.choice(LINKS) + b"\0", b"././@LongLink", "gnu"))
        typ = r.choice(TYPES)
        out.append(member(r, pick_name(r)[:100], typ))
    out.append(b"\0" * (2 * BLOCK))
    return b"".join(out)


# --------------------------------------------------------------------------
# The oracles

QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')


def unescape(b):
    try:
        return codecs.escape_decode(b)[0]
    except Exception:
        return b


def list_gnu(path):
    p = subprocess.run(["tar", "--quoting-style=c", "-tvPf", path],
                       capture_output=True, timeout=60)
    out = []
    for line in p.stdout.splitlines():
        if b"--Volume Header--" in line:
            continue
        q = QUOTED.findall(line)
        if not q:
            continue
        name = unescape(q[0])
        link = unescape(q[1]) if len(q) > 1 else b""
        kind = {b"l": "sym", b"h": "hard"}.get(line[:1], "")
        if b'" link to "' in line:
            kind = "hard"
        out.append((name, kind, link))
    return out, p.returncode


def list_bsd(path):
    p = subprocess.run(["bsdtar", "-tvf", path], capture_output=True, timeout=60)
    out = []
    for line in p.stdout.splitlines():
        parts = line.split(None, 8)
        if len(parts) < 9:
            continue
        rest, kind, link = parts[8], "", b""
        if line[:1] == b"l" and b" -> " in rest:
            rest, link = rest.split(b" -> ", 1)
            kind = "sym"
        elif b" link to " in rest:
            rest, link = rest.split(b" link to ", 1)
            kind = "hard"
        out.append((unescape(rest), kind, unescape(link)))
    return out, p.returncode


def list_python(path):
    out, ok = [], 0
    try:
        with tarfile.open(path, "r:") as tf:
            while True:
                try:
                    m = tf.next()
                except Exception:
                    ok = 1
                    break
                if m is None:
                    break
                enc = lambda s: s.encode("utf-8", "surrogateescape")
                kind = "sym" if m.issym() else "hard" if m.islnk() else ""
                out.append((enc(m.name), kind, enc(m.linkname)))
    except Exception:
        ok = 1
    return out, ok


def climbs(base_depth, path):
    depth = base_depth
    for c in path.split(b"/"):
        if c in (b"", b"."):
            continue
        if c == b"..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def escapes(name, kind, link):
    """Whether extracting this entry writes (or links) outside the root."""
    name = name.split(b"\0", 1)[0]
    if name.startswith(b"/") or climbs(0, name):
        return True
    if kind:
        link = link.split(b"\0", 1)[0]
        if link.startswith(b"/"):
            return True
        parent = name.rstrip(b"/").rsplit(b"/", 1)[0] if b"/" in name.rstrip(b"/") else b""
        base = len([c for c in parent.split(b"/") if c not in (b"", b".")]) if kind == "sym" else 0
        if climbs(base, link):
            return True
    return False


def oracle(path):
    lists = {"gnu_tar": list_gnu(path), "bsdtar": list_bsd(path), "python": list_python(path)}
    escaping = {tool: [e for e in entries if escapes(*e)] for tool, (entries, _) in lists.items()}
    return lists, escaping


def ours(binary, path):
    p = subprocess.run([binary, "bundle", path, "--format", "json"], capture_output=True, timeout=120)
    try:
        report = json.loads(p.stdout)
        # A stream that stops at an entry boundary without the end-of-archive
        # marker is read whole by the peers (Go's test data has many); we
        # require the marker, so a cut release is caught. That is a verdict
        # on completeness, not a failure to read, so it is set apart.
        codes = sorted({"bundle:no-end-marker" if "without the end-of-archive marker" in f["message"]
                        else f["code"] for f in report["findings"] if f["status"] == "fail"})
    except Exception:
        codes = ["<no report: exit %d: %s>" % (p.returncode, p.stderr[:200])]
    return p.returncode, codes


GO_TESTDATA = "/usr/share/go-1.19/src/archive/tar"
PY_TESTDATA = "/usr/lib/python3.11/test"


def peer_verdicts():
    """The verdict the peers' own test suites give their test archives: True
    when their reader must refuse the file (an error), False when it must
    read it. Go's are read from the table of TestReader in reader_test.go;
    CPython's test_tarfile.py reads testtar.tar whole."""
    verdicts = {}
    go = os.path.join(GO_TESTDATA, "reader_test.go")
    if os.path.exists(go):
        src = open(go).read()
        start = src.index("func TestReader(")
        body = src[start:src.index("\nfunc ", start + 10)]
        for m in re.finditer(r'file:\s*"testdata/([^"]+)"(.*?)\n\t\}, \{', body, re.S):
            verdicts["go:" + m.group(1)] = re.search(r"err:\s*\S", m.group(2)) is not None
    verdicts["py:testtar.tar"] = False
    return verdicts


# Our codes that say the tar stream could not be read at all. A file the
# peer's tests read must not get one of these; it may still fail a safety
# rule or a stricter reading rule (a PAX size override, a non-UTF-8 PAX
# path), which is a verdict on the content, not a failure to read it.
UNREADABLE_CODES = {"bundle:unrecognised-format", "bundle:truncated", "bundle:tar-header-checksum",
                    "bundle:tar-corrupt", "bundle:data-after-end"}
# Codes that say the tar metadata itself is wrong: a file the peer's tests
# refuse must get at least one.
REFUSAL_CODES = UNREADABLE_CODES | {"bundle:tar-metadata-malformed", "bundle:tar-readers-disagree",
                                    "bundle:pax-size-mismatch"}


def peer_files():
    roots = [("go", os.path.join(GO_TESTDATA, "testdata")), ("py", PY_TESTDATA)]
    found = []
    for tag, root in roots:
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            if name.endswith(".tar"):
                found.append((tag + ":" + name, os.path.join(root, name)))
    return found


def check(binary, path, label):
    lists, escaping = oracle(path)
    rc, codes = ours(binary, path)
    escaped = {t: e for t, e in escaping.items() if e}
    result = {"label": label, "rc": rc, "codes": codes, "escaped": escaped,
              "listed": {t: len(v[0]) for t, v in lists.items()},
              "refused": {t: v[1] != 0 for t, v in lists.items()}}
    result["bypass"] = bool(escaped) and rc == 0
    # Naming differentials: the extractors list the same number of entries
    # but name or link some differently. Ours must say so (or refuse the
    # metadata); and where all three agree, ours must not claim they differ.
    # Listings differ in form only: Python drops a folder's trailing slash
    # and keeps a link name on entries that are not links.
    listings = [[(n.rstrip(b"/"), k, l if k else b"") for n, k, l in v[0]] for v in lists.values()]
    result["disagree"] = len({tuple(x) for x in listings}) > 1
    same_count = len({len(x) for x in listings}) == 1
    noticed = set(codes) & ({"bundle:tar-readers-disagree", "bundle:tar-metadata-malformed"} | UNREADABLE_CODES)
    result["missed_differential"] = same_count and result["disagree"] and not noticed
    result["false_differential"] = not result["disagree"] and "bundle:tar-readers-disagree" in codes
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--corpus", action="append", default=[],
                    help="also check every file of this folder (a fuzzer's corpus), as the generated ones")
    args = ap.parse_args()
    for tool in ("tar", "bsdtar"):
        if shutil.which(tool) is None:
            print(f"tardiff: {tool} not found (Debian: tar, libarchive-tools)", file=sys.stderr)
            return 2
    work = args.keep or tempfile.mkdtemp(prefix="tardiff-")
    os.makedirs(work, exist_ok=True)
    r = random.Random(args.seed)
    jobs = []
    for i in range(args.count):
        p = os.path.join(work, "gen-%05d.tar" % i)
        with open(p, "wb") as f:
            f.write(generate(r))
        jobs.append((p, "gen-%05d.tar" % i))
    for folder in args.corpus:
        for name in sorted(os.listdir(folder)):
            jobs.append((os.path.join(folder, name), os.path.basename(folder) + "/" + name))
    peers = peer_files()
    passed = failed = 0
    stats = {"escape": 0, "disagree": 0, "rejected": 0, "false": 0}
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: check(args.bin, *j), jobs))
        peer_results = list(pool.map(lambda j: check(args.bin, j[1], j[0]), peers))
    for res in results:
        stats["escape"] += bool(res["escaped"])
        stats["disagree"] += res["disagree"]
        stats["rejected"] += res["rc"] != 0
        stats["false"] += res["false_differential"]
        if res["bypass"]:
            failed += 1
            print("BYPASS %s: %s escape while airgap-verify says ready" % (res["label"], res["escaped"]))
        elif res["missed_differential"]:
            failed += 1
            print("MISSED %s: the extractors name entries differently, airgap-verify does not say so (%s)"
                  % (res["label"], res["codes"]))
        else:
            passed += 1
    print("tardiff: %d generated archives (seed %d) and %d corpus files: %d where an extractor escapes the root, "
          "%d where the extractors list different entries, %d not ready, %d failures, "
          "%d where ours reports a disagreement the extractors' listings do not show"
          % (args.count, args.seed, len(results) - args.count, stats["escape"], stats["disagree"], stats["rejected"], failed,
             stats["false"]))
    peers_checked = 0
    verdicts = peer_verdicts()
    for res in peer_results:
        if res["bypass"]:
            failed += 1
            print("BYPASS %s: %s escape while airgap-verify says ready" % (res["label"], res["escaped"]))
            continue
        verdict = verdicts.get(res["label"])
        if verdict is None:
            passed += 1
            continue
        peers_checked += 1
        unreadable = [c for c in res["codes"] if c in UNREADABLE_CODES]
        refused = [c for c in res["codes"] if c in REFUSAL_CODES]
        if verdict and not refused:
            failed += 1
            print("PEER %s: its own tests refuse it, airgap-verify finds its tar metadata sound: %s"
                  % (res["label"], res["codes"]))
        elif not verdict and unreadable:
            failed += 1
            print("PEER %s: its own tests read it, airgap-verify cannot: %s" % (res["label"], unreadable))
        else:
            passed += 1
    print("tardiff: %d peer corpus files (%d with a verdict from their own tests)" % (len(peer_results), peers_checked))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("tardiff: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
