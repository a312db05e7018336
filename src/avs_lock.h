/*
 * The lock that serializes every SQLite write and checkpoint across all
 * processes and threads that share a store.  SQLite before 3.51.3 can
 * corrupt a WAL database when two connections write or checkpoint at the
 * same moment, so the store never relies on SQLite's own locking alone.
 *
 * The lock lives in memory shared by all processes (an nginx shared zone,
 * which survives reloads).  It is a robust process-shared mutex: when its
 * owner dies (kill -9 of a worker), the next locker takes it over.
 */

#ifndef AVS_LOCK_H
#define AVS_LOCK_H

#include <pthread.h>
#include "avs_base.h"

typedef struct {
    pthread_mutex_t  mutex;
    uint32_t         ready;     /* AVS_LOCK_READY once initialized */
    uint32_t         recoveries; /* times a dead owner's lock was taken */
    uint32_t         sync_failed; /* an fsync of the store failed: writes
                                     are refused until the memory is new */
} avs_lock_t;

#define AVS_LOCK_READY  0x61767331

/* Initializes the lock in place unless it already is. */
avs_rc_t avs_lock_init(avs_lock_t *lock);

/* Waits at most timeout_ms; AVS_EBUSY when the time runs out. */
avs_rc_t avs_lock_acquire(avs_lock_t *lock, unsigned timeout_ms,
    avs_err_t *err);

void avs_lock_release(avs_lock_t *lock);

#endif /* AVS_LOCK_H */
