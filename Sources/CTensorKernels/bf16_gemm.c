#include "bf16_gemm.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define SDS_BF16_X86 1
#endif

int sds_cpu_has_avx512bf16(void) {
#ifdef SDS_BF16_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

// Whether the AVX-512 rounding and packing paths may run (the bf16 dot products need more: see above).
static int cpu_has_avx512f(void) {
#ifdef SDS_BF16_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

static inline uint16_t bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);  // NaN: keep it quiet
    u += 0x7FFFu + ((u >> 16) & 1u);  // round half to even on the 16 dropped bits
    return (uint16_t)(u >> 16);
}

#ifdef SDS_BF16_X86
// bf16_round on 16 values at a time with AVX-512 integer operations (the same bits as the scalar code,
// bf16 subnormals kept: vcvtneps2bf16 would flush them); the per-call rounding of activations and of
// attention's probabilities runs through here. Returns how many leading values it converted.
// 16 floats' bf16 bits, each in the low half of its 32-bit lane.
__attribute__((target("avx512f"))) static inline __m512i round_lanes_avx512(__m512i u) {
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF), infinity = _mm512_set1_epi32(0x7F800000);
    const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, magnitude), infinity);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, odd)), 16);
    return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(u, 16), quiet);
}

__attribute__((target("avx512f"))) static ptrdiff_t round_row_avx512(const float *s, ptrdiff_t n, uint16_t *d) {
    ptrdiff_t c = 0;
    for (; c + 16 <= n; c += 16)
        _mm256_storeu_si256((__m256i *)(d + c), _mm512_cvtepi32_epi16(round_lanes_avx512(_mm512_loadu_si512(s + c))));
    return c;
}

// One panel step of `sds_bf16_pack_transposed` for 16 columns: rows t0 and t1 (NULL past k) rounded and
// interleaved, row t0 in the low halves: exactly the (k, k+1) pairs vdpbf16ps takes.
__attribute__((target("avx512f"))) static inline void pack_pair_avx512(const float *row0, const float *row1, uint16_t *out) {
    __m512i low = round_lanes_avx512(_mm512_loadu_si512(row0));
    __m512i high = row1 ? round_lanes_avx512(_mm512_loadu_si512(row1)) : _mm512_setzero_si512();
    _mm512_storeu_si512(out, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
}
#endif

void sds_f32_to_bf16(const float *src, ptrdiff_t rows, ptrdiff_t cols, uint16_t *dst, ptrdiff_t ldDst) {
    int wide = cpu_has_avx512f();
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *s = src + r * cols;
        uint16_t *d = dst + r * ldDst;
        ptrdiff_t c = 0;
#ifdef SDS_BF16_X86
        if (wide) c = round_row_avx512(s, cols, d);
#else
        (void)wide;
#endif
        for (; c < cols; c++) d[c] = bf16_round(s[c]);
        for (c = cols; c < ldDst; c++) d[c] = 0;
    }
}

ptrdiff_t sds_bf16_packed_count(ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t panels = (n + SDS_BF16_PANEL - 1) / SDS_BF16_PANEL, pairs = (k + 1) / 2;
    return panels * pairs * SDS_BF16_PANEL * 2;
}

void sds_bf16_pack_weights(const uint16_t *w, ptrdiff_t n, ptrdiff_t k, uint16_t *packed) {
    ptrdiff_t panels = (n + SDS_BF16_PANEL - 1) / SDS_BF16_PANEL, pairs = (k + 1) / 2;
    for (ptrdiff_t panel = 0; panel < panels; panel++)
        for (ptrdiff_t p = 0; p < pairs; p++) {
            uint16_t *step = packed + (panel * pairs + p) * SDS_BF16_PANEL * 2;
            for (ptrdiff_t c = 0; c < SDS_BF16_PANEL; c++) {
                ptrdiff_t col = panel * SDS_BF16_PANEL + c;
                for (ptrdiff_t j = 0; j < 2; j++) {
                    ptrdiff_t kk = 2 * p + j;
                    step[c * 2 + j] = (col < n && kk < k) ? w[col * k + kk] : 0;
                }
            }
        }
}

