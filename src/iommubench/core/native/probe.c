/* The handoff probe: how long one cache line takes to move between two CPUs right now.
 * Two threads pinned to cpu_a and cpu_b pass a counter back and forth. On VMs whose vCPUs
 * change placement this moves by several times, and points are only comparable with points
 * measured in the same state. The caller's own thread is never pinned.
 *
 * The line lives on the caller's stack, so the caller never returns while a player can still
 * touch it: a player that cannot be pinned (a CPU outside the allowed set) or cannot be
 * started calls the probe off, the other player sees that instead of spinning for a partner,
 * and the caller joins every player it started before it returns -1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>

#include "arena.h"
#include "clock.h"

struct shared_line {
    uint64_t turn;
    uint32_t ready;     /* players pinned and waiting to start */
    uint32_t cancelled; /* set when a player could not be pinned or started */
} IB_ALIGNED;

struct player {
    struct shared_line *line;
    uint64_t rounds;
    uint64_t elapsed_ns;
    int cpu;
    int parity;
};

static void *play(void *arg)
{
    struct player *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
        /* relaxed: the partner only needs to stop waiting; the caller reads it after joins */
        __atomic_store_n(&p->line->cancelled, 1, __ATOMIC_RELAXED);
        return 0;
    }
    /* acq_rel: the start barrier; the partner's count and ours order both players' starts */
    __atomic_fetch_add(&p->line->ready, 1, __ATOMIC_ACQ_REL);
    /* acquire: pairs with the partner's increment above */
    while (__atomic_load_n(&p->line->ready, __ATOMIC_ACQUIRE) < 2) {
        /* relaxed: a cancelled probe has no partner coming; leave before touching turn */
        if (__atomic_load_n(&p->line->cancelled, __ATOMIC_RELAXED))
            return 0;
        cpu_relax();
    }
    uint64_t t0 = ib_clock_ns();
    for (uint64_t i = (uint64_t)p->parity; i < 2 * p->rounds; i += 2) {
        while (__atomic_load_n(&p->line->turn, __ATOMIC_ACQUIRE) != i)
            cpu_relax();
        __atomic_store_n(&p->line->turn, i + 1, __ATOMIC_RELEASE);
    }
    p->elapsed_ns = ib_clock_ns() - t0;
    return 0;
}

double ib_handoff_probe_ns(int cpu_a, int cpu_b, uint32_t rounds)
{
    if (cpu_a == cpu_b || rounds == 0)
        return -1.0;
    struct shared_line line = {0, 0, 0};
    struct player players[2] = {{&line, rounds, 0, cpu_a, 0}, {&line, rounds, 0, cpu_b, 1}};
    pthread_t threads[2];
    int started = 0;
    while (started < 2 && pthread_create(&threads[started], 0, play, &players[started]) == 0)
        started++;
    if (started < 2)
        /* relaxed: the started player only needs to stop waiting; it is joined below */
        __atomic_store_n(&line.cancelled, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], 0);
    if (line.cancelled)
        return -1.0;
    return (double)players[0].elapsed_ns / (2.0 * rounds);
}
