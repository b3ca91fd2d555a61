#define _GNU_SOURCE
#include "sds_openmp.h"
#include <dlfcn.h>

int sds_openmp_set_threads(int count) {
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (!set) return 0;
    set(count);
    return 1;
}

int sds_openmp_max_threads(void) {
    int (*get)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    return get ? get() : 0;
}
