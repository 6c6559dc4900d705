/* SPDX-License-Identifier: MIT */
/*
 * iommubench kernel-API shim: the slice of the Linux kernel API that drivers/iommu/io-pgtable*.c,
 * drivers/iommu/iova.c and lib/rbtree.c need, written from scratch for user space. Every
 * <linux/...> and <asm/...> header the shim offers includes this one file.
 *
 * Memory model: one shared region (struct ibk_env, see ibk_env.h) mapped at the same address in
 * every forked worker holds the heap (kmalloc, kmem_cache, per-CPU areas), the counters and
 * the delayed-work list; table pages come from a page window (phys = offset in the window).
 * The CPU is the worker index, set per thread with ibk_set_cpu().
 */
#ifndef IBK_SHIM_H
#define IBK_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- compiler --------------------------------------------------------------------------- */
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() __asm__ __volatile__("" ::: "memory")
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define noinline __attribute__((noinline))
#define __must_check __attribute__((warn_unused_result))
#define __maybe_unused __attribute__((unused))
#define __always_unused __attribute__((unused))
#define __used __attribute__((used))
#define __aligned(x) __attribute__((aligned(x)))
#define __packed __attribute__((packed))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define __cold __attribute__((cold))
#define __pure __attribute__((pure))
#define fallthrough __attribute__((fallthrough))
#define __percpu
#define __rcu
#define __iomem
#define __user
#define __force
#define __kernel
#define __init
#define __exit
#define __initconst
#define __initdata
#define __read_mostly
#define __ro_after_init
#define __cacheline_aligned __aligned(64)
#define ____cacheline_aligned __aligned(64)
#define ____cacheline_aligned_in_smp __aligned(64)
#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)
#define notrace
#define __visible
#define __section(s) __attribute__((section(s)))

#ifndef __same_type
#define __same_type(a, b) __builtin_types_compatible_p(typeof(a), typeof(b))
#endif

/* IS_ENABLED(CONFIG_FOO): 1 when CONFIG_FOO is defined to 1 (the build defines the few it needs). */
#define __IBK_ARG_PLACEHOLDER_1 0,
#define __ibk_take_second(ignored, val, ...) val
#define __ibk_is_defined3(arg1_or_junk) __ibk_take_second(arg1_or_junk 1, 0, 0)
#define __ibk_is_defined2(val) __ibk_is_defined3(__IBK_ARG_PLACEHOLDER_##val)
#define __ibk_is_defined(x) __ibk_is_defined2(x)
#define IS_ENABLED(option) __ibk_is_defined(option)
#define IS_BUILTIN(option) __ibk_is_defined(option)
#define IS_REACHABLE(option) __ibk_is_defined(option)
#define IS_MODULE(option) 0

/* READ_ONCE/WRITE_ONCE: single, untorn, not-elided accesses (volatile, like the kernel's). */
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, val)                                   \
	do {                                                 \
		*(volatile typeof(x) *)&(x) = (val);         \
	} while (0)

/* ---- types ------------------------------------------------------------------------------ */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef u8 __u8;
typedef u16 __u16;
typedef u32 __u32;
typedef u64 __u64;
typedef s32 __s32;
typedef s64 __s64;
typedef u16 __le16;
typedef u32 __le32;
typedef u64 __le64;
typedef u64 phys_addr_t;
typedef u64 dma_addr_t;
typedef u64 resource_size_t;
typedef unsigned int gfp_t;
typedef unsigned int slab_flags_t;
typedef struct {
	int counter;
} atomic_t;
typedef struct {
	s64 counter;
} atomic64_t;

#define U8_MAX ((u8)~0U)
#define U16_MAX ((u16)~0U)
#define U32_MAX ((u32)~0U)
#define U64_MAX ((u64)~0ULL)
#define S32_MAX ((s32)(U32_MAX >> 1))
#define S64_MAX ((s64)(U64_MAX >> 1))
#define BITS_PER_LONG 64
#define BITS_PER_BYTE 8
#define BITS_PER_LONG_LONG 64

#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif
#ifndef UINT_MAX
#define UINT_MAX (__INT_MAX__ * 2U + 1U)
#endif
#ifndef LONG_MAX
#define LONG_MAX __LONG_MAX__
#endif
#ifndef ULONG_MAX
#define ULONG_MAX (__LONG_MAX__ * 2UL + 1UL)
#endif
#ifndef LLONG_MAX
#define LLONG_MAX __LONG_LONG_MAX__
#endif
#ifndef ULLONG_MAX
#define ULLONG_MAX (__LONG_LONG_MAX__ * 2ULL + 1ULL)
#endif

/* ---- errors (the kernel's numbers; <errno.h> is not used: glibc's pulls <linux/errno.h>) --- */
#ifndef EPERM
#define EPERM 1
#define ENOENT 2
#define EINTR 4
#define EIO 5
#define E2BIG 7
#define EAGAIN 11
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28
#define ERANGE 34
#define EOPNOTSUPP 95
#endif
#define ENOTSUPP 524
#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) unlikely((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)
static inline void *ERR_PTR(long error) { return (void *)error; }
static inline long PTR_ERR(const void *ptr) { return (long)ptr; }
static inline bool IS_ERR(const void *ptr) { return IS_ERR_VALUE((unsigned long)ptr); }
static inline bool IS_ERR_OR_NULL(const void *ptr) { return !ptr || IS_ERR(ptr); }

