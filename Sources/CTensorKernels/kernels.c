#include "tensor_kernels.h"

#include <math.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SDS_X86 1
#endif

// Cephes expf constants (the same as the engine's Swift fastExp).
#define EXP_LOW -87.3f
#define EXP_HIGH 88.3f
#define LOG2E 1.44269504f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define ROUND_MAGIC 12582912.0f   // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits

static inline float exp_scalar(float x) {
    float c = x < EXP_LOW ? EXP_LOW : (x > EXP_HIGH ? EXP_HIGH : x);
    float shifted = c * LOG2E + ROUND_MAGIC;
    float n = shifted - ROUND_MAGIC;
    float r = c - n * LN2_HI - n * LN2_LO;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float poly = p * r * r + r + 1.0f;
    union { float f; unsigned u; } s = { shifted }, scale;
    scale.u = (s.u - 0x4B400000u + 127u) << 23;
    return x < EXP_LOW ? 0.0f : poly * scale.f;
}

// GELU pieces (the engine's Swift erf8: Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7, on the exp above).
#define ERF_P 0.3275911f
#define ERF_A1 0.254829592f
#define ERF_A2 -0.284496736f
#define ERF_A3 1.421413741f
#define ERF_A4 -1.453152027f
#define ERF_A5 1.061405429f
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT2PI 0.39894228040143268f

static inline float erf_scalar(float x) {
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + ERF_P * a);
    float p = ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1);
    float m = 1.0f - p * t * exp_scalar(-a * a);
    return x < 0 ? -m : m;
}

// GEGLU rows: x is [rows, 2·width] (value half, then gate half), out [rows, width] = h·gelu(gate).
static void geglu_forward_base(const float *x, float *out, ptrdiff_t rows, ptrdiff_t width) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width;
        float *o = out + r * width;
        for (ptrdiff_t i = 0; i < width; i++) o[i] = h[i] * (0.5f * g[i] * (1.0f + erf_scalar(g[i] * INV_SQRT2)));
    }
}

// dx[:, :w] = dy·gelu(gate); dx[:, w:] = dy·h·gelu′(gate), gelu′(u) = ½(1 + erf(u/√2)) + u·φ(u).
static void geglu_backward_base(const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t width) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width, *d = dy + r * width;
        float *dh = dx + r * 2 * width, *dg = dh + width;
        for (ptrdiff_t i = 0; i < width; i++) {
            float u = g[i], cdf = 0.5f * (1.0f + erf_scalar(u * INV_SQRT2));
            dh[i] = d[i] * (u * cdf);
            dg[i] = d[i] * h[i] * (cdf + u * INV_SQRT2PI * exp_scalar(-0.5f * u * u));
        }
    }
}

// Winograd F(2×2, 3×3) weight transform of one 3×3 kernel g (row-major): U = G·g·Gᵀ with
// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]], written to u[k·stride], k = 4·row + column.
// The adjoint (the kernel flipped by 180°) has transform P·U·Pᵀ, P swapping rows 0 and 3 (G·R = P·G for
// the reversal R), so `flip` only permutes where the 16 values go.
static const int winograd_flip[16] = { 15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0 };

static inline void winograd_weight_tile(const float *g, float *u, ptrdiff_t stride, int flip) {
    float r[4][3];
    for (int j = 0; j < 3; j++) {
        r[0][j] = g[j];
        r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        r[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        float v[4] = { r[i][0], 0.5f * (r[i][0] + r[i][1] + r[i][2]), 0.5f * (r[i][0] - r[i][1] + r[i][2]), r[i][2] };
        for (int j = 0; j < 4; j++) {
            int k = 4 * i + j;
            u[(flip ? winograd_flip[k] : k) * stride] = v[j];
        }
    }
}

static void winograd_weights_base(const float *w, ptrdiff_t o, ptrdiff_t c, float *u, int adjoint,
                                  ptrdiff_t begin, ptrdiff_t end) {
    ptrdiff_t plane = o * c;
    for (ptrdiff_t row = begin; row < end; row++) {
        if (!adjoint) {   // row = output channel: U[k][row][ch]
            for (ptrdiff_t ch = 0; ch < c; ch++) winograd_weight_tile(w + (row * c + ch) * 9, u + row * c + ch, plane, 0);
        } else {          // row = input channel: U[k][row][oc] from W[oc][row], flipped
            for (ptrdiff_t oc = 0; oc < o; oc++) winograd_weight_tile(w + (oc * c + row) * 9, u + row * o + oc, plane, 1);
        }
    }
}

// ---- baseline builds (auto-vectorised at the package's target) ----

static float row_max_base(const float *row, ptrdiff_t n) {
    float lanes[8] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) lanes[l] = row[i + l] > lanes[l] ? row[i + l] : lanes[l];
    float m = -INFINITY;
    for (int l = 0; l < 8; l++) m = lanes[l] > m ? lanes[l] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

static float exp_shifted_sum_base(float *row, ptrdiff_t n, float shift) {
    float lanes[8] = { 0 };
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) { float e = exp_scalar(row[i + l] - shift); row[i + l] = e; lanes[l] += e; }
    float total = 0;
    for (; i < n; i++) { float e = exp_scalar(row[i] - shift); row[i] = e; total += e; }
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum + total;
}


// ---- normalisation statistics ----

#define SUM_BLOCK 1024

static double blocked_sum_base(const float *p, ptrdiff_t n) {
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lanes[8] = { 0 };
        ptrdiff_t i = start;
        for (; i + 8 <= end; i += 8) for (int l = 0; l < 8; l++) lanes[l] += p[i + l];
        float tail = 0;
        for (; i < end; i++) tail += p[i];
        float block = tail;
        for (int l = 0; l < 8; l++) block += lanes[l];
        total += block;
    }
    return total;
}

static double blocked_squared_deviation_base(const float *p, ptrdiff_t n, float mean) {
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lanes[8] = { 0 };
        ptrdiff_t i = start;
        for (; i + 8 <= end; i += 8) for (int l = 0; l < 8; l++) { float d = p[i + l] - mean; lanes[l] += d * d; }
        float tail = 0;
        for (; i < end; i++) { float d = p[i] - mean; tail += d * d; }
        float block = tail;
        for (int l = 0; l < 8; l++) block += lanes[l];
        total += block;
    }
    return total;
}

static void normalize_affine_base(const float *x, float *y, ptrdiff_t n, float mean, float scale, float shift) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] = (x[i] - mean) * scale + shift;
}


// ---- Winograd F(2×2, 3×3) transforms ----

