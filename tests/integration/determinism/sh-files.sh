mkdir -p out/sub; echo alpha > out/a.txt; seq 5 > out/sub/n.txt; ls -1 out | wc -l
