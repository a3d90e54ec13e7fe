#!/usr/bin/env bash
# Runs the test suite on the AVX-512 code paths of Sources/CGemm on a host WITHOUT AVX-512, with
# the AVX-512 intrinsics emulated by SIMDe (SIMD Everywhere, Debian's libsimde-dev): a check of
# what those paths compute (their bits), never of their speed. Needs x86-64 with AVX2 and FMA.
#
# What it does, in a scratch copy of the working tree (tracked files and untracked ones git does
# not ignore; the repository itself is not touched):
#   - gemm.c, softmax_exp.c, dropout_mask.c and a copy of avx512_tile.h include SIMDe instead of
#     <immintrin.h>, every 512-bit intrinsic and type renamed to SIMDe's (simde_mm512_*,
#     simde__m512, simde__mmask16); 128- and 256-bit intrinsics stay native. Their AVX-512 target
#     attributes become "avx2,fma". The few intrinsics SIMDe 0.7.4 lacks are defined element by
#     element below (masked-off lanes are never read or written, as on the hardware);
#   - pr_gemm_avx512_available() returns 1, so the harness selects the AVX-512 GEMM kernel and the
#     AVX-512 softmax and dropout passes exactly as on an AVX-512 host;
#   - the C code is compiled with -mavx2 -mfma, so SIMDe builds each 512-bit operation from two
#     native 256-bit ones and a fused multiply-add stays fused (the hardware's roundings).
# Then it builds the tests and runs them (scripts/run-tests.sh): the kernel `auto` picks is the
# AVX-512 one, so the AVX-512 oracle tests that skip on this host run, and every other test runs
# on the AVX-512 kernel (those that force a kernel or calibrate excepted), as on an AVX-512 host.
# The bf16 kernels (gemm_bf16.c: AVX512-BF16 and AMX) are not emulated and still skip.
#
# Usage: scripts/avx512-emulated-tests.sh [--scratch DIR] [swift test arguments, e.g. --filter GEMM]
#   DIR (default .build-avx512emu, ignored by git) holds the copy, DIR/src, made anew each run but
#   for its build folder DIR/src/.build, which is kept (the CLI finds its checkout above its
#   executable). PROMPTREPRO_SHARED as for `make test` (default: ../shared beside this checkout).
#   Ends with run-tests.sh's line "tests: N passed, M failed". Installs libsimde-dev with apt-get
#   when it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/.build-avx512emu
if [ "${1:-}" = "--scratch" ]; then scratch=$2; shift 2; fi
# The copy's run-tests.sh would look for ../shared beside the copy: name the checkout's.
export PROMPTREPRO_SHARED="${PROMPTREPRO_SHARED:-$(cd "$root/.." && pwd)/shared}"
grep -q -w avx2 /proc/cpuinfo && grep -q -w fma /proc/cpuinfo \
    || { echo "avx512-emulated-tests: this host has no AVX2+FMA; SIMDe's 512-bit operations would not keep FMA fused" >&2; exit 2; }
if [ ! -f /usr/include/simde/x86/avx512.h ]; then
    echo "avx512-emulated-tests: installing libsimde-dev (SIMDe headers) with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -q libsimde-dev >&2; else sudo apt-get install -y -q libsimde-dev >&2; fi
fi

mkdir -p "$scratch/src"
find "$scratch/src" -mindepth 1 -maxdepth 1 ! -name .build -exec rm -rf {} +
# (A tracked file deleted in the working tree is left out: --ignore-failed-read.)
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$scratch/src"
cd "$scratch/src/Sources/CGemm"

