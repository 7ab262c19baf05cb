// Run-time binding of zlib (libz.so.1) for Kinema's PNG encoder. Only the one-shot helpers are resolved:
// compress2 writes a complete zlib stream (header, deflate data, Adler-32), which is exactly a PNG IDAT
// payload; uncompress lets tests inflate what we wrote.
#include "CKinema.h"
#include <dlfcn.h>
#include <string.h>

int ckinema_zlib_open(const char *library, ckinema_zlib *out) {
    memset(out, 0, sizeof(*out));
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) return -1;
    void *compress2 = dlsym(handle, "compress2");
    void *bound = dlsym(handle, "compressBound");
    void *uncompress = dlsym(handle, "uncompress");
    if (compress2 == NULL || bound == NULL || uncompress == NULL) {
        dlclose(handle);
        return -2;
    }
    out->handle = handle;
    out->compress2 = (ckinema_zlib_compress2_fn)compress2;
    out->compress_bound = (ckinema_zlib_compress_bound_fn)bound;
    out->uncompress = (ckinema_zlib_uncompress_fn)uncompress;
    return 0;
}
