#include "sds_dnnl_conv.h"
#include <stdlib.h>
#include <string.h>

struct sds_dnnl_conv {
    dnnl_engine_t engine;
    sds_dnnl_conv_shape shape;
    int with_bias;
    dnnl_memory_desc_t user_src, user_dst, user_weights, bias;   // plain NCHW f32, OIHW bf16, [O] f32
    // forward
    dnnl_primitive_t forward, src_to_conv, conv_to_dst;
    dnnl_memory_desc_t conv_src, conv_weights, conv_dst;
    dnnl_memory_t weights;
    dnnl_primitive_desc_t forward_pd;
    // backward data, created on first use
    dnnl_primitive_t backward, diff_dst_to_conv, conv_to_diff_src;
    dnnl_memory_desc_t conv_diff_dst, conv_bwd_weights, conv_diff_src;
    // The backward's weight layout, made per call from the forward copy (NULL: it reads that copy):
    // a transient reorder instead of a second resident copy of every convolution weight.
    dnnl_primitive_t forward_to_bwd_weights;
};

#define CHECK(call) do { dnnl_status_t status_ = (call); if (status_ != dnnl_success) return status_; } while (0)

static void output_size(const sds_dnnl_conv_shape *s, int64_t *oh, int64_t *ow) {
    *oh = (s->height + s->pad_top + s->pad_bottom - s->kernel_h) / s->stride_h + 1;
    *ow = (s->width + s->pad_left + s->pad_right - s->kernel_w) / s->stride_w + 1;
}

/// A reorder primitive between two descriptors, or NULL (no error) when they are equal.
static dnnl_status_t make_reorder(dnnl_engine_t engine, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                  dnnl_primitive_t *out) {
    *out = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL));
    dnnl_status_t status = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return status;
}

/// Runs `reorder` from `from` to a new memory of `to`'s layout (or wraps `data` when no reorder is needed).
static dnnl_status_t reordered(dnnl_engine_t engine, dnnl_stream_t stream, dnnl_primitive_t reorder,
                               const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, const void *data,
                               dnnl_memory_t *out) {
    *out = NULL;
    if (!reorder) return dnnl_memory_create(out, from, engine, (void *)data);
    dnnl_memory_t source;
    CHECK(dnnl_memory_create(&source, from, engine, (void *)data));
    dnnl_status_t status = dnnl_memory_create(out, to, engine, DNNL_MEMORY_ALLOCATE);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, *out}};
        status = dnnl_primitive_execute(reorder, stream, 2, args);
    }
    dnnl_memory_destroy(source);
    if (status != dnnl_success && *out) { dnnl_memory_destroy(*out); *out = NULL; }
    return status;
}

/// A weight memory of layout `to` holding the bf16 weights `weights` laid out as `user`.
static dnnl_status_t weights_in(dnnl_engine_t engine, const dnnl_memory_desc_t *user, const dnnl_memory_desc_t *to,
                                const void *weights, dnnl_memory_t *out) {
    dnnl_stream_t stream;
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    dnnl_primitive_t reorder = NULL;
    dnnl_status_t status = make_reorder(engine, user, to, &reorder);
    if (status == dnnl_success && !reorder) {
        // Same layout: an owned copy, so the caller's array may go away.
        status = dnnl_memory_create(out, to, engine, DNNL_MEMORY_ALLOCATE);
        void *handle = NULL;
        if (status == dnnl_success) status = dnnl_memory_get_data_handle(*out, &handle);
        if (status == dnnl_success) memcpy(handle, weights, dnnl_memory_desc_get_size(to));
    } else if (status == dnnl_success) {
        status = reordered(engine, stream, reorder, user, to, weights, out);
    }
    if (status == dnnl_success) status = dnnl_stream_wait(stream);
    if (reorder) dnnl_primitive_destroy(reorder);
    dnnl_stream_destroy(stream);
    return status;
}