static void winograd_input_tile(const float *d, ptrdiff_t paddedW, float *v, ptrdiff_t kStride) {
    float m[4][4];
    for (int col = 0; col < 4; col++) {
        float d0 = d[col], d1 = d[paddedW + col], d2 = d[2 * paddedW + col], d3 = d[3 * paddedW + col];
        m[0][col] = d0 - d2; m[1][col] = d1 + d2; m[2][col] = d2 - d1; m[3][col] = d1 - d3;
    }
    for (int row = 0; row < 4; row++) {
        v[(row * 4 + 0) * kStride] = m[row][0] - m[row][2];
        v[(row * 4 + 1) * kStride] = m[row][1] + m[row][2];
        v[(row * 4 + 2) * kStride] = m[row][2] - m[row][1];
        v[(row * 4 + 3) * kStride] = m[row][1] - m[row][3];
    }
}

static void winograd_output_tile(const float *m, ptrdiff_t kStride, float shift, float *y, ptrdiff_t ldy,
                                 int wide, int twoRows) {
#define M(k) m[(k) * kStride]
    float a0 = M(0) + M(4) + M(8), a1 = M(1) + M(5) + M(9), a2 = M(2) + M(6) + M(10), a3 = M(3) + M(7) + M(11);
    float b0 = M(4) - M(8) - M(12), b1 = M(5) - M(9) - M(13), b2 = M(6) - M(10) - M(14), b3 = M(7) - M(11) - M(15);
#undef M
    y[0] = a0 + a1 + a2 + shift;
    if (wide) y[1] = a1 - a2 - a3 + shift;
    if (twoRows) {
        y[ldy] = b0 + b1 + b2 + shift;
        if (wide) y[ldy + 1] = b1 - b2 - b3 + shift;
    }
}


static void shifted_sums_base(const float *p, ptrdiff_t n, float pilot, double *s1, double *s2) {
    double t1 = 0, t2 = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float a[8] = { 0 }, b[8] = { 0 };
        ptrdiff_t i = start;
        for (; i + 8 <= end; i += 8) for (int l = 0; l < 8; l++) { float d = p[i + l] - pilot; a[l] += d; b[l] += d * d; }
        float ta = 0, tb = 0;
        for (; i < end; i++) { float d = p[i] - pilot; ta += d; tb += d * d; }
        for (int l = 0; l < 8; l++) { ta += a[l]; tb += b[l]; }
        t1 += ta; t2 += tb;
    }
    *s1 = t1; *s2 = t2;
}

#ifdef SDS_X86
// ---- AVX2 + FMA builds ----

// Even and odd elements of the 16 floats at p, each as 8 lanes in order.
__attribute__((target("avx2,fma")))
static inline void deinterleave16(const float *p, __m256 *even, __m256 *odd) {
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

__attribute__((target("avx2,fma")))
static void winograd_input_row_avx2(const float *d, ptrdiff_t paddedW, ptrdiff_t tiles, float *v, ptrdiff_t kStride) {
    ptrdiff_t tx = 0;
    for (; tx + 8 <= tiles; tx += 8) {
        __m256 col[4][4];   // [row][column offset 0…3], lanes = 8 tiles
        for (int row = 0; row < 4; row++) {
            const float *p = d + row * paddedW + 2 * tx;
            deinterleave16(p, &col[row][0], &col[row][1]);
            deinterleave16(p + 2, &col[row][2], &col[row][3]);
        }
        for (int j = 0; j < 4; j++) {   // Bᵀ·d per column offset j, rows into col[0…3][j]
            __m256 d0 = col[0][j], d1 = col[1][j], d2 = col[2][j], d3 = col[3][j];
            col[0][j] = _mm256_sub_ps(d0, d2); col[1][j] = _mm256_add_ps(d1, d2);
            col[2][j] = _mm256_sub_ps(d2, d1); col[3][j] = _mm256_sub_ps(d1, d3);
        }
        for (int row = 0; row < 4; row++) {
            float *out = v + row * 4 * kStride + tx;
            _mm256_storeu_ps(out, _mm256_sub_ps(col[row][0], col[row][2]));
            _mm256_storeu_ps(out + kStride, _mm256_add_ps(col[row][1], col[row][2]));
            _mm256_storeu_ps(out + 2 * kStride, _mm256_sub_ps(col[row][2], col[row][1]));
            _mm256_storeu_ps(out + 3 * kStride, _mm256_sub_ps(col[row][1], col[row][3]));
        }
    }
    for (; tx < tiles; tx++) winograd_input_tile(d + 2 * tx, paddedW, v + tx, kStride);
}

__attribute__((target("avx2,fma")))
static void winograd_output_row_avx2(const float *m, ptrdiff_t kStride, ptrdiff_t tiles, float shift,
                                     float *y, ptrdiff_t ldy, ptrdiff_t columns, int twoRows) {
    const __m256 s = _mm256_set1_ps(shift);
    ptrdiff_t tx = 0;
    // Whole vectors only while all 16 output columns exist.
    for (; tx + 8 <= tiles && 2 * tx + 16 <= columns; tx += 8) {
#define M(k) _mm256_loadu_ps(m + (k) * kStride + tx)
        __m256 a0 = _mm256_add_ps(_mm256_add_ps(M(0), M(4)), M(8)), a1 = _mm256_add_ps(_mm256_add_ps(M(1), M(5)), M(9));
        __m256 a2 = _mm256_add_ps(_mm256_add_ps(M(2), M(6)), M(10)), a3 = _mm256_add_ps(_mm256_add_ps(M(3), M(7)), M(11));
        __m256 y00 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), a2), s);
        __m256 y01 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(a1, a2), a3), s);
        // Interleave (y00[t], y01[t]) pairs into 16 consecutive outputs.
        __m256 lo = _mm256_unpacklo_ps(y00, y01), hi = _mm256_unpackhi_ps(y00, y01);
        _mm256_storeu_ps(y + 2 * tx, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(y + 2 * tx + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        if (twoRows) {
            __m256 b0 = _mm256_sub_ps(_mm256_sub_ps(M(4), M(8)), M(12)), b1 = _mm256_sub_ps(_mm256_sub_ps(M(5), M(9)), M(13));
            __m256 b2 = _mm256_sub_ps(_mm256_sub_ps(M(6), M(10)), M(14)), b3 = _mm256_sub_ps(_mm256_sub_ps(M(7), M(11)), M(15));
            __m256 y10 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(b0, b1), b2), s);
            __m256 y11 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(b1, b2), b3), s);
            lo = _mm256_unpacklo_ps(y10, y11); hi = _mm256_unpackhi_ps(y10, y11);
            _mm256_storeu_ps(y + ldy + 2 * tx, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(y + ldy + 2 * tx + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
#undef M
    }
    for (; tx < tiles; tx++)
        winograd_output_tile(m + tx, kStride, shift, y + 2 * tx, ldy, 2 * tx + 1 < columns, twoRows);
}


