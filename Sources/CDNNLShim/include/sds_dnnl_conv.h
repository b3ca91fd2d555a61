// bf16 convolutions through oneDNN (forward and backward-data) on float32 NCHW tensors, for the
// frozen convolution weights of a model running under `--precision bf16`. oneDNN picks its own
// activation and weight layouts (blocked/NHWC for AVX512-BF16 and AMX); the conversions to and
// from NCHW float32 are oneDNN reorders inside the calls, and the weights are reordered once.
#ifndef SDS_DNNL_CONV_H
#define SDS_DNNL_CONV_H
#include <dnnl.h>
#include <stdint.h>

/// One convolution shape (batch, channels, size, kernel, stride, padding) with its primitives.
typedef struct sds_dnnl_conv sds_dnnl_conv;

typedef struct {
    int64_t batch, channels, height, width;          // input, NCHW
    int64_t outputs, kernel_h, kernel_w;             // weights OIHW
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
} sds_dnnl_conv_shape;

/// Creates the forward primitive and reorders `weights_oihw` (bf16 bit patterns, O·C·kh·kw) into its
/// layout (an owned copy: the caller's array may go away). with_bias:
/// the forward adds a float32 bias [O]. On failure *out is NULL and the status says why.
dnnl_status_t sds_dnnl_conv_create(dnnl_engine_t engine, const sds_dnnl_conv_shape *shape,
                                   const uint16_t *weights_oihw, int with_bias, sds_dnnl_conv **out);

/// As sds_dnnl_conv_create for another input shape of the same weights, reading them from `source`'s
/// resident copy (so the OIHW array need not be kept). dnnl_invalid_arguments when the weight
/// dimensions differ.
dnnl_status_t sds_dnnl_conv_create_like(dnnl_engine_t engine, const sds_dnnl_conv_shape *shape,
                                        const sds_dnnl_conv *source, int with_bias, sds_dnnl_conv **out);

/// Writes the resident weights back as OIHW bf16 bit patterns (O·C·kh·kw values).
dnnl_status_t sds_dnnl_conv_copy_weights(const sds_dnnl_conv *conv, uint16_t *weights_oihw);

/// dst [N, O, OH, OW] float32 NCHW = conv(bf16(src [N, C, H, W] float32 NCHW), weights) (+ bias).
dnnl_status_t sds_dnnl_conv_forward(sds_dnnl_conv *conv, dnnl_stream_t stream, const float *src,
                                    const float *bias, float *dst);

/// diff_src [N, C, H, W] float32 = the input gradient for diff_dst [N, O, OH, OW] float32 (rounded to
/// bf16), with the same bf16 weights. The backward primitive is made on first use; its weight layout
/// is reordered from the forward copy for each call (transient), so no second copy stays resident.
dnnl_status_t sds_dnnl_conv_backward_data(sds_dnnl_conv *conv, dnnl_stream_t stream, const float *diff_dst,
                                          float *diff_src);

/// Bytes of oneDNN's resident weight copy.
size_t sds_dnnl_conv_weight_bytes(const sds_dnnl_conv *conv);

void sds_dnnl_conv_destroy(sds_dnnl_conv *conv);

/// 1 when oneDNN's effective ISA includes AMX (bf16 tiles), else 0.
int sds_dnnl_has_amx(void);

#endif