/* ---- arithmetic and bits ---------------------------------------------------------------- */
#define BIT(nr) (1UL << (nr))
#define BIT_ULL(nr) (1ULL << (nr))
#define GENMASK(h, l) (((~0UL) << (l)) & (~0UL >> (BITS_PER_LONG - 1 - (h))))
#define GENMASK_ULL(h, l) (((~0ULL) << (l)) & (~0ULL >> (63 - (h))))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ALIGN(x, a) (((x) + ((typeof(x))(a) - 1)) & ~((typeof(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((typeof(x))(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((typeof(x))(a) - 1)) == 0)
#define round_up(x, y) ((((x) - 1) | ((typeof(x))((y) - 1))) + 1)
#define round_down(x, y) ((x) & ~((typeof(x))((y) - 1)))
#define upper_32_bits(n) ((u32)(((n) >> 16) >> 16))
#define lower_32_bits(n) ((u32)((n) & 0xffffffff))
#define min(a, b) ({ typeof(a) __a = (a); typeof(b) __b = (b); __a < __b ? __a : __b; })
#define max(a, b) ({ typeof(a) __a = (a); typeof(b) __b = (b); __a > __b ? __a : __b; })
#define min_t(t, a, b) ({ t __a = (a); t __b = (b); __a < __b ? __a : __b; })
#define max_t(t, a, b) ({ t __a = (a); t __b = (b); __a > __b ? __a : __b; })
#define clamp(v, lo, hi) min(max(v, lo), hi)
#define swap(a, b) do { typeof(a) __t = (a); (a) = (b); (b) = __t; } while (0)
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define container_of_const container_of
#define typeof_member(T, m) typeof(((T *)0)->m)
#define sizeof_field(T, m) sizeof(((T *)0)->m)

#define __ibk_static_assert(expr, msg, ...) _Static_assert(expr, msg)
#define static_assert(expr, ...) __ibk_static_assert(expr, ##__VA_ARGS__, #expr)
#define BUILD_BUG_ON(cond) _Static_assert(!(cond), "BUILD_BUG_ON(" #cond ")")
#define BUILD_BUG_ON_ZERO(e) ((int)(sizeof(struct { int : (-!!(e)); })))

static inline unsigned long __ffs(unsigned long w) { return (unsigned long)__builtin_ctzl(w); }
static inline unsigned long __fls(unsigned long w) { return 63UL - (unsigned long)__builtin_clzl(w); }
#define ffs(x) __builtin_ffs(x)
static inline int fls(unsigned int x) { return x ? 32 - __builtin_clz(x) : 0; }
static inline int fls64(u64 x) { return x ? 64 - __builtin_clzll(x) : 0; }
static inline int fls_long(unsigned long x) { return fls64(x); }
static inline unsigned long ffz(unsigned long w) { return __ffs(~w); }
static inline int ibk_ilog2_u64(u64 n) { return fls64(n) - 1; }
/* A constant expression for constant n, as the kernel's is (used in sizes and shifts). */
#define ilog2(n) (__builtin_constant_p(n) ? ((n) < 2 ? 0 : 63 - __builtin_clzll(n)) \
					  : ibk_ilog2_u64(n))
static inline bool is_power_of_2(unsigned long n) { return n != 0 && (n & (n - 1)) == 0; }
static inline unsigned long __roundup_pow_of_two(unsigned long n) { return 1UL << fls_long(n - 1); }
#define roundup_pow_of_two(n) __roundup_pow_of_two(n)
#define order_base_2(n) ((n) > 1 ? ilog2((n) - 1) + 1 : 0)
#define hweight32(w) __builtin_popcount(w)
#define hweight64(w) __builtin_popcountll(w)
#define hweight_long(w) __builtin_popcountl(w)

static inline unsigned long ibk_find_next_bit(const unsigned long *addr, unsigned long size,
					      unsigned long off)
{
	while (off < size) {
		unsigned long w = addr[off / BITS_PER_LONG] >> (off % BITS_PER_LONG);
		if (w)
			return min(off + __ffs(w), size);
		off = (off / BITS_PER_LONG + 1) * BITS_PER_LONG;
	}
	return size;
}
#define find_next_bit(addr, size, off) ibk_find_next_bit((addr), (size), (off))
#define find_first_bit(addr, size) ibk_find_next_bit((addr), (size), 0)
#define for_each_set_bit(bit, addr, size)                                         \
	for ((bit) = ibk_find_next_bit((addr), (size), 0); (bit) < (size);         \
	     (bit) = ibk_find_next_bit((addr), (size), (bit) + 1))

