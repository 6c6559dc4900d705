/* The table-page pool: per-worker free lists refilled from, and spilled to, one shared list.
 * Every page is always in exactly one place (a free list or the table), which the audit checks. */
#ifndef IB_POOL_H
#define IB_POOL_H

#include "ctx.h"

#define IB_POOL_BATCH 32

void ib_pool_init(void *base);
/* A zeroed page, or IB_NIL when the pool is exhausted. */
uint32_t ib_pool_alloc(struct ib_ctx *x);
void ib_pool_free(struct ib_ctx *x, uint32_t index);

#endif
