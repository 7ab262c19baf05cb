// Run-time binding of a CBLAS library. Only the symbols Kinema calls are resolved; a library that lacks
// cblas_sgemm is rejected so the caller can try the next candidate.
#include "CKinema.h"
#include <dlfcn.h>
#include <string.h>

int ckinema_blas_open(const char *library, ckinema_blas *out) {
    memset(out, 0, sizeof(*out));
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) return -1;
    void *sgemm = dlsym(handle, "cblas_sgemm");
    if (sgemm == NULL) {
        dlclose(handle);
        return -2;
    }
    out->handle = handle;
    // Casting void* to function pointers is how POSIX dlsym is meant to be used.
    out->sgemm = (ckinema_cblas_sgemm_fn)sgemm;
    out->set_num_threads = (ckinema_blas_set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    out->get_config = (ckinema_blas_config_fn)dlsym(handle, "openblas_get_config");
    dlerror(); // the optional lookups may have failed; do not leave a stale message behind
    return 0;
}
