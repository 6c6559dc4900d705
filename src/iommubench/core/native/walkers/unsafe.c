/* unsafe: no protection at all. Every read of a table page that unmap freed (or freed and
 * reused) under the pass is counted, never followed outside the pool. */
#include "safety.h"

const struct ib_walker_mode ib_walker_mode_unsafe = {
    "unsafe", {"no protection; reads of freed tables are counted", "", "", 0}, 0, 0, 0, 0,
};
