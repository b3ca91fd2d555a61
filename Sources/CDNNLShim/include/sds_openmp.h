// oneDNN's thread team is libgomp's (Debian builds oneDNN with OpenMP). Its size is an OpenMP setting
// of the calling thread, separate from sdsclip's own worker count; these calls reach libgomp through the
// already loaded library (dlsym), so nothing links against libgomp directly.
#ifndef SDS_OPENMP_H
#define SDS_OPENMP_H

/// Sets the calling thread's OpenMP team size (omp_set_num_threads). Returns 0 when no OpenMP runtime is loaded.
int sds_openmp_set_threads(int count);

/// The calling thread's OpenMP team size (omp_get_max_threads), or 0 when no OpenMP runtime is loaded.
int sds_openmp_max_threads(void);

#endif
