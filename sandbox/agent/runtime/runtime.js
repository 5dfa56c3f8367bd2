// The runtime helpers for JavaScript in an aisp sandbox (proto/SKILLS.md, "The runtime
// module"): blobs, structured logs, require() of mounted skills, and the credential proxy.
// The same API as runtime.py, synchronous except proxy_fetch (a Promise):
//
//   const { blobs, log } = require('runtime');
//   const text = blobs.read_text(args.input_blob);     // or blobs.readText
//   const id = blobs.write_json({ rows: 142 });        // "sha256:<hex>"
//   log.info('Processing 142 records...');
//   const { main } = require('skills/salesforce/leads/sync');   // /skills/salesforce/code/...
//
// Paths, caps and the log format are runtime.py's (AISP_RUNTIME_ROOT prefixes every path, for
// tests). Loading this file installs the resolver for require('runtime') and
// require('skills/<name>/...'); loading it again is harmless.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const Module = require('module');

const BLOB_MAX = 8 * 1024 * 1024; // PROTO_BLOB_MAX
const OUT_BLOBS_MAX = 16; // PROTO_OUT_BLOBS_MAX
const OUT_BLOBS_TOTAL = 32 * 1024 * 1024; // PROTO_OUT_BLOBS_TOTAL
const LOG_MAX = 64 * 1024; // PROTO_LOG_MAX
const LOG_ENTRIES_MAX = 256; // PROTO_LOG_ENTRIES_MAX
const LOG_MESSAGE_MAX = 2048; // PROTO_LOG_MESSAGE_MAX
const LOG_RESERVE = 256;

const ID = /^sha256:([0-9a-f]{64})$/;
const HEX = /^[0-9a-f]{64}$/;
const SKILL = /^skills\/([a-z][a-z0-9_]{0,63})\/(.+)$/;

class BlobError extends Error {}
class BlobNotFoundError extends BlobError {}
class BlobLimitError extends BlobError {}
class ProxyUnavailableError extends Error {}
for (const c of [BlobError, BlobNotFoundError, BlobLimitError, ProxyUnavailableError])
  Object.defineProperty(c.prototype, 'name', { value: c.name });

const root = () => process.env.AISP_RUNTIME_ROOT || '';
const inDir = () => root() + '/.aisp/blobs';
const outDir = () => root() + '/workspace/.aisp/blobs';
const logPath = () => root() + '/workspace/.aisp/log.jsonl';
const skillsDir = () => root() + '/.aisp/skills';

function hexOf(id) {
  const m = typeof id === 'string' ? ID.exec(id) : null;
  if (!m)
    throw new TypeError('not a blob id: ' + JSON.stringify(String(id)).slice(0, 80) +
                        ' (expected sha256: and 64 lower-case hex digits)');
  return m[1];
}

function readFile(p) {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// {hex: size} of the output blobs written so far.
function outBlobs() {
  let names;
  try {
    names = fs.readdirSync(outDir());
  } catch (e) {
    if (e.code === 'ENOENT') return {};
    throw e;
  }
  const have = {};
  for (const n of names)
    if (HEX.test(n)) have[n] = fs.lstatSync(path.join(outDir(), n)).size;
  return have;
}

// JSON with sorted keys, so that the same value gives the same blob.
function sortedJSON(v) {
  return JSON.stringify(v, (k, x) => {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) return x;
    const o = {};
    for (const key of Object.keys(x).sort()) o[key] = x[key];
    return o;
  });
}

const blobs = {
  read_bytes(id) {
    const h = hexOf(id);
    for (const d of [inDir(), outDir()]) {
      try {
        return readFile(path.join(d, h));
      } catch (e) {
        if (e.code !== 'ENOENT') throw e;
      }
    }
    throw new BlobNotFoundError('blob ' + id +
                                " is not available to this run (list it in the task's blobs)");
  },
  read_text(id) {
    return new TextDecoder('utf-8', { fatal: true }).decode(blobs.read_bytes(id));
  },
  write_bytes(data) {
    if (!(data instanceof Uint8Array)) throw new TypeError('write_bytes needs a Buffer or Uint8Array');
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (b.length > BLOB_MAX)
      throw new BlobLimitError('blob of ' + b.length + ' bytes is over the cap of ' + BLOB_MAX);
    const h = crypto.createHash('sha256').update(b).digest('hex');
    const have = outBlobs();
    if (h in have) return 'sha256:' + h;
    if (Object.keys(have).length + 1 > OUT_BLOBS_MAX)
      throw new BlobLimitError('a run creates at most ' + OUT_BLOBS_MAX + ' blobs');
    if (Object.values(have).reduce((a, n) => a + n, 0) + b.length > OUT_BLOBS_TOTAL)
      throw new BlobLimitError('the blobs of a run are at most ' + OUT_BLOBS_TOTAL + ' bytes');
    fs.mkdirSync(outDir(), { recursive: true });
    const tmp = path.join(outDir(), '.' + h + '.' + process.pid + '.tmp');
    const c = fs.constants;
    const fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o644);
    try {
      fs.writeSync(fd, b);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(outDir(), h));
    return 'sha256:' + h;
  },
  write_text(text) {
    if (typeof text !== 'string') throw new TypeError('write_text needs a string');
    return blobs.write_bytes(Buffer.from(text, 'utf8'));
  },
  write_json(v) {
    const s = sortedJSON(v);
    if (typeof s !== 'string') throw new TypeError('write_json: the value is not JSON-serialisable');
    return blobs.write_bytes(Buffer.from(s, 'utf8'));
  },
};
Object.assign(blobs, {
  readBytes: blobs.read_bytes, readText: blobs.read_text, writeBytes: blobs.write_bytes,
  writeText: blobs.write_text, writeJson: blobs.write_json,
});

