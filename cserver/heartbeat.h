/* Worker heartbeats: one cache-line slot per worker in a shared anonymous
 * mapping created by Python before fork.  The worker stores the monotonic time
 * in milliseconds; the master reads it.  No file I/O, no locks: each slot has a
 * single writer and the value is read and written atomically.
 *
 * None of these functions touch Python; any thread, GIL or not. */
#ifndef CN_HEARTBEAT_H
#define CN_HEARTBEAT_H

#include <stdint.h>

#define CN_HEARTBEAT_SLOT_SIZE 64

/* Set by the master in a slot it forks a worker into, until the worker's
 * first beat: that worker is not accepting yet.  Makes the slot's time look
 * far in the future to a reader that does not mask it. */
#define CN_HB_UNBOOTED ((uint64_t)1 << 62)

/* A slot's value as milliseconds, without the UNBOOTED bit. */
static inline uint64_t
cn_heartbeat_ms(uint64_t v)
{
    return v & ~CN_HB_UNBOOTED;
}

/* Monotonic clock in milliseconds. */
uint64_t cn_now_ms(void);

/* Store "now" in slot `slot` of `table` (no-op when table is NULL or slot < 0). */
void cn_heartbeat_beat(void *table, int slot);

/* Store an explicit value (the master stamps a slot before forking into it). */
void cn_heartbeat_set(void *table, int slot, uint64_t ms);

/* The last value stored in slot `slot`. */
uint64_t cn_heartbeat_read(const void *table, int slot);

/* A second word in each slot, for the worker's own use (the gthread worker
 * publishes its load there: loop.c).  Same rules: one writer, atomic. */
void cn_heartbeat_set_load(void *table, int slot, uint64_t v);
uint64_t cn_heartbeat_read_load(const void *table, int slot);

#endif