/* Atomic bit operations (a whole word, as the kernel's are). */
static inline void set_bit(long nr, volatile unsigned long *addr)
{
	/* settles: concurrent setters of other bits of the same word */
	__atomic_fetch_or(&addr[nr / BITS_PER_LONG], 1UL << (nr % BITS_PER_LONG), __ATOMIC_RELAXED);
}
static inline void clear_bit(long nr, volatile unsigned long *addr)
{
	/* settles: concurrent clearers of other bits of the same word */
	__atomic_fetch_and(&addr[nr / BITS_PER_LONG], ~(1UL << (nr % BITS_PER_LONG)),
			   __ATOMIC_RELAXED);
}
static inline bool test_bit(long nr, const volatile unsigned long *addr)
{
	return (addr[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1UL;
}
static inline bool test_and_set_bit(long nr, volatile unsigned long *addr)
{
	unsigned long m = 1UL << (nr % BITS_PER_LONG);
	/* settles: two setters of the same bit; exactly one sees it clear */
	return __atomic_fetch_or(&addr[nr / BITS_PER_LONG], m, __ATOMIC_SEQ_CST) & m;
}

/* ---- sizes ------------------------------------------------------------------------------ */
#define SZ_1 0x00000001
#define SZ_2 0x00000002
#define SZ_4 0x00000004
#define SZ_8 0x00000008
#define SZ_16 0x00000010
#define SZ_32 0x00000020
#define SZ_64 0x00000040
#define SZ_128 0x00000080
#define SZ_256 0x00000100
#define SZ_512 0x00000200
#define SZ_1K 0x00000400
#define SZ_2K 0x00000800
#define SZ_4K 0x00001000
#define SZ_8K 0x00002000
#define SZ_16K 0x00004000
#define SZ_32K 0x00008000
#define SZ_64K 0x00010000
#define SZ_128K 0x00020000
#define SZ_256K 0x00040000
#define SZ_512K 0x00080000
#define SZ_1M 0x00100000
#define SZ_2M 0x00200000
#define SZ_4M 0x00400000
#define SZ_8M 0x00800000
#define SZ_16M 0x01000000
#define SZ_32M 0x02000000
#define SZ_64M 0x04000000
#define SZ_128M 0x08000000
#define SZ_256M 0x10000000
#define SZ_512M 0x20000000
#define SZ_1G 0x40000000
#define SZ_2G 0x80000000
#define SZ_4G _AC(0x100000000, ULL)
#define SZ_8G _AC(0x200000000, ULL)
#define SZ_16G _AC(0x400000000, ULL)
#define SZ_32G _AC(0x800000000, ULL)
#define SZ_64G _AC(0x1000000000, ULL)
#define SZ_64T _AC(0x400000000000, ULL)
#define __AC(X, Y) (X##Y)
#define _AC(X, Y) __AC(X, Y)
#define _UL(x) (_AC(x, UL))
#define _ULL(x) (_AC(x, ULL))
#define UL(x) (_UL(x))
#define ULL(x) (_ULL(x))

/* ---- barriers and atomics --------------------------------------------------------------- */
#if defined(__x86_64__) || defined(__i386__)
/* x86 stores are ordered for ordinary memory; the kernel's own dma_wmb is a compiler barrier. */
#define dma_wmb() barrier()
#define dma_rmb() barrier()
#define wmb() __asm__ __volatile__("sfence" ::: "memory")
#define rmb() __asm__ __volatile__("lfence" ::: "memory")
#define mb() __asm__ __volatile__("mfence" ::: "memory")
#define cpu_relax() __builtin_ia32_pause()
#else
#define dma_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define dma_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define cpu_relax() barrier()
#endif
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_mb__before_atomic() smp_mb()
#define smp_mb__after_atomic() smp_mb()
#define smp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define smp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#ifdef IBK_RACY_CMPXCHG
/*
 * The negative control: a plain read, compare and write, not atomic. IBK_RACY_WINDOW pauses
 * between the read and the write widen the window in which another mapper's install is lost.
 */
#ifndef IBK_RACY_WINDOW
#define IBK_RACY_WINDOW 0
#endif
#define __ibk_cmpxchg(ptr, o, n)                                            \
	({                                                                  \
		typeof(*(ptr)) __cur = READ_ONCE(*(ptr));                   \
		for (int __i = 0; __i < IBK_RACY_WINDOW; __i++)             \
			cpu_relax();                                        \
		if (__cur == (typeof(*(ptr)))(o))                           \
			WRITE_ONCE(*(ptr), (n));                            \
		__cur;                                                      \
	})
#else
/* settles: two mappers installing a table into one empty entry; exactly one CAS succeeds. */
#define __ibk_cmpxchg(ptr, o, n)                                                         \
	({                                                                               \
		typeof(*(ptr)) __old = (o);                                              \
		__atomic_compare_exchange_n((ptr), &__old, (n), false, __ATOMIC_RELAXED, \
					    __ATOMIC_RELAXED);                           \
		__old;                                                                   \
	})
#endif
#define cmpxchg64_relaxed(ptr, o, n) __ibk_cmpxchg((ptr), (o), (n))
#define cmpxchg_relaxed(ptr, o, n) __ibk_cmpxchg((ptr), (o), (n))
#define cmpxchg64(ptr, o, n) __ibk_cmpxchg((ptr), (o), (n))
#define cmpxchg(ptr, o, n) __ibk_cmpxchg((ptr), (o), (n))
/* settles: concurrent exchangers of one word; each sees a distinct previous value. */
#define xchg(ptr, v) __atomic_exchange_n((ptr), (v), __ATOMIC_SEQ_CST)
#define xchg_relaxed(ptr, v) __atomic_exchange_n((ptr), (v), __ATOMIC_RELAXED)

#define ATOMIC_INIT(i) { (i) }
static inline int atomic_read(const atomic_t *v) { return READ_ONCE(v->counter); }
static inline void atomic_set(atomic_t *v, int i) { WRITE_ONCE(v->counter, i); }
/* settles: concurrent counters of one atomic_t (no increment lost). */
static inline void atomic_inc(atomic_t *v) { __atomic_fetch_add(&v->counter, 1, __ATOMIC_RELAXED); }
/* settles: concurrent counters of one atomic_t (no decrement lost). */
static inline void atomic_dec(atomic_t *v) { __atomic_fetch_sub(&v->counter, 1, __ATOMIC_RELAXED); }
/* settles: concurrent adders of one atomic_t; the returned value is this add's own result. */
static inline int atomic_add_return(int i, atomic_t *v)
{
	return __atomic_add_fetch(&v->counter, i, __ATOMIC_SEQ_CST);
}
#define atomic_inc_return(v) atomic_add_return(1, (v))
#define atomic_dec_return(v) atomic_add_return(-1, (v))
#define atomic_dec_and_test(v) (atomic_add_return(-1, (v)) == 0)

/* ---- WARN and BUG (counted in the shared region; WARN never stops the caller) ------------ */
void ibk_warn(const char *file, int line, const char *cond);
void ibk_bug(const char *file, int line, const char *cond) __attribute__((noreturn));
__printf(1, 2) void ibk_printk(const char *fmt, ...);

#define WARN_ON(cond)                                                  \
	({                                                             \
		int __ret_warn_on = !!(cond);                          \
		if (unlikely(__ret_warn_on))                           \
			ibk_warn(__FILE__, __LINE__, #cond);           \
		unlikely(__ret_warn_on);                               \
	})
#define WARN(cond, fmt, ...)                                           \
	({                                                             \
		int __ret_warn = !!(cond);                             \
		if (unlikely(__ret_warn)) {                            \
			ibk_printk(fmt, ##__VA_ARGS__);                \
			ibk_warn(__FILE__, __LINE__, #cond);           \
		}                                                      \
		unlikely(__ret_warn);                                  \
	})
#define WARN_ON_ONCE(cond) WARN_ON(cond)
#define WARN_ONCE(cond, fmt, ...) WARN(cond, fmt, ##__VA_ARGS__)
#define BUG() ibk_bug(__FILE__, __LINE__, "BUG")
#define BUG_ON(cond)                                                   \
	do {                                                           \
		if (unlikely(cond))                                    \
			ibk_bug(__FILE__, __LINE__, #cond);            \
	} while (0)
#define VM_BUG_ON(cond) BUG_ON(cond)
#define VM_WARN_ON(cond) WARN_ON(cond)
#define might_sleep() do { } while (0)
#define lockdep_assert_held(l) do { (void)(l); } while (0)

/* ---- printk ----------------------------------------------------------------------------- */
#ifndef pr_fmt
#define pr_fmt(fmt) fmt
#endif
#define KERN_ERR ""
#define KERN_WARNING ""
#define KERN_INFO ""
#define KERN_DEBUG ""
#define printk(fmt, ...) ibk_printk(fmt, ##__VA_ARGS__)
#define pr_emerg(fmt, ...) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__)
#define pr_err(fmt, ...) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn(fmt, ...) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__)
#define pr_notice(fmt, ...) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__)
#define pr_debug(fmt, ...) do { if (0) ibk_printk(pr_fmt(fmt), ##__VA_ARGS__); } while (0)
#define pr_err_ratelimited pr_err
#define pr_warn_once pr_warn
#define pr_info_once pr_info

/* ---- modules, exports, initcalls -------------------------------------------------------- */
#define EXPORT_SYMBOL(sym) extern typeof(sym) sym
#define EXPORT_SYMBOL_GPL(sym) extern typeof(sym) sym
#define EXPORT_SYMBOL_NS_GPL(sym, ns) extern typeof(sym) sym
#define MODULE_LICENSE(x) extern int __ibk_module_unused
#define MODULE_AUTHOR(x) extern int __ibk_module_unused
#define MODULE_DESCRIPTION(x) extern int __ibk_module_unused
#define MODULE_IMPORT_NS(x) extern int __ibk_module_unused
typedef int (*ibk_initcall_t)(void);
/* Initcalls are collected in a section; ibk_run_initcalls() runs them when asked. */
#define __ibk_initcall(fn)                                                                   \
	static ibk_initcall_t __ibk_initcall_##fn __attribute__((used, section("ibk_initcalls"), \
							       aligned(sizeof(void *)))) = fn
#define subsys_initcall(fn) __ibk_initcall(fn)
#define device_initcall(fn) __ibk_initcall(fn)
#define late_initcall(fn) __ibk_initcall(fn)
#define arch_initcall(fn) __ibk_initcall(fn)
#define module_init(fn) __ibk_initcall(fn)
#define module_exit(fn) extern int __ibk_module_unused
#define THIS_MODULE ((void *)0)

/* ---- lists ------------------------------------------------------------------------------ */
struct list_head {
	struct list_head *next, *prev;
};
struct hlist_head {
	struct hlist_node *first;
};
struct hlist_node {
	struct hlist_node *next, **pprev;
};
#define LIST_HEAD_INIT(name) { &(name), &(name) }
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)
static inline void INIT_LIST_HEAD(struct list_head *l) { l->next = l; l->prev = l; }
static inline bool list_empty(const struct list_head *h) { return READ_ONCE(h->next) == h; }
static inline void list_add(struct list_head *n, struct list_head *h)
{
	n->next = h->next; n->prev = h; h->next->prev = n; h->next = n;
}
static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	n->prev = h->prev; n->next = h; h->prev->next = n; h->prev = n;
}
static inline void list_del(struct list_head *e)
{
	e->prev->next = e->next; e->next->prev = e->prev; e->next = e->prev = NULL;
}
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) list_entry((ptr)->next, type, member)
#define list_for_each_entry(pos, head, member)                                  \
	for (pos = list_entry((head)->next, typeof(*pos), member); &pos->member != (head); \
	     pos = list_entry(pos->member.next, typeof(*pos), member))
#define INIT_HLIST_NODE(h) do { (h)->next = NULL; (h)->pprev = NULL; } while (0)
#define hlist_entry(ptr, type, member) container_of(ptr, type, member)
#define hlist_entry_safe(ptr, type, member)                                     \
	({ typeof(ptr) ____ptr = (ptr); ____ptr ? hlist_entry(____ptr, type, member) : NULL; })

static inline int cache_line_size(void) { return 64; }

/* ---- CPUs: the worker index is the CPU ------------------------------------------------------ */
#define NR_CPUS 64
extern __thread int ibk_cpu __attribute__((tls_model("initial-exec")));
unsigned int ibk_nr_cpus(void);
unsigned int ibk_online_cpus(void);
static inline int ibk_this_cpu(void) { return ibk_cpu < 0 ? 0 : ibk_cpu; }
#define nr_cpu_ids ibk_nr_cpus()
#define num_online_cpus() ibk_online_cpus()
#define num_possible_cpus() ibk_nr_cpus()
#define smp_processor_id() ibk_this_cpu()
#define raw_smp_processor_id() ibk_this_cpu()
#define get_cpu() ibk_this_cpu()
#define put_cpu() do { } while (0)
#define cpu_online(cpu) ((unsigned int)(cpu) < ibk_online_cpus())
#define for_each_possible_cpu(cpu) for ((cpu) = 0; (cpu) < (int)ibk_nr_cpus(); (cpu)++)
#define for_each_online_cpu(cpu) for ((cpu) = 0; (cpu) < (int)ibk_online_cpus(); (cpu)++)
#define preempt_disable() barrier()
#define preempt_enable() barrier()
#define local_irq_save(f) do { (f) = 0; } while (0)
#define local_irq_restore(f) do { (void)(f); } while (0)

/* Per-CPU areas: NR worker copies of one object, `stride` bytes apart, in the shared heap. */
void *ibk_alloc_percpu(size_t size, size_t align);
void ibk_free_percpu(void *p);
size_t ibk_percpu_stride(const void *p);
#define __alloc_percpu(size, align) ibk_alloc_percpu((size), (align))
#define alloc_percpu(type) ((type *)ibk_alloc_percpu(sizeof(type), __alignof__(type)))
#define free_percpu(p) ibk_free_percpu(p)
#define per_cpu_ptr(p, cpu) ((typeof(p))((char *)(p) + (size_t)(cpu) * ibk_percpu_stride(p)))
#define raw_cpu_ptr(p) per_cpu_ptr(p, ibk_this_cpu())
#define this_cpu_ptr(p) per_cpu_ptr(p, ibk_this_cpu())
#define get_cpu_ptr(p) per_cpu_ptr(p, ibk_this_cpu())
#define put_cpu_ptr(p) do { (void)(p); } while (0)

/* CPU hotplug: instances are recorded; the harness may call the dead callback (cpu offline). */
enum cpuhp_state {
	CPUHP_INVALID = -1,
	CPUHP_OFFLINE = 0,
	CPUHP_IOMMU_IOVA_DEAD,
	CPUHP_AP_ONLINE_DYN,
};
int ibk_cpuhp_setup_multi(int state, int (*startup)(unsigned int, struct hlist_node *),
			  int (*teardown)(unsigned int, struct hlist_node *));
int ibk_cpuhp_add_instance(int state, struct hlist_node *node);
int ibk_cpuhp_remove_instance(int state, struct hlist_node *node);
#define cpuhp_setup_state_multi(state, name, startup, teardown) \
	ibk_cpuhp_setup_multi((state), (startup), (teardown))
#define cpuhp_state_add_instance_nocalls(state, node) ibk_cpuhp_add_instance((state), (node))
#define cpuhp_state_remove_instance_nocalls(state, node) ibk_cpuhp_remove_instance((state), (node))
#define cpuhp_state_add_instance(state, node) ibk_cpuhp_add_instance((state), (node))
#define cpuhp_state_remove_instance(state, node) ibk_cpuhp_remove_instance((state), (node))
#define cpuhp_remove_multi_state(state) ibk_cpuhp_setup_multi((state), NULL, NULL)

/* ---- spinlocks and mutexes (process-shared: they live in the shared region) --------------- */
typedef struct {
	int locked; /* 0 free, 1 held */
} arch_spinlock_t;
typedef struct spinlock {
	arch_spinlock_t raw;
} spinlock_t;
typedef spinlock_t raw_spinlock_t;
void ibk_spin_lock_slow(spinlock_t *l);
static inline void spin_lock_init(spinlock_t *l) { __atomic_store_n(&l->raw.locked, 0, __ATOMIC_RELAXED); }
/* per-thread acquisition count, published by ibk_publish() */
extern __thread unsigned long ibk_lock_acq __attribute__((tls_model("initial-exec")));
static inline void spin_lock(spinlock_t *l)
{
	ibk_lock_acq++;
	/* settles: mutual exclusion of every holder of l, in any process mapping the region */
	if (likely(!__atomic_exchange_n(&l->raw.locked, 1, __ATOMIC_ACQUIRE)))
		return;
	ibk_spin_lock_slow(l);
}
static inline void spin_unlock(spinlock_t *l)
{
	/* settles: the next holder sees every write made under l (release) */
	__atomic_store_n(&l->raw.locked, 0, __ATOMIC_RELEASE);
}
static inline int spin_trylock(spinlock_t *l)
{
	/* settles: mutual exclusion, as spin_lock, without waiting */
	return !__atomic_exchange_n(&l->raw.locked, 1, __ATOMIC_ACQUIRE);
}
static inline int spin_is_locked(spinlock_t *l) { return __atomic_load_n(&l->raw.locked, __ATOMIC_RELAXED); }
#define DEFINE_SPINLOCK(x) spinlock_t x = { { 0 } }
#define __SPIN_LOCK_UNLOCKED(x) { { 0 } }
#define spin_lock_irqsave(l, flags) do { (flags) = 0; spin_lock(l); } while (0)
#define spin_unlock_irqrestore(l, flags) do { (void)(flags); spin_unlock(l); } while (0)
#define spin_lock_irq(l) spin_lock(l)
#define spin_unlock_irq(l) spin_unlock(l)
#define spin_lock_bh(l) spin_lock(l)
#define spin_unlock_bh(l) spin_unlock(l)
#define raw_spin_lock_init spin_lock_init
#define raw_spin_lock spin_lock
#define raw_spin_unlock spin_unlock
#define raw_spin_lock_irqsave spin_lock_irqsave
#define raw_spin_unlock_irqrestore spin_unlock_irqrestore
#define assert_spin_locked(l) WARN_ON(!spin_is_locked(l))

struct mutex {
	spinlock_t lock;
};
#define DEFINE_MUTEX(name) struct mutex name = { { { 0 } } }
#define mutex_init(m) spin_lock_init(&(m)->lock)
#define mutex_lock(m) spin_lock(&(m)->lock)
#define mutex_unlock(m) spin_unlock(&(m)->lock)
#define mutex_destroy(m) do { (void)(m); } while (0)

/* ---- RCU (no grace periods: nothing here is freed under a reader the shim knows of) -------- */
#define rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define RCU_INIT_POINTER(p, v) WRITE_ONCE(p, v)
#define rcu_dereference(p) READ_ONCE(p)
#define rcu_dereference_raw(p) READ_ONCE(p)
#define rcu_dereference_protected(p, c) (p)
#define rcu_access_pointer(p) READ_ONCE(p)
#define rcu_read_lock() barrier()
#define rcu_read_unlock() barrier()

/* ---- time and delayed work (run by the harness's tick: ibk_tick) ---------------------------- */
#define HZ 1000
unsigned long ibk_jiffies(void);
#define jiffies ibk_jiffies()
static inline unsigned long msecs_to_jiffies(unsigned int m) { return m; }
static inline unsigned int jiffies_to_msecs(unsigned long j) { return (unsigned int)j; }
#define usecs_to_jiffies(u) DIV_ROUND_UP((u), 1000)

struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);
struct work_struct {
	work_func_t func;
};
struct delayed_work {
	struct work_struct work;
	u64 due_ns;         /* when the tick may run it */
	int pending;        /* 0 idle, 1 queued */
	int slot;           /* index in the region's work list, -1 if not registered */
};
void ibk_init_delayed_work(struct delayed_work *dw, work_func_t fn);
bool ibk_schedule_delayed_work(struct delayed_work *dw, unsigned long delay);
bool ibk_cancel_delayed_work_sync(struct delayed_work *dw);
#define INIT_DELAYED_WORK(dw, fn) ibk_init_delayed_work((dw), (fn))
#define INIT_WORK(w, fn) do { (w)->func = (fn); } while (0)
#define to_delayed_work(w) container_of(w, struct delayed_work, work)
#define schedule_delayed_work(dw, delay) ibk_schedule_delayed_work((dw), (delay))
#define queue_delayed_work(wq, dw, delay) ibk_schedule_delayed_work((dw), (delay))
#define mod_delayed_work(wq, dw, delay) ibk_schedule_delayed_work((dw), (delay))
#define cancel_delayed_work_sync(dw) ibk_cancel_delayed_work_sync(dw)
#define cancel_delayed_work(dw) ibk_cancel_delayed_work_sync(dw)
#define flush_delayed_work(dw) ((void)(dw))

