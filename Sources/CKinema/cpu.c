// CPU feature detection for choosing GEMM micro-kernels at run time. The kernel modules are compiled for a
// named CPU (-target-cpu), so the check covers every extension that CPU model lets the compiler emit, plus
// the OS's XSAVE support for the wider registers (a CPU flag alone is not enough under some hypervisors).
#include "CKinema.h"

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

uint32_t ckinema_cpu_features(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int osxsave = (ecx >> 27) & 1;
    const int leaf1_ok = ((ecx >> 28) & 1) /* AVX */ && ((ecx >> 12) & 1) /* FMA */ &&
                         ((ecx >> 29) & 1) /* F16C */ && ((ecx >> 22) & 1) /* MOVBE */ &&
                         ((ecx >> 23) & 1) /* POPCNT */;
    if (!osxsave || !leaf1_ok) return 0;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0; // XMM and YMM state

    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned int leaf7_ebx = ebx;
    const int haswell7 = ((leaf7_ebx >> 5) & 1) /* AVX2 */ && ((leaf7_ebx >> 3) & 1) /* BMI1 */ &&
                         ((leaf7_ebx >> 8) & 1) /* BMI2 */;
    if (!__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx)) return 0;
    const int lzcnt = (ecx >> 5) & 1;
    if (!haswell7 || !lzcnt) return 0;

    uint32_t features = CKINEMA_CPU_HASWELL;
    const int avx512 = ((leaf7_ebx >> 16) & 1) /* F */ && ((leaf7_ebx >> 17) & 1) /* DQ */ &&
                       ((leaf7_ebx >> 28) & 1) /* CD */ && ((leaf7_ebx >> 30) & 1) /* BW */ &&
                       ((leaf7_ebx >> 31) & 1) /* VL */;
    if (avx512 && (xcr0 & 0xE0) == 0xE0) features |= CKINEMA_CPU_SKYLAKE_AVX512; // opmask, ZMM0-15, ZMM16-31
    return features;
}
#else
uint32_t ckinema_cpu_features(void) { return 0; }
#endif
