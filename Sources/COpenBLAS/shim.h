// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). openblas_set_num_threads is declared there too.
#include <cblas.h>