/* ---- memory: pages, phys addresses, kmalloc, kmem_cache ------------------------------------ */
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define NUMA_NO_NODE (-1)

#define ___GFP_ZERO 0x100u
#define __GFP_ZERO ((gfp_t)___GFP_ZERO)
#define __GFP_HIGHMEM ((gfp_t)0x02u)
#define __GFP_NOWARN ((gfp_t)0x200u)
#define __GFP_NORETRY ((gfp_t)0x400u)
#define __GFP_COMP ((gfp_t)0x800u)
#define GFP_ATOMIC ((gfp_t)0x1u)
#define GFP_KERNEL ((gfp_t)0x4u)
#define GFP_NOWAIT ((gfp_t)0x8u)
#define GFP_DMA32 ((gfp_t)0x10u)

static inline int get_order(unsigned long size)
{
	return size <= PAGE_SIZE ? 0 : fls_long((size - 1) >> PAGE_SHIFT);
}

/* The page window: table pages live in [ibk_window_base, +size); phys = offset. */
extern char *ibk_window_base;
static inline phys_addr_t virt_to_phys(const volatile void *p)
{
	return (phys_addr_t)((const char *)p - ibk_window_base);
}
static inline void *phys_to_virt(phys_addr_t pa) { return ibk_window_base + pa; }
#define __pa(p) virt_to_phys((const void *)(p))
#define __va(pa) phys_to_virt((phys_addr_t)(pa))
#define virt_to_pfn(p) (virt_to_phys(p) >> PAGE_SHIFT)

