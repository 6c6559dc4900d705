/* The IOVA tree every allocator falls back to: one ordered tree of allocated ranges under one
 * spinlock (iova_rbtree_lock), like drivers/iommu/iova.c. `global` is this tree alone; rcache
 * puts per-CPU magazines in front of it. The tree is an AVL tree keyed by pfn_lo in a node pool in the arena
 * (indices, not pointers: every process maps the arena at its own address).
 *
 * Allocation is top-down and size-aligned below a cached hint (the kernel's cached32_node):
 * try the highest aligned slot below `high`; the predecessor lookup (O(log n)) says whether it
 * overlaps an allocated range; if it does, continue below that range. A free at or above the
 * hint moves the hint up to the next allocated range, so the hole is reused. When a pass from
 * the hint finds nothing, one more pass starts from the limit (the kernel's retry).
 */
#include "../lockcore.h"
#include "iova.h"

#define NIL IB_NIL

static struct ib_iova_node *nodes_of(struct ib_ctx *x) { return ib_iova_nodes(x->base); }

static int32_t height(const struct ib_iova_node *n, uint32_t t) { return t == NIL ? 0 : n[t].height; }

static void fix_height(struct ib_iova_node *n, uint32_t t)
{
    int32_t l = height(n, n[t].left), r = height(n, n[t].right);
    n[t].height = 1 + (l > r ? l : r);
}

static uint32_t rotate_right(struct ib_iova_node *n, uint32_t t)
{
    uint32_t l = n[t].left;
    n[t].left = n[l].right;
    n[l].right = t;
    fix_height(n, t);
    fix_height(n, l);
    return l;
}

static uint32_t rotate_left(struct ib_iova_node *n, uint32_t t)
{
    uint32_t r = n[t].right;
    n[t].right = n[r].left;
    n[r].left = t;
    fix_height(n, t);
    fix_height(n, r);
    return r;
}

static uint32_t balance(struct ib_iova_node *n, uint32_t t)
{
    fix_height(n, t);
    int32_t b = height(n, n[t].left) - height(n, n[t].right);
    if (b > 1) {
        if (height(n, n[n[t].left].left) < height(n, n[n[t].left].right))
            n[t].left = rotate_left(n, n[t].left);
        return rotate_right(n, t);
    }
    if (b < -1) {
        if (height(n, n[n[t].right].right) < height(n, n[n[t].right].left))
            n[t].right = rotate_right(n, n[t].right);
        return rotate_left(n, t);
    }
    return t;
}

static uint32_t insert(struct ib_iova_node *n, uint32_t t, uint32_t k)
{
    if (t == NIL) {
        n[k].left = n[k].right = NIL;
        n[k].height = 1;
        return k;
    }
    if (n[k].lo < n[t].lo)
        n[t].left = insert(n, n[t].left, k);
    else
        n[t].right = insert(n, n[t].right, k);
    return balance(n, t);
}

static uint32_t remove_min(struct ib_iova_node *n, uint32_t t, uint32_t *min)
{
    if (n[t].left == NIL) {
        *min = t;
        return n[t].right;
    }
    n[t].left = remove_min(n, n[t].left, min);
    return balance(n, t);
}

static uint32_t remove_key(struct ib_iova_node *n, uint32_t t, uint64_t lo, uint32_t *out)
{
    if (t == NIL)
        return NIL;
    if (lo < n[t].lo) {
        n[t].left = remove_key(n, n[t].left, lo, out);
    } else if (lo > n[t].lo) {
        n[t].right = remove_key(n, n[t].right, lo, out);
    } else {
        *out = t;
        uint32_t l = n[t].left, r = n[t].right, m;
        if (r == NIL)
            return l;
        r = remove_min(n, r, &m);
        n[m].left = l;
        n[m].right = r;
        return balance(n, m);
    }
    return balance(n, t);
}

/* The range with the largest pfn_lo <= key, or NIL. */
static uint32_t pred(const struct ib_iova_node *n, uint32_t t, uint64_t key)
{
    uint32_t best = NIL;
    while (t != NIL) {
        if (n[t].lo <= key) {
            best = t;
            t = n[t].right;
        } else {
            t = n[t].left;
        }
    }
    return best;
}

