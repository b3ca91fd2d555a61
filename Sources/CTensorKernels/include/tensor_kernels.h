// Vectorised row kernels for the Tensors engine, with runtime CPU dispatch: the AVX-512F build of a
// kernel (attention and softmax kernels) or its AVX2+FMA build is chosen when the CPU has it, otherwise a
// baseline (SSE2) build. The package itself is compiled for the x86-64 baseline, so this is how the
// exp-heavy loops get 8- or 16-wide FMA code and stay portable.
#ifndef SDS_TENSOR_KERNELS_H
#define SDS_TENSOR_KERNELS_H

#include <stddef.h>

/// Largest element of row[0..<n] (−∞ for an empty or all −∞ row). n ≥ 0.
float sds_row_max(const float *row, ptrdiff_t n);

/// row[i] = exp(row[i] − shift) in place; returns Σ row[i] (float lanes). exp saturates to exactly 0
/// below −87.3 (so −∞ gives 0) and the argument is capped at 88.3; ≈1 ulp (Cephes expf polynomial).
float sds_exp_shifted_sum(float *row, ptrdiff_t n, float shift);

/// Floats needed by `sds_pack_keys` for `keys` keys of `depth` values (panels of 16 keys, zero-padded).
ptrdiff_t sds_packed_keys_count(ptrdiff_t keys, ptrdiff_t depth);

/// Packs K (keys × depth, row-major) into panels of 16 keys: packed[(panel·depth + d)·16 + t] =
/// k[(panel·16 + t)·depth + d], zero past the last key. The score kernel then reads 64 contiguous
/// bytes per depth step (reading K transposed in place strides by whole rows and thrashes L1 sets).
void sds_pack_keys(const float *k, ptrdiff_t keys, ptrdiff_t depth, float *packed);

/// Attention score block: scores[i·lds + j] = alpha · Σ_d q[i, d] · k[j, d] for i < rows, j < keys, with
/// k given as `sds_pack_keys` panels. q has row stride ldq. Returns 0 (and writes nothing) when the
/// AVX2+FMA kernels are unavailable.
int sds_attention_scores(const float *q, ptrdiff_t ldq, const float *packedKeys, float *scores, ptrdiff_t lds,
                         ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth, float alpha);

/// Attention value block: out[i, c] = Σ_j p[i·ldp + j] · v[j, c] for i < rows, j < keys, c < depth (out
/// overwritten). v has row stride depth, out row stride ldo. Returns 0 (writes nothing) when the
/// AVX2+FMA kernels are unavailable or depth is not a multiple of 8.
int sds_attention_values(const float *p, ptrdiff_t ldp, const float *v, float *out, ptrdiff_t ldo,
                         ptrdiff_t rows, ptrdiff_t keys, ptrdiff_t depth);

/// out[i, c] = Σ_j a[i·rowStride + j·innerStride] · b[j·ldb + c] for i < rows, c < depth, added to out
/// when `accumulate`. A is read through strides: row-major (rowStride = inner, innerStride 1) or
/// transposed (rowStride 1, innerStride = the stored matrix's row length). Serves attention's P·V and
/// the backward's dQ = dS·K, dVᵀ += dOᵀ·P and dKᵀ += Qᵀ·dS. Any depth (the last depth % 8 columns are
/// scalar in the AVX2 build, masked in the AVX-512 one). Returns 0 (writes nothing) when the AVX2+FMA
/// kernels are unavailable.
int sds_accumulate_products(const float *a, ptrdiff_t rowStride, ptrdiff_t innerStride, const float *b, ptrdiff_t ldb,
                            float *out, ptrdiff_t ldo, ptrdiff_t rows, ptrdiff_t inner, ptrdiff_t depth, int accumulate);

/// Softmax backward rows: d[r·ld + j] = scale · p[r·ld + j] · (d[r·ld + j] − Σ_k p[r·ld + k]·d[r·ld + k])
/// for r < rows, j < keys, in place; the dot in float lanes.
void sds_softmax_backward_rows(const float *p, float *d, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t keys, float scale);

/// GEGLU rows: x [rows, 2·width] holds the value half h then the gate half u of each row;
/// out [rows, width] = h · gelu(u), gelu(u) = ½u(1 + erf(u/√2)) (erf: Abramowitz & Stegun 7.1.26,
/// |error| ≤ 1.5e-7, as the engine's Swift erf).
void sds_geglu_forward(const float *x, float *out, ptrdiff_t rows, ptrdiff_t width);

/// GEGLU backward for the same rows: dx[:, :width] = dy · gelu(u), dx[:, width:] = dy · h · gelu′(u)
/// with gelu′(u) = ½(1 + erf(u/√2)) + u·e^(−u²/2)/√(2π). dx [rows, 2·width] is overwritten.
void sds_geglu_backward(const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t width);

