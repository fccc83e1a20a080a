"""HTTP(S) and AWS SigV4 helpers for the airgap-verify lab (stdlib only).

Every request goes to an explicit 127.0.0.0/8 address; the lab name is only
used for the Host header, SNI and certificate verification, so nothing is
resolved through the system resolver.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import urllib.parse


def loopback(addr):
    if not ipaddress.ip_address(addr).is_loopback:
        raise SystemExit(f"airgap-lab: refusing to contact non-loopback address {addr}")
    return addr


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage (case-insensitive get / get_all)
        self.body = body

    def header(self, name, default=""):
        return self.headers.get(name, default)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<{self.status} {self.reason}>"


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, addr, host, port, context, timeout):
        super().__init__(host, port, context=context, timeout=timeout)
        self._lab_addr = loopback(addr)
        self._lab_context = context

    def connect(self):
        sock = socket.create_connection((self._lab_addr, self.port), self.timeout)
        try:
            self.sock = self._lab_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, addr, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._lab_addr = loopback(addr)

    def connect(self):
        self.sock = socket.create_connection((self._lab_addr, self.port), self.timeout)


def tls_context(cafile):
    return ssl.create_default_context(cafile=cafile)


def request(addr, host, port, method, path, headers=None, body=b"", tls=None, timeout=5.0):
    """One request to addr:port with Host/SNI host. tls: an SSLContext, or None for plain HTTP."""
    if tls is None:
        conn = _HTTPConnection(addr, host, port, timeout)
    else:
        conn = _HTTPSConnection(addr, host, port, tls, timeout)
    try:
        hdrs = dict(headers or {})
        default_port = 80 if tls is None else 443
        hdrs.setdefault("Host", host if port == default_port else f"{host}:{port}")
        conn.request(method, path, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.headers, data)
    finally:
        conn.close()


def basic_auth(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def parse_challenge(value):
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})"""
    scheme, _, rest = value.strip().partition(" ")
    params, key, buf, quoted, i = {}, None, "", False, 0
    rest = rest.strip()
    while i < len(rest):
        ch = rest[i]
        if quoted:
            if ch == "\\" and i + 1 < len(rest):
                buf += rest[i + 1]
                i += 1
            elif ch == '"':
                quoted = False
            else:
                buf += ch
        elif ch == '"':
            quoted = True
        elif ch == "=" and key is None:
            key, buf = buf.strip().lower(), ""
        elif ch == ",":
            if key is not None:
                params[key] = buf
            key, buf = None, ""
        else:
            buf += ch
        i += 1
    if key is not None:
        params[key] = buf
    return scheme.lower(), params


# ---------------------------------------------------------------- SigV4 ------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode(value, keep_slash):
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(value, safe=safe)


def sigv4_headers(method, host, path, query, body, access_key, secret_key, region,
                  service="s3", now=None, extra=None):
    """AWS Signature Version 4 headers (Authorization, x-amz-date, x-amz-content-sha256).

    path is the raw (unencoded) object path, query a dict or list of pairs."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    for k, v in (extra or {}).items():
        headers[k.lower()] = v
    pairs = sorted(query.items() if isinstance(query, dict) else (query or []))
    canonical_query = "&".join(f"{_uri_encode(k, False)}={_uri_encode(v, False)}" for k, v in pairs)
    signed = sorted(headers)
    canonical_headers = "".join(f"{k}:{' '.join(str(headers[k]).split())}\n" for k in signed)
    signed_headers = ";".join(signed)
    canonical = "\n".join([method, _uri_encode(path, True), canonical_query, canonical_headers,
                           signed_headers, payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode("utf-8"), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out = {k: v for k, v in headers.items() if k != "host"}
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out


def s3_request(addr, host, port, method, path, access_key, secret_key, region, query=None,
               body=b"", tls=None, timeout=5.0):
    """A SigV4-signed S3 request (path-style). Returns Response; .s3_code() for errors."""
    query = query or {}
    hdr_host = host if port in (80, 443) else f"{host}:{port}"
    headers = sigv4_headers(method, hdr_host, path, query, body, access_key, secret_key, region)
    headers["Host"] = hdr_host
    qs = "&".join(f"{_uri_encode(k, False)}={_uri_encode(v, False)}" for k, v in sorted(query.items()))
    target = _uri_encode(path, True) + (f"?{qs}" if qs else "")
    return request(addr, host, port, method, target, headers=headers, body=body, tls=tls, timeout=timeout)


def s3_error_code(resp):
    """The <Code> of an S3 XML error body, or ''."""
    text = resp.text()
    start = text.find("<Code>")
    end = text.find("</Code>", start)
    return text[start + 6:end] if start >= 0 and end > start else ""
