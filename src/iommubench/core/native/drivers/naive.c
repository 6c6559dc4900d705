/* naive: no lock and a plain check-then-store install. The negative control: two workers that
 * both see an empty entry both install, the later store orphans the earlier table with the
 * mappings already in it, and the audit must report lost mappings and a leaked table. */
#include "serial_install.h"

/* The locked drivers' check-then-store install, without the lock that makes it safe. */
#define naive_install ib_serial_install

IB_DEFINE_DRIVER("naive", naive, "plain stores, no lock: the negative control the audit must catch",
                 IB_NEGATIVE_CONTROL)
