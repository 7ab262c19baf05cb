// C shim: every system library Kinema uses beyond libc is reached through dlopen/dlsym at run time, so the
// package builds and tests on machines that lack it (no BLAS, no CUDA). Swift sees only these prefixed
// functions and opaque handles.
#ifndef CKINEMA_H
#define CKINEMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// dlopen with RTLD_NOW | RTLD_LOCAL; NULL on failure (see ckinema_dlerror).
void *ckinema_dlopen(const char *path);
void *ckinema_dlsym(void *handle, const char *symbol);
/// The last dlopen/dlsym error message, or NULL.
const char *ckinema_dlerror(void);

#ifdef __cplusplus
}
#endif
#endif
