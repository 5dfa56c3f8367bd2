# A result the node's own tools must still read (issue 14 item 6): 1 MiB of control bytes on
# stdout and on stderr (6 MiB each once escaped), 8 MiB of output files, and paths over 255
# bytes. The node fits the result to the protocol's caps (files left out with files_truncated);
# the suite checks that the published result parses and verifies with aisp.
import os, sys

sys.stdout.write("\x01" * (1 << 20))
sys.stdout.flush()
sys.stderr.write("\x02" * (1 << 20))
sys.stderr.flush()
os.makedirs("out/" + "d" * 200, exist_ok=True)
open("out/" + "d" * 200 + "/" + "f" * 60, "w").write("long path")
for i in range(8):
    with open("out/big%d" % i, "wb") as f:
        f.write(os.urandom((1 << 20) - 1024))