/* Page-sized allocations (zeroed, naturally aligned) from the window's allocator. */
void *ibk_pages_alloc(size_t size, gfp_t gfp);
void ibk_pages_free(void *p, size_t size);
/* struct page is never dereferenced: a page pointer is the page's virtual address. */
struct page;
static inline struct page *alloc_pages_node(int nid, gfp_t gfp, unsigned int order)
{
	(void)nid;
	return (struct page *)ibk_pages_alloc(PAGE_SIZE << order, gfp);
}
#define alloc_pages(gfp, order) alloc_pages_node(NUMA_NO_NODE, (gfp), (order))
static inline void *page_address(const struct page *p) { return (void *)p; }
static inline struct page *virt_to_page(const void *v) { return (struct page *)v; }
static inline void __free_pages(struct page *p, unsigned int order)
{
	ibk_pages_free((void *)p, PAGE_SIZE << order);
}
static inline void free_pages(unsigned long addr, unsigned int order)
{
	if (addr)
		ibk_pages_free((void *)addr, PAGE_SIZE << order);
}
#define __get_free_pages(gfp, order) ((unsigned long)ibk_pages_alloc(PAGE_SIZE << (order), (gfp)))
#define get_zeroed_page(gfp) __get_free_pages((gfp), 0)
#define free_page(addr) free_pages((addr), 0)

