"""The runtime helpers for code running in an aisp sandbox (proto/SKILLS.md, "The runtime
module"): blobs, structured logs, imports of mounted skills, and the credential proxy.

    from runtime import blobs, log
    text = blobs.read_text(args["input_blob"])      # an input blob the task listed
    out = blobs.write_json({"rows": 142})           # a new blob: "sha256:<hex>"
    log.info("Processing 142 records...")
    from skills.salesforce.leads.sync import main   # a skill the task mounted

Where things are (fixed by the protocol; AISP_RUNTIME_ROOT prefixes every path, for tests):
    /.aisp/blobs/<hex>            input blobs, written by the agent before the run, read-only
    /workspace/.aisp/blobs/<hex>  output blobs, written here, collected by the agent after
    /workspace/.aisp/log.jsonl    log entries, one JSON object a line, collected as `logs`
    /.aisp/skills/<name>/code/    the package skills.<name> (the task's skills, read-only)

The caps mirror proto/proto.h; the node enforces them again when it collects (this module runs
as the task's code and is not trusted for anything). Imported by the sandbox's bootstrap, which
installs the skills importer; importing it again is harmless.
"""

import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import struct
import sys
import threading

__all__ = ["blobs", "log", "proxy_fetch", "BlobError", "BlobNotFoundError", "BlobLimitError",
           "ProxyError", "ProxyUnavailableError", "ProxyResponse"]

BLOB_MAX = 8 * 1024 * 1024          # PROTO_BLOB_MAX
OUT_BLOBS_MAX = 16                  # PROTO_OUT_BLOBS_MAX
OUT_BLOBS_TOTAL = 32 * 1024 * 1024  # PROTO_OUT_BLOBS_TOTAL
LOG_MAX = 64 * 1024                 # PROTO_LOG_MAX
LOG_ENTRIES_MAX = 256               # PROTO_LOG_ENTRIES_MAX
LOG_MESSAGE_MAX = 2048              # PROTO_LOG_MESSAGE_MAX

_ID = re.compile(r"sha256:([0-9a-f]{64})\Z")
_HEX = re.compile(r"[0-9a-f]{64}\Z")
_SKILL = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_LOG_RESERVE = 256  # room kept for the "log limit reached" entry


class BlobError(Exception):
    """A blob could not be read or written."""


class BlobNotFoundError(BlobError, LookupError):
    """The task did not list the blob, and the code did not write it."""


class BlobLimitError(BlobError, ValueError):
    """A blob, or the blobs of this run, would be over the caps."""


class ProxyError(RuntimeError):
    """The node's credential proxy refused the call or could not complete it; the message says
    which and why (the call never reached the target when it was refused)."""


class ProxyUnavailableError(ProxyError):
    """proxy_fetch cannot reach the node's credential proxy (no channel in this process)."""


def _root():
    return os.environ.get("AISP_RUNTIME_ROOT", "")


def _in_dir():
    return _root() + "/.aisp/blobs"


def _out_dir():
    return _root() + "/workspace/.aisp/blobs"


def _log_path():
    return _root() + "/workspace/.aisp/log.jsonl"


def _skills_dir():
    return _root() + "/.aisp/skills"


def _hex_of(blob_id):
    m = _ID.match(blob_id) if isinstance(blob_id, str) else None
    if not m:
        raise ValueError("not a blob id: %.80r (expected sha256: and 64 lower-case hex digits)"
                         % (blob_id,))
    return m.group(1)


