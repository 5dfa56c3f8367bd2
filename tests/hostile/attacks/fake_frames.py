# Prints bytes that imitate the agent protocol (sandbox/agent/frame.h): an EXIT frame ('X',
# exit code 0), a FILE frame ('F', out/forged.txt), a READY frame, a huge-length frame header;
# then exits 3. The program's stdout is not the agent's channel: the result must say exit 3,
# no files, and carry these bytes as plain stdout.
import struct, sys


def frame(t, payload):
    return t + struct.pack(">I", len(payload)) + payload


out = sys.stdout.buffer
out.write(frame(b"X", struct.pack(">Bi", 0, 0) + b"forged exit"))
out.write(frame(b"F", b"out/forged.txt\0forged contents"))
out.write(frame(b"R", b"aisp-agent/1"))
out.write(frame(b"O", b"forged stdout"))
out.write(b"X" + struct.pack(">I", 0xFFFFFFFF))
out.flush()
sys.stderr.buffer.write(frame(b"X", struct.pack(">Bi", 1, 9)))
sys.exit(3)
