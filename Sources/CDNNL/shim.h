// oneDNN's C API (Debian: libdnnl-dev 2.6, OpenMP threading runtime), plus two small helpers that keep
// its fixed-size dims arrays and memory-descriptor structs out of Swift. Used by Tensors' bf16 GEMM.
#include <dnnl.h>

/// Creates the matmul dst[m×n] (f32) = src[m×k] · B, src row-major (`type`), accumulating in f32, with the
/// k×n matrix B held as weights stored n×k row-major (B = Wᵀ, layout "ba": a linear layer's forward) or,
/// when `weights_k_by_n`, stored k×n row-major (layout "ab": the same weight's input gradient g·W).
/// type: dnnl_bf16 or dnnl_f32.
static inline dnnl_status_t sds_dnnl_matmul_create(dnnl_engine_t engine, int64_t m, int64_t n, int64_t k,
                                                   dnnl_data_type_t type, int weights_k_by_n, dnnl_primitive_t *primitive) {
    dnnl_memory_desc_t src, weights, dst;
    dnnl_dims_t srcDims = {m, k}, weightDims = {k, n}, dstDims = {m, n};
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_tag(&src, 2, srcDims, type, dnnl_ab)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&weights, 2, weightDims, type, weights_k_by_n ? dnnl_ab : dnnl_ba)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&dst, 2, dstDims, dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &src, &weights, NULL, &dst)) != dnnl_success) return status;
    dnnl_primitive_desc_t pd;
    if ((status = dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL)) != dnnl_success) return status;
    status = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    return status;
}

/// Runs a primitive from `sds_dnnl_matmul_create` on caller-owned buffers (wrapped, not copied) and waits.
static inline dnnl_status_t sds_dnnl_matmul_run(dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream,
                                                int64_t m, int64_t n, int64_t k, dnnl_data_type_t type, int weights_k_by_n,
                                                const void *src, const void *weights, float *dst) {
    dnnl_memory_desc_t srcDesc, weightDesc, dstDesc;
    dnnl_dims_t srcDims = {m, k}, weightDims = {k, n}, dstDims = {m, n};
    dnnl_memory_desc_init_by_tag(&srcDesc, 2, srcDims, type, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&weightDesc, 2, weightDims, type, weights_k_by_n ? dnnl_ab : dnnl_ba);
    dnnl_memory_desc_init_by_tag(&dstDesc, 2, dstDims, dnnl_f32, dnnl_ab);
    dnnl_memory_t memories[3] = {NULL, NULL, NULL};
    dnnl_status_t status = dnnl_memory_create(&memories[0], &srcDesc, engine, (void *)src);
    if (status == dnnl_success) status = dnnl_memory_create(&memories[1], &weightDesc, engine, (void *)weights);
    if (status == dnnl_success) status = dnnl_memory_create(&memories[2], &dstDesc, engine, dst);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, memories[0]}, {DNNL_ARG_WEIGHTS, memories[1]}, {DNNL_ARG_DST, memories[2]}};
        status = dnnl_primitive_execute(primitive, stream, 3, args);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
    }
    for (int i = 0; i < 3; i++) if (memories[i]) dnnl_memory_destroy(memories[i]);
    return status;
}