cat > simde_missing.h <<'HEADER'
// SIMDe with the 512-bit intrinsics that SIMDe 0.7.4 lacks, defined from Intel's descriptions.
#ifndef PR_SIMDE_MISSING_H
#define PR_SIMDE_MISSING_H
#include <simde/x86/avx512.h>
#include <stdint.h>
static inline simde__m512 pr_emu_maskz_loadu_ps(simde__mmask16 k, const void *p) {
    float t[16];
    for (int i = 0; i < 16; i++) t[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
    return simde_mm512_loadu_ps(t);
}
static inline void pr_emu_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 a) {
    float t[16];
    simde_mm512_storeu_ps(t, a);
    for (int i = 0; i < 16; i++) if ((k >> i) & 1) ((float *)p)[i] = t[i];
}
static inline simde__m256 pr_emu_extractf32x8_ps(simde__m512 a, int imm) {
    float t[16];
    simde_mm512_storeu_ps(t, a);
    return simde_mm256_loadu_ps(t + (imm & 1) * 8);
}
static inline float pr_emu_reduce_max_ps(simde__m512 a) {  // halves, quarters, ...: a tree of max
    float t[16];
    simde_mm512_storeu_ps(t, a);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) t[i] = t[i] > t[i + w] ? t[i] : t[i + w];
    return t[0];
}
static inline simde__m512i pr_emu_srai_epi32(simde__m512i a, int imm) {
    int32_t t[16];
    simde_mm512_storeu_si512(t, a);
    for (int i = 0; i < 16; i++) t[i] = imm > 31 ? (t[i] < 0 ? -1 : 0) : t[i] >> imm;
    return simde_mm512_loadu_si512(t);
}
static inline simde__mmask16 pr_emu_cmplt_epu32_mask(simde__m512i a, simde__m512i b) {
    uint32_t x[16], y[16];
    simde_mm512_storeu_si512(x, a);
    simde_mm512_storeu_si512(y, b);
    simde__mmask16 k = 0;
    for (int i = 0; i < 16; i++) if (x[i] < y[i]) k |= (simde__mmask16)(1u << i);
    return k;
}
#define simde_mm512_maskz_loadu_ps pr_emu_maskz_loadu_ps
#define simde_mm512_mask_storeu_ps pr_emu_mask_storeu_ps
#define simde_mm512_extractf32x8_ps pr_emu_extractf32x8_ps
#define simde_mm512_reduce_max_ps pr_emu_reduce_max_ps
#define simde_mm512_srai_epi32 pr_emu_srai_epi32
#define simde_mm512_cmplt_epu32_mask pr_emu_cmplt_epu32_mask
#define simde_mm512_mask_cmp_ps_mask(k, a, b, imm) ((simde__mmask16)((k) & simde_mm512_cmp_ps_mask(a, b, imm)))
#endif
HEADER

python3 - <<'PY'
import re
simde = '#include "simde_missing.h"  /* SIMDe: avx512-emulated-tests.sh */'
def edit(path, subs, out=None):
    s = open(path).read()
    for old, new, count in subs:
        n = s.count(old)
        if n != count:
            raise SystemExit(f"avx512-emulated-tests: {path}: expected {count} × {old!r}, found {n} (the script needs updating)")
        s = s.replace(old, new)
    # Every 512-bit intrinsic and type by its SIMDe name (SIMDe's aliases would lose to the
    # compiler's own macros for the immediate-operand intrinsics).
    s = re.sub(r'\b_mm512_', 'simde_mm512_', s)
    s = re.sub(r'\b__m512', 'simde__m512', s)
    s = re.sub(r'\b__mmask(8|16|32|64)\b', r'simde__mmask\1', s)
    left = sorted(set(re.findall(r'\b_mm512_\w+|\b__m512\w*', s)))
    if left:
        raise SystemExit(f"avx512-emulated-tests: {path}: not renamed: {left}")
    open(out or path, 'w').write(s)

edit('gemm.c', [
    ('#include <immintrin.h>', simde, 1),
    ('#include "avx512_tile.h"', '#include "avx512_tile_emulated.h"', 1),
    ('target("avx512f,avx512vl,avx512dq,avx512bw,fma")', 'target("avx2,fma")', 1),
    ('    __builtin_cpu_init();\n    return __builtin_cpu_supports("avx512f")',
     '    return 1; /* emulated */\n    return __builtin_cpu_supports("avx512f")', 1),
])
edit('softmax_exp.c', [
    ('#include <immintrin.h>', simde, 1),
    ('target("avx512f,avx512dq,avx2,fma")', 'target("avx2,fma")', 1),
])
edit('dropout_mask.c', [
    ('#include <immintrin.h>', simde, 1),
    ('target("avx512f,avx512vl,avx512dq,avx512bw")', 'target("avx2,fma")', 1),
])
# gemm_bf16.c includes the tile header too and keeps the real intrinsics (its kernels never run
# here): gemm.c includes an emulated copy of it instead.
edit('avx512_tile.h', [
    ('PROMPTREPRO_AVX512_TILE_H', 'PROMPTREPRO_AVX512_TILE_EMULATED_H', 2),
    ('#include <immintrin.h>', simde, 1),
    ('__attribute__((target("avx512f"))) static inline', '__attribute__((target("avx2,fma"))) static inline', 1),
], out='avx512_tile_emulated.h')
PY

cd "$scratch/src"
flags=(-Xcc -mavx2 -Xcc -mfma)
echo "avx512-emulated-tests: building the tests in $scratch (AVX-512 intrinsics emulated by SIMDe)" >&2
swift build --build-tests "${flags[@]}" >&2
# A cache of its own: a GEMM calibration cached for this host (`promptrepro calibrate`) would
# otherwise be applied at start-up and could pick the AVX2 kernel.
PROMPTREPRO_CACHE="$scratch/cache" bash scripts/run-tests.sh "${flags[@]}" "$@"
