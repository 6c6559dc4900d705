/* model: the project's own IO page table (pgtable.h), built in: 4 levels x 512 entries, its
 * own entry format, every driver's code and the audit's and walkers' walks. */
#include "pgtable_kind.h"

IB_DEFINE_PGTABLE("model", model, "the project's own radix table (pgtable.h), every driver", 0, 0,
                  0, 0, 0)
