/*
 * Writer schemas and their cache.
 *
 * A schema text comes from an upload, so its size and JSON nesting are
 * checked before any parser sees it; then the Parsing Canonical Form gives
 * its fingerprint (and checks the rules whose violation makes avro-c leak
 * memory), avro-c parses it, and the walker is compiled.  That costs far
 * more than checking the records of a typical upload, and clients send the
 * same few texts over and over, so parsed schemas are cached by their exact
 * text, reference counted and shared by threads.
 *
 * avro-c keeps its last error message in one global buffer, so calls into
 * its parser are serialized by a lock of their own.
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "avs_fingerprint.h"
#include "avs_schema.h"


/* The canonical form may grow past the text (full names): bound it too. */
#define AVS_SCHEMA_CANON_FACTOR  4
#define AVS_SCHEMA_CANON_MIN     (64 * 1024)

/*
 * Each level of data nesting costs the schema JSON at most three levels (a
 * record: its object, the fields array, a field object), so four per level
 * plus some slack are allowed, never more than the cap.
 */
#define AVS_SCHEMA_DEPTH_CAP     1024

#define AVS_SCHEMA_MAX_BUCKETS   (1u << 20)


typedef struct avs_schema_entry_s  avs_schema_entry_t;

/*
 * A schema as allocated by this file: the public part first, so that a
 * schema pointer is also its entry pointer.
 */
struct avs_schema_entry_s {
    avs_schema_t         schema;
    uint64_t             hash;
    avs_schema_entry_t  *next;          /* hash chain */
    avs_schema_entry_t  *newer;         /* LRU list */
    avs_schema_entry_t  *older;
    unsigned             cached;        /* in the table */
};


struct avs_schema_cache_s {
    pthread_mutex_t       mutex;
    avs_schema_entry_t  **buckets;
    size_t                nbuckets;     /* power of two */
    size_t                count;
    size_t                max;
    avs_schema_entry_t   *newest;
    avs_schema_entry_t   *oldest;
};


static pthread_mutex_t  avs_avro_mutex = PTHREAD_MUTEX_INITIALIZER;


/* The JSON nesting a schema may have, from the data nesting limit. */
static unsigned
avs_schema_depth_bound(const avs_limits_t *lim)
{
    uint64_t  bound;

    bound = (uint64_t) lim->max_depth * 4 + 8;

    return bound > AVS_SCHEMA_DEPTH_CAP ? AVS_SCHEMA_DEPTH_CAP
                                        : (unsigned) bound;
}


/*
 * The deepest bracket nesting of a JSON text, counting only brackets
 * outside strings, or bound + 1 as soon as the text goes deeper than
 * bound.  Recursive parsers use stack in proportion to this depth, so it
 * is measured before any of them runs.
 */
static unsigned
avs_json_depth(const uint8_t *p, size_t n, unsigned bound)
{
    size_t    i;
    unsigned  depth, deepest;

    depth = 0;
    deepest = 0;

    for (i = 0; i < n; i++) {
        switch (p[i]) {

        case '"':
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    i++;
                }
            }

            break;

        case '[':
        case '{':
            if (++depth > deepest) {
                deepest = depth;

                if (deepest > bound) {
                    return deepest;
                }
            }

            break;

        case ']':
        case '}':
            if (depth > 0) {
                depth--;
            }

            break;

        default:
            break;
        }
    }

    return deepest;
}