__attribute__((target("avx2,fma")))
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static double blocked_sum_avx2(const float *p, ptrdiff_t n) {
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
        ptrdiff_t i = start;
        for (; i + 32 <= end; i += 32) {
            a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
            b = _mm256_add_ps(b, _mm256_loadu_ps(p + i + 8));
            c = _mm256_add_ps(c, _mm256_loadu_ps(p + i + 16));
            d = _mm256_add_ps(d, _mm256_loadu_ps(p + i + 24));
        }
        for (; i + 8 <= end; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
        float tail = 0;
        for (; i < end; i++) tail += p[i];
        total += hsum8(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d))) + tail;
    }
    return total;
}

__attribute__((target("avx2,fma")))
static double blocked_squared_deviation_avx2(const float *p, ptrdiff_t n, float mean) {
    const __m256 m = _mm256_set1_ps(mean);
    double total = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
        ptrdiff_t i = start;
        for (; i + 32 <= end; i += 32) {
            __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), m), x1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), m);
            __m256 x2 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 16), m), x3 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 24), m);
            a = _mm256_fmadd_ps(x0, x0, a); b = _mm256_fmadd_ps(x1, x1, b);
            c = _mm256_fmadd_ps(x2, x2, c); d = _mm256_fmadd_ps(x3, x3, d);
        }
        for (; i + 8 <= end; i += 8) { __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), m); a = _mm256_fmadd_ps(x0, x0, a); }
        float tail = 0;
        for (; i < end; i++) { float dv = p[i] - mean; tail += dv * dv; }
        total += hsum8(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d))) + tail;
    }
    return total;
}

__attribute__((target("avx2,fma")))
static void shifted_sums_avx2(const float *p, ptrdiff_t n, float pilot, double *s1, double *s2) {
    const __m256 m = _mm256_set1_ps(pilot);
    double t1 = 0, t2 = 0;
    for (ptrdiff_t start = 0; start < n; start += SUM_BLOCK) {
        ptrdiff_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        ptrdiff_t i = start;
        for (; i + 16 <= end; i += 16) {
            __m256 x0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), m), x1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), m);
            a0 = _mm256_add_ps(a0, x0); a1 = _mm256_add_ps(a1, x1);
            b0 = _mm256_fmadd_ps(x0, x0, b0); b1 = _mm256_fmadd_ps(x1, x1, b1);
        }
        float ta = 0, tb = 0;
        for (; i < end; i++) { float d = p[i] - pilot; ta += d; tb += d * d; }
        t1 += hsum8(_mm256_add_ps(a0, a1)) + ta;
        t2 += hsum8(_mm256_add_ps(b0, b1)) + tb;
    }
    *s1 = t1; *s2 = t2;
}

__attribute__((target("avx2,fma")))
static void normalize_affine_avx2(const float *x, float *y, ptrdiff_t n, float mean, float scale, float shift) {
    const __m256 m = _mm256_set1_ps(mean), s = _mm256_set1_ps(scale), t = _mm256_set1_ps(shift);
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), s, t));
        _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m), s, t));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * scale + shift;
}


__attribute__((target("avx2,fma")))
static inline __m256 exp8(__m256 x) {
    const __m256 low = _mm256_set1_ps(EXP_LOW);
    __m256 c = _mm256_min_ps(_mm256_max_ps(x, low), _mm256_set1_ps(EXP_HIGH));
    const __m256 magic = _mm256_set1_ps(ROUND_MAGIC);
    __m256 shifted = _mm256_fmadd_ps(c, _mm256_set1_ps(LOG2E), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), c);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 poly = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(shifted),
                                                                       _mm256_set1_epi32(0x4B400000)),
                                                      _mm256_set1_epi32(127)), 23);
    __m256 result = _mm256_mul_ps(poly, _mm256_castsi256_ps(bits));
    // x < −87.3 (including −∞) → exactly 0.
    return _mm256_andnot_ps(_mm256_cmp_ps(x, low, _CMP_LT_OQ), result);
}

__attribute__((target("avx2,fma")))
static float row_max_avx2(const float *row, ptrdiff_t n) {
    __m256 a = _mm256_set1_ps(-INFINITY), b = a;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_max_ps(a, _mm256_loadu_ps(row + i));
        b = _mm256_max_ps(b, _mm256_loadu_ps(row + i + 8));
    }
    for (; i + 8 <= n; i += 8) a = _mm256_max_ps(a, _mm256_loadu_ps(row + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(a, b));
    float m = -INFINITY;
    for (int l = 0; l < 8; l++) m = lanes[l] > m ? lanes[l] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

__attribute__((target("avx2,fma")))
static float exp_shifted_sum_avx2(float *row, ptrdiff_t n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 sumA = _mm256_setzero_ps(), sumB = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 ea = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), s));
        __m256 eb = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i + 8), s));
        _mm256_storeu_ps(row + i, ea);
        _mm256_storeu_ps(row + i + 8, eb);
        sumA = _mm256_add_ps(sumA, ea);
        sumB = _mm256_add_ps(sumB, eb);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), s));
        _mm256_storeu_ps(row + i, e);
        sumA = _mm256_add_ps(sumA, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(sumA, sumB));
    float total = 0;
    for (; i < n; i++) { float e = exp_scalar(row[i] - shift); row[i] = e; total += e; }
    float sum = 0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum + total;
}

__attribute__((target("avx2,fma")))
static inline __m256 erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(ERF_P), a, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(ERF_A5), t, _mm256_set1_ps(ERF_A4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A1));
    __m256 m = _mm256_fnmadd_ps(_mm256_mul_ps(p, t), exp8(_mm256_mul_ps(_mm256_xor_ps(a, sign), a)), _mm256_set1_ps(1.0f));
    return _mm256_or_ps(m, _mm256_and_ps(sign, x));   // erf is odd: the sign of x
}

__attribute__((target("avx2,fma")))
static void geglu_forward_avx2(const float *x, float *out, ptrdiff_t rows, ptrdiff_t width) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), s = _mm256_set1_ps(INV_SQRT2);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width;
        float *o = out + r * width;
        ptrdiff_t i = 0;
        for (; i + 8 <= width; i += 8) {
            __m256 u = _mm256_loadu_ps(g + i);
            __m256 gelu = _mm256_mul_ps(_mm256_mul_ps(half, u), _mm256_add_ps(one, erf8(_mm256_mul_ps(u, s))));
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(h + i), gelu));
        }
        for (; i < width; i++) o[i] = h[i] * (0.5f * g[i] * (1.0f + erf_scalar(g[i] * INV_SQRT2)));
    }
}

