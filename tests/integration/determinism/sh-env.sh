echo "$HOME $LANG $TZ $HOSTNAME $(pwd) $(id -u)"; date -u -d @0 +%Y
