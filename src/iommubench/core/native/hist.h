/* Log-linear latency histogram, HDR-style: exact below 64 ns, then 64 buckets per octave
 * (relative bucket width 1/64). Mirrors iommubench/hist.py exactly. */
#ifndef IB_HIST_H
#define IB_HIST_H

#include <stdint.h>

#include "core.h"

static inline uint64_t ib_hist_bucket(uint64_t v)
{
    if (v < 64)
        return v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - IB_HIST_SUB_BITS;
    uint64_t i = 64ull * (shift + 1) + ((v >> shift) - 64);
    return i < IB_HIST_BUCKETS ? i : IB_HIST_BUCKETS - 1;
}

#endif