__attribute__((target("avx2,fma")))
static void geglu_backward_avx2(const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t width) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), s = _mm256_set1_ps(INV_SQRT2);
    const __m256 density = _mm256_set1_ps(INV_SQRT2PI), minusHalf = _mm256_set1_ps(-0.5f);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width, *d = dy + r * width;
        float *dh = dx + r * 2 * width, *dg = dh + width;
        ptrdiff_t i = 0;
        for (; i + 8 <= width; i += 8) {
            __m256 u = _mm256_loadu_ps(g + i), dv = _mm256_loadu_ps(d + i);
            __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, erf8(_mm256_mul_ps(u, s))));
            __m256 pdf = _mm256_mul_ps(_mm256_mul_ps(u, density), exp8(_mm256_mul_ps(_mm256_mul_ps(minusHalf, u), u)));
            _mm256_storeu_ps(dh + i, _mm256_mul_ps(dv, _mm256_mul_ps(u, cdf)));
            _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(h + i)), _mm256_add_ps(cdf, pdf)));
        }
        for (; i < width; i++) {
            float u = g[i], cdf = 0.5f * (1.0f + erf_scalar(u * INV_SQRT2));
            dh[i] = d[i] * (u * cdf);
            dg[i] = d[i] * h[i] * (cdf + u * INV_SQRT2PI * exp_scalar(-0.5f * u * u));
        }
    }
}

// Scores: up to 6 rows × 16 keys per register block (12 independent accumulators hide the FMA
// latency) over one packed panel, which (depth × 64 B) stays in L1 while the chunk's rows pass over it.
__attribute__((target("avx2,fma")))
static inline void scores_block(const float *q, ptrdiff_t ldq, const float *panel, float *s, ptrdiff_t lds,
                                ptrdiff_t depth, __m256 a, int rows) {
    __m256 c[6][2];
    const float *qr[6];
    for (int r = 0; r < 6; r++) {
        c[r][0] = _mm256_setzero_ps(); c[r][1] = c[r][0];
        qr[r] = q + (r < rows ? r : 0) * ldq;   // rows past the block repeat row 0 and are not stored
    }
    const float *k = panel;
    for (ptrdiff_t d = 0; d < depth; d++, k += 16) {
        __m256 k0 = _mm256_loadu_ps(k), k1 = _mm256_loadu_ps(k + 8);
        for (int r = 0; r < 6; r++) {
            __m256 b = _mm256_broadcast_ss(qr[r] + d);
            c[r][0] = _mm256_fmadd_ps(b, k0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(b, k1, c[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(s + r * lds, _mm256_mul_ps(c[r][0], a));
        _mm256_storeu_ps(s + r * lds + 8, _mm256_mul_ps(c[r][1], a));
    }
}

__attribute__((target("avx2,fma")))
static void scores_avx2(const float *q, ptrdiff_t ldq, const float *packed, float *scores, ptrdiff_t lds,
                        ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth, float alpha) {
    const __m256 a = _mm256_set1_ps(alpha);
    float tail[6 * 16];
    for (ptrdiff_t j = 0; j < keys; j += 16) {
        const float *panel = packed + (j / 16) * depth * 16;
        int full = j + 16 <= keys;
        for (ptrdiff_t i = 0; i < rows; i += 6) {
            int block = rows - i >= 6 ? 6 : (int)(rows - i);
            if (full) {
                scores_block(q + i * ldq, ldq, panel, scores + i * lds + j, lds, depth, a, block);
            } else {   // ragged last panel: compute 16 columns into a buffer, keep the real ones
                scores_block(q + i * ldq, ldq, panel, tail, 16, depth, a, block);
                for (int r = 0; r < block; r++)
                    for (ptrdiff_t t = 0; t < keys - j; t++) scores[(i + r) * lds + j + t] = tail[r * 16 + t];
            }
        }
    }
}

// Products: out rows (+)= Σ_j a[i, j] · b[j, :], with a read through strides (a[i·rs + j·cs]: row-major
// probabilities for attention's P·V, or transposed ones for Pᵀ·dO), in register blocks of ROWS rows ×
// VECS·8 columns (accumulators + one row of b + a broadcast fit the 16 ymm registers). The caller walks
// the inner index in blocks whose rows of b fit L1, so b is read from L1 by every row block.
#define PRODUCTS_BLOCK(ROWS, VECS)                                                                       \
__attribute__((target("avx2,fma")))                                                                    \
static inline void products_block_##ROWS##x##VECS(const float *a, ptrdiff_t rs, ptrdiff_t cs,           \
                                                  const float *b, ptrdiff_t ldb, float *out, ptrdiff_t ldo, \
                                                  ptrdiff_t inner, int accumulate) {                    \
    __m256 acc[ROWS][VECS];                                                                            \
    for (int r = 0; r < ROWS; r++) for (int c = 0; c < VECS; c++)                                      \
        acc[r][c] = accumulate ? _mm256_loadu_ps(out + r * ldo + 8 * c) : _mm256_setzero_ps();         \
    for (ptrdiff_t j = 0; j < inner; j++) {                                                            \
        __m256 bv[VECS];                                                                               \
        for (int c = 0; c < VECS; c++) bv[c] = _mm256_loadu_ps(b + j * ldb + 8 * c);                   \
        for (int r = 0; r < ROWS; r++) {                                                               \
            __m256 x = _mm256_broadcast_ss(a + r * rs + j * cs);                                       \
            for (int c = 0; c < VECS; c++) acc[r][c] = _mm256_fmadd_ps(x, bv[c], acc[r][c]);           \
        }                                                                                              \
    }                                                                                                  \
    for (int r = 0; r < ROWS; r++) for (int c = 0; c < VECS; c++)                                      \
        _mm256_storeu_ps(out + r * ldo + 8 * c, acc[r][c]);                                            \
}
PRODUCTS_BLOCK(2, 5)
PRODUCTS_BLOCK(1, 5)
PRODUCTS_BLOCK(2, 4)
PRODUCTS_BLOCK(1, 4)
PRODUCTS_BLOCK(3, 3)
PRODUCTS_BLOCK(1, 3)
PRODUCTS_BLOCK(6, 2)
PRODUCTS_BLOCK(1, 2)
PRODUCTS_BLOCK(6, 1)
PRODUCTS_BLOCK(1, 1)

__attribute__((target("avx2,fma")))
static void products_avx2(const float *a, ptrdiff_t rs, ptrdiff_t cs, const float *b, ptrdiff_t ldb,
                          float *out, ptrdiff_t ldo, ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t depth, int accumulate) {
    // Inner block: its rows of b take at most 16 KB of L1.
    ptrdiff_t innerBlock = 4096 / depth < 16 ? 16 : 4096 / depth;
    ptrdiff_t vectorDepth = depth & ~(ptrdiff_t)7;
    for (ptrdiff_t k0 = 0; k0 < inner; k0 += innerBlock) {
        ptrdiff_t kn = inner - k0 < innerBlock ? inner - k0 : innerBlock;
        int add = accumulate || k0 > 0;
        const float *ak = a + k0 * cs, *bk = b + k0 * ldb;
        // The last depth % 8 columns one by one.
        for (ptrdiff_t i = 0; i < rows; i++) {
            for (ptrdiff_t c = vectorDepth; c < depth; c++) {
                float total = add ? out[i * ldo + c] : 0;
                for (ptrdiff_t j = 0; j < kn; j++) total += ak[i * rs + j * cs] * bk[j * ldb + c];
                out[i * ldo + c] = total;
            }
        }
        // Column strips of 40, 32, 24, 16 or 8, each over all rows.
        ptrdiff_t c = 0;
        while (c < vectorDepth) {
            ptrdiff_t width = vectorDepth - c == 40 ? 40 : (vectorDepth - c >= 32 ? 32 : vectorDepth - c);
            const float *bc = bk + c;
            float *oc = out + c;
            ptrdiff_t i = 0;
#define STRIP(ROWS, VECS) \
            for (; i + ROWS <= rows; i += ROWS) products_block_##ROWS##x##VECS(ak + i * rs, rs, cs, bc, ldb, oc + i * ldo, ldo, kn, add); \
            for (; i < rows; i++) products_block_1x##VECS(ak + i * rs, rs, cs, bc, ldb, oc + i * ldo, ldo, kn, add);
            switch (width) {
            case 40: STRIP(2, 5) break;
            case 32: STRIP(2, 4) break;
            case 24: STRIP(3, 3) break;
            case 16: STRIP(6, 2) break;
            default: STRIP(6, 1) break;
            }
#undef STRIP
            c += width;
        }
    }
}

// dS rows of attention's backward: d[j] = scale · p[j] · (d[j] − Σ_k p[k]·d[k]).
__attribute__((target("avx2,fma")))
static void softmax_backward_avx2(const float *p, float *d, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t keys, float scale) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = d + r * ld;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        ptrdiff_t j = 0;
        for (; j + 16 <= keys; j += 16) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pr + j), _mm256_loadu_ps(dr + j), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pr + j + 8), _mm256_loadu_ps(dr + j + 8), s1);
        }
        float tail = 0;
        for (; j < keys; j++) tail += pr[j] * dr[j];
        float dot = hsum8(_mm256_add_ps(s0, s1)) + tail;
        const __m256 dv = _mm256_set1_ps(dot), sv = _mm256_set1_ps(scale);
        for (j = 0; j + 8 <= keys; j += 8) {
            __m256 x = _mm256_mul_ps(_mm256_loadu_ps(pr + j), _mm256_sub_ps(_mm256_loadu_ps(dr + j), dv));
            _mm256_storeu_ps(dr + j, _mm256_mul_ps(x, sv));
        }
        for (; j < keys; j++) dr[j] = scale * (pr[j] * (dr[j] - dot));
    }
}

