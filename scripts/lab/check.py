#!/usr/bin/env python3
"""Readiness and behaviour checks for the airgap-verify loopback lab.

Reads the lab plan from lab.env (written by scripts/lab.sh up) and probes each
service until it behaves as expected or the deadline passes. Every probe goes to
a 127.0.0.0/8 address from lab.env; names are never resolved through the
system resolver (TLS uses the lab names only for certificate verification; the
git client gets them through http.curloptResolve).

    check.py --env /var/tmp/airgap-lab/lab.env [--timeout 20] [--only smtp ...]

Which checks prove which service comes from the lab's service table,
scripts/lab/services.tsv (its "checks" column): a row without a check, or a
check no row names, is an error before anything is probed (--check-table only
validates the table and prints each check with the services behind it).

Prints one line per check; exits 1 if any check failed. --failed-file receives
the lab services (processes, as in scripts/lab.sh status) behind the failing
checks, one per line. --only takes a check name or a service name.
"""

import argparse
import base64
import ipaddress
import json
import os
import random
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
import labhttp  # noqa: E402  (scripts/lab/ is on sys.path: it holds this script)

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
PUBLIC_NAME = "example.com"  # default of DNS_PUBLIC_NAME: only the leaky resolver "resolves" it
HELO_NAME = "probe.perimeter.test"  # smtplib would otherwise call getfqdn() (a DNS lookup)


def load_env(path):
    env = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def loopback(addr):
    if not ipaddress.ip_address(addr).is_loopback:
        raise SystemExit(f"check.py: refusing to probe non-loopback address {addr}")
    return addr


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


# ---------------------------------------------------------------- DNS ---------

def build_query(name, qtype):
    qid = random.randrange(65536)
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split("."))
    return qid, header + labels + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)


def read_name(msg, off):
    labels, end, hops = [], None, 0
    while True:
        length = msg[off]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
            hops += 1
            if hops > 32:
                raise ValueError("DNS name compression loop")
            continue
        off += 1
        if length == 0:
            break
        labels.append(msg[off:off + length].decode("ascii", "replace"))
        off += length
    return ".".join(labels), (end if end is not None else off)


def parse_response(msg, qid):
    rid, flags, qdcount, ancount, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != qid:
        raise ValueError("DNS id mismatch")
    off = 12
    for _ in range(qdcount):
        _, off = read_name(msg, off)
        off += 4
    answers = []
    for _ in range(ancount):
        name, off = read_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1:
            value = socket.inet_ntoa(msg[off:off + rdlen])
        elif rtype == 5:
            value = read_name(msg, off)[0]
        else:
            value = msg[off:off + rdlen].hex()
        answers.append((name, rtype, value))
        off += rdlen
    return {"rcode": flags & 0xF, "aa": bool(flags & 0x0400), "answers": answers}


def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        data += chunk
    return data


