#!/usr/bin/env python3
"""airgap-lab registry token server (Docker/Distribution "token" auth).

Serves GET /token (and the OAuth2 POST /token password grant) over HTTPS and
issues ES256 JWTs that CNCF Distribution 2.8 accepts: the header carries both
`x5c` (the signing certificate, base64 DER; Distribution checks it chains to
auth.token.rootcertbundle) and `kid` (the libtrust key ID of the signing key,
which Distribution 2.x looks up among the rootcertbundle keys when there is no
x5c). Claims: iss, sub, aud (= service), exp, nbf, iat, jti, access.

Users and grants come from a JSON file:
    {"users": {"pusher": {"password": "...", "grants": {"sekoia/*": ["pull", "push", "delete"]},
                          "catalog": true}, ...}}
A scope's actions are intersected with the user's grant for the first pattern
(fnmatch) matching the repository name; "*" is granted only with all of pull,
push and delete. Missing or wrong credentials get 401 with a Basic challenge;
a service other than --service gets 400. Only loopback --host values are accepted.

    token_server.py --host 127.0.0.43 --port 5001 --cert server.pem --key server.key \
        --signing-key token.key --signing-cert token.pem --issuer I --service S --users users.json
"""

import argparse
import base64
import binascii
import fnmatch
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def log(msg):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} token-server: {msg}", file=sys.stderr, flush=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_key):
    """docker/libtrust KeyID: base32(sha256(DER SubjectPublicKeyInfo)[:30]) in 4-char groups."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class Signer:
    def __init__(self, key_path, cert_path):
        with open(key_path, "rb") as fh:
            self.key = serialization.load_pem_private_key(fh.read(), password=None)
        if not isinstance(self.key, ec.EllipticCurvePrivateKey) or self.key.curve.name != "secp256r1":
            raise SystemExit("token-server: the signing key must be an EC P-256 key (ES256)")
        with open(cert_path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
        if cert.public_key().public_numbers() != self.key.public_key().public_numbers():
            raise SystemExit("token-server: the signing certificate does not match the signing key")
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self.kid = libtrust_key_id(self.key.public_key())

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid, "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self.key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


ALL_REPO_ACTIONS = {"pull", "push", "delete"}


def grant_scope(user, scope):
    """One requested scope 'type:name:actions' -> granted access entry or None."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    rtype, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
    if rtype == "registry" and name == "catalog":
        allowed = {"*"} if user.get("catalog") else set()
    elif rtype == "repository":
        allowed = set()
        for pattern, acts in user.get("grants", {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                allowed = set(acts)
                if ALL_REPO_ACTIONS <= allowed:
                    allowed.add("*")
                break
    else:
        return None
    granted = [a for a in actions if a in allowed]
    return {"type": rtype, "name": name, "actions": granted}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "airgap-lab-token/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(f"{self.client_address[0]} {fmt % args}")

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def unauthorized(self, why):
        log(f"401: {why}")
        self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
                       {"WWW-Authenticate": f'Basic realm="{self.server.cfg.service} token"'})

    def check_password(self, username, password):
        user = self.server.users.get(username)
        if user is None:
            return None
        if not hmac.compare_digest(user["password"].encode(), password.encode()):
            return None
        return user

    def issue(self, username, user, service, scopes, oauth):
        cfg = self.server.cfg
        if service and service != cfg.service:
            self.send_json(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]})
            return
        access = [a for a in (grant_scope(user, s) for s in scopes) if a is not None]
        now = int(time.time())
        claims = {
            "iss": cfg.issuer, "sub": username, "aud": cfg.service,
            "exp": now + cfg.expires, "nbf": now - 10, "iat": now,
            "jti": binascii.hexlify(os.urandom(12)).decode(), "access": access,
        }
        token = self.server.signer.sign(claims)
        log(f"issued to {username}: {json.dumps(access)}")
        body = {"token": token, "access_token": token, "expires_in": cfg.expires,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if oauth:
            body["scope"] = " ".join(scopes)
        self.send_json(200, body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self.send_json(200, {"ok": True})
            return
        if url.path != "/token":
            self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "basic" or not cred:
            self.unauthorized("credentials required")
            return
        try:
            username, _, password = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            self.unauthorized("malformed Basic credentials")
            return
        user = self.check_password(username, password)
        if user is None:
            self.unauthorized(f"bad credentials for {username!r}")
            return
        scopes = [s for v in query.get("scope", []) for s in v.split(" ") if s]
        self.issue(username, user, query.get("service", [""])[0], scopes, oauth=False)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "password":
            self.send_json(400, {"error": "unsupported_grant_type"})
            return
        username = form.get("username", [""])[0]
        user = self.check_password(username, form.get("password", [""])[0])
        if user is None:
            self.unauthorized(f"bad credentials for {username!r}")
            return
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        self.issue(username, user, form.get("service", [""])[0], scopes, oauth=True)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tls = None  # SSLContext: the handshake runs in the request's thread, not in accept()

    def finish_request(self, request, client_address):
        if self.tls is not None:
            request.settimeout(10)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as err:
                log(f"{client_address[0]} TLS handshake failed: {err}")
                request.close()
                return
            try:
                super().finish_request(request, client_address)
            finally:
                request.close()
            return
        super().finish_request(request, client_address)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=5001)
    p.add_argument("--cert", help="TLS certificate (omit both --cert and --key for plain HTTP)")
    p.add_argument("--key")
    p.add_argument("--signing-key", required=True)
    p.add_argument("--signing-cert", required=True)
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--users", required=True, help="JSON file of users, passwords and grants")
    p.add_argument("--expires", type=int, default=300, help="token lifetime in seconds")
    cfg = p.parse_args()
    if not ipaddress.ip_address(cfg.host).is_loopback:
        raise SystemExit(f"token-server: refusing non-loopback --host {cfg.host}")
    with open(cfg.users, encoding="utf-8") as fh:
        users = json.load(fh)["users"]
    srv = Server((cfg.host, cfg.port), Handler)
    srv.cfg, srv.users, srv.signer = cfg, users, Signer(cfg.signing_key, cfg.signing_cert)
    if cfg.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg.cert, cfg.key)
        srv.tls = ctx
    log(f"listening on {'https' if cfg.cert else 'http'}://{cfg.host}:{cfg.port}/token "
        f"(issuer {cfg.issuer}, service {cfg.service}, kid {srv.signer.kid}, users {sorted(users)})")

    def stop(signum, _frame):
        log(f"signal {signum}: shutting down")
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()


if __name__ == "__main__":
    main()
