# Binary garbage on stdout (NUL bytes, invalid UTF-8, fake terminal escapes): deterministic
# bytes (seeded), so the driver can compare the result's stdout_b64 with the expected SHA-256.
import random, sys
data = random.Random(7).randbytes(200000) + b"\x00\xff\xfe\x1b[2J\x1b]0;pwned\x07"
sys.stdout.buffer.write(data)
sys.stdout.buffer.flush()
sys.stderr.buffer.write(b"\xc3\x28\x00\xa0\xa1")