def dns_query(server, name, qtype="A", tcp=False, timeout=2.0, port=53):
    qid, packet = build_query(name, qtype)
    if tcp:
        with socket.create_connection((loopback(server), port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">H", len(packet)) + packet)
            (length,) = struct.unpack(">H", recv_exact(sock, 2))
            return parse_response(recv_exact(sock, length), qid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((loopback(server), port))
        sock.send(packet)
        return parse_response(sock.recv(4096), qid)


def addresses(resp):
    return sorted(v for _, t, v in resp["answers"] if t == 1)


def check_dns_name(server, name, want, tcp, need_aa):
    resp = dns_query(server, name, tcp=tcp)
    proto = "tcp" if tcp else "udp"
    expect(resp["rcode"] == 0, f"{proto} {name}: rcode {RCODES.get(resp['rcode'], resp['rcode'])}")
    got = addresses(resp)
    expect(got == sorted(want), f"{proto} {name}: got {got}, want {want}")
    if need_aa:
        expect(resp["aa"], f"{proto} {name}: answer not authoritative")
    return resp


def dns_checks(env, key, mode):
    """mode: "auth" (authoritative, refuses public names), "forwarder" (public
    names fail) or "leaky" (public names resolve, as if it reached the internet)."""
    server = env[key]
    authoritative = mode == "auth"
    public = env.get("DNS_PUBLIC_NAME", PUBLIC_NAME)
    zone = env["LAB_ZONE"]
    smtp_name, smtp_addr = env["SMTP_HOST"], env["SMTP_ADDR"]
    cname, cname_target, cname_addr = env["DNS_CNAME_NAME"], env["DNS_CNAME_TARGET"], env["DNS_CNAME_ADDR"]
    out = []

    def one(tcp):
        check_dns_name(server, smtp_name, [smtp_addr], tcp, authoritative)
        out.append(f"{'tcp' if tcp else 'udp'} {smtp_name} A {smtp_addr}")

    one(False)
    one(True)
    resp = check_dns_name(server, cname, [cname_addr], False, authoritative)
    chain = [v for _, t, v in resp["answers"] if t == 5]
    expect(chain == [cname_target], f"{cname}: CNAME chain {chain}, want [{cname_target}]")
    out.append(f"{cname} CNAME {cname_target} A {cname_addr}")
    resp = dns_query(server, f"no-such-name.{zone}")
    expect(resp["rcode"] == 3, f"no-such-name.{zone}: rcode {RCODES.get(resp['rcode'])}, want NXDOMAIN")
    out.append("NXDOMAIN in zone")
    if mode == "leaky":
        leak = env["DNS_PUBLIC_LEAK_ADDR"]
        for name in (public, f"www.{public}"):
            check_dns_name(server, name, [leak], False, False)
        out.append(f"{public} and www.{public} A {leak} (leaks)")
        external = env["DNS_EXTERNAL_CNAME_NAME"]
        resp = check_dns_name(server, external, [leak], False, False)
        chain = [v for _, t, v in resp["answers"] if t == 5]
        expect(chain == [public], f"{external}: CNAME chain {chain}, want [{public}]")
        out.append(f"{external} CNAME {public} followed")
        return ", ".join(out)
    resp = dns_query(server, public, timeout=5.0)
    rcode = RCODES.get(resp["rcode"], resp["rcode"])
    if authoritative:
        expect(resp["rcode"] == 5, f"{public}: rcode {rcode}, want REFUSED")
    else:
        expect(resp["rcode"] != 0, f"{public}: resolved ({addresses(resp)}), must fail")
    out.append(f"{public} {rcode}")
    return ", ".join(out)


# ---------------------------------------------------------------- NTP ---------

NTP_EPOCH = 2208988800


def sntp(server, timeout=1.5, port=123):
    now = time.time() + NTP_EPOCH
    transmit = struct.pack(">II", int(now), int((now % 1) * 2**32))
    packet = bytes([(0 << 6) | (4 << 3) | 3]) + bytes(39) + transmit
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((loopback(server), port))
        sock.send(packet)
        resp = sock.recv(512)
    expect(len(resp) >= 48, f"short NTP reply ({len(resp)} bytes)")
    expect(resp[24:32] == transmit, "NTP reply does not echo our transmit timestamp")
    secs, frac = struct.unpack(">II", resp[40:48])
    return {
        "li": resp[0] >> 6,
        "mode": resp[0] & 7,
        "stratum": resp[1],
        "offset": secs + frac / 2**32 - NTP_EPOCH - time.time(),
    }


def ntp_synced(env):
    r = sntp(env["NTP_ADDR"])
    expect(r["mode"] == 4, f"mode {r['mode']}, want 4 (server)")
    expect(r["li"] != 3, "LI=3 (unsynchronised), still waiting for the local reference")
    expect(1 <= r["stratum"] <= 15, f"stratum {r['stratum']}")
    return f"LI={r['li']} stratum={r['stratum']} offset={r['offset'] * 1000:+.1f}ms"


def ntp_unsynced(env):
    r = sntp(env["NTP_UNSYNC_ADDR"])
    expect(r["mode"] == 4, f"mode {r['mode']}, want 4 (server)")
    expect(r["li"] == 3, f"LI={r['li']}, want 3 (unsynchronised)")
    return f"LI={r['li']} stratum={r['stratum']} (unsynchronised as intended)"


# ---------------------------------------------------------------- SMTP --------

class LabSMTP(smtplib.SMTP):
    """SMTP that connects to a fixed loopback address but keeps the lab name
    as the host, so STARTTLS verifies the certificate against the name."""

    def __init__(self, addr, *args, **kwargs):
        self._lab_addr = loopback(addr)
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._lab_addr, port), timeout)


class LabSMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, addr, *args, **kwargs):
        self._lab_addr = loopback(addr)
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((self._lab_addr, port), timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise


def tls_context(env):
    return ssl.create_default_context(cafile=env["CA_PEM"])


def no_verify_context():
    """Completes any handshake, to see which certificate the server presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pem_der(path):
    with open(path, encoding="ascii") as fh:
        return ssl.PEM_cert_to_DER_cert(fh.read())


def starttls_session(addr, host, port, ctx):
    """EHLO, STARTTLS with ctx, EHLO again; returns the server's certificate (DER)."""
    s = LabSMTP(addr, host, port, local_hostname=HELO_NAME, timeout=5)
    try:
        s.ehlo()
        expect(s.has_extn("starttls"), f"port {port}: no STARTTLS in EHLO")
        s.starttls(context=ctx)
        der = s.sock.getpeercert(binary_form=True)
        code, _ = s.ehlo()
        expect(code == 250, f"port {port}: EHLO after STARTTLS answered {code}")
        return der
    finally:
        s.close()  # no QUIT: after a failed handshake the session is unusable


def implicit_tls_session(addr, host, port, ctx):
    """Connect with TLS from the first byte, EHLO; returns the server's certificate (DER)."""
    s = LabSMTPSSL(addr, host, port, local_hostname=HELO_NAME, timeout=5, context=ctx)
    try:
        der = s.sock.getpeercert(binary_form=True)
        code, _ = s.ehlo()
        expect(code == 250, f"port {port}: EHLO answered {code}")
        return der
    finally:
        s.close()


# OpenSSL verify codes (X509_V_ERR_*) each fault listener must produce
VERIFY_EXPIRED, VERIFY_UNKNOWN_ISSUER, VERIFY_HOSTNAME_MISMATCH = 10, 20, 62


def tls_fault_checks(env, prefix, cert_key, want_code):
    """The listener presents exactly the certificate at env[cert_key], and a
    verifying client (lab CA, lab name) rejects it with want_code."""
    addr, host = env[f"{prefix}_ADDR"], env[f"{prefix}_HOST"]
    want_der = pem_der(env[cert_key])
    cert_name = os.path.basename(env[cert_key])
    out = []
    for port, session in ((int(env["SMTP_PORT"]), starttls_session),
                          (int(env["SMTPS_PORT"]), implicit_tls_session)):
        der = session(addr, host, port, no_verify_context())
        expect(der == want_der, f"port {port}: presents another certificate than {cert_name}")
        try:
            session(addr, host, port, tls_context(env))
        except ssl.SSLCertVerificationError as err:
            expect(err.verify_code == want_code,
                   f"port {port}: verification failed with {err.verify_code} ({err.verify_message}),"
                   f" want {want_code}")
            reason = err.verify_message
        else:
            raise CheckFailed(f"port {port}: {cert_name} verified against the lab CA for {host}")
        out.append(f"{port} {'STARTTLS' if port == int(env['SMTP_PORT']) else 'TLS'} {cert_name}")
    return f"{', '.join(out)}: {reason}"


def smtp_plain_checks(env):
    addr, host = env["SMTP_PLAIN_ADDR"], env["SMTP_PLAIN_HOST"]
    out = []
    port = int(env["SMTP_PORT"])
    s = LabSMTP(addr, host, port, local_hostname=HELO_NAME, timeout=5)
    try:
        s.ehlo()
        expect(not s.has_extn("starttls"), f"port {port}: STARTTLS offered")
        code, _ = s.docmd("STARTTLS")
        expect(code >= 500, f"port {port}: STARTTLS answered {code}, want a refusal")
        s.quit()
        out.append(f"{port} no STARTTLS ({code})")
    finally:
        s.close()

    port = int(env["SMTP_SUBMISSION_PORT"])
    s = LabSMTP(addr, host, port, local_hostname=HELO_NAME, timeout=5)
    try:
        s.ehlo()
        expect(not s.has_extn("starttls"), f"port {port}: STARTTLS offered")
        mechs = set(s.esmtp_features.get("auth", "").upper().split())
        expect({"PLAIN", "LOGIN"} <= mechs, f"port {port}: AUTH mechanisms {sorted(mechs)} before TLS")
        code, _ = s.login(env["SMTP_USER"], env["SMTP_PASSWORD"])
        s.quit()
        out.append(f"{port} AUTH {' '.join(sorted(mechs))} in clear text ok ({code})")
    finally:
        s.close()
    return ", ".join(out)


def smtp_checks(env):
    addr, host = env["SMTP_ADDR"], env["SMTP_HOST"]
    user, password = env["SMTP_USER"], env["SMTP_PASSWORD"]
    out = []

    port = int(env["SMTP_PORT"])
    with LabSMTP(addr, host, port, local_hostname=HELO_NAME, timeout=5) as s:
        s.ehlo()
        expect(s.has_extn("starttls"), f"port {port}: no STARTTLS in EHLO")
        s.starttls(context=tls_context(env))
        s.ehlo()
        s.mail(f"{user}@{env['LAB_ZONE']}")
        code, msg = s.rcpt("someone@example.com")
        expect(500 <= code < 600, f"port {port}: unauthenticated relay answered {code} {msg!r}")
        out.append(f"{port} STARTTLS ok, relay refused ({code})")

    port = int(env["SMTP_SUBMISSION_PORT"])
    with LabSMTP(addr, host, port, local_hostname=HELO_NAME, timeout=5) as s:
        s.ehlo()
        expect(s.has_extn("starttls"), f"port {port}: no STARTTLS in EHLO")
        expect(not s.has_extn("auth"), f"port {port}: AUTH offered before TLS")
        s.starttls(context=tls_context(env))
        s.ehlo()
        expect(s.has_extn("auth"), f"port {port}: no AUTH after STARTTLS")
        code, _ = s.login(user, password)
        out.append(f"{port} STARTTLS+AUTH ok ({code})")

    port = int(env["SMTPS_PORT"])
    with LabSMTPSSL(addr, host, port, local_hostname=HELO_NAME, timeout=5, context=tls_context(env)) as s:
        s.ehlo()
        code, _ = s.login(user, password)
        out.append(f"{port} implicit TLS+AUTH ok ({code})")
    return ", ".join(out)


# ---------------------------------------------------------------- Git ---------

def run_git(env, home, *args, timeout=20):
    """The real git client, with no user/system config, the lab CA, and the lab
    names pinned to their addresses (no resolver involved)."""
    host, addr = env["GIT_HOST"], loopback(env["GIT_ADDR"])
    child = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSL_CAINFO": env["CA_PEM"], "GIT_AUTHOR_NAME": "airgap-lab check",
        "GIT_AUTHOR_EMAIL": "check@perimeter.test", "GIT_COMMITTER_NAME": "airgap-lab check",
        "GIT_COMMITTER_EMAIL": "check@perimeter.test",
    }
    cmd = ["git", "-c", f"http.curloptResolve={host}:{env['GIT_PORT']}:{addr}",
           "-c", f"http.curloptResolve={host}:{env['GIT_HTTP_PORT']}:{addr}",
           "-c", "credential.helper=", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child, check=False)


