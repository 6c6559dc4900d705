#include "driver.h"
#include "locked.h"

IB_DEFINE_LOCKED_DRIVER("domain-lock", domain_lock,
                        "one per-domain lock around every map and unmap (rockchip, exynos, tegra)",
                        IB_SCOPE_DOMAIN)
