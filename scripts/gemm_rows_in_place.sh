#!/usr/bin/env bash
# Builds and runs scripts/gemm_rows_in_place.c: the AVX2 kernel (Sources/CGemm/gemm_avx2.c) with a
# non-transposed A packed first against A read in place (pr_avx2_rows_in_place 0 / 1), alternating
# in one process. Needs clang and an AVX2 + FMA CPU. Usage: bash scripts/gemm_rows_in_place.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -O2 -I Sources/CGemm/include -I Sources/CGemm scripts/gemm_rows_in_place.c Sources/CGemm/gemm_avx2.c \
    -lpthread -o "$out/harness"
echo "host: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), cpu family $(awk -F': ' '/^cpu family/ {print $2; exit}' /proc/cpuinfo), model $(awk -F': ' '/^model\t/ {print $2; exit}' /proc/cpuinfo)"
"$out/harness"
