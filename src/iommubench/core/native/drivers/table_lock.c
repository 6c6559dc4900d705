#include "driver.h"
#include "locked.h"

IB_DEFINE_LOCKED_DRIVER("table-lock", table_lock,
                        "split locks: one per table page, taken to install into or clear it",
                        IB_SCOPE_TABLE)