def ls_remote(env, home, url):
    proc = run_git(env, home, "ls-remote", url)
    expect(proc.returncode == 0, f"git ls-remote {url}: {proc.stderr.strip()}")
    refs = {}
    for line in proc.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        refs[ref] = sha
    return refs


def git_url(env, base_key, repo, user=None, password=None):
    url = urllib.parse.urlsplit(env[base_key])
    cred = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@" if user else ""
    return f"{url.scheme}://{cred}{url.netloc}/{repo}"


def git_checks(env):
    addr, host, port = env["GIT_ADDR"], env["GIT_HOST"], int(env["GIT_PORT"])
    repo, ro_repo = env["GIT_REPO"], env["GIT_READONLY_REPO"]
    user, password = env["GIT_USER"], env["GIT_PASSWORD"]
    tls = labhttp.tls_context(env["CA_PEM"])
    tag = f"{os.getpid()}-{random.randrange(1 << 30):x}"

    with tempfile.TemporaryDirectory(prefix="airgap-lab-git-") as home:
        work = os.path.join(home, "work")
        for args in (("init", "-q", "-b", "check", work),
                     ("-C", work, "commit", "-q", "--allow-empty", "-m", "airgap-lab check")):
            proc = run_git(env, home, *args)
            expect(proc.returncode == 0, f"git {args[0]}: {proc.stderr.strip()}")

        def refs():
            got = ls_remote(env, home, git_url(env, "GIT_URL", repo))
            want = {f"refs/heads/{env['GIT_BRANCH']}": env["GIT_MAIN_COMMIT"],
                    f"refs/heads/{env['GIT_RELEASE_BRANCH']}": env["GIT_RELEASE_COMMIT"]}
            for ref, sha in want.items():
                expect(got.get(ref) == sha, f"ls-remote {repo}: {ref} is {got.get(ref)}, want {sha}")
            return f"ls-remote {repo} ok"

        def protocol_v2():  # needs GIT_PROTOCOL passed through to git-http-backend
            r = labhttp.request(addr, host, port, "GET", f"/{repo}/info/refs?service=git-upload-pack",
                                headers={"Git-Protocol": "version=2"}, tls=tls)
            expect(r.status == 200 and b"version 2" in r.body,
                   f"upload-pack advertisement: {r.status}, protocol v2 not offered")
            return "protocol v2"

        def push_challenge():
            path = f"/{repo}/info/refs?service=git-receive-pack"
            r = labhttp.request(addr, host, port, "GET", path, tls=tls)
            scheme, params = labhttp.parse_challenge(r.header("WWW-Authenticate"))
            expect(r.status == 401 and scheme == "basic" and params.get("realm") == env["GIT_AUTH_REALM"],
                   f"anonymous push advertisement: {r.status} {r.header('WWW-Authenticate')!r}, "
                   "want 401 Basic")
            r = labhttp.request(addr, host, port, "GET", path, headers=labhttp.basic_auth(user, "wrong"),
                                tls=tls)
            expect(r.status == 401, f"push advertisement with a wrong password: {r.status}, want 401")
            return "push needs a password (401)"

        def push_and_delete():  # a real push of a throwaway branch, then its deletion
            branch = f"airgap-lab-check-{tag}"
            url = git_url(env, "GIT_URL", repo, user, password)
            proc = run_git(env, home, "-C", work, "push", "--porcelain", url, f"HEAD:refs/heads/{branch}")
            expect(proc.returncode == 0 and "[new branch]" in proc.stdout,
                   f"push with credentials: {proc.stderr.strip()}")
            proc = run_git(env, home, "-C", work, "push", "--porcelain", url, f":refs/heads/{branch}")
            expect(proc.returncode == 0 and "[deleted]" in proc.stdout,
                   f"delete of {branch}: {proc.stderr.strip()}")
            return "push+delete with credentials ok"

        def push_anonymous():
            proc = run_git(env, home, "-C", work, "push", "-q", git_url(env, "GIT_URL", repo),
                           f"HEAD:refs/heads/airgap-lab-anonymous-{tag}")
            expect(proc.returncode != 0, "push without credentials succeeded")
            return "anonymous push refused"

        def push_readonly():
            proc = run_git(env, home, "-C", work, "push", "-q", git_url(env, "GIT_URL", ro_repo, user, password),
                           f"HEAD:refs/heads/airgap-lab-check-{tag}")
            expect(proc.returncode != 0 and "403" in proc.stderr,
                   f"push to {ro_repo}: rc {proc.returncode} {proc.stderr.strip()!r}, want a 403 refusal")
            return f"{ro_repo} refuses push (403)"

        steps = [refs, protocol_v2, push_challenge, push_and_delete, push_anonymous, push_readonly]
        results = [None] * len(steps)

        def run(i):
            try:
                results[i] = (True, steps[i]())
            except Exception as err:  # noqa: BLE001 - reported below
                results[i] = (False, err)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for ok, value in results:
        if not ok:
            raise value
    return ", ".join(value for _, value in results)


