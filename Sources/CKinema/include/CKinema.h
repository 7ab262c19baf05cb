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

// MARK: BLAS (blas.c)

/// CBLAS enum values (cblas.h), fixed by the CBLAS standard.
enum {
    CKINEMA_CBLAS_ROW_MAJOR = 101,
    CKINEMA_CBLAS_NO_TRANS = 111,
    CKINEMA_CBLAS_TRANS = 112,
};

/// cblas_sgemm with 32-bit indices (the LP64 interface every distribution's libopenblas/libblas exports).
typedef void (*ckinema_cblas_sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                                       int ldc);
typedef void (*ckinema_blas_set_threads_fn)(int threads);
typedef char *(*ckinema_blas_config_fn)(void);

/// A loaded BLAS library. `sgemm` is always set; the OpenBLAS extras are NULL in other BLAS libraries.
typedef struct {
    void *handle;
    ckinema_cblas_sgemm_fn sgemm;
    ckinema_blas_set_threads_fn set_num_threads; // openblas_set_num_threads
    ckinema_blas_config_fn get_config;           // openblas_get_config
} ckinema_blas;

/// Opens `library` (a path or soname) and resolves cblas_sgemm. Returns 0 and fills `out` on success;
/// -1 when the library does not open, -2 when it lacks cblas_sgemm (the handle is then closed).
/// On failure ckinema_dlerror() may describe why.
int ckinema_blas_open(const char *library, ckinema_blas *out);

// MARK: zlib (zlib.c)

/// zlib's one-shot API (zlib.h), with zlib's `uLong`/`uLongf` spelled `unsigned long` as on every LP64
/// and LLP64 platform zlib ships for. Return codes: 0 Z_OK, -2 Z_STREAM_ERROR, -4 Z_MEM_ERROR,
/// -5 Z_BUF_ERROR, -3 Z_DATA_ERROR.
typedef int (*ckinema_zlib_compress2_fn)(unsigned char *dest, unsigned long *dest_len, const unsigned char *source,
                                         unsigned long source_len, int level);
typedef unsigned long (*ckinema_zlib_compress_bound_fn)(unsigned long source_len);
typedef int (*ckinema_zlib_uncompress_fn)(unsigned char *dest, unsigned long *dest_len, const unsigned char *source,
                                          unsigned long source_len);

/// A loaded zlib: every function pointer is set on success.
typedef struct {
    void *handle;
    ckinema_zlib_compress2_fn compress2;
    ckinema_zlib_compress_bound_fn compress_bound;
    ckinema_zlib_uncompress_fn uncompress;
} ckinema_zlib;

/// Opens `library` (a path or soname, e.g. "libz.so.1") and resolves compress2, compressBound and
/// uncompress. Returns 0 and fills `out` on success; -1 when the library does not open, -2 when a symbol
/// is missing (the handle is then closed).
int ckinema_zlib_open(const char *library, ckinema_zlib *out);

// MARK: Compiler hints

/// Asks the cache to fetch the line holding `address` for writing (no-op on targets without prefetch).
/// Inline so that Swift kernels get a single prefetch instruction, not a call.
static inline void ckinema_prefetch_for_write(const void *address) { __builtin_prefetch(address, 1, 3); }

// MARK: CPU features (cpu.c)

/// x86-64 instruction-set levels that Kinema has kernels for. A bit is set only when the CPU has every
/// extension that the matching kernel module may be compiled to use AND the OS saves the register state.
enum {
    /// AVX, AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE, POPCNT (what `-target-cpu haswell` may emit).
    CKINEMA_CPU_HASWELL = 1u << 0,
    /// Haswell plus AVX-512 F/CD/BW/DQ/VL (what `-target-cpu skylake-avx512` may emit).
    CKINEMA_CPU_SKYLAKE_AVX512 = 1u << 1,
};

/// Bit set of CKINEMA_CPU_* levels this machine supports; 0 on non-x86 CPUs.
uint32_t ckinema_cpu_features(void);

#ifdef __cplusplus
}
#endif
#endif
