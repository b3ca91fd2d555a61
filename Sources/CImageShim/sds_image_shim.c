// setjmp-based error handling for libjpeg-turbo and libpng (see the header for why).
// Locals that change between setjmp and a longjmp live in a context struct reached through
// a pointer, so they are in memory (not registers) when the jump lands.
#include "sds_image_shim.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

static void copy_message(char *dst, size_t capacity, const char *src) {
    if (dst == NULL || capacity == 0) return;
    snprintf(dst, capacity, "%s", src != NULL ? src : "unknown error");
}

void sds_image_free(sds_decoded_image *image) {
    if (image == NULL) return;
    free(image->pixels);
    image->pixels = NULL;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr base;  // must be first: libjpeg hands us a pointer to it
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_error_context;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_error_context *context = (jpeg_error_context *)cinfo->err;
    cinfo->err->format_message(cinfo, context->message);
    longjmp(context->jump, 1);
}

// libjpeg reports damaged entropy data and truncation as warnings and then substitutes
// grey pixels; Pillow refuses such files, and a partial image must never be returned.
static void jpeg_message(j_common_ptr cinfo, int level) {
    if (level != -1) return;  // trace messages
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_HUFF_BAD_CODE:
        jpeg_fail(cinfo);
        break;
    default:
        break;  // benign (extraneous bytes, odd JFIF version, bad ICC marker, ...)
    }
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_context error;
    uint8_t *pixels;
    sds_image_status failure;
} jpeg_context;

// Pillow reads CMYK JPEGs as "CMYK;I" (Adobe's inverted storage), then converts to RGB with
// nk = 255 − K, R = clip(nk − C·nk/255) (its MULDIV255 rounding). Stored values s give C = 255 − s.
static void cmyk_row_to_rgb(uint8_t *row, unsigned width) {
    for (unsigned x = 0; x < width; x++) {
        const uint8_t *in = row + 4 * (size_t)x;
        int nk = in[3];   // 255 − K with K = 255 − stored
        uint8_t rgb[3];
        for (int channel = 0; channel < 3; channel++) {
            int c = 255 - in[channel];
            int product = c * nk + 128;
            int scaled = ((product >> 8) + product) >> 8;
            int value = nk - scaled;
            rgb[channel] = (uint8_t)(value < 0 ? 0 : (value > 255 ? 255 : value));
        }
        memcpy(row + 3 * (size_t)x, rgb, 3);
    }
}

sds_image_status sds_decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels,
                                 sds_decoded_image *out, char *message, size_t message_capacity) {
    memset(out, 0, sizeof(*out));
    jpeg_context *ctx = calloc(1, sizeof(jpeg_context));
    if (ctx == NULL) return SDS_IMAGE_OUT_OF_MEMORY;
    ctx->failure = SDS_IMAGE_CORRUPT;

    ctx->cinfo.err = jpeg_std_error(&ctx->error.base);
    ctx->error.base.error_exit = jpeg_fail;
    ctx->error.base.emit_message = jpeg_message;
    if (setjmp(ctx->error.jump)) {
        sds_image_status status = ctx->failure;
        copy_message(message, message_capacity, ctx->error.message);
        jpeg_destroy_decompress(&ctx->cinfo);
        free(ctx->pixels);
        free(ctx);
        return status;
    }
    jpeg_create_decompress(&ctx->cinfo);
    jpeg_mem_src(&ctx->cinfo, data, (unsigned long)size);
    jpeg_read_header(&ctx->cinfo, TRUE);

    // CMYK and YCCK JPEGs (print workflows) decode to CMYK and are converted as Pillow does.
    int cmyk = ctx->cinfo.jpeg_color_space == JCS_CMYK || ctx->cinfo.jpeg_color_space == JCS_YCCK;
    uint64_t pixel_count = (uint64_t)ctx->cinfo.image_width * ctx->cinfo.image_height;
    if (pixel_count > max_pixels) {
        ctx->failure = SDS_IMAGE_TOO_LARGE;
        snprintf(ctx->error.message, sizeof(ctx->error.message),
                 "%ux%u pixels exceeds the limit of %llu", ctx->cinfo.image_width,
                 ctx->cinfo.image_height, (unsigned long long)max_pixels);
        longjmp(ctx->error.jump, 1);
    }
    // Library defaults (islow IDCT, fancy upsampling) are what Pillow uses.
    ctx->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&ctx->cinfo);
    if (ctx->cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(ctx->error.message, sizeof(ctx->error.message),
                 "decoder produced %d components, expected 3", ctx->cinfo.output_components);
        longjmp(ctx->error.jump, 1);
    }
    size_t stride = (size_t)ctx->cinfo.output_width * 3;
    // CMYK scanlines are 4 bytes a pixel; each is converted to RGB in place, front to back.
    ctx->pixels = malloc(stride * ctx->cinfo.output_height + (size_t)ctx->cinfo.output_width + 1);
    if (ctx->pixels == NULL) {
        ctx->failure = SDS_IMAGE_OUT_OF_MEMORY;
        snprintf(ctx->error.message, sizeof(ctx->error.message), "out of memory");
        longjmp(ctx->error.jump, 1);
    }
    while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
        JSAMPROW row = ctx->pixels + stride * ctx->cinfo.output_scanline;
        if (jpeg_read_scanlines(&ctx->cinfo, &row, 1) != 1) {
            snprintf(ctx->error.message, sizeof(ctx->error.message), "decoder stalled");
            longjmp(ctx->error.jump, 1);
        }
        if (cmyk) cmyk_row_to_rgb(row, ctx->cinfo.output_width);
    }
    jpeg_finish_decompress(&ctx->cinfo);

    out->width = ctx->cinfo.output_width;
    out->height = ctx->cinfo.output_height;
    out->channels = 3;
    out->indexed = 0;
    out->pixels = ctx->pixels;
    jpeg_destroy_decompress(&ctx->cinfo);
    free(ctx);
    return SDS_IMAGE_OK;
}

