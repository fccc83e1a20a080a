#!/usr/bin/env python3
"""Generates the hostile-archive corpus of airgap-verify (issue #7).

    python3 testdata/hostile/generate.py OUT_DIR          # small cases only
    python3 testdata/hostile/generate.py OUT_DIR --big    # and the big ones

Every case is an archive that `airgap-verify bundle` must reject with one
exact set of failing findings, without panicking, within 10 s and 64 MiB of
peak RSS. `OUT_DIR/cases.txt` lists them, one line per case:

    NAME | small|big | ARGS or - | CODE TARGET ; CODE TARGET ...

TARGET `-` stands for the archive itself (the path given on the command
line), `*` for any number of findings of that code (at least one), whatever
their targets. The small cases are committed in testdata/hostile/cases/ and the test
(tests/hostile.rs) checks that they are byte-for-byte what this script
writes; the big ones (gzip bombs, a 100 MB manifest, 200,000 entries,
100 MB extension headers) are only ever written at test time.

Output is deterministic and independent of the zlib version: the committed
gzip files use stored (uncompressed) deflate blocks and the zstd files raw
blocks, both written by hand here. Only the bombs use zlib, to compress.
Standard library only.
"""

import functools
import hashlib
import json
import os
import struct
import sys
import zlib

# ---- tar ------------------------------------------------------------------


def octal(value, width):
    """A NUL-terminated octal field of `width` bytes."""
    return ("%0*o" % (width - 1, value)).encode()[-(width - 1):] + b"\0"


def checksum(block):
    block = bytearray(block)
    block[148:156] = b"        "
    block[148:156] = ("%06o\0 " % sum(block)).encode()
    return bytes(block)


def header(name, typ=b"0", mode=0o644, size=0, link=b"", gnu=False, raw_size=None):
    """One 512-byte ustar (or GNU) header; names and links are cut at 100."""
    if isinstance(name, str):
        name = name.encode()
    if isinstance(link, str):
        link = link.encode()
    h = bytearray(512)
    h[0:100] = name[:100].ljust(100, b"\0")
    h[100:108] = octal(mode, 8)
    h[108:116] = octal(0, 8)
    h[116:124] = octal(0, 8)
    h[124:136] = raw_size if raw_size is not None else octal(size, 12)
    h[136:148] = octal(1735689600, 12)
    h[156:157] = typ
    h[157:257] = link[:100].ljust(100, b"\0")
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    h[265:269] = b"root"
    h[297:301] = b"root"
    return checksum(h)


def pad(data):
    return data + b"\0" * (-len(data) % 512)


def gnu_long(name, typ=b"L"):
    """A GNU long-name (`L`) or long-link (`K`) record for the next entry."""
    if isinstance(name, str):
        name = name.encode()
    data = name + b"\0"
    return header("././@LongLink", typ, size=len(data), gnu=True) + pad(data)


def pax(records):
    """A PAX local extended header (`x`) for the next entry."""
    body = b""
    for key, value in records:
        if isinstance(value, str):
            value = value.encode()
        rest = len(key) + len(value) + 3
        n = rest + 1
        while len(str(n)) + rest != n:
            n = len(str(n)) + rest
        body += str(n).encode() + b" " + key.encode() + b"=" + value + b"\n"
    return header("././@PaxHeader", b"x", size=len(body)) + pad(body)


def entry(name, data=b"", typ=b"0", mode=0o644, link=b""):
    """One entry, preceded by a GNU long-name record when the name needs it."""
    if isinstance(name, str):
        name = name.encode()
    out = gnu_long(name) if len(name) > 100 else b""
    return out + header(name, typ, mode, len(data), link) + pad(data)


END = b"\0" * 1024


def tar(*entries):
    return b"".join(entries) + END


# ---- gzip and zstd, deterministic -------------------------------------------


def deflate_stored(data):
    """Raw deflate made of stored blocks only: the same bytes everywhere."""
    out = bytearray()
    blocks = [data[i:i + 65535] for i in range(0, len(data), 65535)] or [b""]
    for i, block in enumerate(blocks):
        final = 1 if i == len(blocks) - 1 else 0
        out += bytes([final]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
    return bytes(out)


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def gzip(data, deflated=None, crc=None, size=None):
    body = deflated if deflated is not None else deflate_stored(data)
    crc = zlib.crc32(data) if crc is None else crc
    size = len(data) if size is None else size
    return GZIP_HEADER + body + struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd(data, content_size=None, single_segment=False):
    """One zstd frame of raw blocks. `content_size` is written as the
    Frame_Content_Size (8 bytes), true or not; without it there is none."""
    if single_segment:
        # Single_Segment, 8-byte Frame_Content_Size, no window descriptor.
        out = ZSTD_MAGIC + bytes([0xE0]) + struct.pack("<Q", content_size)
    elif content_size is not None:
        # 8-byte Frame_Content_Size; window 1 MiB (exponent 10).
        out = ZSTD_MAGIC + bytes([0xC0, 10 << 3]) + struct.pack("<Q", content_size)
    else:
        out = ZSTD_MAGIC + bytes([0x00, 10 << 3])
    blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for i, block in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        bh = last | (0 << 1) | (len(block) << 3)  # raw block
        out += struct.pack("<I", bh)[:3] + block
    return out


# ---- gzip bombs -------------------------------------------------------------


def _gf2_times(mat, vec):
    s, i = 0, 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat):
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1, crc2, len2):
    """zlib's crc32_combine: the CRC of A+B from CRC(A), CRC(B), len(B)."""
    if len2 == 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


