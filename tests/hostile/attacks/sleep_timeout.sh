# Sleep past the timeout.
sleep 600
echo "never printed"