avs_rc_t
avs_schema_parse(const uint8_t *json, size_t n, const avs_limits_t *lim,
    avs_schema_t **out, avs_err_t *err)
{
    int                  ret;
    unsigned             bound;
    avs_rc_t             rc;
    avs_buf_t            canon;
    avs_limits_t         dflt;
    avs_schema_t        *s;
    avro_schema_t        parsed;
    avs_schema_entry_t  *e;

    *out = NULL;

    if (lim == NULL) {
        avs_limits_default(&dflt);
        lim = &dflt;
    }

    if (n > lim->max_schema) {
        return avs_err_set(err, AVS_ETOOLARGE,
                           "schema: %zu bytes, more than the limit of %zu",
                           n, lim->max_schema);
    }

    bound = avs_schema_depth_bound(lim);

    if (avs_json_depth(json, n, bound) > bound) {
        return avs_err_set(err, AVS_ETOOLARGE,
                           "schema: nesting deeper than %u", bound);
    }

    e = calloc(1, sizeof(avs_schema_entry_t));
    if (e == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "schema: out of memory");
    }

    s = &e->schema;

    s->json = malloc(n + 1);
    if (s->json == NULL) {
        rc = avs_err_set(err, AVS_ENOMEM, "schema: out of memory");
        goto failed;
    }

    memcpy(s->json, json, n);
    s->json[n] = '\0';
    s->json_len = n;

    /*
     * The canonical form goes first: it checks the schema rules (a name
     * defined once, valid names) whose violation makes avro-c leak.
     */

    memset(&canon, 0, sizeof(avs_buf_t));
    canon.limit = n * AVS_SCHEMA_CANON_FACTOR + AVS_SCHEMA_CANON_MIN;

    rc = avs_schema_canonical_form(s->json, n, &canon, err);
    if (rc != AVS_OK) {
        avs_buf_free(&canon);
        goto failed;
    }

    s->canonical = (char *) canon.data;
    s->canonical_len = canon.len;
    s->fingerprint = avs_crc64_avro(canon.data, canon.len);
    avs_fingerprint_hex(s->fingerprint, s->fp_hex);

    /*
     * On failure avro-c may leave a freed schema in its out argument, so
     * only a success is kept.
     */

    parsed = NULL;

    pthread_mutex_lock(&avs_avro_mutex);

    ret = avro_schema_from_json_length(s->json, n, &parsed);

    if (ret != 0) {
        avs_err_set(err, AVS_EMALFORMED, "schema: %s", avro_strerror());
    }

    pthread_mutex_unlock(&avs_avro_mutex);

    if (ret != 0) {
        rc = AVS_EMALFORMED;
        goto failed;
    }

    if (parsed == NULL) {
        rc = avs_err_set(err, AVS_EMALFORMED, "schema: no schema");
        goto failed;
    }

    s->avro = parsed;

    rc = avs_walker_compile(s->avro, &s->walker, err);
    if (rc != AVS_OK) {
        goto failed;
    }

    *out = s;

    return AVS_OK;

failed:

    avs_schema_free(s);

    return rc;
}


/* Frees a schema from avs_schema_parse; cached ones go by release. */
void
avs_schema_free(avs_schema_t *s)
{
    if (s == NULL) {
        return;
    }

    avs_walker_free(s->walker);

    if (s->avro != NULL) {
        avro_schema_decref(s->avro);
    }

    free(s->canonical);
    free(s->json);

    /* s is the first member of its entry */
    free(s);
}


/* A quick 64-bit hash of the schema text, eight bytes at a time. */
static uint64_t
avs_schema_hash(const uint8_t *p, size_t n)
{
    size_t    i;
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ (uint64_t) n;

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }

    w = 0;
    memcpy(&w, p + i, n - i);

    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;

    return h;
}


avs_schema_cache_t *
avs_schema_cache_create(size_t max_entries)
{
    size_t               nb;
    avs_schema_cache_t  *c;

    c = calloc(1, sizeof(avs_schema_cache_t));
    if (c == NULL) {
        return NULL;
    }

    nb = 16;

    while (nb / 2 < max_entries && nb < AVS_SCHEMA_MAX_BUCKETS) {
        nb *= 2;
    }

    c->buckets = calloc(nb, sizeof(avs_schema_entry_t *));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }

    if (pthread_mutex_init(&c->mutex, NULL) != 0) {
        free(c->buckets);
        free(c);
        return NULL;
    }

    c->nbuckets = nb;
    c->max = max_entries;

    return c;
}


/* Frees every cached schema; all of them must have been released. */
void
avs_schema_cache_destroy(avs_schema_cache_t *c)
{
    avs_schema_entry_t  *e, *older;

    if (c == NULL) {
        return;
    }

    for (e = c->newest; e != NULL; e = older) {
        older = e->older;
        avs_schema_free(&e->schema);
    }

    pthread_mutex_destroy(&c->mutex);
    free(c->buckets);
    free(c);
}