MIB = 1 << 20


def crc32_zeros(n_mib):
    """CRC-32 of n_mib MiB of zeros, without computing over them."""
    one = zlib.crc32(b"\0" * MIB)
    result, have = None, 0
    power, power_len = one, MIB
    n = n_mib
    while n:
        if n & 1:
            result = power if result is None else crc32_combine(result, power, power_len)
            have += power_len
        power = crc32_combine(power, power, power_len)
        power_len *= 2
        n >>= 1
    return result


@functools.lru_cache(maxsize=None)
def gzip_bomb(zeros_mib):
    """A valid gzip of a tar holding one file of zeros: (zeros_mib MiB + 512
    bytes) decompressed. Made of one independently compressed MiB of zeros
    repeated, so it is written in a moment."""
    total = zeros_mib * MIB
    size = total - 1024  # the last 1024 zeros are the end-of-archive marker
    head = header("zeros.bin", size=size)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MIB) + c.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    deflated = first + block * zeros_mib + last
    crc = crc32_combine(zlib.crc32(head), crc32_zeros(zeros_mib), total)
    return gzip(None, deflated=deflated, crc=crc, size=512 + total)


BOMB_MIB = 10 * 1024  # 10 GiB of zeros in about 10 MB


# ---- images -------------------------------------------------------------------


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def jdump(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def oci_image(layer, diff_id):
    """An OCI layout tar with one gzip layer."""
    config = jdump({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    })
    manifest = jdump({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + sha256(layer), "size": len(layer)}],
    })
    index = jdump({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": "sha256:" + sha256(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "registry.local/app:1"}}],
    })
    return tar(
        entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        entry("index.json", index),
        entry("blobs/sha256/" + sha256(manifest), manifest),
        entry("blobs/sha256/" + sha256(config), config),
        entry("blobs/sha256/" + sha256(layer), layer),
    )


# ---- the cases ------------------------------------------------------------------

CASES = []


def case(name, expect, args="-", big=False):
    """Registers a case: `expect` is a list of (code, target)."""
    def register(build):
        CASES.append((name, "big" if big else "small", args, expect, build))
        return build
    return register


def manifest_doc(files):
    return json.dumps({"schema_version": 1, "product": "p", "version": "1", "files": files},
                      indent=1).encode()


ZERO_DIGEST = "0" * 64
LONG_DOTDOT = "d/" * 60 + "../" * 61 + "x"
LONG_ABSOLUTE = "/" + "a/" * 60 + "evil"
LONG_LINK = "../" * 40 + "etc/shadow"


# Paths: `..`, absolute, also hidden in PAX and GNU records.
@case("abs-path.tar", [("bundle:absolute-path", "/etc/cron.d/evil")])
def _():
    return tar(entry("/etc/cron.d/evil", b"* * * * * root id\n"))


@case("dotdot-path.tar", [("bundle:path-traversal", "a/../../evil")])
def _():
    return tar(entry("a/../../evil", b"x"))


@case("pax-path-dotdot.tar", [("bundle:path-traversal", "../../etc/passwd")])
def _():
    return tar(pax([("path", "../../etc/passwd")]) + entry("innocent.txt", b"x"))


@case("pax-path-absolute.tar", [("bundle:absolute-path", "/etc/passwd")])
def _():
    return tar(pax([("path", "/etc/passwd")]) + entry("innocent.txt", b"x"))


@case("gnu-longname-dotdot.tar", [("bundle:path-traversal", LONG_DOTDOT)])
def _():
    return tar(entry(LONG_DOTDOT, b"x"))


@case("gnu-longname-absolute.tar", [("bundle:absolute-path", LONG_ABSOLUTE)])
def _():
    return tar(entry(LONG_ABSOLUTE, b"x"))


@case("pax-linkpath-escape.tar", [("bundle:link-escape", "link")])
def _():
    return tar(pax([("linkpath", "/etc/shadow")]) + entry("link", typ=b"2", mode=0o777, link="ok"))


