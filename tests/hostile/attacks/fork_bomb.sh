# Fork bomb: every process starts two more. The pids cgroup limit must stop it; the wall
# timeout ends it. Nothing may outlive the sandbox.
b() { b | b & }
b
sleep 30
