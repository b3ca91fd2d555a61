#include "sds_mpi.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

struct sds_mpi_pending {
    MPI_Request request;
};

int sds_mpi_init(int *rank, int *size) {
    int provided = 0;
    int status = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (status != MPI_SUCCESS) return status;
    // Errors are returned to the caller, who names the collective and the step, instead of ending the job here.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    status = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (status != MPI_SUCCESS) return status;
    return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int sds_mpi_finalize(void) { return MPI_Finalize(); }

void sds_mpi_abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    abort();  // not reached: MPI_Abort ends the process
}

void sds_mpi_error_string(int code, char *text, size_t capacity) {
    if (capacity == 0) return;
    char buffer[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, buffer, &length) != MPI_SUCCESS) length = 0;
    if ((size_t)length >= capacity) length = (int)capacity - 1;
    memcpy(text, buffer, (size_t)length);
    text[length] = 0;
}

void sds_mpi_processor_name(char *text, size_t capacity) {
    if (capacity == 0) return;
    char buffer[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    if (MPI_Get_processor_name(buffer, &length) != MPI_SUCCESS) length = 0;
    if ((size_t)length >= capacity) length = (int)capacity - 1;
    memcpy(text, buffer, (size_t)length);
    text[length] = 0;
}

static sds_mpi_pending *start(void *values, int count, MPI_Datatype type, int *error) {
    sds_mpi_pending *pending = malloc(sizeof *pending);
    if (pending == NULL) {
        *error = MPI_ERR_NO_MEM;
        return NULL;
    }
    *error = MPI_Iallreduce(MPI_IN_PLACE, values, count, type, MPI_SUM, MPI_COMM_WORLD, &pending->request);
    if (*error != MPI_SUCCESS) {
        free(pending);
        return NULL;
    }
    return pending;
}

sds_mpi_pending *sds_mpi_isum_float(float *values, int count, int *error) { return start(values, count, MPI_FLOAT, error); }
sds_mpi_pending *sds_mpi_isum_double(double *values, int count, int *error) { return start(values, count, MPI_DOUBLE, error); }

int sds_mpi_test(sds_mpi_pending *pending, int *done) {
    int flag = 0;
    int status = MPI_Test(&pending->request, &flag, MPI_STATUS_IGNORE);
    *done = flag;
    if (flag) free(pending);
    return status;
}