/// from: the layout of `weights` (NULL: OIHW bf16).
static dnnl_status_t create(sds_dnnl_conv *c, const dnnl_memory_desc_t *from, const void *weights) {
    const sds_dnnl_conv_shape *s = &c->shape;
    int64_t oh, ow;
    output_size(s, &oh, &ow);
    dnnl_dims_t src = {s->batch, s->channels, s->height, s->width}, dst = {s->batch, s->outputs, oh, ow};
    dnnl_dims_t wei = {s->outputs, s->channels, s->kernel_h, s->kernel_w}, bias = {s->outputs};
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    CHECK(dnnl_memory_desc_init_by_tag(&c->user_src, 4, src, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&c->user_dst, 4, dst, dnnl_f32, dnnl_nchw));
    CHECK(dnnl_memory_desc_init_by_tag(&c->user_weights, 4, wei, dnnl_bf16, dnnl_oihw));
    CHECK(dnnl_memory_desc_init_by_tag(&c->bias, 1, bias, dnnl_f32, dnnl_x));
    dnnl_memory_desc_t any_src, any_wei, any_dst;
    CHECK(dnnl_memory_desc_init_by_tag(&any_src, 4, src, dnnl_bf16, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_wei, 4, wei, dnnl_bf16, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_dst, 4, dst, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t desc;
    CHECK(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, dnnl_convolution_direct, &any_src, &any_wei,
                                             c->with_bias ? &c->bias : NULL, &any_dst, strides, pad_l, pad_r));
    CHECK(dnnl_primitive_desc_create(&c->forward_pd, &desc, NULL, c->engine, NULL));
    c->conv_src = *dnnl_primitive_desc_query_md(c->forward_pd, dnnl_query_src_md, 0);
    c->conv_weights = *dnnl_primitive_desc_query_md(c->forward_pd, dnnl_query_weights_md, 0);
    c->conv_dst = *dnnl_primitive_desc_query_md(c->forward_pd, dnnl_query_dst_md, 0);
    CHECK(dnnl_primitive_create(&c->forward, c->forward_pd));
    CHECK(make_reorder(c->engine, &c->user_src, &c->conv_src, &c->src_to_conv));
    CHECK(make_reorder(c->engine, &c->conv_dst, &c->user_dst, &c->conv_to_dst));
    if (from && !dnnl_memory_desc_equal(from, &c->user_weights)) {
        // Any layout of the same O, C, kh, kw bf16 weights.
        if (from->ndims != 4 || from->data_type != dnnl_bf16) return dnnl_invalid_arguments;
        for (int i = 0; i < 4; i++) if (from->dims[i] != wei[i]) return dnnl_invalid_arguments;
    }
    return weights_in(c->engine, from ? from : &c->user_weights, &c->conv_weights, weights, &c->weights);
}

static dnnl_status_t make(dnnl_engine_t engine, const sds_dnnl_conv_shape *shape, const dnnl_memory_desc_t *from,
                          const void *weights, int with_bias, sds_dnnl_conv **out) {
    *out = NULL;
    sds_dnnl_conv *c = calloc(1, sizeof *c);
    if (!c) return dnnl_out_of_memory;
    c->engine = engine;
    c->shape = *shape;
    c->with_bias = with_bias;
    dnnl_status_t status = create(c, from, weights);
    if (status != dnnl_success) { sds_dnnl_conv_destroy(c); return status; }
    *out = c;
    return dnnl_success;
}

dnnl_status_t sds_dnnl_conv_create(dnnl_engine_t engine, const sds_dnnl_conv_shape *shape,
                                   const uint16_t *weights_oihw, int with_bias, sds_dnnl_conv **out) {
    return make(engine, shape, NULL, weights_oihw, with_bias, out);
}

dnnl_status_t sds_dnnl_conv_create_like(dnnl_engine_t engine, const sds_dnnl_conv_shape *shape,
                                        const sds_dnnl_conv *source, int with_bias, sds_dnnl_conv **out) {
    *out = NULL;
    if (shape->outputs != source->shape.outputs || shape->channels != source->shape.channels
        || shape->kernel_h != source->shape.kernel_h || shape->kernel_w != source->shape.kernel_w)
        return dnnl_invalid_arguments;
    void *weights = NULL;
    CHECK(dnnl_memory_get_data_handle(source->weights, &weights));
    return make(engine, shape, &source->conv_weights, weights, with_bias, out);
}

dnnl_status_t sds_dnnl_conv_copy_weights(const sds_dnnl_conv *c, uint16_t *weights_oihw) {
    void *weights = NULL;
    CHECK(dnnl_memory_get_data_handle(c->weights, &weights));
    if (dnnl_memory_desc_equal(&c->conv_weights, &c->user_weights)) {
        memcpy(weights_oihw, weights, dnnl_memory_desc_get_size(&c->user_weights));
        return dnnl_success;
    }
    dnnl_stream_t stream;
    CHECK(dnnl_stream_create(&stream, c->engine, dnnl_stream_default_flags));
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t source = NULL, target = NULL;
    dnnl_status_t status = make_reorder(c->engine, &c->conv_weights, &c->user_weights, &reorder);
    if (status == dnnl_success) status = dnnl_memory_create(&source, &c->conv_weights, c->engine, weights);
    if (status == dnnl_success) status = dnnl_memory_create(&target, &c->user_weights, c->engine, weights_oihw);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, target}};
        status = dnnl_primitive_execute(reorder, stream, 2, args);
    }
    if (status == dnnl_success) status = dnnl_stream_wait(stream);
    if (source) dnnl_memory_destroy(source);
    if (target) dnnl_memory_destroy(target);
    if (reorder) dnnl_primitive_destroy(reorder);
    dnnl_stream_destroy(stream);
    return status;
}

