# Plots of tests/bench/run.sh. Usage: gnuplot -e "dir='bench-results'" tests/bench/plot.gp
# Reads dir/latency_<runtime>_<warm|cold>.dat and dir/warm_vs_cold.dat (written by bench.py).
if (!exists("dir")) dir = "bench-results"
set terminal pngcairo size 900,560 font "sans,10"
set grid
set key top left

set output dir."/latency_by_concurrency.png"
set title "End-to-end latency (XADD to result), Python print(1+1), by concurrency"
set xlabel "concurrent clients"
set ylabel "ms (log scale)"
set logscale xy
set xrange [0.8:20]
set xtics (1, 2, 4, 8, 16)
plot dir."/latency_runc_warm.dat"  using 1:2 with linespoints lw 2 pt 7 title "runc warm p50", \
     dir."/latency_runc_warm.dat"  using 1:4 with linespoints dt 2 pt 7 title "runc warm p99", \
     dir."/latency_runsc_warm.dat" using 1:2 with linespoints lw 2 pt 5 title "runsc warm p50", \
     dir."/latency_runsc_warm.dat" using 1:4 with linespoints dt 2 pt 5 title "runsc warm p99", \
     dir."/latency_runc_cold.dat"  using 1:2 with linespoints lw 2 pt 9 title "runc cold p50", \
     dir."/latency_runsc_cold.dat" using 1:2 with linespoints lw 2 pt 11 title "runsc cold p50"

unset logscale
unset xrange
set output dir."/warm_vs_cold.png"
set title "Python print(1+1), one at a time: p50 (ms, log scale)"
set logscale y
set style fill solid 0.6
set boxwidth 0.6
set xtics rotate by -25
set ylabel "ms (log scale)"
unset xlabel
set key off
plot dir."/warm_vs_cold.dat" using 0:2:xtic(1) with boxes, \
     "" using 0:2:(sprintf("%.1f", $2)) with labels offset 0,1
