#!/usr/bin/python3
"""The task JSON Schema against the node's parser (issue: "make the schema and the parser
agree"), over the fuzz corpus and a generated set of edge cases. TAP output.

What must hold: every task the parser accepts is valid under the schema (the schema never
rejects a task a node would run), and for the cases the schema can express — types, patterns,
numbers by value, reply stream key space — both say the same. The parser's further rules
(duplicate keys, nesting, byte lengths, lone surrogates, file path clashes...) are listed in
the schema's description; a case only the parser rejects must be one of those."""
import glob
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

BLOB = '"sha256:%s"' % ("0" * 64)

checker, schema_path, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
schema = json.load(open(schema_path))
validator = jsonschema.Draft202012Validator(schema)

HEAD = '"id":"c1","lang":"python","code":"print(1)"'
LLM = '{"type":"llm","model":"openai/gpt-4o","system_prompt":"s","temperature":0.3}'
SCRIPT = '{"type":"script","code":"return input","timeout_ms":10000}'
# (name, JSON text, expected by both: True accept / False reject)
AGREE = [
    ("cpus 0.5", '{%s,"limits":{"cpus":0.5}}' % HEAD, True),
    ("cpus 2.125", '{%s,"limits":{"cpus":2.125}}' % HEAD, True),
    ("cpus 0.0005", '{%s,"limits":{"cpus":0.0005}}' % HEAD, False),
    ("cpus 0.009", '{%s,"limits":{"cpus":0.009}}' % HEAD, False),
    ("cpus 0.01", '{%s,"limits":{"cpus":0.01}}' % HEAD, True),
    ("cpus 5e-1", '{%s,"limits":{"cpus":5e-1}}' % HEAD, True),
    ("timeout_s 1e3", '{%s,"limits":{"timeout_s":1e3}}' % HEAD, True),
    ("pids 1e0", '{%s,"limits":{"pids":1e0}}' % HEAD, True),
    ("pids 64.0", '{%s,"limits":{"pids":64.0}}' % HEAD, True),
    ("pids 1.5", '{%s,"limits":{"pids":1.5}}' % HEAD, False),
    ("pids 0", '{%s,"limits":{"pids":0}}' % HEAD, False),
    ("pids -1", '{%s,"limits":{"pids":-1}}' % HEAD, False),
    ("pids string", '{%s,"limits":{"pids":"5"}}' % HEAD, False),
    ("memory_mb 1e3", '{%s,"limits":{"memory_mb":1e3}}' % HEAD, True),
    ("reply ok", '{%s,"reply_stream":"aisp:reply:j-1.x"}' % HEAD, True),
    ("reply aisp:tasks", '{%s,"reply_stream":"aisp:tasks"}' % HEAD, False),
    ("reply result key", '{%s,"reply_stream":"aisp:result:x"}' % HEAD, False),
    ("reply bare prefix", '{%s,"reply_stream":"aisp:reply:"}' % HEAD, False),
    ("unknown field", '{%s,"x":1}' % HEAD, False),
    ("bad lang", '{"id":"c1","lang":"ruby","code":"x"}', False),
    ("shell function", '{"id":"c1","lang":"shell","mode":"function","code":"x"}', False),
    ("v 2", '{%s,"v":2}' % HEAD, False),
    ("env reserved", '{%s,"env":{"PATH":"x"}}' % HEAD, False),
    ("env AISP_", '{%s,"env":{"AISP_X":"x"}}' % HEAD, False),
    ("env ok", '{%s,"env":{"MY_VAR":"x"}}' % HEAD, True),
    ("path absolute", '{%s,"files":[{"path":"/a","content_b64":""}]}' % HEAD, False),
    ("path dotdot", '{%s,"files":[{"path":"a/../b","content_b64":""}]}' % HEAD, False),
    ("b64 unused bits", '{%s,"stdin_b64":"YWJ="}' % HEAD, False),
    ("b64 ok", '{%s,"stdin_b64":"YWI="}' % HEAD, True),
    ("stdin both", '{%s,"stdin":"a","stdin_b64":"YQ=="}' % HEAD, False),
    # chains (proto/CHAINS.md)
    # skills and blobs (proto/PROTOCOL.md, "Skills")
    ("skill task", '{"id":"c1","skill":"salesforce","args":{"a":1}}', True),
    ("skill by digest", '{"id":"c1","skill":"sha256:%s"}' % ("a" * 64), True),
    ("skill pinned", '{"id":"c1","skill":"s@sha256:%s"}' % ("a" * 64), True),
    ("skill pin no digest", '{"id":"c1","skill":"s@x"}', False),
    ("skill with lang", '{"id":"c1","skill":"s","lang":"python","mode":"function"}', True),
    ("skill with code", '{"id":"c1","skill":"s","code":"x"}', False),
    ("skill shell", '{"id":"c1","skill":"s","lang":"shell"}', False),
    ("skill script mode", '{"id":"c1","skill":"s","mode":"script"}', False),
    ("skill bad name", '{"id":"c1","skill":"Bad"}', False),
    ("skill and mounts", '{"id":"c1","skill":"s","mount_skills":["t"]}', False),
    ("mounts ok", '{%s,"mount_skills":["a","b"]}' % HEAD, True),
    ("mounts 9", '{%s,"mount_skills":["a","b","c","d","e","f","g","h","i"]}' % HEAD, False),
    ("mounts twice", '{%s,"mount_skills":["a","a"]}' % HEAD, False),
    ("blobs ok", '{%s,"blobs":[%s]}' % (HEAD, BLOB), True),
    ("blob not a digest", '{%s,"blobs":["sha256:xyz"]}' % HEAD, False),
    ("blob upper case", '{%s,"blobs":["sha256:%s"]}' % (HEAD, "A" * 64), False),
    ("chain with blobs", '{"id":"c1","input":"x","blobs":[%s],"steps":[%s]}' % (BLOB, SCRIPT), False),
    ("chain ok", '{"id":"c1","input":{"a":[1]},"steps":[%s,%s]}' % (LLM, SCRIPT), True),
    ("chain string input", '{"id":"c1","input":"x","steps":[%s]}' % SCRIPT, True),
    ("chain python step", '{"id":"c1","steps":[{"type":"script","lang":"python",'
     '"code":"output = input","timeout_ms":60000}]}', True),
    ("chain with code", '{"id":"c1","code":"x","steps":[%s]}' % LLM, False),
    ("chain with lang", '{"id":"c1","lang":"python","steps":[%s]}' % LLM, False),
    ("plain with input", '{%s,"input":"x"}' % HEAD, False),
    ("chain no steps", '{"id":"c1","steps":[]}', False),
    ("chain 17 steps", '{"id":"c1","steps":[%s]}' % ",".join([LLM] * 17), False),
    ("chain step type", '{"id":"c1","steps":[{"type":"wasm","code":"x"}]}', False),
    ("chain temperature 7e-1", '{"id":"c1","steps":[{"type":"llm","model":"m",'
     '"temperature":7e-1}]}', True),
    ("chain temperature 0", '{"id":"c1","steps":[{"type":"llm","model":"m",'
     '"temperature":0}]}', True),
    ("chain temperature 2.5", '{"id":"c1","steps":[{"type":"llm","model":"m",'
     '"temperature":2.5}]}', False),
    ("chain model space", '{"id":"c1","steps":[{"type":"llm","model":"a b"}]}', False),
    ("chain llm no model", '{"id":"c1","steps":[{"type":"llm"}]}', False),
    ("chain llm with code", '{"id":"c1","steps":[{"type":"llm","model":"m","code":"x"}]}',
     False),
    ("chain script no code", '{"id":"c1","steps":[{"type":"script"}]}', False),
    ("chain script empty code", '{"id":"c1","steps":[{"type":"script","code":""}]}', False),
    ("chain script shell", '{"id":"c1","steps":[{"type":"script","lang":"shell",'
     '"code":"x"}]}', False),
    ("chain timeout 0", '{"id":"c1","steps":[{"type":"script","code":"x","timeout_ms":0}]}',
     False),
    ("chain max_tokens 0", '{"id":"c1","steps":[{"type":"llm","model":"m","max_tokens":0}]}',
     False),
    # a chain's result may be sealed, and its steps and input given sealed (issue 20)
    ("chain with reply_to", '{"id":"c1","steps":[{"type":"llm","model":"m"}],"reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', True),
    ("chain sealed steps", '{"id":"c1","steps_age":"YWdl","input":"x","reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', True),
    ("chain sealed input", '{"id":"c1","steps":[{"type":"llm","model":"m"}],"input_age":"YWdl",'
     '"reply_to":"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', True),
    ("chain sealed steps without reply_to", '{"id":"c1","steps_age":"YWdl"}', False),
    ("chain steps and steps_age", '{"id":"c1","steps":[{"type":"llm","model":"m"}],'
     '"steps_age":"YWdl","reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', False),
    ("chain with code_age", '{"id":"c1","steps":[{"type":"llm","model":"m"}],"code_age":"YWdl",'
     '"reply_to":"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', False),
    ("sealed with blobs", '{%s,"blobs":["sha256:%s"],"reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}' % (HEAD, "a" * 64), True),
    ("sealed blobs_age", '{%s,"blobs":["sha256:%s"],"blobs_age":true,"reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}' % (HEAD, "a" * 64), True),
    ("blobs_age without blobs", '{%s,"blobs_age":true}' % HEAD, False),
    ("blobs_age not boolean", '{%s,"blobs":["sha256:%s"],"blobs_age":1}' % (HEAD, "a" * 64),
     False),
    ("sealed with skill", '{"id":"t1","skill":"hello","args":{},"reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}', True),
    ("plain with input_age", '{%s,"input_age":"YWdl","reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}' % HEAD, False),
    ("plain with reply_to", '{%s,"reply_to":'
     '"age1vad2rcdkxhkn3pdegps6nswx978va55fdzxh4e2cme29vw7wtpzqhsd3yz"}' % HEAD, True),
]
# What only the node checks (the schema says so in its description).
NODE_ONLY = ("duplicate key", "nesting deeper", "U+0000", "lone surrogate", "not valid UTF-8",
             "bytes, above", "is too large", "directory of", "duplicate file path",
             "decodes to", "total more than")

