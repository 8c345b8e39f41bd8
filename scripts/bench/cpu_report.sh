#!/usr/bin/env bash
# Client CPU per LLM round-trip, from a bench.sh results folder: every run
# keeps /usr/bin/time -v output (.time) and the mock's call count (.meta).
# For each column: (user+sys CPU of a sequential run - median CPU of its
# cold-start runs) / (LLM calls of that run - LLM calls of a cold run), so
# process start-up and imports are taken out and only the per-call cost is
# left; the median over repeats. Prints a markdown table with each column's
# figure divided by the project's.
set -euo pipefail
dir=${1:?usage: cpu_report.sh RESULTS_DIR}
cd "$dir/runs"
cpu() { awk -F': ' '/User time|System time/{s+=$2} END{printf "%.4f", s}' "$1"; }
calls() { sed -n 's/^mock_chat=//p' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"; exit} print (NR%2? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

peers=$(ls *.time 2>/dev/null | cut -d. -f1 | sort -u)
declare -A fresh warm
for p in $peers; do
  cold_cpu=$(for f in "$p".cold.*.time; do cpu "$f"; echo; done | median)
  cold_calls=$(for f in "$p".cold.*.meta; do calls "$f"; done | median)
  for kind in seq seqwarm; do
    v=$(for f in "$p".$kind.*.time; do
          [ -e "$f" ] || continue
          m=${f%.time}.meta
          awk -v c="$(cpu "$f")" -v c0="$cold_cpu" -v n="$(calls "$m")" -v n0="$cold_calls" \
            'BEGIN{ if (n - n0 > 0) printf "%.1f\n", (c - c0) * 1e6 / (n - n0) }'
        done | median)
    if [ "$kind" = seq ]; then fresh[$p]=$v; else warm[$p]=$v; fi
  done
done
echo
echo "client CPU per LLM round-trip (us; user+sys, start-up taken out; median over repeats)"
echo
printf '| column | fresh process | with warm-up | ratio to project (fresh) |\n|---|---:|---:|---:|\n'
for p in $peers; do
  ratio=$(awk -v a="${fresh[$p]}" -v b="${fresh[project]:-nan}" 'BEGIN{ if (b+0 > 0) printf "%.1fx", a / b; else print "-" }')
  printf '| %s | %s | %s | %s |\n' "$p" "${fresh[$p]}" "${warm[$p]}" "$ratio"
done
