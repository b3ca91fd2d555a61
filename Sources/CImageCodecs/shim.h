// libjpeg-turbo and libpng (Debian: libjpeg62-turbo-dev, libpng-dev).
#include <stdio.h>
#include <jpeglib.h>
#include <png.h>