@case("gnu-longlink-escape.tar", [("bundle:link-escape", "a/link")])
def _():
    return tar(gnu_long(LONG_LINK, b"K") + entry("a/link", typ=b"2", mode=0o777, link="ok"))


# PAX headers that change an entry's size.
@case("pax-size-larger.tar", [("bundle:pax-size-mismatch", "a.txt")])
def _():
    # The header says 5 bytes, PAX says 512: readers that ignore PAX read a
    # different archive.
    return tar(pax([("size", "512")]) + header("a.txt", size=5) + b"A" * 512)


@case("pax-size-hides-entry.tar", [("bundle:pax-size-mismatch", "a.txt")])
def _():
    # PAX says 0 bytes, the header 1024: what a PAX-blind reader takes for
    # a.txt's data is, for a PAX reader, the entry hidden.sh.
    hidden = header("hidden.sh", size=5, mode=0o755) + pad(b"id;\n\n")
    return tar(pax([("size", "0")]) + header("a.txt", size=len(hidden)) + hidden)


# Links.
@case("symlink-escape.tar", [("bundle:link-escape", "a/b/link")])
def _():
    return tar(entry("a/b/link", typ=b"2", mode=0o777, link="../../../etc"))


@case("symlink-absolute.tar", [("bundle:link-escape", "link")])
def _():
    return tar(entry("link", typ=b"2", mode=0o777, link="/etc/shadow"))


@case("hardlink-escape.tar", [("bundle:link-escape", "h")])
def _():
    return tar(entry("h", typ=b"1", link="../outside"))


@case("hardlink-absolute.tar", [("bundle:link-escape", "h")])
def _():
    return tar(entry("h", typ=b"1", link="/etc/shadow"))


@case("symlink-dir-then-file.tar", [("bundle:path-through-symlink", "conf/app.yaml")])
def _():
    # The link stays inside, but extraction writes app.yaml wherever conf
    # points at that moment.
    return tar(entry("sub/", typ=b"5", mode=0o755),
               entry("conf", typ=b"2", mode=0o777, link="sub"),
               entry("conf/app.yaml", b"x: 1\n"))


@case("symlink-escape-then-file.tar", [("bundle:link-escape", "evil"),
                                       ("bundle:path-through-symlink", "evil/cron.d/job")])
def _():
    return tar(entry("evil", typ=b"2", mode=0o777, link="/etc"),
               entry("evil/cron.d/job", b"* * * * * root id\n"))


# Special files and modes.
@case("char-device.tar", [("bundle:special-file", "dev/tty")])
def _():
    return tar(entry("dev/tty", typ=b"3"))


@case("block-device.tar", [("bundle:special-file", "dev/sda")])
def _():
    return tar(entry("dev/sda", typ=b"4"))


@case("fifo.tar", [("bundle:special-file", "run/fifo")])
def _():
    return tar(entry("run/fifo", typ=b"6"))


@case("socket.tar", [("bundle:special-file", "run/app.sock")])
def _():
    # Tar has no socket type flag; a socket rides in the mode's type bits.
    return tar(entry("run/app.sock", mode=0o140755))


@case("setuid.tar", [("bundle:setuid", "bin/su")])
def _():
    return tar(entry("bin/su", b"\x7fELF", mode=0o4755))


@case("setgid.tar", [("bundle:setuid", "bin/sg")])
def _():
    return tar(entry("bin/sg", b"\x7fELF", mode=0o2755))


@case("duplicate-path.tar", [("bundle:duplicate-entry", "a/config.yml")])
def _():
    return tar(entry("a/config.yml", b"reviewed: true\n"), entry("a/config.yml", b"installed: evil\n"))


@case("non-utf8-name.tar", [("bundle:non-utf8-name", "bad-\\xff\\xfe.txt")])
def _():
    return tar(entry(b"bad-\xff\xfe.txt", b"x"), entry("next.txt", b"still read"))


def shown(name):
    """How airgap-verify prints a name over 4096 bytes (PATH_MAX)."""
    if len(name) <= 4096:
        return name
    raw = name.encode()
    return "%s\u2026[%d bytes, sha256:%s]" % (name[:100], len(raw), hashlib.sha256(raw).hexdigest()[:32])


LONG_PATH = "a/" * 500000 + "x"


@case("long-path-after-symlink.tar", [("bundle:name-too-long", shown(LONG_PATH)),
                                      ("bundle:absolute-path", "/abs")], big=True)
def _():
    # A symlink, then a 1 MB name of half a million components (just under
    # the extension header limit): looking up each of its prefixes as a
    # whole string costs time quadratic in the name's length.
    return tar(entry("s", typ=b"2", mode=0o777, link="t"), entry(LONG_PATH, b"x"), entry("/abs", b"x"))


LONG_NAMES = ["%03d/" % i + "n" * 1000000 for i in range(64)]


