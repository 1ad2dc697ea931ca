/* Worker heartbeats in shared memory: see heartbeat.h. */
#include "heartbeat.h"

#include <stddef.h>
#include <time.h>

uint64_t
cn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t *
slot_ptr(const void *table, int slot)
{
    return (uint64_t *)((char *)table + (size_t)slot * CN_HEARTBEAT_SLOT_SIZE);
}

void
cn_heartbeat_set(void *table, int slot, uint64_t ms)
{
    if (table == NULL || slot < 0) {
        return;
    }
    __atomic_store_n(slot_ptr(table, slot), ms, __ATOMIC_RELAXED);
}

void
cn_heartbeat_beat(void *table, int slot)
{
    cn_heartbeat_set(table, slot, cn_now_ms());
}

uint64_t
cn_heartbeat_read(const void *table, int slot)
{
    if (table == NULL || slot < 0) {
        return 0;
    }
    return __atomic_load_n(slot_ptr(table, slot), __ATOMIC_RELAXED);
}

void
cn_heartbeat_set_load(void *table, int slot, uint64_t v)
{
    if (table == NULL || slot < 0) {
        return;
    }
    __atomic_store_n(slot_ptr(table, slot) + 1, v, __ATOMIC_RELAXED);
}

uint64_t
cn_heartbeat_read_load(const void *table, int slot)
{
    if (table == NULL || slot < 0) {
        return 0;
    }
    return __atomic_load_n(slot_ptr(table, slot) + 1, __ATOMIC_RELAXED);
}