void sds_bf16_pack_transposed(const float *src, ptrdiff_t ld, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
    ptrdiff_t panels = (n + SDS_BF16_PANEL - 1) / SDS_BF16_PANEL, pairs = (k + 1) / 2;
    int wide = cpu_has_avx512f();
    for (ptrdiff_t p = 0; p < pairs; p++) {
        const float *row0 = src + 2 * p * ld, *row1 = 2 * p + 1 < k ? row0 + ld : NULL;
        for (ptrdiff_t panel = 0; panel < panels; panel++) {
            uint16_t *step = packed + (panel * pairs + p) * SDS_BF16_PANEL * 2;
            ptrdiff_t c = 0, first = panel * SDS_BF16_PANEL;
#ifdef SDS_BF16_X86
            if (wide)
                for (; c + 16 <= SDS_BF16_PANEL && first + c + 16 <= n; c += 16)
                    pack_pair_avx512(row0 + first + c, row1 ? row1 + first + c : NULL, step + 2 * c);
#else
            (void)wide;
#endif
            for (; c < SDS_BF16_PANEL; c++) {
                ptrdiff_t col = first + c;
                step[2 * c] = col < n ? bf16_round(row0[col]) : 0;
                step[2 * c + 1] = col < n && row1 ? bf16_round(row1[col]) : 0;
            }
        }
    }
}

#ifdef SDS_BF16_X86
#define BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))
// Accumulators per micro block: rows × vectors ≤ 24 zmm, leaving room for the B vectors and A's broadcast.
#define MICRO_ACCUMULATORS 24
#define MAX_MICRO_ROWS 12
// Pairs per k block: the panel's slice of B is 128·256 B = 32 KiB and stays in L1 across the row block.
#define K_BLOCK_PAIRS 128

// rows × (16·vectors) block of C over pairs [p0, p1): rows × vectors zmm accumulators, `vectors` B loads
// and one 32-bit broadcast of A's (k, k+1) pair per row per step. Inlined with constant `rows` and
// `vectors` below, so the accumulators live in registers. A panel's last vectors past n are skipped
// rather than computed on zero padding: a 40-wide product (SD's attention heads) runs 3 of 4 vectors.
static inline __attribute__((always_inline)) BF16_TARGET void micro_block(
    int rows, int vectors, const uint16_t *a, ptrdiff_t lda, const uint16_t *b, ptrdiff_t p0, ptrdiff_t p1,
    float *c, ptrdiff_t ldc, int accumulate, const __mmask16 *masks) {
    __m512 acc[MAX_MICRO_ROWS][4];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_setzero_ps();
    for (ptrdiff_t p = p0; p < p1; p++) {
        const uint16_t *bp = b + p * SDS_BF16_PANEL * 2;
        __m512bh bv[4];
        for (int v = 0; v < vectors; v++) bv[v] = (__m512bh)_mm512_loadu_si512(bp + 32 * v);
        for (int r = 0; r < rows; r++) {
            int32_t pair;
            memcpy(&pair, a + r * lda + 2 * p, 4);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vectors; v++) {
            float *out = c + r * ldc + v * 16;
            __m512 value = acc[r][v];
            if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(masks[v], out));
            _mm512_mask_storeu_ps(out, masks[v], value);
        }
}

// Rows [rowStart, rowEnd) of one panel's k block, in micro blocks as tall as `vectors` allows.
static inline __attribute__((always_inline)) BF16_TARGET void panel_rows(
    int vectors, const uint16_t *a, ptrdiff_t lda, const uint16_t *b, ptrdiff_t p0, ptrdiff_t p1, float *cp,
    ptrdiff_t ldc, int accumulate, const __mmask16 *masks, ptrdiff_t rowStart, ptrdiff_t rowEnd) {
    const int tall = MICRO_ACCUMULATORS / vectors < MAX_MICRO_ROWS ? MICRO_ACCUMULATORS / vectors : MAX_MICRO_ROWS;
    for (ptrdiff_t i = rowStart; i < rowEnd; i += tall) {
        const uint16_t *ai = a + i * lda;
        float *ci = cp + i * ldc;
        ptrdiff_t rows = rowEnd - i < tall ? rowEnd - i : tall;
#define SDS_MICRO_CASE(R) case R: micro_block(R, vectors, ai, lda, b, p0, p1, ci, ldc, accumulate, masks); break;
        switch (rows) {
        SDS_MICRO_CASE(12) SDS_MICRO_CASE(11) SDS_MICRO_CASE(10) SDS_MICRO_CASE(9) SDS_MICRO_CASE(8)
        SDS_MICRO_CASE(7) SDS_MICRO_CASE(6) SDS_MICRO_CASE(5) SDS_MICRO_CASE(4) SDS_MICRO_CASE(3)
        SDS_MICRO_CASE(2) default: micro_block(1, vectors, ai, lda, b, p0, p1, ci, ldc, accumulate, masks); break;
        }
#undef SDS_MICRO_CASE
    }
}