@case("long-names.tar", [("bundle:name-too-long", shown(n)) for n in LONG_NAMES], big=True)
def _():
    # 64 entries with 1 MB names: kept whole, they would cost their 64 MB
    # several times over (file table, names for case collisions, findings).
    return tar(*[entry(n, b"x") for n in LONG_NAMES])


@case("sparse-then-pax-huge.tar", [("bundle:expansion-ratio-exceeded", "disk.img"),
                                   ("bundle:tar-corrupt", "-")])
def _():
    # A GNU sparse entry (a 4 GiB file of one 512-byte segment: a bomb in
    # its own right, reported and not expanded), then a PAX header declaring
    # 100 MB: the oversized header must still be caught after an entry whose
    # data size is not its size.
    h = bytearray(header("disk.img", typ=b"S", size=512, gnu=True))
    h[386:398] = octal(0, 12)  # segment offset
    h[398:410] = octal(512, 12)  # segment length
    h[410:422] = octal(1 << 32, 12)  # an empty segment at the end
    h[422:434] = octal(0, 12)
    h[483:495] = octal(1 << 32, 12)  # real size
    return (checksum(h) + b"D" * 512
            + header("././@PaxHeader", b"x", size=100 * 1000 * 1000) + b"9 a=bcde\n" + b"\0" * 503)


# Parser differentials (issue #14): names the real extractors (GNU tar 1.34,
# bsdtar 3.6, Python 3.11's tarfile) take from headers a naive reader skips.
def ext_header(typ, body, name="././@PaxHeader"):
    """An extension header of type `typ` with `body` as its data, raw."""
    return header(name, typ, size=len(body)) + pad(body)


def pax_body(records):
    return pax(records)[512:].rstrip(b"\0")


@case("pax-path-then-gnu-longname.tar", [("bundle:path-traversal", "../../../tmp/x")])
def _():
    # A PAX path, then a GNU long name: all three extractors take the PAX path.
    return tar(pax([("path", "../../../tmp/x")]) + gnu_long("n" * 120 + "/safe") + header("safe", size=1) + pad(b"x"))


@case("pax-sparse-01-name.tar", [("bundle:path-traversal", "../../etc/x")])
def _():
    # PAX sparse 0.1: the real name is GNU.sparse.name, the header's is a
    # placeholder.
    recs = [("GNU.sparse.size", "5"), ("GNU.sparse.numblocks", "1"), ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "5"), ("GNU.sparse.name", "../../etc/x")]
    return tar(pax(recs) + header("GNUSparseFile.1/x", size=5) + pad(b"hello"))


@case("pax-sparse-10-name.tar", [("bundle:path-traversal", "../../etc/y")])
def _():
    # PAX sparse 1.0: the map is at the start of the data.
    recs = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "../../etc/y"),
            ("GNU.sparse.realsize", "5")]
    data = pad(b"1\n0\n5\n") + b"hello"
    return tar(pax(recs) + header("GNUSparseFile.0/y", size=len(data)) + pad(data))


@case("solaris-x-path.tar", [("bundle:absolute-path", "/etc/passwd")])
def _():
    # A Solaris/star extended header (type X) is applied like a PAX one.
    return tar(ext_header(b"X", pax_body([("path", "/etc/passwd")])) + header("safe", size=1) + pad(b"x"))


@case("solaris-x-linkpath.tar", [("bundle:link-escape", "l")])
def _():
    return tar(ext_header(b"X", pax_body([("linkpath", "../../../etc")])) + header("l", b"2", link="t"))


@case("pax-global-path.tar", [("bundle:path-traversal", "../../x"), ("bundle:tar-readers-disagree", "../../x")])
def _():
    # A global header's path: GNU tar and Python apply it, bsdtar does not.
    return tar(ext_header(b"g", pax_body([("path", "../../x")])) + header("a.txt", size=1) + pad(b"x"))


@case("pax-global-linkpath.tar", [("bundle:link-escape", "l"), ("bundle:tar-readers-disagree", "l")])
def _():
    return tar(ext_header(b"g", pax_body([("linkpath", "../../../etc")])) + header("l", b"2", link="t"))


@case("gnu-longlink-nul.tar", [("bundle:link-escape", "l"), ("bundle:tar-metadata-malformed", "l")])
def _():
    # `../..` NUL `xxx`: GNU tar and bsdtar cut at the NUL, a link that leaves
    # the root; the whole string would look like a folder inside it.
    data = b"../..\0xxx\0"
    return tar(header("././@LongLink", b"K", size=len(data), gnu=True) + pad(data) + header("l", b"2", link="t"))


@case("pax-linkpath-nul.tar", [("bundle:link-escape", "l"), ("bundle:tar-metadata-malformed", "l"),
                               ("bundle:tar-readers-disagree", "l")])