/* The shared heap. */
void *ibk_kmalloc(size_t size, gfp_t gfp);
void ibk_kfree(const void *p);
#define kmalloc(size, gfp) ibk_kmalloc((size), (gfp))
#define kzalloc(size, gfp) ibk_kmalloc((size), (gfp) | __GFP_ZERO)
#define kmalloc_array(n, size, gfp) ibk_kmalloc((n) * (size), (gfp))
#define kcalloc(n, size, gfp) ibk_kmalloc((n) * (size), (gfp) | __GFP_ZERO)
#define kvmalloc(size, gfp) ibk_kmalloc((size), (gfp))
#define kvzalloc(size, gfp) ibk_kmalloc((size), (gfp) | __GFP_ZERO)
#define kfree(p) ibk_kfree(p)
#define kvfree(p) ibk_kfree(p)
#define kfree_sensitive(p) ibk_kfree(p)

#define SLAB_HWCACHE_ALIGN ((slab_flags_t)0x2000u)
#define SLAB_PANIC ((slab_flags_t)0x40000u)
#define SLAB_ACCOUNT ((slab_flags_t)0x4000000u)
struct kmem_cache;
struct kmem_cache *ibk_kmem_cache_create(const char *name, unsigned int size, unsigned int align,
					 slab_flags_t flags, void (*ctor)(void *));
