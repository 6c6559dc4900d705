/* The workload registry. A workload is one header here defining
 * `int ib_workload_NAME(struct ib_ctx *, const struct ib_driver_ops *)` (always inlined, so
 * every driver gets its own copy with direct calls), plus one X(NAME) line below. */
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

#define IB_WORKLOADS(X, arg) X(prefault, arg) X(dma, arg)

#define IB_WL_ENUM(wl, arg) IB_WL_##wl,
enum ib_workload_id { IB_WORKLOADS(IB_WL_ENUM, 0) IB_WORKLOAD_COUNT };

#include "sampling.h"
#include "prefault.h"
#include "dma.h"

#endif
