/*
 * Leader/follower group commit over avs_store_commit().
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "avs_commit.h"

typedef struct avs_commit_wait_s  avs_commit_wait_t;

struct avs_commit_wait_s {
    avs_batch_t        *batch;
    avs_commit_wait_t  *next;
    pthread_cond_t      cond;       /* this waiter's own wake-up */
    int                 done;
};

struct avs_committer_s {
    pthread_mutex_t     mutex;
    avs_store_t        *store;
    avs_commit_wait_t  *head;
    avs_commit_wait_t **tail;
    avs_batch_t       **group;
    avs_commit_wait_t **members;
    size_t              max_group;
    int                 leading;
};


avs_committer_t *
avs_committer_create(avs_store_t *store, size_t max_group)
{
    avs_committer_t  *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }

    c->max_group = max_group ? max_group : 256;
    c->group = calloc(c->max_group, sizeof(*c->group));
    c->members = calloc(c->max_group, sizeof(*c->members));

    if (c->group == NULL || c->members == NULL
        || pthread_mutex_init(&c->mutex, NULL) != 0)
    {
        free(c->group);
        free(c->members);
        free(c);
        return NULL;
    }

    c->store = store;
    c->tail = &c->head;

    return c;
}


void
avs_committer_destroy(avs_committer_t *c)
{
    if (c == NULL) {
        return;
    }

    pthread_mutex_destroy(&c->mutex);
    free(c->group);
    free(c->members);
    free(c);
}


/*
 * Takes up to max_group waiting batches off the queue; called with the
 * mutex held by the leader.
 */
static size_t
avs_committer_take(avs_committer_t *c)
{
    avs_commit_wait_t  *w;
    size_t              n;

    n = 0;

    while (c->head != NULL && n < c->max_group) {
        w = c->head;
        c->head = w->next;
        c->group[n] = w->batch;
        c->members[n] = w;
        n++;
    }

    if (c->head == NULL) {
        c->tail = &c->head;
    }

    return n;
}


/*
 * Each waiter sleeps on a condition of its own: the leader wakes exactly
 * the members of its group and then the first waiter left, who leads the
 * next group.  Waking every waiting thread at each commit would cost more
 * than the commit itself under load.
 */
avs_rc_t
avs_committer_submit(avs_committer_t *c, avs_batch_t *batch)
{
    avs_commit_wait_t   me;
    avs_err_t           err;
    avs_rc_t            rc;
    size_t              i, n;

    me.batch = batch;
    me.next = NULL;
    me.done = 0;

    if (pthread_cond_init(&me.cond, NULL) != 0) {
        return avs_err_set(&batch->err, AVS_EINTERNAL,
                           "cannot wait for the commit");
    }

    pthread_mutex_lock(&c->mutex);

    *c->tail = &me;
    c->tail = &me.next;

    while (!me.done) {

        if (c->leading) {
            pthread_cond_wait(&me.cond, &c->mutex);
            continue;
        }

        c->leading = 1;
        n = avs_committer_take(c);
        pthread_mutex_unlock(&c->mutex);

        memset(&err, 0, sizeof(err));
        rc = avs_store_commit(c->store, c->group, n, &err);

        pthread_mutex_lock(&c->mutex);

        for (i = 0; i < n; i++) {
            if (rc != AVS_OK) {
                c->group[i]->err = err;
            }

            c->members[i]->done = 1;

            if (c->members[i] != &me) {
                pthread_cond_signal(&c->members[i]->cond);
            }
        }

        c->leading = 0;

        if (c->head != NULL) {
            pthread_cond_signal(&c->head->cond);
        }
    }

    pthread_mutex_unlock(&c->mutex);
    pthread_cond_destroy(&me.cond);

    return batch->err.rc;
}
