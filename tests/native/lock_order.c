/* lock_order: one lock of the `lock` axis on its own, driven by threads (no arena, no
 * Python), built by tests/core/test_lock_order.py with -DLOCK=PREFIX (the lock's C prefix),
 * -DLOCK_FILE=locks/FILE.c and, for the locks that promise FIFO order (IB_FIFO), -DLOCK_FIFO;
 * linked with every other object of the core (the lock's own file is #included here).
 *
 *   lock_order exclusion THREADS ITERS   threads increment a plain counter under the lock;
 *                                        a broken exclusion shows as a lost increment, an
 *                                        overlap seen inside, or a TSan report
 *   lock_order fifo ROUNDS               the main thread holds the lock while waiters 1..4
 *                                        arrive one after another (each seen queued in the
 *                                        lock word before the next starts); after the
 *                                        release they must get the lock in arrival order
 *   lock_order abort                     the holder never releases and the point is aborted:
 *                                        the waiter must leave (the process exits with
 *                                        ib_exit_aborted's status) instead of hanging
 * Exit 0 when the property holds, 1 when it does not, 2 for bad arguments.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR2(a) #a
#define STR(a) STR2(a)
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#include STR(LOCK_FILE)

#define WAITERS 4
#define MAX_THREADS 8
#define L_lock CAT(LOCK, _lock)
#define L_node CAT(LOCK, _node)

static struct L_lock lock_word __attribute__((aligned(64)));
static char nodes[MAX_THREADS][128] __attribute__((aligned(128)));
static struct ib_header header;
static uint64_t counter, inside;
static long iters;
static uint32_t order[WAITERS], arrived;

static void ctx_for(struct ib_ctx *x, uint32_t worker)
{
    memset(x, 0, sizeof(*x));
    x->base = &header;
    x->worker = worker;
    x->lock_nodes = &nodes[0][0];
    x->lock_node_stride = sizeof(nodes[0]);
    _Static_assert(sizeof(struct L_node) <= sizeof(nodes[0]), "node larger than its slot");
}

static void *hammer(void *arg)
{
    struct ib_ctx x;
    ctx_for(&x, (uint32_t)(uintptr_t)arg);
    for (long i = 0; i < iters; i++) {
        CAT(LOCK, _acquire)(&x, &lock_word, &x.c.lock_acquisitions);
        /* plain accesses on purpose: the lock alone must order them (TSan checks) */
        if (inside++ != 0) {
            fprintf(stderr, "two holders at once\n");
            exit(1);
        }
        counter++;
        inside--;
        CAT(LOCK, _release)(&x, &lock_word);
    }
    return 0;
}

static void *waiter(void *arg)
{
    struct ib_ctx x;
    ctx_for(&x, (uint32_t)(uintptr_t)arg);
    CAT(LOCK, _acquire)(&x, &lock_word, &x.c.lock_acquisitions);
    order[arrived++] = x.worker;
    CAT(LOCK, _release)(&x, &lock_word);
    return 0;
}

/* Waiter k (worker index k, 1-based) shows in the lock word as queued: the lock's own hook,
 * NAME_queued, which a lock that promises FIFO order (IB_FIFO) defines. */
static int queued(uint32_t k)
{
#if defined(LOCK_FIFO)
    return CAT(LOCK, _queued)(&lock_word, k);
#else
    (void)k;
    fprintf(stderr, "%s promises no order\n", STR(LOCK));
    exit(2);
#endif
}

static int fifo(long rounds)
{
    struct ib_ctx x;
    ctx_for(&x, 0);
    pthread_t t[WAITERS + 1];
    for (long r = 0; r < rounds; r++) {
        arrived = 0;
        CAT(LOCK, _acquire)(&x, &lock_word, &x.c.lock_acquisitions);
        for (uint32_t k = 1; k <= WAITERS; k++) {
            if (pthread_create(&t[k], 0, waiter, (void *)(uintptr_t)k))
                return 2;
            IB_SPIN_WHILE(&x, !queued(k));
        }
        CAT(LOCK, _release)(&x, &lock_word);
        for (uint32_t k = 1; k <= WAITERS; k++)
            pthread_join(t[k], 0);
        for (uint32_t k = 0; k < WAITERS; k++)
            if (order[k] != k + 1) {
                printf("round %ld: order %u %u %u %u\n", r, order[0], order[1], order[2],
                       order[3]);
                return 1;
            }
    }
    printf("fifo ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    CAT(LOCK, _init)(&lock_word);
    if (argc == 4 && !strcmp(argv[1], "exclusion")) {
        int n = atoi(argv[2]);
        iters = atol(argv[3]);
        pthread_t t[MAX_THREADS];
        if (n < 1 || n > MAX_THREADS)
            return 2;
        for (int i = 0; i < n; i++)
            if (pthread_create(&t[i], 0, hammer, (void *)(uintptr_t)i))
                return 2;
        for (int i = 0; i < n; i++)
            pthread_join(t[i], 0);
        printf("counter %lu of %lu\n", (unsigned long)counter, (unsigned long)(n * iters));
        return counter == (uint64_t)(n * iters) ? 0 : 1;
    }
    if (argc == 3 && !strcmp(argv[1], "fifo"))
        return fifo(atol(argv[2]));
    if (argc == 2 && !strcmp(argv[1], "abort")) {
        struct ib_ctx x;
        ctx_for(&x, 0);
        CAT(LOCK, _acquire)(&x, &lock_word, &x.c.lock_acquisitions);
        ib_abort(&header);
        pthread_t t;
        if (pthread_create(&t, 0, waiter, (void *)(uintptr_t)1))
            return 2;
        pthread_join(t, 0);
        printf("the waiter took a lock that was never released\n");
        return 1;
    }
    return 2;
}
