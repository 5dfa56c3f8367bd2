#!/usr/bin/python3
"""An OpenAI-compatible chat-completions server for tests and the quick start.

No LLM is reachable from the machines that run our tests, so this stands in for OpenRouter.
It speaks the same wire format (the request body of POST /chat/completions, the response
object with choices and usage including OpenRouter's usage.cost, the {"error": {"code",
"message"}} shape, Retry-After) and answers deterministically, so chains are testable.
Python standard library only; run it with /usr/bin/python3.

Starting it
    llm_server.py [--host 127.0.0.1] [--port 0] [--port-file F] [--listen-fd N]
                  [--key-file F] [--tls-cert F --tls-key F] [--verbose]
  --port 0 picks a free port; the port is printed ("llm_server: listening on
  http://127.0.0.1:PORT") and, with --port-file, written to F (atomically). --listen-fd uses a
  listening socket inherited from the parent (e.g. 0, its stdin) instead of binding one.
  --key-file: every chat request must carry "Authorization: Bearer <the file's first line>",
  else 401. --tls-cert/--tls-key: serve HTTPS.

Endpoints
  POST /chat/completions, /v1/chat/completions, /api/v1/chat/completions
  GET  /_mock/requests   every request received so far, in order, as
                         {"requests": [{"method", "path", "headers": [[name, value]...],
                         "body", "peer"}]} (the chat requests and failed ones alike; not
                         /_mock/*); peer is the client's address:port, one per connection
  POST /_mock/reset      forget the recorded requests and the failure counters

The answer (documented transform)
  content = "[<model>] <system prompt> | <user message>"  (system prompt "" when absent; the
  user message is the last "user" message)
  With the directive [[mock echo]] in any message: content = the user message, unchanged.
  With [[mock upper]]: content = the user message in upper case.
  prompt_tokens = ceil(UTF-8 bytes of all message contents / 4),
  completion_tokens = ceil(UTF-8 bytes of content / 4) (0 for ""); with max_tokens given and
  completion_tokens above it, content is cut to 4 * max_tokens bytes (at a character boundary)
  and finish_reason is "length", else "stop".
  usage.cost (USD) = (prompt_tokens * 1 + completion_tokens * 2) / 1 000 000, written as exact
  decimal text ("0.000123"): the mock's price is $1 per million prompt tokens and $2 per
  million completion tokens.

Failure modes: directives in any message's content, [[mock WORD WORD=VALUE ...]]
  fail=CODE            answer CODE (429, 500, 502, 503, ...) with {"error": {"code": CODE,
                       "message": "mock failure CODE (attempt K)"}}
    times=N            ... only for the first N requests that carry this exact directive text
                       (counted per directive text; add id=TAG to tell tests apart); default:
                       every request
    retry-after=V      with a Retry-After header: V seconds, or date+S / date-S for an HTTP
                       date S seconds from now / in the past
  html=CODE            answer CODE with an HTML page (a proxy's error page, not JSON)
  delay=MS             wait MS milliseconds before answering (slow answers; timeouts)
  drop                 close the connection without answering
  redirect             302 to http://127.0.0.1:1/elsewhere (must not be followed)
  malformed            200 with a body that is not JSON (cut short)
  error200             200 with {"error": {"code": 502, "message": "..."}} (OpenRouter's
                       mid-generation error)
  choice-error         200 with choices[0].error and finish_reason "error"
  nochoices            200 with "choices": []
  nocontent            200 with choices[0].message.content null
  oversized=N          200 with a valid response whose content is N bytes, Content-Length set
  oversized-chunked=N  the same with chunked transfer encoding (size unknown in advance)
  nousage              no usage object
  nocost               usage without cost (the client falls back to its price table)
  cost=TEXT            usage.cost written as TEXT, verbatim (e.g. 1.5e-05)
  echo-auth            401 whose message quotes the Authorization header received (a
                       provider echoing the key back: the client must redact it)
  leak-key             a normal answer whose content quotes the Authorization header
"""

import argparse
import email.utils
import hashlib
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATHS = ("/chat/completions", "/v1/chat/completions", "/api/v1/chat/completions")
DIRECTIVE = re.compile(r"\[\[mock ([^\]]*)\]\]")
MAX_BODY = 64 * 1024 * 1024


