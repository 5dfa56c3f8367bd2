#!/usr/bin/python3
"""An independent implementation of attest/CHAINS.md's encodings (Python standard library only):
computes the digests of the vectors in tests/unit/test-attest-chain.c from the spec, not from
the node's code, and checks them against the values both pin (TAP). Run:
/usr/bin/python3 attest/testdata/chain/vectors.py"""
import hashlib


def field(tag, value):
    if isinstance(value, str):
        value = value.encode()
    return tag.encode() + b"\0" + len(value).to_bytes(8, "big") + value


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def value(kind, text):
    """(kind, text): 'string' with the string's bytes, or 'json' with compact JSON."""
    return field("value.kind", kind) + field("value", text)


def value_digest(kind, text):
    return sha(field("type", "aisp-value-v1") + value(kind, text))


TASK_INPUT = ("json", '{"items":[{"price":10},{"price":20.5}]}')
STEP1_CODE = "const d = JSON.parse(input);\nreturn {total: d.items.reduce((s, i) => s + i.price, 0)};"

chain_input = (field("type", "aisp-chain-input-v1") + value(*TASK_INPUT) + field("steps", "3")
               + field("step.type", "llm") + field("step.model", "anthropic/claude-sonnet-4")
               + field("step.system_prompt", "[[mock echo]]") + field("step.temperature", "0")
               + field("step.max_tokens", "")
               + field("step.type", "script") + field("step.lang", "javascript")
               + field("step.code", STEP1_CODE) + field("step.timeout_ms", "10000")
               + field("step.type", "llm") + field("step.model", "openai/gpt-4o-mini")
               + field("step.system_prompt", "") + field("step.temperature", "0.7")
               + field("step.max_tokens", ""))

OUT0 = ("string", '{"items":[{"price":10},{"price":20.5}]}')
OUT1 = ("json", '{"total":30.5}')
OUT2 = ("string", '[openai/gpt-4o-mini]  | {"total":30.5}')


def llm_step(out, model, req, resp, p, c):
    return (field("step.type", "llm") + field("step.status", "ok")
            + field("step.output", value_digest(*out)) + field("step.model", model)
            + field("step.request", req) + field("step.response", resp)
            + field("step.prompt_tokens", str(p)) + field("step.completion_tokens", str(c)))


chain_output = (field("type", "aisp-chain-output-v1") + field("steps", "3")
                + llm_step(OUT0, "anthropic/claude-sonnet-4", "sha256:" + "1" * 64,
                           "sha256:" + "2" * 64, 15, 12)
                + field("step.type", "script") + field("step.status", "ok")
                + field("step.output", value_digest(*OUT1)) + field("step.lang", "javascript")
                + field("step.exit_code", "0") + field("step.signal", "")
                + field("step.stdout", "") + field("step.stderr", "")
                + field("step.stdout_truncated", "false") + field("step.stderr_truncated", "false")
                + llm_step(OUT2, "openai/gpt-4o-mini", "sha256:" + "3" * 64,
                           "sha256:" + "4" * 64, 5, 10)
                + field("failed_step", ""))

exit_enc = (field("type", "aisp-exit-v1") + field("status", "ok") + field("exit_code", "")
            + field("signal", ""))
env = sorted([("runtime.name", "runc"), ("agent.version", "aisp-agent/1")])
env_enc = field("type", "aisp-environment-v1") + field("pairs", str(len(env)))
for k, v in env:
    env_enc += field("key", k) + field("value", v)
image = "sha256:08434a9ad45673f2c0c1224f3bd8df0ce3bf9227fd4b14feefd1be310016e1cb"
execution = (field("type", "aisp-execution-v1") + field("image", image)
             + field("input", sha(chain_input)) + field("output", sha(chain_output))
             + field("exit", exit_enc) + field("environment", sha(env_enc)))

EXPECTED = {
    "value (string)": "sha256:598ec625ae868c307a0fcdeb13c5a8dab2351f74ecc8848f4697f1d6127e6e83",
    "value (json)": "sha256:f126fd09df8a14e7799aee6ac112029d3caf1aad385cf6b5cb10300e0cff3466",
    "input": "sha256:2c9ad5d46af9911e40400eaa6ae4a5159ae047d6a1568d42790493ae8a9abce5",
    "output": "sha256:748a63cad3ecb65f68fb9c04b85f49f379029227ac78b23f0755bf46fbe3c97f",
    "execution": "sha256:ee49519ba780dc8f6a38b1d363683031b03e25b559a85b597dcb4d3e20beb2eb",
}
GOT = {
    "value (string)": value_digest(*OUT0),
    "value (json)": value_digest(*OUT1),
    "input": sha(chain_input),
    "output": sha(chain_output),
    "execution": sha(execution),
}
bad = 0
for i, k in enumerate(EXPECTED):
    ok = GOT[k] == EXPECTED[k]
    bad += not ok
    print("%s %d - %s %s" % ("ok" if ok else "not ok", i + 1, k, GOT[k]))
print("1..%d" % len(EXPECTED))
raise SystemExit(1 if bad else 0)