n = 0
failed = 0


def tap(ok, what, *diag):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what))
    if not ok:
        failed += 1
        for d in diag:
            print("#   " + str(d))


def parse_c(paths):
    out = subprocess.run([checker] + paths, capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        verdict, rest = line.split(" ", 1)
        path, _, msg = rest.partition(": ")
        res[path.rstrip(":")] = (verdict == "ok", msg)
    return res


def schema_ok(raw):
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return validator.is_valid(doc)


with tempfile.TemporaryDirectory() as tmp:
    files = sorted(glob.glob(os.path.join(corpus, "*")))
    for name, text, _ in AGREE:
        p = os.path.join(tmp, name.replace(" ", "_") + ".json")
        open(p, "w").write(text)
        files.append(p)
    verdicts = parse_c(files)
    expect = {os.path.join(tmp, name.replace(" ", "_") + ".json"): (name, want)
              for name, _, want in AGREE}
    for p in files:
        raw = open(p, "rb").read()
        c_ok, msg = verdicts[p]
        s_ok = schema_ok(raw)
        label = expect[p][0] if p in expect else os.path.basename(p)
        if p in expect:
            want = expect[p][1]
            tap(c_ok == want and s_ok == want, "%s: parser and schema both %s" %
                (label, "accept" if want else "reject"),
                "parser: %s %s" % (c_ok, msg), "schema: %s" % s_ok)
            continue
        if c_ok:
            tap(s_ok, "%s: accepted by the parser, valid under the schema" % label)
        elif s_ok:
            tap(any(k in msg for k in NODE_ONLY),
                "%s: only the parser rejects it, for a rule the schema documents" % label,
                "parser: " + msg)
        else:
            tap(True, "%s: both reject it" % label)

print("1..%d" % n)
sys.exit(1 if failed else 0)