/// dst (user layout) from the primitive's output memory.
static dnnl_status_t finish(sds_dnnl_conv *c, dnnl_stream_t stream, dnnl_primitive_t reorder, dnnl_memory_t result,
                            const dnnl_memory_desc_t *user, void *out) {
    dnnl_status_t status = dnnl_success;
    if (reorder) {
        dnnl_memory_t target;
        CHECK(dnnl_memory_create(&target, user, c->engine, out));
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, result}, {DNNL_ARG_TO, target}};
        status = dnnl_primitive_execute(reorder, stream, 2, args);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
        dnnl_memory_destroy(target);
    } else {
        status = dnnl_stream_wait(stream);
    }
    return status;
}

dnnl_status_t sds_dnnl_conv_forward(sds_dnnl_conv *c, dnnl_stream_t stream, const float *src, const float *bias,
                                    float *dst) {
    dnnl_memory_t source = NULL, result = NULL, bias_memory = NULL;
    dnnl_status_t status = reordered(c->engine, stream, c->src_to_conv, &c->user_src, &c->conv_src, src, &source);
    if (status == dnnl_success)
        status = c->conv_to_dst ? dnnl_memory_create(&result, &c->conv_dst, c->engine, DNNL_MEMORY_ALLOCATE)
                                : dnnl_memory_create(&result, &c->conv_dst, c->engine, dst);
    if (status == dnnl_success && c->with_bias) status = dnnl_memory_create(&bias_memory, &c->bias, c->engine, (void *)bias);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, source}, {DNNL_ARG_WEIGHTS, c->weights}, {DNNL_ARG_DST, result},
                                   {DNNL_ARG_BIAS, bias_memory}};
        status = dnnl_primitive_execute(c->forward, stream, c->with_bias ? 4 : 3, args);
    }
    if (status == dnnl_success) status = finish(c, stream, c->conv_to_dst, result, &c->user_dst, dst);
    if (source) dnnl_memory_destroy(source);
    if (result) dnnl_memory_destroy(result);
    if (bias_memory) dnnl_memory_destroy(bias_memory);
    return status;
}

