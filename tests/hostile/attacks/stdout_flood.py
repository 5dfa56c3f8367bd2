# Output flood on stdout: far more than the stdout cap.
import sys
while True:
    sys.stdout.write("y" * 65536)
