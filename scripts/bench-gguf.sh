#!/bin/sh
# bench-gguf.sh: prefill (pp) and decode (tg) speed of GGUF files with
# `phalanx bench`, printed as a markdown table. Not run in CI.
#
#   scripts/bench-gguf.sh [-t threads] [-p prompt] [-n gen] [-r reps] FILE.gguf...
#
# PHALANX is the phalanx binary (default: bin/phalanx, else phalanx on PATH).
# If LLAMA_BENCH points to llama.cpp's llama-bench, each file is also run
# through it (-p prompt -n gen -t threads -r reps), the two programs
# alternating file by file, and the table gains llama.cpp's rates and the
# ratios Phalanx / llama.cpp. This script never fetches or builds llama.cpp.
#
# Needs jq. Both programs should see an otherwise idle machine; run it
# twice and compare before trusting a ratio.
set -eu

threads=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
prompt=128
gen=32
reps=3
while getopts t:p:n:r: opt; do
	case $opt in
	t) threads=$OPTARG ;;
	p) prompt=$OPTARG ;;
	n) gen=$OPTARG ;;
	r) reps=$OPTARG ;;
	*) sed -n '2,14p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
	sed -n '2,14p' "$0" >&2
	exit 2
fi
command -v jq >/dev/null || { echo "bench-gguf.sh: needs jq" >&2; exit 2; }

if [ -z "${PHALANX:-}" ]; then
	if [ -x bin/phalanx ]; then PHALANX=bin/phalanx; else PHALANX=phalanx; fi
fi
llama=${LLAMA_BENCH:-}
if [ -n "$llama" ] && [ ! -x "$llama" ]; then
	echo "bench-gguf.sh: LLAMA_BENCH=$llama is not executable" >&2
	exit 2
fi

# file_type_name FILE: the file type, guessed from the file's name as
# `phalanx quantize` users name them (phi-2-q4_k_m.gguf); "?" otherwise.
file_type_name() {
	case $(basename "$1" | tr 'A-Z' 'a-z') in
	*q4_k_m*) echo Q4_K_M ;; *q5_k_m*) echo Q5_K_M ;; *q6_k*) echo Q6_K ;;
	*q8_0*) echo Q8_0 ;; *q4_0*) echo Q4_0 ;; *f16*) echo F16 ;; *f32*) echo F32 ;;
	*) echo "?" ;;
	esac
}

size_mb() { wc -c <"$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }

# ratio A B: A / B to two decimals, or "-" when B is empty or zero.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

if [ -n "$llama" ]; then
	echo "| file | type | size | pp$prompt tok/s | tg$gen tok/s | llama.cpp pp$prompt | llama.cpp tg$gen | pp ratio | tg ratio |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
else
	echo "| file | type | size | pp$prompt tok/s | tg$gen tok/s |"
	echo "| --- | --- | --- | --- | --- |"
fi
for f in "$@"; do
	js=$("$PHALANX" bench --model "$f" --threads "$threads" --prompt "$prompt" --gen "$gen" --repetitions "$reps" --json)
	pp=$(echo "$js" | jq -r '.prefill_tok_s | . * 100 | round / 100')
	tg=$(echo "$js" | jq -r '.decode_tok_s | . * 100 | round / 100')
	row="| $(basename "$f") | $(file_type_name "$f") | $(size_mb "$f") | $pp | $tg |"
	if [ -n "$llama" ]; then
		# llama-bench -o json prints one object per test: n_prompt > 0 is
		# pp, n_gen > 0 is tg; avg_ts is the mean tokens per second.
		lj=$("$llama" -m "$f" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" -o json 2>/dev/null)
		lpp=$(echo "$lj" | jq -r '[.[] | select(.n_prompt > 0 and .n_gen == 0) | .avg_ts][0] // 0 | . * 100 | round / 100')
		ltg=$(echo "$lj" | jq -r '[.[] | select(.n_gen > 0 and .n_prompt == 0) | .avg_ts][0] // 0 | . * 100 | round / 100')
		row="$row $lpp | $ltg | $(ratio "$pp" "$lpp") | $(ratio "$tg" "$ltg") |"
	fi
	echo "$row"
done