// ---- AVX-512 builds (16 lanes, 32 registers; masked stores for ragged edges) ----
#define AVX512 __attribute__((target("avx2,fma,avx512f")))

AVX512
static inline __m512 exp16(__m512 x) {
    const __m512 low = _mm512_set1_ps(EXP_LOW);
    __m512 c = _mm512_min_ps(_mm512_max_ps(x, low), _mm512_set1_ps(EXP_HIGH));
    const __m512 magic = _mm512_set1_ps(ROUND_MAGIC);
    __m512 shifted = _mm512_fmadd_ps(c, _mm512_set1_ps(LOG2E), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), c);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 poly = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted),
                                                                       _mm512_set1_epi32(0x4B400000)),
                                                      _mm512_set1_epi32(127)), 23);
    __m512 result = _mm512_mul_ps(poly, _mm512_castsi512_ps(bits));
    // x < −87.3 (including −∞) → exactly 0.
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, low, _CMP_NLT_UQ), result);
}

AVX512
static float row_max_avx512(const float *row, ptrdiff_t n) {
    __m512 a = _mm512_set1_ps(-INFINITY), b = a;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a = _mm512_max_ps(a, _mm512_loadu_ps(row + i));
        b = _mm512_max_ps(b, _mm512_loadu_ps(row + i + 16));
    }
    for (; i + 16 <= n; i += 16) a = _mm512_max_ps(a, _mm512_loadu_ps(row + i));
    float lanes[16];
    _mm512_storeu_ps(lanes, _mm512_max_ps(a, b));
    float m = -INFINITY;
    for (int l = 0; l < 16; l++) m = lanes[l] > m ? lanes[l] : m;
    for (; i < n; i++) m = row[i] > m ? row[i] : m;
    return m;
}

AVX512
static inline __m512 erf16(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 a = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(ERF_P), a, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(ERF_A5), t, _mm512_set1_ps(ERF_A4));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ERF_A3));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ERF_A2));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(ERF_A1));
    __m512 m = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)), _mm512_set1_ps(1.0f));
    // erf is odd: the sign of x on the magnitude (an integer OR, AVX-512F has no float one).
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), _mm512_and_si512(_mm512_castps_si512(sign), _mm512_castps_si512(x))));
}

AVX512
static void geglu_forward_avx512(const float *x, float *out, ptrdiff_t rows, ptrdiff_t width) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), s = _mm512_set1_ps(INV_SQRT2);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width;
        float *o = out + r * width;
        for (ptrdiff_t i = 0; i < width; i += 16) {
            ptrdiff_t left = width - i;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            __m512 u = _mm512_maskz_loadu_ps(m, g + i);
            __m512 gelu = _mm512_mul_ps(_mm512_mul_ps(half, u), _mm512_add_ps(one, erf16(_mm512_mul_ps(u, s))));
            _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, h + i), gelu));
        }
    }
}

AVX512
static void geglu_backward_avx512(const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t width) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), s = _mm512_set1_ps(INV_SQRT2);
    const __m512 density = _mm512_set1_ps(INV_SQRT2PI), minusHalf = _mm512_set1_ps(-0.5f);
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * width, *g = h + width, *d = dy + r * width;
        float *dh = dx + r * 2 * width, *dg = dh + width;
        for (ptrdiff_t i = 0; i < width; i += 16) {
            ptrdiff_t left = width - i;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            __m512 u = _mm512_maskz_loadu_ps(m, g + i), dv = _mm512_maskz_loadu_ps(m, d + i);
            __m512 cdf = _mm512_mul_ps(half, _mm512_add_ps(one, erf16(_mm512_mul_ps(u, s))));
            __m512 pdf = _mm512_mul_ps(_mm512_mul_ps(u, density), exp16(_mm512_mul_ps(_mm512_mul_ps(minusHalf, u), u)));
            _mm512_mask_storeu_ps(dh + i, m, _mm512_mul_ps(dv, _mm512_mul_ps(u, cdf)));
            _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(dv, _mm512_maskz_loadu_ps(m, h + i)), _mm512_add_ps(cdf, pdf)));
        }
    }
}