// The message cut to at most n bytes of UTF-8, never inside a sequence.
function cutUtf8(s, n) {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= n) return { text: s, cut: false };
  let end = n;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return { text: b.subarray(0, end).toString('utf8'), cut: true };
}

// JSON text with every non-ASCII character escaped, as Python's json.dumps writes it.
const asciiJSON = (v) => JSON.stringify(v).replace(/[\u0080-\uffff]/g,
  (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'));

// (entries so far, whether the log is full) from the file itself, so that every process of
// the run that logs sees the same count.
function logState(p) {
  let data;
  try {
    data = fs.readFileSync(p).subarray(0, LOG_MAX + 1).toString('latin1');
  } catch (e) {
    if (e.code === 'ENOENT') return { n: 0, full: false };
    throw e;
  }
  const lines = data.split('\n').filter((l) => l.length);
  let full = false;
  try {
    full = lines.length > 0 && JSON.parse(lines[lines.length - 1]).dropped === true;
  } catch (_) {}
  return { n: lines.length, full };
}

function appendLog(level, message, data) {
  const { text, cut } = cutUtf8(typeof message === 'string' ? message : String(message),
                                LOG_MESSAGE_MAX);
  const entry = { level, message: text };
  if (cut) entry.truncated = true;
  if (data !== undefined) entry.data = JSON.parse(sortedJSON(data) ?? 'null');
  const p = logPath();
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const c = fs.constants;
  const fd = fs.openSync(p, c.O_WRONLY | c.O_CREAT | c.O_APPEND | c.O_NOFOLLOW, 0o644);
  try {
    const { n, full } = logState(p);
    if (full) return;
    entry.seq = n + 1;
    let line = asciiJSON(JSON.parse(sortedJSON(entry))) + '\n';
    if (n + 1 >= LOG_ENTRIES_MAX || fs.fstatSync(fd).size + line.length > LOG_MAX - LOG_RESERVE)
      line = sortedJSON({ dropped: true, level: 'error',
                          message: 'log limit reached: later entries dropped', seq: n + 1 }) + '\n';
    fs.writeSync(fd, line);
  } finally {
    fs.closeSync(fd);
  }
}

const log = {
  info: (message, data) => appendLog('info', message, data),
  warning: (message, data) => appendLog('warning', message, data),
  error: (message, data) => appendLog('error', message, data),
};
log.warn = log.warning;

// Calls an external API through the node's credential proxy (issue 21). Not yet on this node:
// the Promise always rejects with ProxyUnavailableError, and nothing leaves the sandbox.
function proxy_fetch(url, options) {
  return Promise.reject(new ProxyUnavailableError('proxy_fetch is not available on this node'));
}

// require('runtime') is this file; require('skills/<name>/x/y') is /skills/<name>/code/x/y
// (resolved as Node would: y.js, y/index.js...), and never anything outside that code/.
function installResolver() {
  if (Module._resolveFilename.aispRuntime) return;
  const orig = Module._resolveFilename;
  const resolve = function (request, parent, isMain, options) {
    if (request === 'runtime') return __filename;
    const m = SKILL.exec(request);
    if (!m) return orig.call(this, request, parent, isMain, options);
    const base = path.join(skillsDir(), m[1], 'code');
    const target = path.resolve(base, m[2]);
    if (!target.startsWith(base + path.sep)) {
      const e = new Error("Cannot find module '" + request + "' (outside the skill's code/)");
      e.code = 'MODULE_NOT_FOUND';
      throw e;
    }
    return orig.call(this, target, parent, isMain, options);
  };
  resolve.aispRuntime = true;
  Module._resolveFilename = resolve;
}

installResolver();

module.exports = {
  blobs, log, proxy_fetch, proxyFetch: proxy_fetch,
  BlobError, BlobNotFoundError, BlobLimitError, ProxyUnavailableError,
  BLOB_MAX, OUT_BLOBS_MAX, OUT_BLOBS_TOTAL, LOG_MAX, LOG_ENTRIES_MAX, LOG_MESSAGE_MAX,
};
