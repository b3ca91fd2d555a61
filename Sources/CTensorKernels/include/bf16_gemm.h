// bf16 GEMM with f32 accumulation on AVX512-BF16 (vdpbf16ps), chosen at run time; the package stays
// baseline x86-64 and callers fall back to an f32 GEMM of the bf16 values when the CPU lacks it.
#ifndef SDS_BF16_GEMM_H
#define SDS_BF16_GEMM_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU (and OS) support AVX512-BF16 with AVX512F/BW/VL, else 0.
int sds_cpu_has_avx512bf16(void);

/// dst[r·ldDst + c] = bf16(src[r·cols + c]) rounded to nearest even (NaN stays a quiet NaN) for
/// r < rows, c < cols, and 0 for cols ≤ c < ldDst (ldDst ≥ cols).
void sds_f32_to_bf16(const float *src, ptrdiff_t rows, ptrdiff_t cols, uint16_t *dst, ptrdiff_t ldDst);

/// Column panels of the packed weight layout (64 output columns each).
#define SDS_BF16_PANEL 64

/// uint16 elements `sds_bf16_pack_weights` writes for n×k weights.
ptrdiff_t sds_bf16_packed_count(ptrdiff_t n, ptrdiff_t k);

/// Packs bf16 weights w (n×k row-major: one row per output column) into panels of 64 columns and k
/// pairs: packed[((panel·pairs + p)·64 + c)·2 + j] = w[(panel·64 + c)·k + 2p + j], zero past n and k,
/// pairs = ⌈k/2⌉. One panel step is then 256 contiguous bytes, four vdpbf16ps operands.
void sds_bf16_pack_weights(const uint16_t *w, ptrdiff_t n, ptrdiff_t k, uint16_t *packed);

/// The same layout for W[j, t] = bf16(src[t·ld + j]), j < n, t < k, from float32: k rows of n values
/// (e.g. a chunk of attention probabilities, one row per query) rounded as `sds_f32_to_bf16` does. A
/// product with it is Σ_t a[i, t]·src[t, j], so Aᵀ·B accumulations (dV += Pᵀ·dO, computed as
/// dVᵀ += dOᵀ·P) need no transposed copy of src.
void sds_bf16_pack_transposed(const float *src, ptrdiff_t ld, ptrdiff_t k, ptrdiff_t n, uint16_t *packed);

/// c[i·ldc + j] = Σ_k a[i·lda + k]·w[j, k] (f32 accumulation; with `accumulate` nonzero, c += instead)
/// for rowStart ≤ i < rowEnd and the columns of panels panelStart ≤ panel < panelEnd (clipped to n). a is
/// bf16 row-major with lda even and zero from k to lda (as `sds_f32_to_bf16` writes it); w as packed by
/// `sds_bf16_pack_weights`. Returns 0 (and writes nothing) when the CPU lacks AVX512-BF16.
int sds_bf16_gemm_block(const uint16_t *a, ptrdiff_t lda, const uint16_t *packed, ptrdiff_t n, ptrdiff_t k,
                        float *c, ptrdiff_t ldc, int accumulate, ptrdiff_t rowStart, ptrdiff_t rowEnd,
                        ptrdiff_t panelStart, ptrdiff_t panelEnd);

#endif