def _():
    return tar(pax([("linkpath", "../..\0xxx")]) + header("l", b"2", link="t"))


@case("pax-bad-length.tar", [("bundle:tar-metadata-malformed", "a.txt"), ("bundle:path-traversal", "a.txt")])
def _():
    # The record says 13 bytes where it has 18: GNU tar and bsdtar refuse
    # it, Python takes `path=../.` from it.
    return tar(ext_header(b"x", b"13 path=../../x\n") + header("a.txt", size=1) + pad(b"x"))


@case("pax-no-key.tar", [("bundle:tar-metadata-malformed", "a.txt")])
def _():
    return tar(ext_header(b"x", b"7 =abc\n") + header("a.txt", size=1) + pad(b"x"))


@case("pax-nul-in-key.tar", [("bundle:tar-metadata-malformed", "a.txt")])
def _():
    body = b"SCHILY.xattr.user.a\0b=1\n"
    n = len(body) + 3
    return tar(ext_header(b"x", str(n).encode() + b" " + body) + header("a.txt", size=1) + pad(b"x"))


@case("symlink-with-data.tar", [("bundle:tar-metadata-malformed", "l"), ("bundle:path-traversal", "../../hidden")])
def _():
    # A symlink that declares 512 bytes: GNU tar skips them, bsdtar and
    # Python read them as the next header, here an entry named ../../hidden.
    return tar(header("l", b"2", size=512, link="t") + header("../../hidden", size=1) + pad(b"x"))


# Tar framing.
@case("bad-header-checksum.tar", [("bundle:tar-header-checksum", "-")])
def _():
    t = bytearray(tar(entry("a.txt", b"hello"), entry("b.txt", b"world")))
    t[1024] = ord("X")  # second header's name, checksum not fixed
    return bytes(t)


@case("size-past-end.tar", [("bundle:truncated", "-")])
def _():
    return header("big.bin", size=MIB) + b"x" * 100


@case("no-end-marker.tar", [("bundle:truncated", "-")])
def _():
    return entry("a.txt", b"hello")


@case("data-after-end.tar", [("bundle:data-after-end", "-")])
def _():
    return tar(entry("a.txt", b"hello")) + b"\0" * 512 + tar(entry("hidden.sh", b"id\n"))


@case("unrecognised-format.tar", [("bundle:unrecognised-format", "-")])
def _():
    return b"<html><body>404 Not Found</body></html>\n"


@case("pax-header-huge.tar", [("bundle:tar-corrupt", "-")], big=True)
def _():
    # 100 MB of PAX records: the tar crate would hold them all in memory.
    record = b"100 comment=" + b"a" * 87 + b"\n"
    body = record * (MIB)
    return header("././@PaxHeader", b"x", size=len(body)) + body + entry("a.txt", b"x") + END


@case("gnu-longname-huge.tar", [("bundle:tar-corrupt", "-")], big=True)
def _():
    name = b"n/" * (50 * MIB)
    return gnu_long(name) + header("short", size=1) + pad(b"x") + END


@case("sparse-map-huge.tar", [("bundle:tar-corrupt", "-")], big=True)
def _():
    # A GNU sparse file whose map runs on for 4 MiB of extension blocks: the
    # crate keeps a record per segment.
    h = bytearray(header("sparse.img", typ=b"S", size=0, gnu=True))
    h[482] = 1  # isextended
    h[483:495] = octal(1 << 32, 12)  # real size
    h = checksum(h)
    blocks = []
    offset = 0
    for i in range(8192):
        b = bytearray(512)
        for j in range(21):
            b[j * 24:j * 24 + 12] = octal(offset, 12)
            b[j * 24 + 12:j * 24 + 24] = octal(0, 12)
            offset += 512
        b[504] = 1 if i < 8191 else 0
        blocks.append(bytes(b))
    return h + b"".join(blocks) + END


# Compression containers.
SMALL_TAR = tar(entry("a.txt", b"hello world\n"), entry("b.txt", b"second file\n" * 100))