// Weight transform, 16 kernels at a time: the 9 taps of 16 kernels gathered into 9 vectors (kernels a
// fixed stride apart: consecutive input channels, or, for the adjoint, consecutive output channels),
// the transform in vector arithmetic, 16 contiguous values stored per k.
AVX512
static void winograd_weights_avx512(const float *w, ptrdiff_t o, ptrdiff_t c, float *u, int adjoint,
                                    ptrdiff_t begin, ptrdiff_t end) {
    ptrdiff_t plane = o * c, count = adjoint ? o : c, kernelStride = adjoint ? c * 9 : 9;
    const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32((int)kernelStride));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (ptrdiff_t row = begin; row < end; row++) {
        for (ptrdiff_t i = 0; i < count; i += 16) {
            ptrdiff_t left = count - i;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            const float *g = adjoint ? w + (i * c + row) * 9 : w + (row * c + i) * 9;
            __m512 t[9];
            for (int tap = 0; tap < 9; tap++)
                t[tap] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lanes, g + tap, 4);
            __m512 r[4][3];
            for (int j = 0; j < 3; j++) {
                r[0][j] = t[j];
                r[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[j], t[3 + j]), t[6 + j]));
                r[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[j], t[3 + j]), t[6 + j]));
                r[3][j] = t[6 + j];
            }
            float *out = u + row * (adjoint ? o : c) + i;
            for (int a = 0; a < 4; a++) {
                __m512 v[4] = { r[a][0], _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(r[a][0], r[a][1]), r[a][2])),
                                _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(r[a][0], r[a][1]), r[a][2])), r[a][2] };
                for (int b = 0; b < 4; b++) {
                    int k = 4 * a + b;
                    _mm512_mask_storeu_ps(out + (adjoint ? winograd_flip[k] : k) * plane, m, v[b]);
                }
            }
        }
    }
}

AVX512
static float exp_shifted_sum_avx512(float *row, ptrdiff_t n, float shift) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512 sumA = _mm512_setzero_ps(), sumB = sumA;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 ea = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), s));
        __m512 eb = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i + 16), s));
        _mm512_storeu_ps(row + i, ea);
        _mm512_storeu_ps(row + i + 16, eb);
        sumA = _mm512_add_ps(sumA, ea);
        sumB = _mm512_add_ps(sumB, eb);
    }
    if (i < n) {   // the last 1…31 elements in at most two masked vectors
        for (int half = 0; half < 2 && i < n; half++, i += 16) {
            ptrdiff_t left = n - i;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + i), s));
            _mm512_mask_storeu_ps(row + i, m, e);
            sumA = _mm512_add_ps(sumA, _mm512_maskz_mov_ps(m, e));
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(sumA, sumB));
}

// Scores: up to 8 rows × 32 keys (two packed 16-key panels) per register block: 16 accumulators, the
// two panel rows and the query broadcasts. Each score is the same sequential FMA chain over d as in
// the AVX2 build, so both give identical scores.
AVX512 __attribute__((always_inline))
static inline void scores_block_avx512(const float *q, ptrdiff_t ldq, const float *panel, ptrdiff_t depth,
                                       float *s, ptrdiff_t lds, __m512 alpha, int rows, const int panels,
                                       __mmask16 m0, __mmask16 m1) {
    __m512 c[8][2];
    const float *qr[8];
    for (int r = 0; r < 8; r++) {
        c[r][0] = _mm512_setzero_ps(); c[r][1] = c[r][0];
        qr[r] = q + (r < rows ? r : 0) * ldq;   // rows past the block repeat row 0 and are not stored
    }
    const float *k0 = panel, *k1 = panel + depth * 16;
    for (ptrdiff_t d = 0; d < depth; d++) {
        __m512 a0 = _mm512_loadu_ps(k0 + d * 16);
        __m512 a1 = panels > 1 ? _mm512_loadu_ps(k1 + d * 16) : a0;
        for (int r = 0; r < 8; r++) {
            __m512 x = _mm512_set1_ps(qr[r][d]);
            c[r][0] = _mm512_fmadd_ps(x, a0, c[r][0]);
            if (panels > 1) c[r][1] = _mm512_fmadd_ps(x, a1, c[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(s + r * lds, m0, _mm512_mul_ps(c[r][0], alpha));
        if (panels > 1) _mm512_mask_storeu_ps(s + r * lds + 16, m1, _mm512_mul_ps(c[r][1], alpha));
    }
}

AVX512
static void scores_avx512(const float *q, ptrdiff_t ldq, const float *packed, float *scores, ptrdiff_t lds,
                          ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth, float alpha) {
    const __m512 a = _mm512_set1_ps(alpha);
    for (ptrdiff_t j = 0; j < keys; j += 32) {
        const float *panel = packed + (j / 16) * depth * 16;
        ptrdiff_t width = keys - j < 32 ? keys - j : 32;
        __mmask16 m0 = width >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << width) - 1);
        __mmask16 m1 = width >= 32 ? (__mmask16)0xFFFF : (width > 16 ? (__mmask16)((1u << (width - 16)) - 1) : 0);
        for (ptrdiff_t i = 0; i < rows; i += 8) {
            int block = rows - i >= 8 ? 8 : (int)(rows - i);
            if (width > 16)
                scores_block_avx512(q + i * ldq, ldq, panel, depth, scores + i * lds + j, lds, a, block, 2, m0, m1);
            else
                scores_block_avx512(q + i * ldq, ldq, panel, depth, scores + i * lds + j, lds, a, block, 1, m0, 0);
        }
    }
}

// Products (see the AVX2 build): ROWS rows × VECS vectors of 16 columns, the last vector masked to the
// strip's width, so any depth works. Blocks: 8×1, 8×2, 8×3 (SD's head depth 40), 6×4, 5×5.
AVX512 __attribute__((always_inline))
static inline void products_block_avx512(const float *a, ptrdiff_t rs, ptrdiff_t cs, const float *b, ptrdiff_t ldb,
                                         float *out, ptrdiff_t ldo, ptrdiff_t inner, int accumulate,
                                         const int ROWS, const int VECS, __mmask16 last) {
    __m512 acc[8][5];
    for (int r = 0; r < ROWS; r++) for (int c = 0; c < VECS; c++) {
        __mmask16 m = c == VECS - 1 ? last : (__mmask16)0xFFFF;
        acc[r][c] = accumulate ? _mm512_maskz_loadu_ps(m, out + r * ldo + 16 * c) : _mm512_setzero_ps();
    }
    for (ptrdiff_t j = 0; j < inner; j++) {
        __m512 bv[5];
        for (int c = 0; c < VECS; c++)
            bv[c] = _mm512_maskz_loadu_ps(c == VECS - 1 ? last : (__mmask16)0xFFFF, b + j * ldb + 16 * c);
        for (int r = 0; r < ROWS; r++) {
            __m512 x = _mm512_set1_ps(a[r * rs + j * cs]);
            for (int c = 0; c < VECS; c++) acc[r][c] = _mm512_fmadd_ps(x, bv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < ROWS; r++) for (int c = 0; c < VECS; c++)
        _mm512_mask_storeu_ps(out + r * ldo + 16 * c, c == VECS - 1 ? last : (__mmask16)0xFFFF, acc[r][c]);
}

#define PRODUCTS_512(ROWS, VECS)                                                                         \
AVX512 static void products_512_##ROWS##x##VECS(const float *a, ptrdiff_t rs, ptrdiff_t cs, const float *b, \
        ptrdiff_t ldb, float *out, ptrdiff_t ldo, ptrdiff_t inner, int accumulate, __mmask16 last) {   \
    products_block_avx512(a, rs, cs, b, ldb, out, ldo, inner, accumulate, ROWS, VECS, last);           \
}
PRODUCTS_512(8, 1)
PRODUCTS_512(1, 1)
PRODUCTS_512(8, 2)
PRODUCTS_512(1, 2)
PRODUCTS_512(8, 3)
PRODUCTS_512(1, 3)
PRODUCTS_512(6, 4)
PRODUCTS_512(1, 4)
PRODUCTS_512(5, 5)
PRODUCTS_512(1, 5)

AVX512
static void products_avx512(const float *a, ptrdiff_t rs, ptrdiff_t cs, const float *b, ptrdiff_t ldb,
                            float *out, ptrdiff_t ldo, ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t depth, int accumulate) {
    // Inner block: its rows of one strip of b take at most 16 KB of L1.
    ptrdiff_t stripWidth = depth < 80 ? depth : 80;
    ptrdiff_t innerBlock = 4096 / stripWidth < 16 ? 16 : 4096 / stripWidth;
    for (ptrdiff_t k0 = 0; k0 < inner; k0 += innerBlock) {
        ptrdiff_t kn = inner - k0 < innerBlock ? inner - k0 : innerBlock;
        int add = accumulate || k0 > 0;
        const float *ak = a + k0 * cs, *bk = b + k0 * ldb;
        // Column strips of up to 80 (five vectors); the strip's last vector is masked.
        for (ptrdiff_t c = 0; c < depth; c += 80) {
            ptrdiff_t width = depth - c < 80 ? depth - c : 80;
            int vecs = (int)((width + 15) / 16);
            __mmask16 last = width % 16 == 0 ? (__mmask16)0xFFFF : (__mmask16)((1u << (width % 16)) - 1);
            const float *bc = bk + c;
            float *oc = out + c;
            ptrdiff_t i = 0;
#define STRIP(ROWS, VECS) \
            for (; i + ROWS <= rows; i += ROWS) products_512_##ROWS##x##VECS(ak + i * rs, rs, cs, bc, ldb, oc + i * ldo, ldo, kn, add, last); \
            for (; i < rows; i++) products_512_1x##VECS(ak + i * rs, rs, cs, bc, ldb, oc + i * ldo, ldo, kn, add, last);
            switch (vecs) {
            case 5: STRIP(5, 5) break;
            case 4: STRIP(6, 4) break;
            case 3: STRIP(8, 3) break;
            case 2: STRIP(8, 2) break;
            default: STRIP(8, 1) break;
            }
#undef STRIP
        }
    }
}

AVX512
static void softmax_backward_avx512(const float *p, float *d, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t keys, float scale) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = d + r * ld;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        ptrdiff_t j = 0;
        for (; j + 32 <= keys; j += 32) {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pr + j), _mm512_loadu_ps(dr + j), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(pr + j + 16), _mm512_loadu_ps(dr + j + 16), s1);
        }
        float tail = 0;
        for (; j < keys; j++) tail += pr[j] * dr[j];
        float dot = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + tail;
        const __m512 dv = _mm512_set1_ps(dot), sv = _mm512_set1_ps(scale);
        for (j = 0; j < keys; j += 16) {
            ptrdiff_t left = keys - j;
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pr + j), _mm512_sub_ps(_mm512_maskz_loadu_ps(m, dr + j), dv));
            _mm512_mask_storeu_ps(dr + j, m, _mm512_mul_ps(x, sv));
        }
    }
}

