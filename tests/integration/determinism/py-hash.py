import hashlib; print(hashlib.sha256(b"aisp" * 1000).hexdigest(), hashlib.md5(b"x").hexdigest())