@case("gzip-truncated.tar.gz", [("bundle:truncated", "-")])
def _():
    gz = gzip(SMALL_TAR)
    return gz[: len(gz) // 2]


@case("gzip-bad-crc.tar.gz", [("bundle:gzip-crc-mismatch", "-")])
def _():
    return gzip(SMALL_TAR, crc=zlib.crc32(SMALL_TAR) ^ 0xFF)


@case("gzip-bad-isize.tar.gz", [("bundle:gzip-size-mismatch", "-")])
def _():
    return gzip(SMALL_TAR, size=len(SMALL_TAR) + 1)


@case("gzip-trailing-garbage.tar.gz", [("bundle:trailing-data", "-")])
def _():
    return gzip(SMALL_TAR) + b"\0\0\0EVIL"


@case("gzip-zero-padding.tar.gz", [("bundle:zero-padding", "-")], args="--fail-on warn")
def _():
    return gzip(SMALL_TAR) + b"\0" * 4096


@case("gzip-empty-member.tar.gz", [("bundle:truncated", "-")])
def _():
    return gzip(b"")


@case("gzip-bad-deflate.tar.gz", [("bundle:gzip-corrupt", "-")])
def _():
    # Block type 3 does not exist.
    return GZIP_HEADER + b"\x07" + b"\0" * 16


@case("gzip-bad-method.tar.gz", [("bundle:gzip-corrupt", "-")])
def _():
    gz = bytearray(gzip(SMALL_TAR))
    gz[2] = 7
    return bytes(gz)


@case("gzip-bad-header-crc.tar.gz", [("bundle:gzip-corrupt", "-")])
def _():
    # FHCRC set, and the two bytes after the fixed header are not the low
    # bytes of its CRC-32: GNU gzip and zlib refuse the member.
    h = bytearray(GZIP_HEADER)
    h[3] |= 0x02
    good = zlib.crc32(bytes(h)) & 0xFFFF
    return bytes(h) + struct.pack("<H", good ^ 0x5A5A) + gzip(SMALL_TAR)[len(GZIP_HEADER):]


@case("zstd-size-too-large.tar.zst", [("bundle:zstd-corrupt", "-")])
def _():
    # Frame_Content_Size claims a terabyte; the frame holds a small tar.
    return zstd(SMALL_TAR, content_size=1 << 40)


@case("zstd-size-too-small.tar.zst", [("bundle:zstd-corrupt", "-")])
def _():
    # Frame_Content_Size (and so the window) claims 100 bytes.
    return zstd(SMALL_TAR, content_size=100, single_segment=True)


@case("zstd-truncated.tar.zst", [("bundle:truncated", "-")])
def _():
    z = zstd(SMALL_TAR)
    return z[: len(z) - 100]


@case("zstd-trailing-garbage.tar.zst", [("bundle:trailing-data", "-")])
def _():
    return zstd(SMALL_TAR) + b"NOTZSTD!"


def zstd_rle(window_log, blocks):
    """A zstd frame declaring a 2^window_log window, no content size: a raw
    block with a tar header, then `blocks` run-length blocks of 128 KiB of
    zeros (4 bytes each)."""
    h = header("zeros.bin", size=blocks * 131072)
    out = ZSTD_MAGIC + bytes([0x00, (window_log - 10) << 3])
    out += struct.pack("<I", len(h) << 3)[:3] + h
    for i in range(blocks):
        last = 1 if i == blocks - 1 else 0
        out += struct.pack("<I", last | (1 << 1) | (131072 << 3))[:3] + b"\0"
    return out


@case("bomb-zstd-window.tar.zst", [("bundle:expansion-ratio-exceeded", "-")])
def _():
    # A 128 MiB window (the most zstd allows by default) filled by 4-byte
    # run-length blocks: the decoder's window grows with what it decodes.
    return zstd_rle(27, 1024)


@case("zstd-window-too-large.tar.zst", [("bundle:zstd-corrupt", "-")])
def _():
    # A 2 GiB window: refused before anything is allocated.
    return zstd_rle(31, 16)


# Decompression bombs: 10 GiB of zeros in about 10 MB.
@case("bomb-release.tar.gz", [("bundle:expansion-ratio-exceeded", "-")], big=True)
def _():
    return gzip_bomb(BOMB_MIB)


@case("bomb-member.tar", [("bundle:expansion-ratio-exceeded", "data/zeros.tar.gz")], big=True)
def _():
    return tar(entry("data/zeros.tar.gz", gzip_bomb(BOMB_MIB)))


@case("bomb-image.tar", [("bundle:expansion-ratio-exceeded", "images/app.tar.gz")], big=True)
def _():
    return tar(entry("images/app.tar.gz", gzip_bomb(BOMB_MIB)))


def _bomb_layer():
    return gzip_bomb(BOMB_MIB)


@case("bomb-layer.tar", [("bundle:expansion-ratio-exceeded", "images/app.tar!blobs/sha256/{layer}")],
      args="--deep", big=True)
def _():
    layer = _bomb_layer()
    return tar(entry("images/app.tar", oci_image(layer, ZERO_DIGEST)))


@case("bomb-depth-3.tar", [("bundle:expansion-ratio-exceeded", "a.tar.gz!b.tar.gz!zeros.tar.gz")],
      big=True)
def _():
    # The bomb three archives deep, each level a gzip stream of its own:
    # every level's decoder and channels are alive at once.
    b = gzip(tar(entry("zeros.tar.gz", gzip_bomb(BOMB_MIB))))
    return tar(entry("a.tar.gz", gzip(tar(entry("b.tar.gz", b)))))


def git_bundle_bomb(zeros_mib):
    """A Git bundle whose pack holds one blob of zeros_mib MiB of zeros (a
    valid zlib stream and pack checksum; the ref is made up)."""
    n = zeros_mib * MIB
    head = bytearray()
    size, c = n >> 4, 0x30 | (n & 15)  # type 3: blob
    while size:
        head.append(c | 0x80)
        c, size = size & 0x7F, size >> 7
    head.append(c)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MIB) + c.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zeros
    stream = b"\x78\xda" + block * zeros_mib + last + struct.pack(">I", adler)
    pack = b"PACK" + struct.pack(">II", 2, 1) + bytes(head) + stream
    pack += hashlib.sha1(pack).digest()
    return b"# v2 git bundle\n" + b"1" * 40 + b" refs/heads/main\n\n" + pack


