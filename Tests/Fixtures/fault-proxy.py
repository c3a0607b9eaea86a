#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy for kiln's tests: it stands in front of a real docker-registry
and, following a rules file it re-reads on every request, answers some requests with errors,
cuts connections before or in the middle of a body, delays them, or lies about a digest.

    fault-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT RULES.json LOG_FILE

RULES.json is a list of rules, tried in order; the first that matches a request and still has
uses left decides its fault:
    {"method": "PUT", "path": "/manifests/", "fault": "status", "status": 400,
     "code": "DIGEST_INVALID", "times": 1}
fields:
    method, path   request method (exact) and a regular expression searched in the path+query
    fault          status | reset-before | reset-mid | delay | wrong-digest | pass
    status, code   for "status": the HTTP status and the registry error code of the JSON body
    retryAfter     for "status": a Retry-After header (seconds)
    seconds        for "delay": how long to wait before forwarding
    times          how many matching requests get the fault (default: all)
    every          only every N-th matching request (default 1)
    probability    the fault happens with this probability (seeded by "seed", default 0)
Every request is logged as one line: "FAULT METHOD PATH STATUS" (FAULT "-" when none).
"""
import http.client
import http.server
import json
import random
import re
import socket
import struct
import sys
import threading
import time

LISTEN, UPSTREAM, RULES, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()
counters = {}
rngs = {}


def load_rules():
    try:
        with open(RULES) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return []


def choose(method, path):
    """The fault for this request (a rule or None), counting uses under the lock."""
    with lock:
        for number, rule in enumerate(load_rules()):
            if rule.get("method") and rule["method"] != method:
                continue
            if rule.get("path") and not re.search(rule["path"], path):
                continue
            key = json.dumps(rule, sort_keys=True)
            seen, used = counters.get(key, (0, 0))
            seen += 1
            applies = seen % int(rule.get("every", 1)) == 0
            if "probability" in rule:
                rng = rngs.setdefault(key, random.Random(rule.get("seed", 0)))
                applies = applies and rng.random() < float(rule["probability"])
            if "times" in rule and used >= int(rule["times"]):
                applies = False
            if applies:
                used += 1
            counters[key] = (seen, used)
            if applies:
                return rule
        return None


def log(fault, method, path, status):
    with lock:
        with open(LOG, "a") as handle:
            handle.write(f"{fault} {method} {path} {status}\n")


def reset(connection):
    """Closes with a TCP reset rather than an orderly shutdown."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    connection.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self, limit=None):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        if limit is not None:
            length = min(length, limit)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        method, path = self.command, self.path
        rule = choose(method, path)
        fault = rule["fault"] if rule else "-"
        if fault == "reset-mid" and int(self.headers.get("Content-Length", "0")) > 1:
            # Take half the request body, then cut the connection.
            self.read_body(limit=int(self.headers["Content-Length"]) // 2)
            log(fault, method, path, "reset")
            reset(self.connection)
            self.close_connection = True
            return
        body = self.read_body()
        if fault == "reset-before":
            log(fault, method, path, "reset")
            reset(self.connection)
            self.close_connection = True
            return
        if fault == "status":
            status = int(rule.get("status", 503))
            payload = json.dumps({"errors": [{"code": rule.get("code", "UNAVAILABLE"), "message": "injected by fault-proxy"}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if "retryAfter" in rule:
                self.send_header("Retry-After", str(rule["retryAfter"]))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)
            log(fault, method, path, status)
            return
        if fault == "delay":
            time.sleep(float(rule.get("seconds", 1)))
        upstream = http.client.HTTPConnection(UPSTREAM, timeout=120)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in ("transfer-encoding", "content-length", "connection")}
        headers["Content-Length"] = str(len(body))
        upstream.request(method, path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in ("transfer-encoding", "connection", "content-length"):
                continue
            if lower == "docker-content-digest" and fault == "wrong-digest":
                value = "sha256:" + "0" * 64
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method == "HEAD":
            log(fault, method, path, response.status)
            return
        if fault == "reset-mid" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            log(fault, method, path, "reset")
            reset(self.connection)
            self.close_connection = True
            return
        self.wfile.write(data)
        log(fault, method, path, response.status)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", LISTEN), Handler).serve_forever()
