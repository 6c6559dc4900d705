/* The workloads (workloads.def): each is one header defining
 * `int ib_workload_NAME(struct ib_ctx *, const struct ib_driver_ops *)`, always inlined, so
 * every driver gets its own copy with direct calls, plus its state file (NAME_state.c). This
 * header numbers them (IB_WL_NAME) and gives the drivers one entry, ib_workload_run, that runs
 * the point's workload. */
#ifndef IB_WORKLOADS_H
#define IB_WORKLOADS_H

#include "../ctx.h"

struct ib_driver_ops {
    int (*map)(struct ib_ctx *x, uint64_t pfn, uint64_t frame);
    /* Map [pfn, pfn + pages) onto their frames in one call (one entry to the driver's lock);
     * stops at the first page that fails and returns its result. */
    int (*map_range)(struct ib_ctx *x, uint64_t pfn, uint64_t pages);
    int (*unmap)(struct ib_ctx *x, uint64_t pfn, uint64_t *frame_out);
    /* Unmap a range in one call; tables it covers go on x->gather. Returns lost pages. */
    uint64_t (*unmap_range)(struct ib_ctx *x, uint64_t pfn, uint64_t pages);
};

#include "sampling.h"

/* first pass: the loops, the registration lines expanding to nothing */
#define IB_WORKLOAD(wl)
#include "workloads.def"
#undef IB_WORKLOAD

#define IB_WORKLOAD(wl) IB_WL_##wl,
enum ib_workload_id {
#include "workloads.def"
    IB_WORKLOAD_COUNT
};
#undef IB_WORKLOAD

/* The point's workload with the driver's `ops`: inlined into each driver's one run function,
 * so the switch runs once per point and each workload's loop has the driver's calls inlined.
 * An unknown workload (the arena's check refuses one) returns IB_ERR_PARAMS. */
static inline __attribute__((always_inline)) int ib_workload_run(struct ib_ctx *x,
                                                                 const struct ib_driver_ops *ops)
{
    switch (x->hdr->params.workload) {
#define IB_WORKLOAD(wl)                                                                    \
    case IB_WL_##wl:                                                                       \
        return ib_workload_##wl(x, ops);
#include "workloads.def"
#undef IB_WORKLOAD
    }
    return IB_ERR_PARAMS;
}

#endif