/* The range with the smallest pfn_lo > key, or NIL. */
static uint32_t succ(const struct ib_iova_node *n, uint32_t t, uint64_t key)
{
    uint32_t best = NIL;
    while (t != NIL) {
        if (n[t].lo > key) {
            best = t;
            t = n[t].left;
        } else {
            t = n[t].right;
        }
    }
    return best;
}

void ib_iova_lock(struct ib_ctx *x)
{
    ib_lock_counted(x, &ib_iova_region(x->base)->iova.lock, &x->c.iova_lock_acquisitions);
}

void ib_iova_unlock(struct ib_ctx *x) { ib_unlock(&ib_iova_region(x->base)->iova.lock); }

uint64_t ib_iova_tree_alloc_locked(struct ib_ctx *x, uint64_t size)
{
    struct ib_iova_state *s = &ib_iova_region(x->base)->iova;
    struct ib_iova_node *n = nodes_of(x);
    if (s->free_nodes == NIL)
        return 0;
    uint64_t align = size <= 1 ? 1 : 1ull << (64 - __builtin_clzll(size - 1));
    uint64_t top = s->limit_pfn + 1;
    uint64_t high = s->hint < top ? s->hint : top;
    for (int pass = high == top;;) {
        uint64_t lo = high >= size ? (high - size) & ~(align - 1) : 0;
        if (high < size || lo < IB_IOVA_START_PFN) {
            if (pass)
                return 0;
            pass = 1;
            high = top;
            continue;
        }
        uint32_t p = pred(n, s->root, lo + size - 1);
        if (p == NIL || n[p].hi < lo) {
            uint32_t k = s->free_nodes;
            s->free_nodes = n[k].left;
            n[k].lo = lo;
            n[k].hi = lo + size - 1;
            s->root = insert(n, s->root, k);
            s->hint = lo;
            s->nodes_used++;
            return lo;
        }
        high = n[p].lo;
        x->c.iova_search_steps++;
    }
}

int ib_iova_tree_free_locked(struct ib_ctx *x, uint64_t pfn)
{
    struct ib_iova_state *s = &ib_iova_region(x->base)->iova;
    struct ib_iova_node *n = nodes_of(x);
    uint32_t k = NIL;
    s->root = remove_key(n, s->root, pfn, &k);
    if (k == NIL)
        return -1;
    /* __cached_rbnode_delete_update: a hole at or above the hint is searched next time */
    if (n[k].lo >= s->hint) {
        uint32_t next = succ(n, s->root, n[k].hi);
        s->hint = next == NIL ? s->limit_pfn + 1 : n[next].lo;
    }
    n[k].left = s->free_nodes;
    s->free_nodes = k;
    s->nodes_used--;
    return 0;
}

uint64_t ib_iova_tree_alloc(struct ib_ctx *x, uint64_t size)
{
    ib_iova_lock(x);
    uint64_t pfn = ib_iova_tree_alloc_locked(x, size);
    ib_iova_unlock(x);
    return pfn;
}

void ib_iova_tree_free(struct ib_ctx *x, uint64_t pfn)
{
    ib_iova_lock(x);
    int r = ib_iova_tree_free_locked(x, pfn);
    ib_iova_unlock(x);
    if (r)
        x->c.iova_bad_frees++;
}

uint32_t ib_iova_find(void *base, uint64_t pfn)
{
    struct ib_iova_node *n = ib_iova_nodes(base);
    uint32_t t = pred(n, ib_iova_region(base)->iova.root, pfn);
    return t != NIL && n[t].lo == pfn ? t : NIL;
}

void ib_iova_init(void *base)
{
    struct ib_header *hd = ib_hdr(base);
    struct ib_iova_region *h = ib_iova_region(base);
    struct ib_iova_node *n = ib_iova_nodes(base);
    uint64_t count = h->geo.nodes;
    uint32_t bits = hd->params.dma_bits < 48 ? hd->params.dma_bits : 48;
    for (uint64_t i = 0; i < count; i++)
        n[i].left = i + 1 < count ? (uint32_t)(i + 1) : NIL;
    h->iova.free_nodes = count ? 0 : NIL;
    h->iova.root = NIL;
    h->iova.limit_pfn = (1ull << (bits - 12)) - 1;
    h->iova.hint = h->iova.limit_pfn + 1;
    h->iova.nodes_used = 0;
}