static dnnl_status_t create_backward(sds_dnnl_conv *c) {
    const sds_dnnl_conv_shape *s = &c->shape;
    dnnl_memory_desc_t any_diff_src, any_wei, any_diff_dst;
    CHECK(dnnl_memory_desc_init_by_tag(&any_diff_src, 4, c->user_src.dims, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_wei, 4, c->user_weights.dims, dnnl_bf16, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_diff_dst, 4, c->user_dst.dims, dnnl_bf16, dnnl_format_tag_any));
    dnnl_dims_t strides = {s->stride_h, s->stride_w}, pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    dnnl_convolution_desc_t desc;
    CHECK(dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &any_diff_src, &any_wei, &any_diff_dst,
                                                   strides, pad_l, pad_r));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, c->engine, c->forward_pd));
    c->conv_diff_src = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    c->conv_bwd_weights = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    c->conv_diff_dst = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    dnnl_status_t status = dnnl_primitive_create(&c->backward, pd);
    dnnl_primitive_desc_destroy(pd);
    CHECK(status);
    dnnl_memory_desc_t user_diff_dst = c->user_dst;
    user_diff_dst.data_type = dnnl_f32;
    CHECK(make_reorder(c->engine, &user_diff_dst, &c->conv_diff_dst, &c->diff_dst_to_conv));
    CHECK(make_reorder(c->engine, &c->conv_diff_src, &c->user_src, &c->conv_to_diff_src));
    return make_reorder(c->engine, &c->conv_weights, &c->conv_bwd_weights, &c->forward_to_bwd_weights);
}

dnnl_status_t sds_dnnl_conv_backward_data(sds_dnnl_conv *c, dnnl_stream_t stream, const float *diff_dst,
                                          float *diff_src) {
    if (!c->backward) {
        dnnl_status_t status = create_backward(c);
        if (status != dnnl_success) {
            if (c->backward) { dnnl_primitive_destroy(c->backward); c->backward = NULL; }
            return status;
        }
    }
    dnnl_memory_t gradient = NULL, result = NULL, weights = NULL;
    void *forward_weights = NULL;
    dnnl_status_t status = dnnl_memory_get_data_handle(c->weights, &forward_weights);
    if (status == dnnl_success)
        status = reordered(c->engine, stream, c->forward_to_bwd_weights, &c->conv_weights, &c->conv_bwd_weights, forward_weights, &weights);
    if (status == dnnl_success)
        status = reordered(c->engine, stream, c->diff_dst_to_conv, &c->user_dst, &c->conv_diff_dst, diff_dst, &gradient);
    if (status == dnnl_success)
        status = c->conv_to_diff_src ? dnnl_memory_create(&result, &c->conv_diff_src, c->engine, DNNL_MEMORY_ALLOCATE)
                                     : dnnl_memory_create(&result, &c->conv_diff_src, c->engine, diff_src);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, gradient}, {DNNL_ARG_WEIGHTS, weights},
                                   {DNNL_ARG_DIFF_SRC, result}};
        status = dnnl_primitive_execute(c->backward, stream, 3, args);
    }
    if (status == dnnl_success) status = finish(c, stream, c->conv_to_diff_src, result, &c->user_src, diff_src);
    if (gradient) dnnl_memory_destroy(gradient);
    if (result) dnnl_memory_destroy(result);
    if (weights) dnnl_memory_destroy(weights);
    return status;
}

size_t sds_dnnl_conv_weight_bytes(const sds_dnnl_conv *c) { return dnnl_memory_desc_get_size(&c->conv_weights); }

void sds_dnnl_conv_destroy(sds_dnnl_conv *c) {
    if (!c) return;
    dnnl_primitive_t primitives[7] = {c->forward, c->src_to_conv, c->conv_to_dst, c->backward, c->diff_dst_to_conv,
                                      c->conv_to_diff_src, c->forward_to_bwd_weights};
    for (int i = 0; i < 7; i++) if (primitives[i]) dnnl_primitive_destroy(primitives[i]);
    if (c->weights) dnnl_memory_destroy(c->weights);
    if (c->forward_pd) dnnl_primitive_desc_destroy(c->forward_pd);
    free(c);
}

int sds_dnnl_has_amx(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
}
