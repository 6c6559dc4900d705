#include <stdlib.h>

#include "clock.h"

double ib_calibrate_tsc_per_ns(void)
{
    uint64_t n0 = ib_clock_ns(), t0 = ib_ticks();
    while (ib_clock_ns() - n0 < 20000000ull) /* 20 ms */
        ;
    uint64_t n1 = ib_clock_ns(), t1 = ib_ticks();
    return (double)(t1 - t0) / (double)(n1 - n0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median cost of two back-to-back tick reads: what a sample adds to the operation. */
double ib_calibrate_timer_cost_ticks(void)
{
    enum { N = 4001 };
    static uint64_t d[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = ib_ticks();
        d[i] = ib_ticks() - t0;
    }
    qsort(d, N, sizeof(d[0]), cmp_u64);
    return (double)d[N / 2];
}

static inline void busy(uint64_t loops)
{
    for (uint64_t i = 0; i < loops; i++)
        __asm__ __volatile__("" : "+r"(i));
}

uint64_t ib_calibrate_busy_loops(uint64_t ns)
{
    if (ns == 0)
        return 0;
    const uint64_t trial = 20000000;
    static double best = 1e30; /* calibrated once per process: each trial costs ~10 ms */
    for (int rep = best < 1e30 ? 3 : 0; rep < 3; rep++) {
        uint64_t t0 = ib_clock_ns();
        busy(trial);
        double per = (double)(ib_clock_ns() - t0) / (double)trial;
        best = per < best ? per : best;
    }
    uint64_t loops = (uint64_t)((double)ns / best + 0.5);
    return loops ? loops : 1;
}