def git_http_checks(env):
    with tempfile.TemporaryDirectory(prefix="airgap-lab-git-") as home:
        url = git_url(env, "GIT_HTTP_URL", env["GIT_REPO"])
        refs = ls_remote(env, home, url)
    ref = f"refs/heads/{env['GIT_BRANCH']}"
    expect(refs.get(ref) == env["GIT_MAIN_COMMIT"], f"{url}: {ref} is {refs.get(ref)}")
    return f"ls-remote {url} ok (plain HTTP)"


# ---------------------------------------------------------------- registries --

def registry_req(env, prefix, method, path, headers=None, tls=True):
    addr, host, port = env[f"{prefix}_ADDR"], env[f"{prefix}_HOST"], int(env[f"{prefix}_PORT"])
    ctx = labhttp.tls_context(env["CA_PEM"]) if tls else None
    return labhttp.request(addr, host, port, method, path, headers=headers, tls=ctx)


def check_seeded(env, prefix, headers, tls=True):
    repo, tag, digest = env["REGISTRY_SEEDED_REPO"], env["REGISTRY_SEEDED_TAG"], env["REGISTRY_SEEDED_DIGEST"]
    hdrs = dict(headers or {}, Accept=env["REGISTRY_SEEDED_MEDIA_TYPE"])
    r = registry_req(env, prefix, "HEAD", f"/v2/{repo}/manifests/{tag}", hdrs, tls)
    expect(r.status == 200, f"HEAD {repo}:{tag}: {r.status} (not seeded yet?)")
    got = r.header("Docker-Content-Digest")
    expect(got == digest, f"{repo}:{tag} digest {got}, want {digest}")
    return f"{repo}:{tag}@{digest[:19]}…"


def registry_basic_checks(env):
    user, password = env["REGISTRY_USER"], env["REGISTRY_PASSWORD"]
    r = registry_req(env, "REGISTRY", "GET", "/v2/")
    scheme, params = labhttp.parse_challenge(r.header("WWW-Authenticate"))
    expect(r.status == 401 and scheme == "basic" and params.get("realm") == env["REGISTRY_AUTH_REALM"],
           f"anonymous /v2/: {r.status} {r.header('WWW-Authenticate')!r}, want 401 Basic")
    r = registry_req(env, "REGISTRY", "GET", "/v2/", labhttp.basic_auth(user, "wrong"))
    expect(r.status == 401, f"/v2/ with a wrong password: {r.status}, want 401")
    auth = labhttp.basic_auth(user, password)
    r = registry_req(env, "REGISTRY", "GET", "/v2/", auth)
    expect(r.status == 200 and r.header("Docker-Distribution-Api-Version") == "registry/2.0",
           f"/v2/ as {user}: {r.status}")
    seeded = check_seeded(env, "REGISTRY", auth)
    return f"/v2/ 401 Basic, wrong password 401, {user} 200, {seeded}"


def fetch_token(env, user, password, scopes):
    """(status, claims) from the token server named by the registry's realm."""
    realm = urllib.parse.urlsplit(env["REGISTRY_TOKEN_REALM"])
    query = urllib.parse.urlencode([("service", env["REGISTRY_TOKEN_SERVICE"])] +
                                   [("scope", s) for s in scopes])
    headers = labhttp.basic_auth(user, password) if user else {}
    r = labhttp.request(env["REGISTRY_TOKEN_ADDR"], realm.hostname, realm.port or 443, "GET",
                        f"{realm.path}?{query}", headers=headers, tls=labhttp.tls_context(env["CA_PEM"]))
    if r.status != 200:
        return r.status, None, None
    token = json.loads(r.body)["token"]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return r.status, token, claims


def granted(claims, repo):
    for entry in claims.get("access", []):
        if entry["type"] == "repository" and entry["name"] == repo:
            return sorted(entry["actions"])
    return []


