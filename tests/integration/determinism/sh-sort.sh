printf "%s\n" pear apple fig banana cherry | sort; printf "%s\n" 10 9 100 1 | sort -n | tr "\n" " "; echo