/// Σ p[i] in float lanes over blocks of 1024, blocks combined in double (accurate for 10⁵-element
/// normalisation groups without a double conversion per element).
double sds_blocked_sum(const float *p, ptrdiff_t n);

/// Σ (p[i] − mean)² with the same blocking as `sds_blocked_sum`.
double sds_blocked_squared_deviation(const float *p, ptrdiff_t n, float mean);

/// Mean and biased variance of p[0..<n] (n > 0). Rows of up to 1024 elements: two passes (mean, then
/// Σ (x − mean)²). Longer ones: the mean of the first 1024 as a pilot, then one pass of Σ d and Σ d²
/// with d = x − pilot (float lanes per 1024-block, blocks in double); the pilot is close to the mean,
/// so the variance loses nothing to cancellation.
void sds_moments(const float *p, ptrdiff_t n, double *mean, double *variance);

/// y[i] = (x[i] − mean)·scale + shift (normalisation with a per-channel affine folded into scale/shift).
void sds_normalize_affine(const float *x, float *y, ptrdiff_t n, float mean, float scale, float shift);

/// Winograd F(2×2, 3×3) weight transform U = G·g·Gᵀ of the 3×3 kernels of w [outChannels, channels, 3, 3],
/// for result rows begin..<end. Plain: U[k][oc][ch] at u[k·outChannels·channels + oc·channels + ch], rows
/// are output channels. `adjoint`: the transform of the flipped, transposed kernel w'[ch][oc] =
/// rot180(w[oc][ch]) (the kernel of the input gradient's convolution), U[k][ch][oc] at
/// u[k·outChannels·channels + ch·outChannels + oc], rows are input channels. AVX-512 gathers 16 kernels
/// at a time; the other builds are scalar.
void sds_winograd_weights(const float *w, ptrdiff_t outChannels, ptrdiff_t channels, float *u, int adjoint,
                          ptrdiff_t begin, ptrdiff_t end);

/// Winograd F(2×2, 3×3) input transform of one row of `tiles` 4×4 tiles: d points at the tile row's
/// top-left in a padded plane of row stride paddedW (tile tx covers columns 2tx…2tx+3 of rows 0…3);
/// writes V_k for tile tx at v[k·kStride + tx], k < 16. Reads up to 24 floats past the last tile's
/// columns: the caller provides that slack.
void sds_winograd_input_row(const float *d, ptrdiff_t paddedW, ptrdiff_t tiles, float *v, ptrdiff_t kStride);

/// Winograd F(2×2, 3×3) output transform of one row of `tiles` tiles: m holds M_k for tile tx at
/// m[k·kStride + tx]; writes the 2×2 outputs (+ shift) at y[2tx], y[2tx + 1] and, when `twoRows`,
/// y[ldy + 2tx], y[ldy + 2tx + 1], dropping columns at or past `columns` (odd output widths).
void sds_winograd_output_row(const float *m, ptrdiff_t kStride, ptrdiff_t tiles, float shift,
                             float *y, ptrdiff_t ldy, ptrdiff_t columns, int twoRows);

/// Forces the baseline kernels (on ≠ 0) even on AVX2 CPUs, so tests can check both builds of every
/// kernel on one machine; off restores the widest build. Not for concurrent use with running kernels.
void sds_kernels_force_baseline(int on);

/// Caps the builds used at `cap` (0 baseline, 1 AVX2+FMA, 2 AVX-512F), so tests can check every build
/// the machine has. Not for concurrent use with running kernels.
void sds_kernels_cap_level(int cap);

/// The build in use: 0 baseline, 1 AVX2+FMA, 2 AVX-512F (attention, softmax and GEGLU kernels; the
/// others stop at AVX2).
int sds_kernels_level(void);

/// 1 when the AVX2+FMA kernels (or wider) are in use (for the benchmark's report).
int sds_kernels_use_avx2(void);
/// The CPU's vector level for choosing BLAS kernels, whatever the test cap: 2 when it has the
/// AVX-512 F/BW/VL/DQ set of Skylake-X and later, 1 for AVX2 + FMA, 0 otherwise.
int sds_cpu_blas_level(void);

/// glibc only: serve every allocation from the heap (no per-allocation mmap) and never give freed heap
/// memory back to the system, so the large activation buffers a training step frees and allocates again
/// reuse pages that are already mapped instead of faulting in (and zeroing) fresh ones. Returns 1 when
/// both settings took, 0 elsewhere.
int sds_keep_freed_heap_memory(void);
/// glibc's malloc_trim(0): gives the system back the free pages of every arena; 1 if any were released.
int sds_return_freed_heap_memory(void);

#endif
