/* serial-spin: one per-domain spinlock held across every map and unmap, as rockchip
 * (dt_lock), exynos (pgtablelock), tegra (as->lock) and arm-smmu before v4.13 do or did. */
#include "serial_install.h"

static inline void serial_spin_enter(struct ib_ctx *x)
{
    ib_spin_lock(x, &x->hdr->domain_spin.v);
}

static inline void serial_spin_leave(struct ib_ctx *x)
{
    ib_spin_unlock(&x->hdr->domain_spin.v);
}

#define serial_spin_install ib_serial_install

IB_DEFINE_DRIVER("serial-spin", serial_spin)
