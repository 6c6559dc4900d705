/* Clocks: CLOCK_MONOTONIC for windows and deadlines (comparable across processes), the TSC
 * for sampled latencies (cheap enough to time a ~5 ns operation). */
#ifndef IB_CLOCK_H
#define IB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t ib_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ib_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return ib_clock_ns();
#endif
}

double ib_calibrate_tsc_per_ns(void);
double ib_calibrate_timer_cost_ticks(void);
uint64_t ib_calibrate_busy_loops(uint64_t ns);

#endif