/* The cached entry for a text, or NULL; the caller holds the mutex. */
static avs_schema_entry_t *
avs_schema_cache_find(avs_schema_cache_t *c, uint64_t hash,
    const uint8_t *json, size_t n)
{
    avs_schema_entry_t  *e;

    for (e = c->buckets[hash & (c->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == hash && e->schema.json_len == n
            && memcmp(e->schema.json, json, n) == 0)
        {
            return e;
        }
    }

    return NULL;
}


static void
avs_schema_lru_unlink(avs_schema_cache_t *c, avs_schema_entry_t *e)
{
    if (e->newer != NULL) {
        e->newer->older = e->older;

    } else {
        c->newest = e->older;
    }

    if (e->older != NULL) {
        e->older->newer = e->newer;

    } else {
        c->oldest = e->newer;
    }

    e->newer = NULL;
    e->older = NULL;
}


static void
avs_schema_lru_push(avs_schema_cache_t *c, avs_schema_entry_t *e)
{
    e->newer = NULL;
    e->older = c->newest;

    if (c->newest != NULL) {
        c->newest->newer = e;

    } else {
        c->oldest = e;
    }

    c->newest = e;
}


/* Takes an entry out of the table and the LRU list. */
static void
avs_schema_cache_remove(avs_schema_cache_t *c, avs_schema_entry_t *e)
{
    avs_schema_entry_t  **pp;

    for (pp = &c->buckets[e->hash & (c->nbuckets - 1)]; *pp != NULL;
         pp = &(*pp)->next)
    {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }

    avs_schema_lru_unlink(c, e);
    e->next = NULL;
    e->cached = 0;
    c->count--;
}


/*
 * Makes room for one entry by evicting the least recently used schemas
 * that nobody holds.  Evicted entries are chained on *dead, to be freed
 * once the mutex is released.
 */
static void
avs_schema_cache_evict(avs_schema_cache_t *c, avs_schema_entry_t **dead)
{
    avs_schema_entry_t  *e, *newer;

    for (e = c->oldest; e != NULL && c->count >= c->max; e = newer) {
        newer = e->newer;

        if (e->schema.refs != 0) {
            continue;
        }

        avs_schema_cache_remove(c, e);
        e->next = *dead;
        *dead = e;
    }
}


avs_rc_t
avs_schema_cache_get(avs_schema_cache_t *c, const uint8_t *json, size_t n,
    const avs_limits_t *lim, int parse, avs_schema_t **out, avs_err_t *err)
{
    uint64_t             hash;
    avs_rc_t             rc;
    avs_schema_t        *s;
    avs_schema_entry_t  *e, *fresh, *dead, *next;

    *out = NULL;

    if (lim != NULL && n > lim->max_schema) {
        return avs_err_set(err, AVS_ETOOLARGE,
                           "schema: %zu bytes, more than the limit of %zu",
                           n, lim->max_schema);
    }

    hash = avs_schema_hash(json, n);

    pthread_mutex_lock(&c->mutex);

    e = avs_schema_cache_find(c, hash, json, n);

    if (e != NULL) {
        e->schema.refs++;
        avs_schema_lru_unlink(c, e);
        avs_schema_lru_push(c, e);
    }

    pthread_mutex_unlock(&c->mutex);

    if (e != NULL) {
        *out = &e->schema;
        return AVS_OK;
    }

    if (!parse) {
        return AVS_DONE;
    }

    /* a miss: parse without holding the mutex */

    rc = avs_schema_parse(json, n, lim, &s, err);
    if (rc != AVS_OK) {
        return rc;
    }

    fresh = (avs_schema_entry_t *) s;
    fresh->hash = hash;
    dead = NULL;

    pthread_mutex_lock(&c->mutex);

    /* another thread may have parsed the same text meanwhile */

    e = avs_schema_cache_find(c, hash, json, n);

    if (e != NULL) {
        e->schema.refs++;
        avs_schema_lru_unlink(c, e);
        avs_schema_lru_push(c, e);

        dead = fresh;

    } else {
        e = fresh;
        e->schema.refs = 1;

        avs_schema_cache_evict(c, &dead);

        if (c->count < c->max) {
            e->next = c->buckets[hash & (c->nbuckets - 1)];
            c->buckets[hash & (c->nbuckets - 1)] = e;
            avs_schema_lru_push(c, e);
            e->cached = 1;
            c->count++;
        }

        /* else every entry is held: e lives until its release */
    }

    pthread_mutex_unlock(&c->mutex);

    for ( /* void */ ; dead != NULL; dead = next) {
        next = dead->next;
        avs_schema_free(&dead->schema);
    }

    *out = &e->schema;

    return AVS_OK;
}


/*
 * Drops a reference from avs_schema_cache_get.  A schema that is no longer
 * in the table is freed with its last reference; a cached one stays until
 * evicted.  Without a cache, s is one from avs_schema_parse.
 */
void
avs_schema_release(avs_schema_cache_t *c, avs_schema_t *s)
{
    int                  last;
    avs_schema_entry_t  *e;

    if (s == NULL) {
        return;
    }

    if (c == NULL) {
        avs_schema_free(s);
        return;
    }

    e = (avs_schema_entry_t *) s;

    pthread_mutex_lock(&c->mutex);

    if (s->refs > 0) {
        s->refs--;
    }

    last = (s->refs == 0 && !e->cached);

    pthread_mutex_unlock(&c->mutex);

    if (last) {
        avs_schema_free(s);
    }
}
