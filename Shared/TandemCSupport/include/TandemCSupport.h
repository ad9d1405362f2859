#ifndef TANDEM_C_SUPPORT_H
#define TANDEM_C_SUPPORT_H

/// Software prefetch of the cache line holding `p` into all cache levels.
///
/// Swift has no prefetch intrinsic (clang's `_mm_prefetch` is a macro, and the optimizer drops
/// calls to `_m_prefetch`), so the kernels call this; `asm volatile` keeps it in place and the
/// function inlines into the Swift caller.
static inline __attribute__((always_inline)) void tandem_prefetch(const void *p) {
#if defined(__x86_64__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

#endif
