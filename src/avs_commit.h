/*
 * Group commit.  Threads that have a validated batch hand it in here and
 * wait; one of them (the leader) commits every batch that is waiting in
 * one transaction, so that many concurrent uploads share one fsync.
 */

#ifndef AVS_COMMIT_H
#define AVS_COMMIT_H

#include "avs_store.h"

typedef struct avs_committer_s  avs_committer_t;

/* max_group bounds the batches of one transaction (0: 256). */
avs_committer_t *avs_committer_create(avs_store_t *store, size_t max_group);
void avs_committer_destroy(avs_committer_t *c);

/*
 * Blocks until the batch is committed or refused; returns the batch's own
 * result (also left in batch->err).
 */
avs_rc_t avs_committer_submit(avs_committer_t *c, avs_batch_t *batch);

#endif /* AVS_COMMIT_H */
