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
class ProxyError extends Error {}
class ProxyUnavailableError extends ProxyError {}
for (const c of [BlobError, BlobNotFoundError, BlobLimitError, ProxyError, ProxyUnavailableError])
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

// The credential proxy's channel (sandbox/agent/frame.h, "The credential proxy"), as in
// runtime.py: frames on fd 5 (requests) and fd 6 (responses), payloads of tagged fields.
const PX = { REQ_FD: 5, RESP_FD: 6, METHOD: 96, URL: 97, SERVICE: 98, HEADER: 99, BODY: 100,
             STATUS: 101, ERROR: 102 };
const PROXY_BODY_MAX = 1024 * 1024;
const PROXY_RESPONSE_MAX = 8 * 1024 * 1024 + 128 * 1024;
let pxQueue = Promise.resolve(); // one call at a time: the channel carries one in flight

function pxField(tag, data) {
  const h = Buffer.alloc(5);
  h[0] = tag;
  h.writeUInt32BE(data.length, 1);
  return Buffer.concat([h, data]);
}

const pxWrite = (b) => new Promise((resolve, reject) => {
  const step = (off) => {
    if (off >= b.length) return resolve();
    fs.write(PX.REQ_FD, b, off, b.length - off, null, (e, n) => {
      if (e) return reject(new ProxyUnavailableError('the proxy channel is closed'));
      step(off + n);
    });
  };
  step(0);
});

const pxRead = (n) => new Promise((resolve, reject) => {
  const b = Buffer.alloc(n);
  const step = (off) => {
    if (off >= n) return resolve(b);
    fs.read(PX.RESP_FD, b, off, Math.min(n - off, 1 << 20), null, (e, got) => {
      if (e && e.code === 'EAGAIN') return setTimeout(() => step(off), 1);
      if (e || got === 0) return reject(new ProxyUnavailableError('the proxy channel closed'));
      step(off + got);
    });
  };
  step(0);
});

function pxAnswer(data) {
  let status = null; const headers = []; let body = Buffer.alloc(0);
  for (let off = 0; off < data.length;) {
    const tag = data[off]; const n = data.readUInt32BE(off + 1);
    const v = data.subarray(off + 5, off + 5 + n);
    off += 5 + n;
    if (tag === PX.ERROR) throw new ProxyError(v.toString('utf8'));
    if (tag === PX.STATUS) status = Number(v.readBigUInt64BE(0));
    else if (tag === PX.HEADER) {
      const t = v.toString('latin1'); const i = t.indexOf(':');
      headers.push([t.slice(0, i), t.slice(i + 1).trim()]);
    } else if (tag === PX.BODY) body = Buffer.from(v);
  }
  if (status === null) throw new ProxyUnavailableError('malformed answer on the proxy channel');
  return {
    status, headers, body, ok: status >= 200 && status < 300,
    header: (name) => (headers.find(([k]) => k.toLowerCase() === name.toLowerCase()) || [])[1],
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')),
  };
}

async function pxCall(payload) {
  // the sandbox's bootstrap marks the channel; anywhere else fds 5 and 6 are not ours
  const ch = globalThis[Symbol.for('aisp.proxy')];
  if (!Array.isArray(ch) || ch[0] !== PX.REQ_FD || ch[1] !== PX.RESP_FD)
    throw new ProxyUnavailableError('proxy_fetch has no channel to the node in this process');
  const h = Buffer.alloc(5);
  h.write('q', 0, 'latin1');
  h.writeUInt32BE(payload.length, 1);
  await pxWrite(Buffer.concat([h, payload]));
  const head = await pxRead(5);
  const n = head.readUInt32BE(1);
  if (head[0] !== 0x61 || n > PROXY_RESPONSE_MAX)
    throw new ProxyUnavailableError('malformed answer on the proxy channel');
  return pxAnswer(await pxRead(n));
}

// Calls an external API through the node's credential proxy (proto/PROTOCOL.md, "The
// credential proxy"): proxy_fetch(url, {method, service, headers, body}) is a Promise of
// {status, headers: [[name, value]...], body: Buffer, ok, header(name), text(), json()}; the
// node adds the service's credential (which never enters the sandbox). A call the node refuses
// or that fails rejects with a ProxyError that says why. Calls are queued: one in flight.
function proxy_fetch(url, options) {
  const o = options || {};
  const method = String(o.method || 'GET').toUpperCase();
  if (typeof url !== 'string' || typeof o.service !== 'string' || !o.service)
    return Promise.reject(new TypeError("proxy_fetch(url, {service: name, ...}): url and service are strings"));
  let body = o.body;
  if (typeof body === 'string') body = Buffer.from(body, 'utf8');
  if (body !== undefined && body !== null && !(body instanceof Uint8Array))
    return Promise.reject(new TypeError('proxy_fetch: body is a string, Buffer or Uint8Array'));
  if (body && body.length > PROXY_BODY_MAX)
    return Promise.reject(new ProxyError('request body of ' + body.length +
                                         ' bytes is over the cap of ' + PROXY_BODY_MAX));
  const parts = [pxField(PX.METHOD, Buffer.from(method)), pxField(PX.URL, Buffer.from(url)),
                 pxField(PX.SERVICE, Buffer.from(o.service))];
  const hs = Array.isArray(o.headers) ? o.headers : Object.entries(o.headers || {});
  for (const [k, v] of hs) parts.push(pxField(PX.HEADER, Buffer.from(k + ': ' + v, 'utf8')));
  if (body) parts.push(pxField(PX.BODY, Buffer.from(body)));
  const payload = Buffer.concat(parts);
  const p = pxQueue.then(() => pxCall(payload));
  pxQueue = p.catch(() => {});
  return p;
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
  BlobError, BlobNotFoundError, BlobLimitError, ProxyError, ProxyUnavailableError,
  BLOB_MAX, OUT_BLOBS_MAX, OUT_BLOBS_TOTAL, LOG_MAX, LOG_ENTRIES_MAX, LOG_MESSAGE_MAX,
};