def token_server_checks(env):
    repo = env["REGISTRY_SEEDED_REPO"]
    scope = f"repository:{repo}:pull,push"
    status, _, _ = fetch_token(env, None, None, [scope])
    expect(status == 401, f"anonymous token request: {status}, want 401")
    status, _, _ = fetch_token(env, env["REGISTRY_USER"], "wrong", [scope])
    expect(status == 401, f"token request with a wrong password: {status}, want 401")
    status, _, claims = fetch_token(env, env["REGISTRY_USER"], env["REGISTRY_PASSWORD"], [scope])
    expect(status == 200 and granted(claims, repo) == ["pull", "push"],
           f"{env['REGISTRY_USER']}: {status} {claims and granted(claims, repo)}, want pull,push")
    status, _, claims = fetch_token(env, env["REGISTRY_READER_USER"], env["READER_PASSWORD"], [scope])
    expect(status == 200 and granted(claims, repo) == ["pull"],
           f"{env['REGISTRY_READER_USER']}: {status} {claims and granted(claims, repo)}, want pull only")
    return (f"no/wrong credentials 401, {env['REGISTRY_USER']} gets pull,push, "
            f"{env['REGISTRY_READER_USER']} gets pull only")


def registry_token_checks(env):
    r = registry_req(env, "REGISTRY_TOKEN", "GET", "/v2/")
    scheme, params = labhttp.parse_challenge(r.header("WWW-Authenticate"))
    expect(r.status == 401 and scheme == "bearer" and params.get("realm") == env["REGISTRY_TOKEN_REALM"]
           and params.get("service") == env["REGISTRY_TOKEN_SERVICE"],
           f"anonymous /v2/: {r.status} {r.header('WWW-Authenticate')!r}, want 401 Bearer")
    repo = env["REGISTRY_SEEDED_REPO"]
    status, token, _ = fetch_token(env, env["REGISTRY_READER_USER"], env["READER_PASSWORD"],
                                   [f"repository:{repo}:pull,push"])
    expect(status == 200, f"reader token: {status}")
    bearer = {"Authorization": f"Bearer {token}"}
    seeded = check_seeded(env, "REGISTRY_TOKEN", bearer)
    r = registry_req(env, "REGISTRY_TOKEN", "POST", f"/v2/{repo}/blobs/uploads/", bearer)
    _, params = labhttp.parse_challenge(r.header("WWW-Authenticate"))
    expect(r.status == 401 and params.get("error") == "insufficient_scope",
           f"push with a pull-only token: {r.status} {r.header('WWW-Authenticate')!r}, want insufficient_scope")
    status, token, _ = fetch_token(env, env["REGISTRY_USER"], env["REGISTRY_PASSWORD"],
                                   [f"repository:{repo}:delete"])
    expect(status == 200, f"pusher token: {status}")
    r = registry_req(env, "REGISTRY_TOKEN", "DELETE", f"/v2/{repo}/manifests/{env['REGISTRY_SEEDED_DIGEST']}",
                     {"Authorization": f"Bearer {token}"})
    expect(r.status == 405 and b"UNSUPPORTED" in r.body, f"manifest delete: {r.status}, want 405 UNSUPPORTED")
    return f"/v2/ 401 Bearer, reader pulls {seeded}, reader push 401 insufficient_scope, delete 405"


def registry_http_checks(env):
    r = registry_req(env, "REGISTRY_HTTP", "GET", "/v2/", tls=False)
    expect(r.status == 200 and r.header("Docker-Distribution-Api-Version") == "registry/2.0",
           f"/v2/ over plain HTTP: {r.status}")
    return f"/v2/ 200 over plain HTTP without auth, {check_seeded(env, 'REGISTRY_HTTP', None, tls=False)}"


# ---------------------------------------------------------------- S3 ----------

