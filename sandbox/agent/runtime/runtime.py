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
import sys

__all__ = ["blobs", "log", "proxy_fetch", "BlobError", "BlobNotFoundError", "BlobLimitError",
           "ProxyUnavailableError"]

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


class ProxyUnavailableError(RuntimeError):
    """proxy_fetch cannot reach the node's credential proxy."""


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


def proxy_fetch(url, method="GET", service=None, headers=None, body=None):
    """Calls an external API through the node's credential proxy (issue 21). Not yet on this
    node: it always raises ProxyUnavailableError, and nothing leaves the sandbox."""
    raise ProxyUnavailableError("proxy_fetch is not available on this node")


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