class State:
    def __init__(self, key):
        self.key = key
        self.lock = threading.Lock()
        self.requests = []
        self.counters = {}

    def record(self, handler, body):
        entry = {
            "method": handler.command,
            "path": handler.path,
            "headers": [[k, v] for k, v in handler.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "peer": "%s:%d" % handler.client_address[:2],
        }
        with self.lock:
            self.requests.append(entry)

    def count(self, directive):
        """How many requests carried this directive before this one."""
        with self.lock:
            n = self.counters.get(directive, 0)
            self.counters[directive] = n + 1
            return n

    def reset(self):
        with self.lock:
            self.requests = []
            self.counters = {}


def parse_directives(texts):
    """[(raw directive text, {word: value or True})] from every message content."""
    out = []
    for t in texts:
        for m in DIRECTIVE.finditer(t):
            opts = {}
            for word in m.group(1).split():
                k, sep, v = word.partition("=")
                opts[k] = v if sep else True
            out.append((m.group(0), opts))
    return out


def tokens(text):
    n = len(text.encode("utf-8"))
    return (n + 3) // 4


def cut_utf8(text, nbytes):
    b = text.encode("utf-8")[:nbytes]
    return b.decode("utf-8", "ignore")


def http_date(offset_s):
    return email.utils.formatdate(time.time() + offset_s, usegmt=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm-mock/1"
    state = None  # set by main()
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("llm_server: " + (fmt % args) + "\n")

    # ---- plumbing ----

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n) if n else b""

    def send(self, code, body, ctype="application/json", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_chunked(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 16384):
            part = body[i:i + 16384]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def send_error_json(self, code, message, headers=()):
        self.send(code, json.dumps({"error": {"code": code, "message": message}}),
                  headers=headers)

    # ---- routes ----

    def do_GET(self):
        if self.path == "/_mock/requests":
            with self.state.lock:
                doc = json.dumps({"requests": self.state.requests})
            self.send(200, doc)
        else:
            self.send_error_json(404, "no such endpoint: GET " + self.path)

    def do_POST(self):
        try:
            body = self.read_body()
        except ValueError as ex:
            self.send_error_json(400, str(ex))
            return
        if self.path == "/_mock/reset":
            self.state.reset()
            self.send(200, "{}")
            return
        self.state.record(self, body)
        if self.path not in CHAT_PATHS:
            self.send_error_json(404, "no such endpoint: POST " + self.path)
            return
        try:
            self.chat(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (cancelled, timed out)

    def check_request(self, body):
        """The parsed request, or None after answering 400."""
        try:
            req = json.loads(body)
        except ValueError as ex:
            self.send_error_json(400, "request body is not JSON: %s" % ex)
            return None
        if not isinstance(req, dict) or not isinstance(req.get("model"), str):
            self.send_error_json(400, "model is required")
            return None
        msgs = req.get("messages")
        if not isinstance(msgs, list) or not msgs:
            self.send_error_json(400, "messages must be a non-empty array")
            return None
        for m in msgs:
            if (not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant")
                    or not isinstance(m.get("content"), str)):
                self.send_error_json(400, "each message needs a role and a string content")
                return None
        mt = req.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
            self.send_error_json(400, "max_tokens must be a positive integer")
            return None
        return req

    def chat(self, body):
        auth = self.headers.get("Authorization", "")
        req = None
        try:
            req = json.loads(body)
            texts = [m.get("content", "") for m in req.get("messages", [])
                     if isinstance(m, dict) and isinstance(m.get("content"), str)]
        except (ValueError, AttributeError, TypeError):
            texts = []
        directives = parse_directives(texts)
        flags = {}
        for raw, opts in directives:
            flags.update(opts)
        if "echo-auth" in flags:
            self.send_error_json(401, "Invalid credentials: " + auth)
            return
        if self.state.key is not None and auth != "Bearer " + self.state.key:
            self.send_error_json(401, "No auth credentials found")
            return
        req = self.check_request(body)
        if req is None:
            return
        if "delay" in flags:
            time.sleep(int(flags["delay"]) / 1000.0)
        if self.failure(directives, flags):
            return
        self.answer(req, body, flags, auth)

    def failure(self, directives, flags):
        """Answers a failure mode and returns True, or returns False."""
        for raw, opts in directives:
            if "fail" not in opts:
                continue
            k = self.state.count(raw)
            if "times" in opts and k >= int(opts["times"]):
                continue
            code = int(opts["fail"])
            headers = []
            ra = opts.get("retry-after")
            if ra and ra != "none":
                if ra.startswith("date"):
                    ra = http_date(int(ra[4:]))
                headers.append(("Retry-After", ra))
            self.send_error_json(code, "mock failure %d (attempt %d)" % (code, k + 1), headers)
            return True
        if "html" in flags:
            code = int(flags["html"])
            self.send(code, "<html><head><title>%d</title></head><body><h1>%d Bad Gateway"
                      "</h1><p>The upstream server is not answering.</p>%s</body></html>"
                      % (code, code, "<p>padding</p>" * 40), ctype="text/html")
            return True
        if "drop" in flags:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if "redirect" in flags:
            self.send(302, "", headers=[("Location", "http://127.0.0.1:1/elsewhere")])
            return True
        if "malformed" in flags:
            self.send(200, '{"id": "gen-malformed", "object": "chat.completion", "choices": [{"mes')
            return True
        if "error200" in flags:
            self.send(200, json.dumps({"error": {"code": 502, "message":
                                                 "Upstream provider error: mock model crashed"}}))
            return True
        return False

    def content_for(self, req, flags, auth):
        msgs = req["messages"]
        system = "".join(m["content"] for m in msgs if m["role"] == "system")
        users = [m["content"] for m in msgs if m["role"] == "user"]
        user = users[-1] if users else ""
        if "oversized" in flags or "oversized-chunked" in flags:
            return "x" * int(flags.get("oversized") or flags.get("oversized-chunked"))
        if "echo" in flags:
            content = user
        elif "upper" in flags:
            content = user.upper()
        else:
            content = "[%s] %s | %s" % (req["model"], system, user)
        if "leak-key" in flags:
            content += " (the key: %s)" % auth
        return content

    def answer(self, req, body, flags, auth):
        content = self.content_for(req, flags, auth)
        prompt_tokens = sum(tokens(m["content"]) for m in req["messages"])
        finish = "stop"
        mt = req.get("max_tokens")
        big = "oversized" in flags or "oversized-chunked" in flags
        if mt is not None and tokens(content) > mt and not big:
            content = cut_utf8(content, 4 * mt)
            finish = "length"
        completion_tokens = tokens(content)
        choice = {"index": 0, "message": {"role": "assistant", "content": content},
                  "finish_reason": finish, "native_finish_reason": finish}
        if "nocontent" in flags:
            choice["message"]["content"] = None
        if "choice-error" in flags:
            choice["finish_reason"] = "error"
            choice["error"] = {"code": 502, "message": "mock provider failed mid-generation"}
        resp = {
            "id": "gen-" + hashlib.sha256(body).hexdigest()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req["model"],
            "provider": "mock",
            "choices": [] if "nochoices" in flags else [choice],
        }
        cost = None
        if "nousage" not in flags:
            resp["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            }
            if "nocost" not in flags:
                cost = flags.get("cost") or str(Decimal(prompt_tokens + 2 * completion_tokens)
                                                .scaleb(-6))
                resp["usage"]["cost"] = "@COST@"
        text = json.dumps(resp)
        if cost is not None:
            text = text.replace('"@COST@"', cost)  # the number's text, verbatim
        data = text.encode("utf-8")
        if "oversized-chunked" in flags:
            self.send_chunked(200, data)
        else:
            self.send(200, data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that went away mid-answer (cancelled, timed out, "drop") is not an error.
        if Handler.verbose:
            super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def make_server(args):
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
        server = Server(sock.getsockname()[:2], Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
    else:
        server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--listen-fd", type=int)
    ap.add_argument("--key-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    key = None
    if args.key_file:
        with open(args.key_file) as f:
            key = f.readline().rstrip("\r\n")
    Handler.state = State(key)
    Handler.verbose = args.verbose
    server = make_server(args)
    port = server.socket.getsockname()[1]
    scheme = "https" if args.tls_cert else "http"
    print("llm_server: listening on %s://%s:%d" % (scheme, args.host, port), flush=True)
    if args.port_file:
        write_port_file(args.port_file, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