void ibk_kmem_cache_destroy(struct kmem_cache *c);
void *ibk_kmem_cache_alloc(struct kmem_cache *c, gfp_t gfp);
void ibk_kmem_cache_free(struct kmem_cache *c, void *p);
#define kmem_cache_create(name, size, align, flags, ctor) \
	ibk_kmem_cache_create((name), (size), (align), (flags), (ctor))
#define kmem_cache_destroy(c) ibk_kmem_cache_destroy(c)
#define kmem_cache_alloc(c, gfp) ibk_kmem_cache_alloc((c), (gfp))
#define kmem_cache_zalloc(c, gfp) ibk_kmem_cache_alloc((c), (gfp) | __GFP_ZERO)
#define kmem_cache_free(c, p) ibk_kmem_cache_free((c), (p))
#define kmemleak_transient_leak(p) do { (void)(p); } while (0)
#define kmemleak_ignore(p) do { (void)(p); } while (0)
#define kmemleak_not_leak(p) do { (void)(p); } while (0)

/* ---- devices and DMA (the table walk is coherent; these keep the non-coherent path honest) -- */
struct device {
	int numa_node;
};
static inline int dev_to_node(struct device *dev) { return dev ? dev->numa_node : NUMA_NO_NODE; }
static inline void set_dev_node(struct device *dev, int node) { if (dev) dev->numa_node = node; }
#define dev_err(dev, fmt, ...) ibk_printk(fmt, ##__VA_ARGS__)
#define dev_warn(dev, fmt, ...) ibk_printk(fmt, ##__VA_ARGS__)
#define dev_info(dev, fmt, ...) ibk_printk(fmt, ##__VA_ARGS__)
#define dev_dbg(dev, fmt, ...) do { } while (0)
enum dma_data_direction {
	DMA_BIDIRECTIONAL = 0,
	DMA_TO_DEVICE = 1,
	DMA_FROM_DEVICE = 2,
	DMA_NONE = 3,
};
#define DMA_MAPPING_ERROR (~(dma_addr_t)0)
extern unsigned long ibk_dma_syncs; /* per-process count of cache maintenance calls */
static inline dma_addr_t dma_map_single(struct device *dev, void *p, size_t size,
					enum dma_data_direction dir)
{
	(void)dev; (void)size; (void)dir;
	ibk_dma_syncs++;
	return (dma_addr_t)virt_to_phys(p);
}
static inline void dma_unmap_single(struct device *dev, dma_addr_t a, size_t size,
				    enum dma_data_direction dir)
{
	(void)dev; (void)a; (void)size; (void)dir;
}
static inline int dma_mapping_error(struct device *dev, dma_addr_t a)
{
	(void)dev;
	return a == DMA_MAPPING_ERROR;
}
static inline void dma_sync_single_for_device(struct device *dev, dma_addr_t a, size_t size,
					      enum dma_data_direction dir)
{
	(void)dev; (void)a; (void)size; (void)dir;
	ibk_dma_syncs++;
}