BF16_TARGET static void gemm_block_avx512bf16(const uint16_t *a, ptrdiff_t lda, const uint16_t *packed, ptrdiff_t n,
                                              ptrdiff_t k, float *c, ptrdiff_t ldc, int accumulateIntoC, ptrdiff_t rowStart,
                                              ptrdiff_t rowEnd, ptrdiff_t panelStart, ptrdiff_t panelEnd) {
    ptrdiff_t pairs = (k + 1) / 2;
    for (ptrdiff_t panel = panelStart; panel < panelEnd; panel++) {
        const uint16_t *b = packed + panel * pairs * SDS_BF16_PANEL * 2;
        ptrdiff_t width = n - panel * SDS_BF16_PANEL;
        if (width <= 0) break;
        int vectors = width >= SDS_BF16_PANEL ? 4 : (int)((width + 15) / 16);
        __mmask16 masks[4];
        for (int v = 0; v < 4; v++) {
            ptrdiff_t left = width - v * 16;
            masks[v] = left >= 16 ? (__mmask16)0xFFFF : (left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1));
        }
        float *cp = c + panel * SDS_BF16_PANEL;
        for (ptrdiff_t p0 = 0; p0 < pairs; p0 += K_BLOCK_PAIRS) {
            ptrdiff_t p1 = p0 + K_BLOCK_PAIRS < pairs ? p0 + K_BLOCK_PAIRS : pairs;
            int accumulate = p0 > 0 || accumulateIntoC;
            switch (vectors) {
            case 4: panel_rows(4, a, lda, b, p0, p1, cp, ldc, accumulate, masks, rowStart, rowEnd); break;
            case 3: panel_rows(3, a, lda, b, p0, p1, cp, ldc, accumulate, masks, rowStart, rowEnd); break;
            case 2: panel_rows(2, a, lda, b, p0, p1, cp, ldc, accumulate, masks, rowStart, rowEnd); break;
            default: panel_rows(1, a, lda, b, p0, p1, cp, ldc, accumulate, masks, rowStart, rowEnd); break;
            }
        }
    }
}
#endif

int sds_bf16_gemm_block(const uint16_t *a, ptrdiff_t lda, const uint16_t *packed, ptrdiff_t n, ptrdiff_t k,
                        float *c, ptrdiff_t ldc, int accumulate, ptrdiff_t rowStart, ptrdiff_t rowEnd,
                        ptrdiff_t panelStart, ptrdiff_t panelEnd) {
#ifdef SDS_BF16_X86
    if (!sds_cpu_has_avx512bf16()) return 0;
    if (k == 0) {
        if (accumulate) return 1;
        for (ptrdiff_t i = rowStart; i < rowEnd; i++)
            for (ptrdiff_t j = panelStart * SDS_BF16_PANEL; j < n && j < panelEnd * SDS_BF16_PANEL; j++) c[i * ldc + j] = 0;
        return 1;
    }
    gemm_block_avx512bf16(a, lda, packed, n, k, c, ldc, accumulate, rowStart, rowEnd, panelStart, panelEnd);
    return 1;
#else
    (void)a; (void)lda; (void)packed; (void)n; (void)k; (void)c; (void)ldc; (void)accumulate;
    (void)rowStart; (void)rowEnd; (void)panelStart; (void)panelEnd;
    return 0;
#endif
}
