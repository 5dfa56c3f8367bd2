"""Unit tests for the sandbox's Python runtime module (sandbox/agent/runtime/runtime.py) against
a temporary directory laid out as a sandbox is (AISP_RUNTIME_ROOT): input and output blobs,
their caps, the structured log and its caps, imports of mounted skills, the proxy_fetch stub,
and the seed's salesforce skill run end to end. Run with the host's /usr/bin/python3."""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import unittest

SRC = os.environ.get("AISP_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(SRC, "sandbox", "agent", "runtime"))
import runtime  # noqa: E402
from runtime import blobs, log  # noqa: E402


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Sandbox(unittest.TestCase):
    """Each test gets a fresh root: <root>/blobs, <root>/workspace, <root>/skills."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="test-runtime-py.")
        for d in (".aisp/blobs", "workspace", ".aisp/skills"):
            os.makedirs(os.path.join(self.root, d))
        os.environ["AISP_RUNTIME_ROOT"] = self.root

    def tearDown(self):
        del os.environ["AISP_RUNTIME_ROOT"]
        shutil.rmtree(self.root)

    def put_input(self, data):
        with open(os.path.join(self.root, ".aisp", "blobs", hashlib.sha256(data).hexdigest()), "wb") as f:
            f.write(data)
        return sha(data)

    def out_dir(self):
        return os.path.join(self.root, "workspace", ".aisp", "blobs")

    def log_entries(self):
        with open(os.path.join(self.root, "workspace", ".aisp", "log.jsonl"), "rb") as f:
            return [json.loads(line) for line in f.read().splitlines()]


class Blobs(Sandbox):
    def test_input_blobs(self):
        bid = self.put_input("naïve,csv\n".encode())
        self.assertEqual(blobs.read_text(bid), "naïve,csv\n")
        self.assertEqual(blobs.read_bytes(bid), "naïve,csv\n".encode())
        bad = self.put_input(b"\xff\xfe")
        self.assertRaises(UnicodeDecodeError, blobs.read_text, bad)
        self.assertEqual(blobs.read_text(bad, encoding="latin-1"), "ÿþ")

    def test_ids_and_missing(self):
        for bad in ("", "sha256:", "sha256:" + "A" * 64, "sha256:../../etc/passwd", 7, None,
                    "sha256:" + "0" * 63, "md5:" + "0" * 64):
            with self.assertRaises(ValueError, msg=repr(bad)):
                blobs.read_bytes(bad)
        missing = "sha256:" + "0" * 64
        with self.assertRaises(runtime.BlobNotFoundError) as cm:
            blobs.read_text(missing)
        self.assertIsInstance(cm.exception, LookupError)
        self.assertIn("is not available to this run (list it in the task's blobs)",
                      str(cm.exception))

    def test_write_and_read_back(self):
        tid = blobs.write_text("héllo")
        self.assertEqual(tid, sha("héllo".encode()))
        path = os.path.join(self.out_dir(), tid[7:])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), "héllo".encode())
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
        self.assertEqual(blobs.read_text(tid), "héllo")  # a run reads what it wrote
        jid = blobs.write_json({"b": [1, 2], "a": "é"})
        self.assertEqual(blobs.read_bytes(jid), '{"a":"é","b":[1,2]}'.encode())
        self.assertEqual(jid, blobs.write_json({"a": "é", "b": [1, 2]}))  # same value, same id
        self.assertEqual(blobs.write_bytes(bytearray(b"\0\1")), sha(b"\0\1"))
        self.assertRaises(TypeError, blobs.write_bytes, "text")
        self.assertRaises(TypeError, blobs.write_text, b"bytes")
        self.assertRaises(ValueError, blobs.write_json, float("nan"))
        self.assertEqual(sorted(os.listdir(self.out_dir())),
                         sorted(i[7:] for i in (tid, jid, sha(b"\0\1"))))

    def test_caps(self):
        with self.assertRaises(runtime.BlobLimitError) as cm:
            blobs.write_bytes(b"x" * (runtime.BLOB_MAX + 1))
        self.assertIn("over the cap of 8388608", str(cm.exception))
        blobs.write_bytes(b"x" * runtime.BLOB_MAX)  # exactly the cap
        for i in range(runtime.OUT_BLOBS_MAX - 1):
            blobs.write_text("blob %d" % i)
        blobs.write_text("blob 0")  # already there: not a new blob
        with self.assertRaises(runtime.BlobLimitError) as cm:
            blobs.write_text("one too many")
        self.assertIn("at most 16 blobs", str(cm.exception))
        self.assertEqual(len(os.listdir(self.out_dir())), runtime.OUT_BLOBS_MAX)

    def test_total_cap(self):
        for c in b"abcd":
            blobs.write_bytes(bytes([c]) * runtime.BLOB_MAX)  # 4 x 8 MiB = 32 MiB
        with self.assertRaises(runtime.BlobLimitError) as cm:
            blobs.write_bytes(b"!")
        self.assertIn("at most 33554432 bytes", str(cm.exception))

    def test_input_symlink_refused(self):
        target = self.put_input(b"real")
        os.symlink(os.path.join(self.root, ".aisp", "blobs", target[7:]),
                   os.path.join(self.root, ".aisp", "blobs", "1" * 64))
        self.assertRaises(OSError, blobs.read_bytes, "sha256:" + "1" * 64)


class Log(Sandbox):
    def test_entries(self):
        log.info("Starting sync...")
        log.warning("slow", rows=142, took={"ms": 12})
        log.error(ValueError("boom"))
        log.info("naïve \u2603")
        e = self.log_entries()
        self.assertEqual(e[0], {"level": "info", "message": "Starting sync...", "seq": 1})
        self.assertEqual(e[1], {"level": "warning", "message": "slow", "seq": 2,
                                "data": {"rows": 142, "took": {"ms": 12}}})
        self.assertEqual(e[2]["message"], "boom")
        self.assertEqual(e[3]["message"], "naïve \u2603")
        with open(os.path.join(self.root, "workspace", ".aisp", "log.jsonl"), "rb") as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], b'{"level":"info","message":"Starting sync...","seq":1}')
        self.assertTrue(all(b < 0x80 for b in b"".join(lines)))  # ASCII: escaped

    def test_long_message_cut_on_utf8(self):
        log.info("é" * 2000)  # 4000 bytes
        e = self.log_entries()[0]
        self.assertTrue(e["truncated"])
        self.assertEqual(e["message"], "é" * 1024)
        self.assertLessEqual(len(e["message"].encode()), runtime.LOG_MESSAGE_MAX)

    def test_entry_cap(self):
        for i in range(300):
            log.info("entry %d" % i)
        e = self.log_entries()
        self.assertEqual(len(e), runtime.LOG_ENTRIES_MAX)
        self.assertEqual(e[-2]["message"], "entry 254")
        self.assertEqual(e[-1], {"dropped": True, "level": "error", "seq": 256,
                                 "message": "log limit reached: later entries dropped"})

    def test_size_cap(self):
        for i in range(100):
            log.info("x" * 2000)
        path = os.path.join(self.root, "workspace", ".aisp", "log.jsonl")
        self.assertLessEqual(os.path.getsize(path), runtime.LOG_MAX)
        e = self.log_entries()
        self.assertTrue(e[-1]["dropped"])
        self.assertLess(len(e), 40)
        self.assertEqual([x["seq"] for x in e], list(range(1, len(e) + 1)))


class Skills(Sandbox):
    def make_skill(self, name, files):
        for rel, text in files.items():
            p = os.path.join(self.root, ".aisp", "skills", name, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)

    def test_import_mounted_skill(self):
        self.make_skill("demo_a", {"code/pkg/mod.py": "from . import helper\n"
                                   "def main(args):\n    return helper.twice(args)\n",
                                   "code/pkg/helper.py": "def twice(x):\n    return 2 * x\n"})
        from skills.demo_a.pkg.mod import main
        self.assertEqual(main(21), 42)
        import skills.demo_a.pkg.helper as h
        self.assertTrue(h.__file__.endswith("/.aisp/skills/demo_a/code/pkg/helper.py"))

    def test_unknown_skills(self):
        with self.assertRaises(ModuleNotFoundError):
            import skills.nosuch.x  # noqa: F401
        os.makedirs(os.path.join(self.root, ".aisp", "skills", "Bad", "code"))
        with self.assertRaises(ModuleNotFoundError):
            import skills.Bad  # noqa: F401
        self.make_skill("nocode", {"SKILL.md": "no code/\n"})
        with self.assertRaises(ModuleNotFoundError):
            import skills.nocode  # noqa: F401

    def test_proxy_fetch_outside_a_sandbox(self):
        # the sandbox's bootstrap marks the channel (fds 5 and 6); here there is none
        with self.assertRaises(runtime.ProxyUnavailableError) as cm:
            runtime.proxy_fetch("https://example.com/", method="POST", service="salesforce")
        self.assertEqual(str(cm.exception),
                         "proxy_fetch has no channel to the node in this process")
        with self.assertRaises(TypeError):
            runtime.proxy_fetch("https://example.com/")  # no service


class Salesforce(Sandbox):
    """The seed's example skill, as execute_skill would run it."""

    def setUp(self):
        super().setUp()
        shutil.copytree(os.path.join(SRC, "tests", "data", "skills", "salesforce"),
                        os.path.join(self.root, ".aisp", "skills", "salesforce"))
        os.environ["SALESFORCE_API_KEY"] = "sk-test-0123456789"
        os.environ["SALESFORCE_ORG_ID"] = "00D000000000001"
        with open(os.path.join(SRC, "tests", "data", "skills", "salesforce", "resources",
                               "sample_leads.csv"), "rb") as f:
            self.csv = self.put_input(f.read())
        for m in [m for m in sys.modules if m.startswith("skills.salesforce")]:
            del sys.modules[m]  # each test has its own root; a sandbox has one
        from skills.salesforce.leads.sync import main
        self.main = main

    def tearDown(self):
        os.environ.pop("SALESFORCE_API_KEY", None)
        os.environ.pop("SALESFORCE_ORG_ID", None)
        super().tearDown()

    def test_sync(self):
        result = self.main({"input_blob": self.csv})
        out = result.pop("output_blob")
        self.assertEqual(result, {"status": "completed", "synced": 2, "rejected": 1})
        batch = json.loads(blobs.read_text(out))
        self.assertEqual(batch["records"][0], {"Company": "Analytical Engines",
                                               "Email": "ada@example.com",
                                               "FirstName": "Ada", "LastName": "Lovelace"})
        self.assertEqual(batch["rejected"], [{"line": 4, "error": "invalid email"}])
        self.assertEqual([e["message"] for e in self.log_entries()],
                         ["Starting sync...", "Created output blob: " + out])
        self.assertEqual(os.listdir(self.out_dir()), [out[7:]])
        self.assertLess(len(json.dumps(result)), 4096)

    def test_missing_secret(self):
        del os.environ["SALESFORCE_ORG_ID"]
        with self.assertRaisesRegex(RuntimeError, "missing secrets: SALESFORCE_ORG_ID"):
            self.main({"input_blob": self.csv})

    def test_push_needs_the_proxy(self):
        with self.assertRaises(runtime.ProxyUnavailableError):
            self.main({"input_blob": self.csv, "push": True})


if __name__ == "__main__":
    unittest.main(verbosity=2)
