// Tiny C shim around libjpeg-turbo and libpng. Both libraries report fatal errors by
// calling a handler that must not return; that needs setjmp/longjmp, which Swift cannot
// express. Every entry point here returns a status code instead and never exits.
#ifndef SDS_IMAGE_SHIM_H
#define SDS_IMAGE_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SDS_IMAGE_OK = 0,
    SDS_IMAGE_CORRUPT = 1,      // the library rejected the data (message says why)
    SDS_IMAGE_UNSUPPORTED = 2,  // valid file, but a variant we do not decode (e.g. CMYK JPEG)
    SDS_IMAGE_TOO_LARGE = 3,    // width * height exceeds the caller's pixel limit
    SDS_IMAGE_OUT_OF_MEMORY = 4,
} sds_image_status;

/// Decoded 8-bit pixels, interleaved. `channels` is 3 (RGB) or 4 (RGB + straight alpha).
typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    /// 1 when the source was palette-indexed or 1-bit (Pillow opens these as "P"/"1" and
    /// resizes them with nearest neighbour).
    uint32_t indexed;
    uint8_t *pixels;  // malloc'ed; release with sds_image_free
} sds_decoded_image;

/// Decodes a baseline or progressive JPEG to RGB. Grayscale is expanded to RGB;
/// CMYK/YCCK return SDS_IMAGE_UNSUPPORTED. Corrupt-data warnings are treated as errors.
sds_image_status sds_decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels,
                                 sds_decoded_image *out, char *message, size_t message_capacity);

/// Decodes a PNG to RGB, or RGBA when the file has an alpha channel (colour types 4 and 6).
/// 16-bit samples keep their high byte; palette and tRNS transparency is dropped; no gamma
/// correction is applied (all as Pillow does).
sds_image_status sds_decode_png(const uint8_t *data, size_t size, uint64_t max_pixels,
                                sds_decoded_image *out, char *message, size_t message_capacity);

void sds_image_free(sds_decoded_image *image);

#endif