// MARK: - PNG

typedef struct {
    jmp_buf jump;
    char message[256];
    sds_image_status failure;
    const uint8_t *data;
    size_t size;
    size_t offset;
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
} png_context;

static void png_fail(png_structp png, png_const_charp text) {
    png_context *ctx = (png_context *)png_get_error_ptr(png);
    copy_message(ctx->message, sizeof(ctx->message), text);
    longjmp(ctx->jump, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_from_memory(png_structp png, png_bytep destination, size_t length) {
    png_context *ctx = (png_context *)png_get_io_ptr(png);
    if (length > ctx->size - ctx->offset) {
        png_error(png, "unexpected end of data (file truncated)");
    }
    memcpy(destination, ctx->data + ctx->offset, length);
    ctx->offset += length;
}

sds_image_status sds_decode_png(const uint8_t *data, size_t size, uint64_t max_pixels,
                                sds_decoded_image *out, char *message, size_t message_capacity) {
    memset(out, 0, sizeof(*out));
    png_context *ctx = calloc(1, sizeof(png_context));
    if (ctx == NULL) return SDS_IMAGE_OUT_OF_MEMORY;
    ctx->failure = SDS_IMAGE_CORRUPT;
    ctx->data = data;
    ctx->size = size;

    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_fail, png_ignore_warning);
    if (ctx->png != NULL) ctx->info = png_create_info_struct(ctx->png);
    if (ctx->png == NULL || ctx->info == NULL) {
        png_destroy_read_struct(&ctx->png, &ctx->info, NULL);
        free(ctx);
        copy_message(message, message_capacity, "out of memory");
        return SDS_IMAGE_OUT_OF_MEMORY;
    }
    if (setjmp(ctx->jump)) {
        sds_image_status status = ctx->failure;
        copy_message(message, message_capacity, ctx->message);
        png_destroy_read_struct(&ctx->png, &ctx->info, NULL);
        free(ctx->rows);
        free(ctx->pixels);
        free(ctx);
        return status;
    }
    png_set_read_fn(ctx->png, ctx, png_read_from_memory);
    png_read_info(ctx->png, ctx->info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(ctx->png, ctx->info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);
    if ((uint64_t)width * height > max_pixels) {
        ctx->failure = SDS_IMAGE_TOO_LARGE;
        snprintf(ctx->message, sizeof(ctx->message), "%ux%u pixels exceeds the limit of %llu",
                 (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        longjmp(ctx->jump, 1);
    }
    // Pillow keeps alpha only for real alpha channels (modes LA/RGBA); tRNS is metadata.
    int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    int indexed = color_type == PNG_COLOR_TYPE_PALETTE ||
                  (color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 1);
    if (bit_depth == 16) png_set_strip_16(ctx->png);  // high byte, like Pillow's "RGB;16B"
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(ctx->png);
    png_set_interlace_handling(ctx->png);
    png_read_update_info(ctx->png, ctx->info);

    png_byte channels = png_get_channels(ctx->png, ctx->info);
    size_t row_bytes = png_get_rowbytes(ctx->png, ctx->info);
    if ((channels != 3 && channels != 4) || row_bytes != (size_t)width * channels) {
        ctx->failure = SDS_IMAGE_UNSUPPORTED;
        snprintf(ctx->message, sizeof(ctx->message),
                 "unexpected PNG layout after conversion (%u channels, %zu bytes per row)",
                 (unsigned)channels, row_bytes);
        longjmp(ctx->jump, 1);
    }
    ctx->pixels = malloc(row_bytes * height + 1);
    ctx->rows = malloc(sizeof(png_bytep) * (height + 1));
    if (ctx->pixels == NULL || ctx->rows == NULL) {
        ctx->failure = SDS_IMAGE_OUT_OF_MEMORY;
        snprintf(ctx->message, sizeof(ctx->message), "out of memory");
        longjmp(ctx->jump, 1);
    }
    for (png_uint_32 y = 0; y < height; y++) ctx->rows[y] = ctx->pixels + row_bytes * y;
    png_read_image(ctx->png, ctx->rows);
    png_read_end(ctx->png, NULL);

    uint32_t kept_channels = channels;
    if (channels == 4 && !has_alpha) {
        // Palette tRNS was expanded into an alpha channel: drop it in place.
        size_t count = (size_t)width * height;
        for (size_t i = 0; i < count; i++) {
            memmove(ctx->pixels + i * 3, ctx->pixels + i * 4, 3);
        }
        kept_channels = 3;
    }
    out->width = width;
    out->height = height;
    out->channels = kept_channels;
    out->indexed = (uint32_t)indexed;
    out->pixels = ctx->pixels;
    png_destroy_read_struct(&ctx->png, &ctx->info, NULL);
    free(ctx->rows);
    free(ctx);
    return SDS_IMAGE_OK;
}