// The widest build the CPU supports (0 baseline, 1 AVX2+FMA, 2 AVX-512F), capped for tests.
static int level_cap = 2;

static int detected_level(void) {
    static int cached = -1;   // benign race: every thread computes the same value
    if (cached < 0) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        cached = avx2 ? (__builtin_cpu_supports("avx512f") ? 2 : 1) : 0;
    }
    return cached;
}

static int level(void) {
    int detected = detected_level();
    return detected < level_cap ? detected : level_cap;
}

static int has_avx2(void) { return level() >= 1; }
static int has_avx512(void) { return level() >= 2; }

void sds_kernels_force_baseline(int on) { level_cap = on ? 0 : 2; }
void sds_kernels_cap_level(int cap) { level_cap = cap < 0 ? 0 : (cap > 2 ? 2 : cap); }
int sds_kernels_level(void) { return level(); }
#else
static int has_avx2(void) { return 0; }
static int has_avx512(void) { return 0; }

void sds_kernels_force_baseline(int on) { (void)on; }
void sds_kernels_cap_level(int cap) { (void)cap; }
int sds_kernels_level(void) { return 0; }
#endif

int sds_kernels_use_avx2(void) { return has_avx2(); }

int sds_cpu_blas_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    int skylake = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
               && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return skylake ? 2 : 1;
#else
    return 0;
#endif
}

int sds_keep_freed_heap_memory(void) {
#if defined(__GLIBC__)
    // M_MMAP_MAX 0: no allocation gets its own mapping (large ones would be unmapped on free and
    // faulted in again on the next step); M_TRIM_THRESHOLD at its maximum: the top of the heap is
    // not returned to the system after each step. Threads' arenas still map their own heaps.
    return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 0x7fffffff) == 1;
#else
    return 0;
#endif
}

int sds_return_freed_heap_memory(void) {
#if defined(__GLIBC__)
    // Also releases whole free pages inside the heap (madvise), not only its top.
    return malloc_trim(0);
#else
    return 0;
#endif
}

float sds_row_max(const float *row, ptrdiff_t n) {
#ifdef SDS_X86
    if (has_avx512()) return row_max_avx512(row, n);
    if (has_avx2()) return row_max_avx2(row, n);
#endif
    return row_max_base(row, n);
}

float sds_exp_shifted_sum(float *row, ptrdiff_t n, float shift) {
#ifdef SDS_X86
    if (has_avx512()) return exp_shifted_sum_avx512(row, n, shift);
    if (has_avx2()) return exp_shifted_sum_avx2(row, n, shift);
#endif
    return exp_shifted_sum_base(row, n, shift);
}