def s3_checks(env):
    addr, host, port, region = env["S3_ADDR"], env["S3_HOST"], int(env["S3_PORT"]), env["S3_REGION"]
    tls = labhttp.tls_context(env["CA_PEM"])
    bucket = env["S3_BUCKET"]
    admin = (env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"])
    ro = (env["S3_RO_ACCESS_KEY"], env["S3_RO_SECRET_KEY"])

    def call(method, path, keys, body=b"", query=None):
        return labhttp.s3_request(addr, host, port, method, path, keys[0], keys[1], region,
                                  query=query, body=body, tls=tls)

    def want(resp, status, code, what):
        got = labhttp.s3_error_code(resp)
        expect(resp.status == status and got == code,
               f"{what}: {resp.status} {got or ''}, want {status} {code}".rstrip())

    r = call("GET", "/", admin)
    want(r, 200, "", "admin ListBuckets")
    expect(f"<Name>{bucket}</Name>" in r.text(), f"bucket {bucket} missing (not seeded yet?)")
    key = f"/{bucket}/airgap-lab-check/{os.getpid()}-{random.randrange(1 << 30):x}.txt"
    body = b"airgap-lab check\n"
    want(call("PUT", key, admin, body), 200, "", "admin PutObject")
    try:
        r = call("GET", key, ro)
        want(r, 200, "", "readonly GetObject")
        expect(r.body == body, "readonly GetObject: wrong content")
        want(call("GET", f"/{bucket}", ro, query={"list-type": "2", "prefix": "airgap-lab-check/"}),
             200, "", "readonly ListObjectsV2")
        want(call("PUT", f"/{bucket}/airgap-lab-check/denied.txt", ro, b"x"), 403, "AccessDenied",
             "readonly PutObject")
    finally:
        want(call("DELETE", key, admin), 204, "", "admin DeleteObject")
    want(call("GET", f"/{bucket}", (admin[0], "0" * 40)), 403, "SignatureDoesNotMatch", "wrong secret")
    want(call("GET", f"/{bucket}", ("LABNOSUCHACCESSKEY00", admin[1])), 403, "InvalidAccessKeyId",
         "wrong access key")
    want(call("GET", "/airgap-lab-no-such-bucket", admin), 404, "NoSuchBucket", "missing bucket")
    nolist = (env["S3_NOLIST_ACCESS_KEY"], env["S3_NOLIST_SECRET_KEY"])
    event = f"{env['S3_EVENT_PREFIX']}self-hosted-events-f"
    want(call("GET", f"/{event}", nolist, query={"list-type": "2"}), 403, "AccessDenied",
         "nolist ListObjectsV2")
    want(call("GET", f"/{env['S3_PARTIAL_MISSING']}", admin, query={"list-type": "2"}), 404,
         "NoSuchBucket", "the missing partial event bucket")
    return ("admin put/get/delete ok, readonly read+list ok and put AccessDenied, wrong secret "
            "SignatureDoesNotMatch, wrong key InvalidAccessKeyId, missing bucket NoSuchBucket, "
            "nolist list AccessDenied")


# ---------------------------------------------------------------- blackhole/tarpit

def _silent_tcp(addr, port, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((addr, port))
    except socket.timeout:
        return None
    except OSError as err:
        return f"tcp {addr}:{port} failed fast ({err}), want a silent timeout"
    finally:
        sock.close()
    return f"tcp {addr}:{port} connected, want a silent timeout"


def _silent_udp(addr, port, timeout):
    try:
        dns_query(addr, "smtp.perimeter.test", timeout=timeout, port=port)
    except socket.timeout:
        return None
    except OSError as err:
        return f"udp {addr}:{port} failed fast ({err}), want a silent timeout"
    return f"udp {addr}:{port} answered, want silence"


def blackhole(env):
    addr = loopback(env["BLACKHOLE_ADDR"])
    probes = [(_silent_tcp, 443), (_silent_tcp, 25), (_silent_udp, 53)]
    errors = [None] * len(probes)

    def run(i, fn, port):
        errors[i] = fn(addr, port, 1.5)

    threads = [threading.Thread(target=run, args=(i, fn, port)) for i, (fn, port) in enumerate(probes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems = [e for e in errors if e]
    expect(not problems, "; ".join(problems))
    return "tcp :443, tcp :25 and udp :53 time out (1.5s)"


def tarpit(env):
    addr = loopback(env["TARPIT_ADDR"])
    ports = [int(p) for p in env["TARPIT_PORTS"].split(",")]
    socks = []
    try:
        for port in ports:
            socks.append(socket.create_connection((addr, port), timeout=2))
        for sock in socks:
            sock.settimeout(1.5)
        # Wait once for all of them together: nothing may arrive.
        time.sleep(1.5)
        for port, sock in zip(ports, socks):
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            except BlockingIOError:
                continue
            raise CheckFailed(f"tcp {addr}:{port} sent {data!r}, want silence")
    finally:
        for sock in socks:
            sock.close()
    return f"tcp :{', :'.join(map(str, ports))} accept and stay silent"


# ---------------------------------------------------------------- runner ------

def process_gone(run_dir, service):
    """Reason string if the lab recorded a process for this service and it has exited."""
    try:
        with open(os.path.join(run_dir, f"{service}.id"), encoding="ascii") as fh:
            pid, start = fh.read().split()
    except (OSError, ValueError):
        return None  # nothing recorded (e.g. blackhole): nothing to watch
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return f"process {pid} has exited"
    if fields[0] == "Z" or fields[19] != start:
        return f"process {pid} has exited"
    return None


# check -> (label, function); services.tsv says which services each one proves
CHECKS = {
    "dns-auth": ("authoritative DNS", lambda env: dns_checks(env, "DNS_AUTH_ADDR", "auth")),
    "dns-forwarder": ("forwarding DNS", lambda env: dns_checks(env, "DNS_FORWARDER_ADDR", "forwarder")),
    "dns-leaky": ("leaky DNS", lambda env: dns_checks(env, "DNS_LEAKY_ADDR", "leaky")),
    "ntp": ("NTP synchronised", ntp_synced),
    "ntp-unsync": ("NTP unsynchronised", ntp_unsynced),
    "smtp": ("SMTP", smtp_checks),
    "smtp-expired": ("SMTP expired cert",
                     lambda env: tls_fault_checks(env, "SMTP_EXPIRED", "EXPIRED_CERT", VERIFY_EXPIRED)),
    "smtp-rogue": ("SMTP rogue CA",
                   lambda env: tls_fault_checks(env, "SMTP_ROGUE", "ROGUE_CERT", VERIFY_UNKNOWN_ISSUER)),
    "smtp-wrongname": ("SMTP wrong name",
                       lambda env: tls_fault_checks(env, "SMTP_WRONGNAME", "WRONG_NAME_CERT",
                                                    VERIFY_HOSTNAME_MISMATCH)),
    "smtp-plain": ("SMTP without TLS", smtp_plain_checks),
    "blackhole": ("blackhole", blackhole),
    "tarpit": ("tarpit", tarpit),
    "git": ("Git over HTTPS", git_checks),
    "git-http": ("Git over plain HTTP", git_http_checks),
    "registry": ("registry (Basic auth)", registry_basic_checks),
    "registry-auth": ("registry token server", token_server_checks),
    "registry-token": ("registry (Bearer tokens)", registry_token_checks),
    "registry-http": ("registry over plain HTTP", registry_http_checks),
    "s3": ("S3 (SeaweedFS)", s3_checks),
}

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "services.tsv")


def table_checks(path):
    """[(check, [services behind it], label, function)] in table order, from services.tsv.

    Exits with one line naming the row when a row has no check or names an
    unknown one, and when a check of this file is named by no row."""
    order, services = [], {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = line.split(None, 8)
            if len(cols) < 9:
                raise SystemExit(f"check.py: {path}:{lineno}: want 9 columns, found {len(cols)}")
            name, process, checks = cols[0], cols[1], cols[7]
            if checks == "-":
                raise SystemExit(f"check.py: {path}:{lineno}: {name} has no check: name the check that proves it")
            service = name if process == "-" else process  # blackhole: no process, its own name
            for check in checks.split(","):
                if check not in CHECKS:
                    raise SystemExit(f"check.py: {path}:{lineno}: {name}: no check named {check!r} "
                                     f"(known: {', '.join(CHECKS)})")
                if check not in services:
                    order.append(check)
                    services[check] = []
                if service not in services[check]:
                    services[check].append(service)
    unused = [c for c in CHECKS if c not in services]
    if unused:
        raise SystemExit(f"check.py: {path}: no row names the check(s) {', '.join(unused)}")
    return [(c, services[c], CHECKS[c][0], CHECKS[c][1]) for c in order]


def main():
    parser = argparse.ArgumentParser(description="airgap-lab readiness checks")
    parser.add_argument("--env", help="path of lab.env (required unless --check-table)")
    parser.add_argument("--timeout", type=float, default=20.0, help="overall deadline in seconds")
    parser.add_argument("--only", action="append", help="run only this service's check (repeatable)")
    parser.add_argument("--failed-file", help="write failing service names here")
    parser.add_argument("--table", default=TABLE, help="the service table (default: services.tsv beside this)")
    parser.add_argument("--check-table", action="store_true",
                        help="only validate the table: print each check and its services")
    args = parser.parse_args()
    checks = table_checks(args.table)
    if args.check_table:
        for check, services, _, _ in checks:
            print(f"{check}\t{','.join(services)}")
        return 0
    if not args.env:
        parser.error("--env is required")
    env = load_env(args.env)
    deadline = time.monotonic() + args.timeout
    selected = [c for c in checks if not args.only or c[0] in args.only or set(c[1]) & set(args.only)]
    results = {}
    lock = threading.Lock()

    run_dir = os.path.join(env.get("AIRGAP_LAB_DIR", os.path.dirname(os.path.abspath(args.env))), "run")

    def run(name, services, label, fn):
        attempts, last = 0, None
        started = time.monotonic()
        while True:
            attempts += 1
            gone = next(filter(None, (process_gone(run_dir, s) for s in services)), None)
            if gone:
                ok, detail = False, gone
                break
            try:
                detail = fn(env)
                ok = True
                break
            except Exception as err:  # noqa: BLE001 - every failure is retried until the deadline
                last = f"{type(err).__name__}: {err}" if not isinstance(err, CheckFailed) else str(err)
                if time.monotonic() + 0.3 >= deadline:
                    ok, detail = False, last
                    break
                time.sleep(0.3)
        took = time.monotonic() - started
        with lock:
            results[name] = ok
            mark = "ok  " if ok else "FAIL"
            print(f"  [{mark}] {name:<14} {label}: {detail} ({took:.1f}s, {attempts} tries)", flush=True)

    threads = [threading.Thread(target=run, args=c, daemon=True) for c in selected]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 15)
    failed = [c for c in selected if not results.get(c[0])]
    if args.failed_file:
        services = list(dict.fromkeys(s for c in failed for s in c[1]))
        with open(args.failed_file, "w", encoding="utf-8") as fh:
            fh.write("".join(f"{s}\n" for s in services))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
