# Function return values a result cannot carry as they are (issue 14 item 5): each must come
# back exactly or make the status error with the reason, never ok without a value. The case is
# args.k: duplicate keys 1 and "1", U+0000, nesting deeper than a result allows, a lone
# surrogate, garbage written on the return channel.
import os


def main(args):
    k = args["k"]
    if k == "dup":
        return {1: 1, "1": 2}
    if k == "nul":
        return "a\x00b"
    if k == "deep":
        v = 1
        for _ in range(32):
            v = [v]
        return v
    if k == "surrogate":
        return "\ud800"
    if k == "garbage":
        os.write(4, b"Vnot json {")
        os._exit(0)
    return None