@case("bomb-git-bundle.tar", [("bundle:expansion-ratio-exceeded", "repos/app.bundle")], big=True)
def _():
    # libgit2 inflates each object in memory: 1 GiB of RSS per MB of this.
    return tar(entry("repos/app.bundle", git_bundle_bomb(BOMB_MIB)))


# Nested archives and their limits.
@case("nested-traversal.tar", [("bundle:path-traversal", "data/inner.tar!../../evil")])
def _():
    return tar(entry("data/inner.tar", tar(entry("../../evil", b"x"))))


@case("nested-too-deep.tar", [("bundle:nested-too-deep", "a.tar!b.tar!c.tar!d.tar.gz")])
def _():
    d = gzip(tar(entry("deepest.txt", b"x")))
    c = tar(entry("d.tar.gz", d))
    b = tar(entry("c.tar", c))
    return tar(entry("a.tar", tar(entry("b.tar", b))))


@case("nested-too-large.tar", [("bundle:nested-too-large", "data/big.tar")],
      args="--max-nested-bytes 32KiB")
def _():
    return tar(entry("data/big.tar", tar(entry("zeros.bin", b"\0" * 40960))))


@case("nested-too-many-entries.tar", [("bundle:nested-too-many-entries", "data/many.tar")],
      args="--max-nested-entries 10")
def _():
    return tar(entry("data/many.tar", tar(*[entry("f/%02d" % i) for i in range(20)])))


def many_entries(n):
    return b"".join(header("f/%06d" % i) for i in range(n))


@case("nested-200k-entries.tar", [("bundle:nested-too-many-entries", "data/many.tar.gz")], big=True)
def _():
    inner = many_entries(200000) + END
    gz = gzip(inner, deflated=zlib.compress(inner, 6)[2:-4])
    return tar(entry("data/many.tar.gz", gz))


@case("release-200k-entries.tar", [("bundle:duplicate-entry", "f/000000")], big=True)
def _():
    # 200,000 empty entries in the release itself (under --max-entries:
    # memory must stay within bounds anyway), the last one a duplicate.
    return many_entries(200000) + header("f/000000") + END


@case("release-too-many-entries.tar", [("bundle:too-many-entries", "-")],
      args="--max-entries 10")
def _():
    return many_entries(20) + END


# Release manifests.
@case("manifest-path-escape.tar", [("bundle:manifest-invalid", "rel/manifest.json")])
def _():
    doc = manifest_doc([{"path": "../../etc/passwd", "size": 1, "sha256": ZERO_DIGEST}])
    return tar(entry("rel/manifest.json", doc))


@case("manifest-duplicate.tar", [("bundle:manifest-invalid", "rel/manifest.json")])
def _():
    data = b"x"
    f = {"path": "a.txt", "size": 1, "sha256": sha256(data)}
    return tar(entry("rel/manifest.json", manifest_doc([f, f])), entry("rel/a.txt", data))


@case("manifest-short-digest.tar", [("bundle:manifest-invalid", "rel/manifest.json")])
def _():
    data = b"x"
    f = {"path": "a.txt", "size": 1, "sha256": sha256(data)[:63]}
    return tar(entry("rel/manifest.json", manifest_doc([f])), entry("rel/a.txt", data))


@case("sums-path-escape.tar", [("bundle:manifest-invalid", "rel/SHA256SUMS")])
def _():
    return tar(entry("rel/SHA256SUMS", (ZERO_DIGEST + "  ../../etc/passwd\n").encode()))


@case("manifest-100mb.tar", [("bundle:manifest-too-large", "rel/manifest.json")], big=True)
def _():
    item = json.dumps({"path": "f", "size": 1, "sha256": ZERO_DIGEST}).encode() + b",\n"
    n = (100 * 1000 * 1000) // len(item) + 1
    doc = b'{"schema_version":1,"product":"p","version":"1","files":[\n' + item * n + b"{}]}\n"
    return header("rel/manifest.json", size=len(doc)) + pad(doc) + END


