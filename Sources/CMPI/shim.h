// Open MPI (Debian: libopenmpi-dev, found through pkg-config's ompi-c): `mpirun -np N sdsclip finetune`.
// Swift uses it only through CMPIShim, since MPI's predefined handles are C macros.
#include <mpi.h>