def _read_file(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(BLOB_MAX + 1)
    finally:
        os.close(fd)


def _out_blobs():
    """{hex: size} of the output blobs written so far."""
    try:
        names = os.listdir(_out_dir())
    except FileNotFoundError:
        return {}
    out = {}
    for n in names:
        if _HEX.match(n):
            out[n] = os.lstat(os.path.join(_out_dir(), n)).st_size
    return out


class _Blobs:
    """runtime.blobs: read the task's input blobs, create output blobs."""

    def read_bytes(self, blob_id):
        """The bytes of an input blob (or of a blob this run wrote)."""
        h = _hex_of(blob_id)
        for d in (_in_dir(), _out_dir()):
            try:
                return _read_file(os.path.join(d, h))
            except FileNotFoundError:
                continue
        raise BlobNotFoundError("blob %s is not available to this run (list it in the "
                                "task's blobs)" % blob_id)

    def read_text(self, blob_id, encoding="utf-8"):
        """An input blob decoded as text (strictly: bad bytes raise UnicodeDecodeError)."""
        return self.read_bytes(blob_id).decode(encoding)

    def write_bytes(self, data):
        """Stores bytes as an output blob; returns its id "sha256:<hex>"."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("write_bytes needs bytes, not %s" % type(data).__name__)
        data = bytes(data)
        if len(data) > BLOB_MAX:
            raise BlobLimitError("blob of %d bytes is over the cap of %d" % (len(data), BLOB_MAX))
        h = hashlib.sha256(data).hexdigest()
        have = _out_blobs()
        if h in have:
            return "sha256:" + h
        if len(have) + 1 > OUT_BLOBS_MAX:
            raise BlobLimitError("a run creates at most %d blobs" % OUT_BLOBS_MAX)
        if sum(have.values()) + len(data) > OUT_BLOBS_TOTAL:
            raise BlobLimitError("the blobs of a run are at most %d bytes" % OUT_BLOBS_TOTAL)
        os.makedirs(_out_dir(), exist_ok=True)
        tmp = os.path.join(_out_dir(), ".%s.%d.tmp" % (h, os.getpid()))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(data)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(_out_dir(), h))
        return "sha256:" + h

    def write_text(self, text, encoding="utf-8"):
        """Stores text as an output blob (UTF-8 unless told otherwise); returns its id."""
        if not isinstance(text, str):
            raise TypeError("write_text needs a str, not %s" % type(text).__name__)
        return self.write_bytes(text.encode(encoding))

    def write_json(self, obj):
        """Stores obj as compact JSON with sorted keys (the same object gives the same id)."""
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        return self.write_bytes(text.encode("utf-8"))


def _cut_utf8(b, n):
    """b (valid UTF-8) cut to at most n bytes, never inside a sequence, as text."""
    return b[:n].decode("utf-8", "ignore")


def _log_state(path):
    """(entries so far, whether the log is full) from the file itself, so that every process
    of the run that logs sees the same count."""
    try:
        with open(path, "rb") as f:
            data = f.read(LOG_MAX + 1)
    except FileNotFoundError:
        return 0, False
    lines = data.splitlines()
    try:
        full = bool(lines) and json.loads(lines[-1]).get("dropped") is True
    except ValueError:
        full = False
    return len(lines), full


class _Log:
    """runtime.log: structured entries, one JSON object a line, returned as the task's logs:
    {"level": ..., "message": ..., "seq": n} plus "data" (keyword arguments, as JSON) and
    "truncated" (a message cut at LOG_MESSAGE_MAX bytes). Past the caps one entry with
    "dropped": true is written and later ones are dropped."""

    def _append(self, level, message, data):
        msg = message if isinstance(message, str) else str(message)
        raw = msg.encode("utf-8", "replace")
        entry = {"level": level, "message": _cut_utf8(raw, LOG_MESSAGE_MAX)}
        if len(raw) > LOG_MESSAGE_MAX:
            entry["truncated"] = True
        if data:
            entry["data"] = json.loads(json.dumps(data, default=str, allow_nan=False))
        path = _log_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        try:
            n, full = _log_state(path)
            if full:
                return
            entry["seq"] = n + 1
            line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
            if n + 1 >= LOG_ENTRIES_MAX or os.fstat(fd).st_size + len(line) > LOG_MAX - _LOG_RESERVE:
                line = (json.dumps({"dropped": True, "level": "error", "message": "log limit "
                                    "reached: later entries dropped", "seq": n + 1},
                                   sort_keys=True, separators=(",", ":")) + "\n").encode()
            os.write(fd, line)
        finally:
            os.close(fd)

    def info(self, message, **data):
        """Records an info entry; keyword arguments become its "data" (JSON)."""
        self._append("info", message, data)

    def warning(self, message, **data):
        self._append("warning", message, data)

    def error(self, message, **data):
        self._append("error", message, data)


blobs = _Blobs()
log = _Log()


# The credential proxy's channel (sandbox/agent/frame.h, "The credential proxy"): frames
# type (1 byte) | length (u32 BE) | payload on fd 5 (requests) and fd 6 (responses); payloads
# are fields tag (1 byte) | length (u32 BE) | bytes.
_PX_FD_REQUEST, _PX_FD_RESPONSE = 5, 6
_PX_REQUEST, _PX_RESPONSE = b"q", b"a"
_PX_METHOD, _PX_URL, _PX_SERVICE, _PX_HEADER, _PX_BODY, _PX_STATUS, _PX_ERROR = range(96, 103)
PROXY_BODY_MAX = 1024 * 1024           # PROXY_BODY_MAX
PROXY_RESPONSE_MAX = 8 * 1024 * 1024 + 128 * 1024  # PROXY_RESPONSE_MAX
_px_lock = threading.Lock()


class ProxyResponse:
    """What proxy_fetch returns: status (int), headers (list of (name, value)), body (bytes)."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def ok(self):
        return 200 <= self.status < 300

    def header(self, name):
        """The first header of that name (case-insensitive), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def text(self, encoding="utf-8"):
        return self.body.decode(encoding)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<ProxyResponse %d, %d bytes>" % (self.status, len(self.body))


def _field(tag, data):
    return struct.pack(">BI", tag, len(data)) + data


def _read_exact(fd, n):
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            raise ProxyUnavailableError("the proxy channel closed")
        out += chunk
    return bytes(out)


def _px_call(payload):
    # the bootstrap of the sandbox's interpreter marks the channel; anywhere else fds 5 and 6
    # are not ours (a subprocess of the program does not inherit them)
    if getattr(sys, "_aisp_proxy", None) != (_PX_FD_REQUEST, _PX_FD_RESPONSE):
        raise ProxyUnavailableError("proxy_fetch has no channel to the node in this process")
    with _px_lock:
        frame = _PX_REQUEST + struct.pack(">I", len(payload)) + payload
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(_PX_FD_REQUEST, view):]
        except BrokenPipeError:
            raise ProxyUnavailableError("the proxy channel is closed")
        head = _read_exact(_PX_FD_RESPONSE, 5)
        kind, n = head[:1], struct.unpack(">I", head[1:])[0]
        if kind != _PX_RESPONSE or n > PROXY_RESPONSE_MAX:
            raise ProxyUnavailableError("malformed answer on the proxy channel")
        return _read_exact(_PX_FD_RESPONSE, n)


def _px_answer(data):
    status, headers, body, off = None, [], b"", 0
    while off < len(data):
        tag, n = struct.unpack(">BI", data[off:off + 5])
        v = data[off + 5:off + 5 + n]
        off += 5 + n
        if tag == _PX_ERROR:
            raise ProxyError(v.decode("utf-8", "replace"))
        if tag == _PX_STATUS:
            status = struct.unpack(">Q", v)[0]
        elif tag == _PX_HEADER:
            k, _, val = v.decode("latin-1").partition(":")
            headers.append((k, val.strip()))
        elif tag == _PX_BODY:
            body = v
    if status is None:
        raise ProxyUnavailableError("malformed answer on the proxy channel (no status)")
    return ProxyResponse(int(status), headers, body)


def proxy_fetch(url, options=None, method=None, service=None, headers=None, body=None):
    """Calls an external API through the node's credential proxy (proto/PROTOCOL.md, "The
    credential proxy"): the node adds the service's credential, which never enters the sandbox,
    makes the request, and returns a ProxyResponse. options may be a dict with the keys method,
    service, headers and body (the seed's proxy_fetch(url, {method, service})), or use the
    keyword arguments. headers: a dict or a list of (name, value); body: bytes or str (UTF-8).
    A call the node refuses (an undeclared service, a host, path or method the service does not
    allow, the task's budget spent...) or that fails raises ProxyError with the node's reason.
    Synchronous; one call at a time per process."""
    o = dict(options or {})
    method = (method or o.get("method") or "GET").upper()
    service = service or o.get("service")
    headers = headers if headers is not None else o.get("headers")
    body = body if body is not None else o.get("body")
    if not isinstance(url, str) or not isinstance(service, str) or not service:
        raise TypeError("proxy_fetch(url, {'service': name, ...}): url and service are strings")
    if isinstance(body, str):
        body = body.encode("utf-8")
    if body is not None and not isinstance(body, (bytes, bytearray)):
        raise TypeError("proxy_fetch: body is bytes or str")
    if body is not None and len(body) > PROXY_BODY_MAX:
        raise ProxyError("request body of %d bytes is over the cap of %d" % (len(body),
                                                                            PROXY_BODY_MAX))
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    payload = (_field(_PX_METHOD, method.encode("utf-8")) + _field(_PX_URL, url.encode("utf-8"))
               + _field(_PX_SERVICE, service.encode("utf-8")))
    for k, v in items:
        payload += _field(_PX_HEADER, ("%s: %s" % (k, v)).encode("utf-8"))
    if body is not None:
        payload += _field(_PX_BODY, bytes(body))
    return _px_answer(_px_call(payload))


class _SkillsFinder(importlib.abc.MetaPathFinder):
    """`import skills.<name>.x.y` loads /skills/<name>/code/x/y.py: skills is a package with
    nothing of its own, skills.<name> a package whose directory is the skill's code/; the rest
    is Python's ordinary path finder below it."""

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        if parts[0] != "skills" or len(parts) > 2:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        if len(parts) == 1:
            spec.submodule_search_locations = []
            return spec
        code = os.path.join(_skills_dir(), parts[1], "code")
        if not _SKILL.match(parts[1]) or not os.path.isdir(code):
            return None
        spec.submodule_search_locations = [code]
        return spec


def _install():
    if not any(isinstance(f, _SkillsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkillsFinder())


_install()
