// Unit tests for the sandbox's JavaScript runtime module (sandbox/agent/runtime/runtime.js)
// against a temporary directory laid out as a sandbox is (AISP_RUNTIME_ROOT): blobs and their
// caps, the structured log (the same lines runtime.py writes) and its caps, require() of
// mounted skills and of 'runtime', and the proxy_fetch stub. Run with the host's node.
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { test, beforeEach, afterEach } = require('node:test');

const SRC = process.env.AISP_SOURCE_ROOT || path.join(__dirname, '..', '..');
const runtime = require(path.join(SRC, 'sandbox', 'agent', 'runtime', 'runtime.js'));
const { blobs, log } = runtime;

const sha = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');
let root;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'test-runtime-js.'));
  for (const d of ['.aisp/blobs', 'workspace', '.aisp/skills']) fs.mkdirSync(path.join(root, d), { recursive: true });
  process.env.AISP_RUNTIME_ROOT = root;
});
afterEach(() => {
  delete process.env.AISP_RUNTIME_ROOT;
  fs.rmSync(root, { recursive: true, force: true });
});

function putInput(buf) {
  fs.writeFileSync(path.join(root, '.aisp', 'blobs', crypto.createHash('sha256').update(buf).digest('hex')),
                   buf);
  return sha(buf);
}
const outDir = () => path.join(root, 'workspace', '.aisp', 'blobs');
const logFile = () => path.join(root, 'workspace', '.aisp', 'log.jsonl');
const entries = () => fs.readFileSync(logFile(), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('input blobs', () => {
  const id = putInput(Buffer.from('naïve,csv\n'));
  assert.strictEqual(blobs.read_text(id), 'naïve,csv\n');
  assert.strictEqual(blobs.readText(id), 'naïve,csv\n');
  assert.deepStrictEqual(blobs.read_bytes(id), Buffer.from('naïve,csv\n'));
  const bad = putInput(Buffer.from([0xff, 0xfe]));
  assert.throws(() => blobs.read_text(bad), TypeError); // invalid UTF-8 is an error
});

test('ids and missing blobs', () => {
  for (const bad of ['', 'sha256:', 'sha256:' + 'A'.repeat(64), 'sha256:../../etc/passwd', 7, null])
    assert.throws(() => blobs.read_bytes(bad), /not a blob id/);
  assert.throws(() => blobs.read_text('sha256:' + '0'.repeat(64)),
                (e) => e instanceof runtime.BlobNotFoundError &&
                       /is not available to this run \(list it in the task's blobs\)/.test(e.message));
});

test('write and read back', () => {
  const t = blobs.write_text('héllo');
  assert.strictEqual(t, sha(Buffer.from('héllo')));
  const p = path.join(outDir(), t.slice(7));
  assert.strictEqual(fs.readFileSync(p, 'utf8'), 'héllo');
  assert.strictEqual(fs.statSync(p).mode & 0o777, 0o644);
  assert.strictEqual(blobs.read_text(t), 'héllo');
  const j = blobs.writeJson({ b: [1, 2], a: 'é', n: { z: 1, y: 2 } });
  assert.strictEqual(blobs.read_text(j), '{"a":"é","b":[1,2],"n":{"y":2,"z":1}}'); // as runtime.py
  assert.strictEqual(blobs.write_bytes(new Uint8Array([0, 1])), sha(Buffer.from([0, 1])));
  assert.throws(() => blobs.write_bytes('text'), TypeError);
  assert.throws(() => blobs.write_text(Buffer.from('x')), TypeError);
  assert.throws(() => blobs.write_json(undefined), TypeError);
  assert.strictEqual(fs.readdirSync(outDir()).length, 3);
});

test('caps', () => {
  assert.throws(() => blobs.write_bytes(Buffer.alloc(runtime.BLOB_MAX + 1)),
                (e) => e instanceof runtime.BlobLimitError && /over the cap of 8388608/.test(e.message));
  blobs.write_bytes(Buffer.alloc(runtime.BLOB_MAX, 'a'));
  for (let i = 0; i < runtime.OUT_BLOBS_MAX - 1; i++) blobs.write_text('blob ' + i);
  blobs.write_text('blob 0'); // already there
  assert.throws(() => blobs.write_text('one too many'), /at most 16 blobs/);
  assert.strictEqual(fs.readdirSync(outDir()).length, runtime.OUT_BLOBS_MAX);
});

test('total cap', () => {
  for (const c of 'abcd') blobs.write_bytes(Buffer.alloc(runtime.BLOB_MAX, c));
  assert.throws(() => blobs.write_bytes(Buffer.from('!')), /at most 33554432 bytes/);
});

test('log entries are the lines runtime.py writes', () => {
  log.info('Starting sync...');
  log.warning('slow', { took: { ms: 12 }, rows: 142 });
  log.error(new Error('boom'));
  log.info('naïve \u2603');
  const lines = fs.readFileSync(logFile(), 'latin1').split('\n');
  assert.strictEqual(lines[0], '{"level":"info","message":"Starting sync...","seq":1}');
  assert.strictEqual(lines[1],
                     '{"data":{"rows":142,"took":{"ms":12}},"level":"warning","message":"slow","seq":2}');
  assert.strictEqual(lines[3], '{"level":"info","message":"na\\u00efve \\u2603","seq":4}');
  assert.strictEqual(entries()[2].message, 'Error: boom');
});

test('a long message is cut on a UTF-8 boundary', () => {
  log.info('é'.repeat(2000));
  const e = entries()[0];
  assert.strictEqual(e.truncated, true);
  assert.strictEqual(e.message, 'é'.repeat(1024));
});

test('log caps', () => {
  for (let i = 0; i < 300; i++) log.info('entry ' + i);
  let e = entries();
  assert.strictEqual(e.length, runtime.LOG_ENTRIES_MAX);
  assert.strictEqual(e[e.length - 2].message, 'entry 254');
  assert.deepStrictEqual(e[e.length - 1], { dropped: true, level: 'error', seq: 256,
                                            message: 'log limit reached: later entries dropped' });
  fs.rmSync(logFile());
  for (let i = 0; i < 100; i++) log.info('x'.repeat(2000));
  assert.ok(fs.statSync(logFile()).size <= runtime.LOG_MAX);
  e = entries();
  assert.strictEqual(e[e.length - 1].dropped, true);
  assert.deepStrictEqual(e.map((x) => x.seq), e.map((_, i) => i + 1));
});

test("require('skills/<name>/...') and require('runtime')", () => {
  const code = path.join(root, '.aisp', 'skills', 'demo_js', 'code', 'lib');
  fs.mkdirSync(code, { recursive: true });
  fs.writeFileSync(path.join(code, 'helper.js'), 'exports.twice = (x) => 2 * x;\n');
  fs.writeFileSync(path.join(code, 'run.js'),
                   "const { twice } = require('./helper');\n" +
                   "const rt = require('runtime');\n" +
                   'exports.main = (a) => ({ v: twice(a), same: rt.blobs === ' +
                   "require('runtime').blobs });\n");
  const { main } = require('skills/demo_js/lib/run');
  assert.deepStrictEqual(main(21), { v: 42, same: true });
  assert.strictEqual(require('runtime'), runtime);
  assert.throws(() => require('skills/demo_js/../../../etc/passwd'), { code: 'MODULE_NOT_FOUND' });
  assert.throws(() => require('skills/nosuch/x'), { code: 'MODULE_NOT_FOUND' });
  assert.throws(() => require('skills/Bad/x'), { code: 'MODULE_NOT_FOUND' });
});

test('proxy_fetch outside a sandbox rejects clearly', async () => {
  await assert.rejects(runtime.proxy_fetch('https://example.com/', { method: 'POST', service: 'x' }),
                       (e) => e instanceof runtime.ProxyUnavailableError &&
                              e.message === 'proxy_fetch has no channel to the node in this process');
  await assert.rejects(runtime.proxy_fetch('https://example.com/', {}), TypeError);
});

test('runtime.py writes the same log lines', () => {
  const calls = [['info', 'Starting sync...'], ['warning', 'naïve \u2603 "quoted"\n'],
                 ['error', 'x'.repeat(3000)]];
  for (const [level, msg] of calls) log[level](msg);
  log.info('with data', { took: { ms: 12 }, rows: [1, 'a'] });
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'test-runtime-js-py.'));
  const py = 'import sys, json; sys.path.insert(0, sys.argv[1]); from runtime import log\n' +
             'for level, msg in json.loads(sys.argv[2]): getattr(log, level)(msg)\n' +
             "log.info('with data', took={'ms': 12}, rows=[1, 'a'])\n";
  const r = require('child_process').spawnSync('/usr/bin/python3', ['-c', py,
    path.join(SRC, 'sandbox', 'agent', 'runtime'), JSON.stringify(calls)],
    { env: { ...process.env, AISP_RUNTIME_ROOT: other }, encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  const theirs = fs.readFileSync(path.join(other, 'workspace', '.aisp', 'log.jsonl'), 'latin1');
  fs.rmSync(other, { recursive: true, force: true });
  assert.strictEqual(fs.readFileSync(logFile(), 'latin1'), theirs);
});
