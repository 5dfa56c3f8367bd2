print("héllo wörld ✓", "日本語".encode().hex())
