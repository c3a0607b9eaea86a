#!/usr/bin/env python3
"""A token server for distribution's token auth, for kiln's integration tests only.

Serves GET /token?service=…&scope=…: checks Basic credentials against one user, grants the
requested actions to that user (nothing to anonymous callers, like a private registry), and
returns an ES256 JWT whose header carries the signing certificate (x5c), which the registry
trusts through its rootcertbundle. Signing uses the openssl command; only the standard library
is imported. Every request is logged as one JSON line, so tests can see which scopes were asked.

usage: token-server.py PORT CERT KEY ISSUER USER PASSWORD LOGFILE [FAIL_FIRST]

With FAIL_FIRST, the first that many requests are answered 503 with Retry-After: 0 (a token
server having a bad moment), so tests can check that clients retry a token request.
"""
import base64, http.server, json, subprocess, sys, threading, time, urllib.parse, uuid

port, cert_path, key_path, issuer, user, password, log_path = sys.argv[1:8]
fail_first = [int(sys.argv[8]) if len(sys.argv) > 8 else 0]
fail_lock = threading.Lock()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_certificate() -> bytes:
    pem = open(cert_path).read()
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    return base64.b64decode(body)


def raw_signature(der: bytes) -> bytes:
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, 32 bytes each."""
    index = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[index] == 0x02
        length = der[index + 1]
        value = der[index + 2 : index + 2 + length].lstrip(b"\x00")
        out += value.rjust(32, b"\x00")
        index += 2 + length
    return out


def sign(message: bytes) -> bytes:
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=message,
                         capture_output=True, check=True).stdout
    return raw_signature(der)


CERT = b64url(der_certificate())


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        with fail_lock:
            failing = fail_first[0] > 0
            fail_first[0] -= 1 if failing else 0
        if failing:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.log({"status": 503, "scopes": query.get("scope", [])})
            return
        header = self.headers.get("Authorization", "")
        who = None
        if header.startswith("Basic "):
            name, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            if name != user or secret != password:
                self.send_response(401)
                self.end_headers()
                self.log({"status": 401, "user": name, "scopes": query.get("scope", [])})
                return
            who = name
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",") if who else []})
        now = int(time.time())
        claims = {"iss": issuer, "sub": who or "", "aud": query.get("service", [""])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        head = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(base64.urlsafe_b64decode(CERT + "==")).decode()]}
        signing_input = (b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        token = signing_input.decode() + "." + b64url(sign(signing_input))
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.log({"status": 200, "user": who, "scopes": query.get("scope", [])})

    def log(self, entry):
        with open(log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")


http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
