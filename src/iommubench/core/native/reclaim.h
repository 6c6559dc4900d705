/* Returning table pages that an unmap detached. Without deferred-free walkers they go straight
 * back to the pool. With them, a batch waits in the freeing worker's limbo until every walker
 * has been between passes, or has begun a pass after the batch was detached (epoch-based
 * reclamation: the RCU-freeing of table pages proposed upstream for the debugfs dump). */
#ifndef IB_RECLAIM_H
#define IB_RECLAIM_H

#include "ctx.h"

/* `list` is linked through the pool's links, as x->gather collects it. */
void ib_release_tables(struct ib_ctx *x, uint32_t list);
/* Reclaim what is past its grace period (anyone's: limbo is one FIFO); with wait, spin until
 * limbo is empty. */
void ib_reclaim(struct ib_ctx *x, int wait);

/* The walker's side of the epoch protocol, around each pass. */
void ib_epoch_enter_pass(void *base, uint32_t walker);
void ib_epoch_leave_pass(void *base, uint32_t walker);

#endif
