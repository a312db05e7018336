/*
 * Robust process-shared mutex used as the store's write lock.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* pthread_mutex_clocklock */
#endif

#include <errno.h>
#include <string.h>
#include <time.h>

#include "avs_lock.h"


avs_rc_t
avs_lock_init(avs_lock_t *lock)
{
    pthread_mutexattr_t  attr;
    int                  rc;

    if (lock->ready == AVS_LOCK_READY) {
        return AVS_OK;
    }

    if (pthread_mutexattr_init(&attr) != 0) {
        return AVS_EINTERNAL;
    }

    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }

    if (rc == 0) {
        rc = pthread_mutex_init(&lock->mutex, &attr);
    }

    pthread_mutexattr_destroy(&attr);

    if (rc != 0) {
        return AVS_EINTERNAL;
    }

    lock->recoveries = 0;
    lock->sync_failed = 0;
    lock->ready = AVS_LOCK_READY;

    return AVS_OK;
}


/*
 * A dead owner left the lock in an inconsistent state; what it protected is
 * a SQLite transaction that never committed, which SQLite rolls back by
 * itself, so the lock can simply be declared consistent again.
 */
avs_rc_t
avs_lock_acquire(avs_lock_t *lock, unsigned timeout_ms, avs_err_t *err)
{
    struct timespec  deadline;
    int              rc;

    avs_deadline(&deadline, timeout_ms);

    rc = pthread_mutex_clocklock(&lock->mutex, CLOCK_MONOTONIC, &deadline);

    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&lock->mutex);
        lock->recoveries++;
        rc = 0;
    }

    if (rc == ETIMEDOUT) {
        return avs_err_set(err, AVS_EBUSY,
                           "hot store busy: write lock not had in %u ms",
                           timeout_ms);
    }

    if (rc != 0) {
        return avs_err_set(err, AVS_ESTORE, "hot store lock failed: %s",
                           strerror(rc));
    }

    return AVS_OK;
}


void
avs_lock_release(avs_lock_t *lock)
{
    pthread_mutex_unlock(&lock->mutex);
}
