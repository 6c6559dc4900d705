/* naive: no lock and a plain check-then-store install. The negative control: two workers that
 * both see an empty entry both install, the later store orphans the earlier table with the
 * mappings already in it, and the audit must report lost mappings and a leaked table. */
#include "serial_install.h"

static inline void naive_enter(struct ib_ctx *x) { (void)x; }
static inline void naive_leave(struct ib_ctx *x) { (void)x; }

/* The serialising drivers' check-then-store install, without the lock that makes it safe. */
#define naive_install ib_serial_install

IB_DEFINE_DRIVER("naive", naive)
