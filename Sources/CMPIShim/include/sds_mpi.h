#ifndef SDS_MPI_H
#define SDS_MPI_H
// Functions over the MPI calls sdsclip makes. MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and MPI_IN_PLACE are
// macros (pointers to library globals in Open MPI) that Swift cannot import, so they are used here.
// Every call works on MPI_COMM_WORLD; errors come back as MPI error codes (MPI_ERRORS_RETURN is set).

#include <stddef.h>

/// MPI_Init_thread (MPI_THREAD_SERIALIZED: only one thread at a time calls MPI). 0 or an MPI error code.
int sds_mpi_init(int *rank, int *size);
int sds_mpi_finalize(void);
/// Ends every rank of the job (mpirun reports the code); does not return.
void sds_mpi_abort(int code);
/// The text of an MPI error code, into `text` (capacity bytes, NUL-terminated).
void sds_mpi_error_string(int code, char *text, size_t capacity);
/// This host's name as MPI sees it.
void sds_mpi_processor_name(char *text, size_t capacity);

/// A non-blocking in-place sum over all ranks, in flight until `sds_mpi_test` says it is done.
typedef struct sds_mpi_pending sds_mpi_pending;
/// MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_FLOAT/MPI_DOUBLE, MPI_SUM); NULL with *error set on failure.
sds_mpi_pending *sds_mpi_isum_float(float *values, int count, int *error);
sds_mpi_pending *sds_mpi_isum_double(double *values, int count, int *error);
/// MPI_Test: *done = 1 once complete (the pending value is then freed and must not be used again).
/// Returns 0 or an MPI error code.
int sds_mpi_test(sds_mpi_pending *pending, int *done);

#endif