int sds_attention_scores(const float *q, ptrdiff_t ldq, const float *kT, float *scores, ptrdiff_t lds,
                         ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth, float alpha) {
#ifdef SDS_X86
    if (has_avx512()) { scores_avx512(q, ldq, kT, scores, lds, rows, keys, depth, alpha); return 1; }
    if (has_avx2()) { scores_avx2(q, ldq, kT, scores, lds, rows, keys, depth, alpha); return 1; }
#endif
    return 0;
}

int sds_attention_values(const float *p, ptrdiff_t ldp, const float *v, float *out, ptrdiff_t ldo,
                         ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth) {
    if (depth % 8 != 0) return 0;
    return sds_accumulate_products(p, ldp, 1, v, depth, out, ldo, rows, keys, depth, 0);
}

int sds_accumulate_products(const float *a, ptrdiff_t rowStride, ptrdiff_t innerStride, const float *b, ptrdiff_t ldb,
                            float *out, ptrdiff_t ldo, ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t depth, int accumulate) {
#ifdef SDS_X86
    if (depth <= 0) return 1;
    if (has_avx512()) { products_avx512(a, rowStride, innerStride, b, ldb, out, ldo, rows, inner, depth, accumulate); return 1; }
    if (has_avx2()) { products_avx2(a, rowStride, innerStride, b, ldb, out, ldo, rows, inner, depth, accumulate); return 1; }
#endif
    return 0;
}

void sds_softmax_backward_rows(const float *p, float *d, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t keys, float scale) {
#ifdef SDS_X86
    if (has_avx512()) { softmax_backward_avx512(p, d, ld, rows, keys, scale); return; }
    if (has_avx2()) { softmax_backward_avx2(p, d, ld, rows, keys, scale); return; }
#endif
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = d + r * ld;
        float lanes[8] = { 0 };
        ptrdiff_t j = 0;
        for (; j + 8 <= keys; j += 8) for (int l = 0; l < 8; l++) lanes[l] += pr[j + l] * dr[j + l];
        float tail = 0;
        for (; j < keys; j++) tail += pr[j] * dr[j];
        float dot = tail;
        for (int l = 0; l < 8; l++) dot += lanes[l];
        for (j = 0; j < keys; j++) dr[j] = scale * (pr[j] * (dr[j] - dot));
    }
}

void sds_geglu_forward(const float *x, float *out, ptrdiff_t rows, ptrdiff_t width) {
#ifdef SDS_X86
    if (has_avx512()) { geglu_forward_avx512(x, out, rows, width); return; }
    if (has_avx2()) { geglu_forward_avx2(x, out, rows, width); return; }
#endif
    geglu_forward_base(x, out, rows, width);
}

void sds_geglu_backward(const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t width) {
#ifdef SDS_X86
    if (has_avx512()) { geglu_backward_avx512(x, dy, dx, rows, width); return; }
    if (has_avx2()) { geglu_backward_avx2(x, dy, dx, rows, width); return; }
#endif
    geglu_backward_base(x, dy, dx, rows, width);
}

void sds_winograd_weights(const float *w, ptrdiff_t outChannels, ptrdiff_t channels, float *u, int adjoint,
                          ptrdiff_t begin, ptrdiff_t end) {
#ifdef SDS_X86
    if (has_avx512()) { winograd_weights_avx512(w, outChannels, channels, u, adjoint, begin, end); return; }
#endif
    winograd_weights_base(w, outChannels, channels, u, adjoint, begin, end);
}

ptrdiff_t sds_packed_keys_count(ptrdiff_t keys, ptrdiff_t depth) { return (keys + 15) / 16 * 16 * depth; }

void sds_pack_keys(const float *k, ptrdiff_t keys, ptrdiff_t depth, float *packed) {
    for (ptrdiff_t j = 0; j < keys; j += 16) {
        float *panel = packed + (j / 16) * depth * 16;
        ptrdiff_t width = keys - j < 16 ? keys - j : 16;
        for (ptrdiff_t d = 0; d < depth; d++) {
            float *line = panel + d * 16;
            for (ptrdiff_t t = 0; t < width; t++) line[t] = k[(j + t) * depth + d];
            for (ptrdiff_t t = width; t < 16; t++) line[t] = 0;
        }
    }
}

double sds_blocked_sum(const float *p, ptrdiff_t n) {
#ifdef SDS_X86
    if (has_avx2()) return blocked_sum_avx2(p, n);
#endif
    return blocked_sum_base(p, n);
}

double sds_blocked_squared_deviation(const float *p, ptrdiff_t n, float mean) {
#ifdef SDS_X86
    if (has_avx2()) return blocked_squared_deviation_avx2(p, n, mean);
#endif
    return blocked_squared_deviation_base(p, n, mean);
}

void sds_normalize_affine(const float *x, float *y, ptrdiff_t n, float mean, float scale, float shift) {
#ifdef SDS_X86
    if (has_avx2()) { normalize_affine_avx2(x, y, n, mean, scale, shift); return; }
#endif
    normalize_affine_base(x, y, n, mean, scale, shift);
}

void sds_winograd_input_row(const float *d, ptrdiff_t paddedW, ptrdiff_t tiles, float *v, ptrdiff_t kStride) {
#ifdef SDS_X86
    if (has_avx2()) { winograd_input_row_avx2(d, paddedW, tiles, v, kStride); return; }
#endif
    for (ptrdiff_t tx = 0; tx < tiles; tx++) winograd_input_tile(d + 2 * tx, paddedW, v + tx, kStride);
}

void sds_winograd_output_row(const float *m, ptrdiff_t kStride, ptrdiff_t tiles, float shift,
                             float *y, ptrdiff_t ldy, ptrdiff_t columns, int twoRows) {
#ifdef SDS_X86
    if (has_avx2()) { winograd_output_row_avx2(m, kStride, tiles, shift, y, ldy, columns, twoRows); return; }
#endif
    for (ptrdiff_t tx = 0; tx < tiles; tx++)
        winograd_output_tile(m + tx, kStride, shift, y + 2 * tx, ldy, 2 * tx + 1 < columns, twoRows);
}

void sds_moments(const float *p, ptrdiff_t n, double *mean, double *variance) {
    if (n <= SUM_BLOCK) {
        double mu = sds_blocked_sum(p, n) / (double)n;
        *mean = mu;
        *variance = sds_blocked_squared_deviation(p, n, (float)mu) / (double)n;
        return;
    }
    float pilot = (float)(sds_blocked_sum(p, SUM_BLOCK) / SUM_BLOCK);
    double s1, s2;
#ifdef SDS_X86
    if (has_avx2()) shifted_sums_avx2(p, n, pilot, &s1, &s2); else
#endif
    shifted_sums_base(p, n, pilot, &s1, &s2);
    double shift = s1 / (double)n;
    *mean = pilot + shift;
    double v = s2 / (double)n - shift * shift;
    *variance = v > 0 ? v : 0;
}
