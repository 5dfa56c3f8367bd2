# Output flood on stderr: far more than the stderr cap.
while :; do echo "flood flood flood flood flood flood flood flood flood flood flood" >&2; done
