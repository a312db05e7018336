/*
 * A digest computed in a helper thread.
 *
 * A streamed PUT reads its bytes from SQLite, hashes them for the catalog
 * and for the transfer check, and sends them, all in the thread libcurl
 * calls back: the hashes made that thread the slowest stage between the
 * hot store and the object store.  The bytes are copied into a ring of a
 * few slots instead, each slot filled whole before the helper hashes it,
 * so that the feeder waits only when the helper is a whole ring behind.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "avs_hashpipe.h"


#define AVS_HASHPIPE_SLOTS  4
#define AVS_HASHPIPE_SLOT   (256 * 1024)


struct avs_hashpipe_s {
    EVP_MD_CTX       *ctx;
    uint8_t          *ring;        /* NULL: hashed inline */
    size_t            fill;        /* bytes in the slot being filled */
    int               threaded;    /* the helper runs, not joined yet */
    int               locks;       /* mutex and cond to destroy */
    int               finished;
    pthread_t         thread;

    /* shared with the helper, under mutex */
    pthread_mutex_t   mutex;
    pthread_cond_t    cond;
    size_t            len[AVS_HASHPIPE_SLOTS];
    uint64_t          fed;         /* slots handed to the helper */
    uint64_t          hashed;      /* slots it is done with */
    int               closed;      /* no more slots will come */
    int               stop;        /* drop what is left */
    int               failed;
};


static void *avs_hashpipe_run(void *data);
static void avs_hashpipe_publish(avs_hashpipe_t *hp);
static void avs_hashpipe_join(avs_hashpipe_t *hp, int stop);


avs_hashpipe_t *
avs_hashpipe_start(const EVP_MD *md)
{
    avs_hashpipe_t  *hp;

    hp = calloc(1, sizeof(avs_hashpipe_t));
    if (hp == NULL) {
        return NULL;
    }

    hp->ctx = EVP_MD_CTX_new();

    if (hp->ctx == NULL || EVP_DigestInit_ex(hp->ctx, md, NULL) != 1) {
        avs_hashpipe_free(hp);
        return NULL;
    }

    /* without memory or a thread for the helper, the feeder hashes */

    hp->ring = malloc((size_t) AVS_HASHPIPE_SLOTS * AVS_HASHPIPE_SLOT);
    if (hp->ring == NULL) {
        return hp;
    }

    if (pthread_mutex_init(&hp->mutex, NULL) == 0) {
        if (pthread_cond_init(&hp->cond, NULL) == 0) {
            hp->locks = 1;

        } else {
            (void) pthread_mutex_destroy(&hp->mutex);
        }
    }

    if (hp->locks
        && pthread_create(&hp->thread, NULL, avs_hashpipe_run, hp) == 0)
    {
        hp->threaded = 1;
        return hp;
    }

    free(hp->ring);
    hp->ring = NULL;

    return hp;
}


int
avs_hashpipe_feed(avs_hashpipe_t *hp, const void *p, size_t n)
{
    const uint8_t  *b;
    size_t          k;
    int             failed;

    if (!hp->threaded) {
        return (EVP_DigestUpdate(hp->ctx, p, n) == 1) ? 0 : -1;
    }

    b = p;

    while (n > 0) {

        if (hp->fill == 0) {

            /* a new slot: the one after the last fed must be hashed */

            (void) pthread_mutex_lock(&hp->mutex);

            while (hp->fed - hp->hashed == AVS_HASHPIPE_SLOTS) {
                (void) pthread_cond_wait(&hp->cond, &hp->mutex);
            }

            (void) pthread_mutex_unlock(&hp->mutex);
        }

        k = AVS_HASHPIPE_SLOT - hp->fill;
        k = (n < k) ? n : k;
        memcpy(hp->ring + (hp->fed % AVS_HASHPIPE_SLOTS) * AVS_HASHPIPE_SLOT
               + hp->fill, b, k);
        hp->fill += k;
        b += k;
        n -= k;

        if (hp->fill == AVS_HASHPIPE_SLOT) {
            avs_hashpipe_publish(hp);
        }
    }

    (void) pthread_mutex_lock(&hp->mutex);
    failed = hp->failed;
    (void) pthread_mutex_unlock(&hp->mutex);

    return failed ? -1 : 0;
}


int
avs_hashpipe_finish(avs_hashpipe_t *hp, unsigned char *md, unsigned int *len)
{
    if (hp->finished) {
        return -1;
    }

    hp->finished = 1;

    if (hp->threaded) {
        if (hp->fill > 0) {
            avs_hashpipe_publish(hp);
        }

        avs_hashpipe_join(hp, 0);

        if (hp->failed) {
            return -1;
        }
    }

    return (EVP_DigestFinal_ex(hp->ctx, md, len) == 1) ? 0 : -1;
}


void
avs_hashpipe_free(avs_hashpipe_t *hp)
{
    if (hp == NULL) {
        return;
    }

    if (hp->threaded) {
        avs_hashpipe_join(hp, 1);
    }

    if (hp->locks) {
        (void) pthread_cond_destroy(&hp->cond);
        (void) pthread_mutex_destroy(&hp->mutex);
    }

    EVP_MD_CTX_free(hp->ctx);
    free(hp->ring);
    free(hp);
}


/* The helper: hashes the slots in the order they were fed. */
static void *
avs_hashpipe_run(void *data)
{
    avs_hashpipe_t  *hp = data;
    size_t           slot, n;
    int              ok;

    (void) pthread_mutex_lock(&hp->mutex);

    for ( ;; ) {
        while (hp->hashed == hp->fed && !hp->closed && !hp->stop) {
            (void) pthread_cond_wait(&hp->cond, &hp->mutex);
        }

        if (hp->stop || hp->hashed == hp->fed) {
            break;
        }

        slot = hp->hashed % AVS_HASHPIPE_SLOTS;
        n = hp->len[slot];
        (void) pthread_mutex_unlock(&hp->mutex);

        ok = (EVP_DigestUpdate(hp->ctx, hp->ring + slot * AVS_HASHPIPE_SLOT,
                               n) == 1);

        (void) pthread_mutex_lock(&hp->mutex);

        if (!ok) {
            hp->failed = 1;
        }

        hp->hashed++;
        (void) pthread_cond_broadcast(&hp->cond);
    }

    (void) pthread_mutex_unlock(&hp->mutex);

    return NULL;
}


/* Hands the slot being filled to the helper. */
static void
avs_hashpipe_publish(avs_hashpipe_t *hp)
{
    (void) pthread_mutex_lock(&hp->mutex);
    hp->len[hp->fed % AVS_HASHPIPE_SLOTS] = hp->fill;
    hp->fed++;
    (void) pthread_cond_broadcast(&hp->cond);
    (void) pthread_mutex_unlock(&hp->mutex);

    hp->fill = 0;
}


/* Ends the helper: after the last slot, or at once with stop. */
static void
avs_hashpipe_join(avs_hashpipe_t *hp, int stop)
{
    (void) pthread_mutex_lock(&hp->mutex);
    hp->closed = 1;
    hp->stop = stop;
    (void) pthread_cond_broadcast(&hp->cond);
    (void) pthread_mutex_unlock(&hp->mutex);

    (void) pthread_join(hp->thread, NULL);
    hp->threaded = 0;
}
