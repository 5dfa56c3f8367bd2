# A run_code task that mounts the "leaky" skill, which the operator lets run_code receive
# secrets through ([secrets] run_code_skills = leaky): it prints its secret raw, in base64
# (alone and inside longer base64), hex and JSON, to stdout, stderr and an output file. The
# node redacts each to *** (proto/PROTOCOL.md, "What redaction can and cannot catch"); the
# driver's canary check looks for the value and its base64 in the whole result.
import base64, json, os, sys

tok = os.environ.get("LEAKY_TOKEN", "")
b = tok.encode()
print(json.dumps({"have": bool(tok), "len": len(tok)}))
print("raw", tok)
print("b64", base64.b64encode(b).decode(), base64.urlsafe_b64encode(b).decode())
print("b64-embedded", base64.b64encode(b"xy" + b + b"z").decode())
print("hex", b.hex(), b.hex().upper(), file=sys.stderr)
print("json", json.dumps({"t": tok + "\u00e9"}), file=sys.stderr)
os.makedirs("out", exist_ok=True)
with open("out/secret.txt", "w") as f:
    f.write("file " + tok + "\n")