/* ---- the slice of linux/iommu.h that io-pgtable needs ------------------------------------ */
#define IOMMU_READ (1 << 0)
#define IOMMU_WRITE (1 << 1)
#define IOMMU_CACHE (1 << 2)
#define IOMMU_NOEXEC (1 << 3)
#define IOMMU_MMIO (1 << 4)
#define IOMMU_PRIV (1 << 5)
#define IOMMU_DIRTY_NO_CLEAR (1 << 0)
struct iommu_iotlb_gather {
	unsigned long start;
	unsigned long end;
	size_t pgsize;
	struct list_head freelist;
	bool queued;
};
static inline void iommu_iotlb_gather_init(struct iommu_iotlb_gather *g)
{
	g->start = ULONG_MAX;
	g->end = 0;
	g->pgsize = 0;
	INIT_LIST_HEAD(&g->freelist);
	g->queued = false;
}
static inline bool iommu_iotlb_gather_queued(struct iommu_iotlb_gather *g)
{
	return g && g->queued;
}
static inline void iommu_iotlb_gather_add_range(struct iommu_iotlb_gather *g, unsigned long iova,
						size_t size)
{
	unsigned long end = iova + size - 1;
	if (g->start > iova)
		g->start = iova;
	if (g->end < end)
		g->end = end;
}
struct iommu_dirty_bitmap {
	void *bitmap;
	struct iommu_iotlb_gather *gather;
};
void ibk_dirty_record(struct iommu_dirty_bitmap *dirty, unsigned long iova, unsigned long length);
#define iommu_dirty_bitmap_record(d, iova, len) ibk_dirty_record((d), (iova), (len))

#endif /* IBK_SHIM_H */