@case("many-manifests.tar",
      [("bundle:manifest-too-large", "d%02d/SHA256SUMS" % i) for i in range(2, 10)], big=True)
def _():
    # Ten manifests of 15 MiB, each under the 16 MiB limit: kept together
    # they would take 150 MiB. The first two fit the 32 MiB budget.
    sums = b"# " + b"c" * 1021 + b"\n"
    sums = sums * (15 * 1024)
    return tar(*[entry("d%02d/SHA256SUMS" % i, sums) for i in range(10)])


@case("sums-200k-missing.tar", [("bundle:file-missing", "*")], big=True)
def _():
    # A 15 MB SHA256SUMS (under the 16 MiB limit) listing 200,000 files the
    # archive does not hold: 200,000 findings, unless a report keeps a
    # bounded number of them.
    sums = b"".join(b"0" * 64 + b"  f/%06d\n" % i for i in range(200000))
    return tar(entry("rel/SHA256SUMS", sums))


@case("manifest-150k-missing.tar", [("bundle:file-missing", "*")], big=True)
def _():
    # A manifest.json just under 16 MiB listing 155,000 absent files: parsed
    # and converted in about twice its size.
    item = b'{"path":"f/%06d","size":1,"sha256":"' + b"0" * 64 + b'"}'
    items = b",\n".join(item % i for i in range(155000))
    doc = b'{"schema_version":1,"product":"p","version":"1","files":[\n' + items + b"]}\n"
    assert len(doc) < 16 << 20
    return tar(entry("rel/manifest.json", doc))


# Container images.
@case("image-manifest-escape.tar", [("image:path-escape", "images/app.tar")])
def _():
    manifest = jdump([{"Config": "../../etc/passwd", "RepoTags": ["registry.local/app:1"],
                       "Layers": ["../../../etc/shadow"]}])
    return tar(entry("images/app.tar", tar(entry("manifest.json", manifest))))


@case("oci-index-self-reference.tar", [("image:descriptor-cycle", "images/app.tar"),
                                       ("image:blob-digest-mismatch", "images/app.tar")])
def _():
    # A blob cannot contain its own digest, so it is stored under a digest
    # it does not have (reported too) and names it: index -> itself.
    fake = sha256(b"self")
    inner = jdump({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + fake,
         "size": 0}]})
    # The descriptor's size must match the blob's to be followed; the size
    # field has a fixed width, so patch it in.
    inner = inner.replace(b'"size":0', b'"size":%d' % (len(inner) + 2))
    assert len(inner) == int(inner.split(b'"size":')[1].split(b"}")[0])
    index = jdump({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + fake,
         "size": len(inner)}]})
    image = tar(entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                entry("index.json", index),
                entry("blobs/sha256/" + fake, inner))
    return tar(entry("images/app.tar", image))


@case("image-json-blobs.tar", [("bundle:absolute-path", "/abs")], big=True)
def _():
    # An OCI layout of 80 JSON blobs of 1 MiB, each under the 4 MiB limit
    # for small files of an image, 80 MiB together; then an entry to flag.
    blobs = []
    for i in range(80):
        blob = jdump({"padding": "%02d" % i + "x" * (MIB - 20)})
        blobs.append(entry("blobs/sha256/" + sha256(blob), blob))
    index = jdump({"schemaVersion": 2, "manifests": []})
    image = tar(entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                entry("index.json", index), *blobs)
    return tar(entry("images/app.tar", image), entry("/abs", b"x"))


def alias_bomb_chart():
    lines = ["apiVersion: v2", "name: x", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append("a%d: &a%d [%s]" % (i, i, ",".join(["*a%d" % (i - 1)] * 9)))
    lines.append("version: *a9")
    return ("\n".join(lines) + "\n").encode()


@case("chart-yaml-alias-bomb.tar", [("chart:invalid-chart-yaml", "charts/x-1.0.0.tgz!x/Chart.yaml")])
def _():
    # "Billion laughs": nine levels of nine aliases, 9^10 strings once
    # expanded, in the one field read as a free-form value.
    return tar(entry("charts/x-1.0.0.tgz", gzip(tar(entry("x/Chart.yaml", alias_bomb_chart())))))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    big = "--big" in sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, size, args, expect, build in CASES:
        layer = sha256(_bomb_layer()) if "{layer}" in str(expect) else ""
        targets = " ; ".join(
            "%s %s" % (code, target.replace("{layer}", layer)) for code, target in expect)
        lines.append("%s | %s | %s | %s" % (name, size, args, targets))
        if size == "small" or big:
            with open(os.path.join(out, name), "wb") as f:
                f.write(build())
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("# NAME | small|big | ARGS | CODE TARGET ; ... (generated by generate.py)\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
