// Only Sources/Tensor/BLAS.swift imports this module (house style §3).
#include <cblas.h>
// OpenBLAS extensions (declared in OpenBLAS's cblas.h; repeated so other CBLAS headers also work).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
