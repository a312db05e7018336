/*
 * Bounded walk of binary-encoded Avro records.
 *
 * The avro-c schema is compiled once into a flat table of nodes; named
 * types are compiled once and referenced by id, so a recursive schema
 * becomes a cycle in the table.  The walk then checks untrusted bytes
 * against that table without allocating: every length, count and index is
 * checked against what is left of the data, and nesting is bounded by the
 * configured depth, so the C stack depth never depends on the data.
 *
 * Values that encode to no bytes at all (null, fixed of size 0, records of
 * such fields) are resolved at compile time: they are dropped from record
 * field lists and only their nesting depth is checked.  With them gone,
 * every value the walk visits consumes at least one byte or fails on depth,
 * so the work is bounded by the data size times the depth, whatever the
 * schema (a schema nesting records of nulls two by two would otherwise cost
 * 2^depth steps for zero bytes).
 *
 * Error messages name the record by its 0-based index in the block.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avs_walk.h"


/* Guards the C stack whatever the configured limit says. */
#define AVS_WALK_DEPTH_CAP       1000

/* Schema nesting accepted by the compiler (JSON is bounded far below). */
#define AVS_WALK_SCHEMA_DEPTH    1024

#define AVS_WALK_MAX_NODES       (1u << 24)
#define AVS_WALK_MAX_FIXED       0x7fffffff


typedef enum {
    AVS_WK_ZERO = 0,        /* encodes to no bytes: null, fixed(0), ... */
    AVS_WK_BOOLEAN,
    AVS_WK_INT,
    AVS_WK_LONG,
    AVS_WK_FLOAT,
    AVS_WK_DOUBLE,
    AVS_WK_BYTES,
    AVS_WK_STRING,
    AVS_WK_FIXED,
    AVS_WK_ENUM,
    AVS_WK_RECORD,
    AVS_WK_ARRAY,
    AVS_WK_MAP,
    AVS_WK_UNION
} avs_wkind_t;


/*
 * One compiled schema node.  n and ref depend on the kind:
 *   record: n kept (non-zero) fields at kids[ref ..];
 *   union:  n branches at kids[ref ..];
 *   array, map: ref is the item (value) node;
 *   enum:   n symbols;
 *   fixed:  n bytes.
 * reach is the nesting that walking the node adds for certain: 1 for
 * containers plus the depth of dropped zero-size fields; for a zero-size
 * node, the depth of its records.  min is a lower bound of the encoded size
 * (saturating), used to refuse item counts the data cannot hold.
 */
typedef struct {
    uint8_t    kind;
    uint16_t   reach;
    uint32_t   n;
    uint32_t   ref;
    uint32_t   min;
} avs_wnode_t;


struct avs_walker_s {
    avs_wnode_t  *nodes;
    uint32_t     *kids;
    uint32_t      nnodes;
    uint32_t      nkids;
    uint32_t      root;
};


typedef struct {
    avro_schema_t  key;
    uint32_t       id;
} avs_wmemo_t;


typedef struct {
    avs_walker_t  *w;
    uint32_t       ncap;
    uint32_t       kcap;
    avs_wmemo_t   *memo;
    uint32_t       mcap;        /* power of two */
    uint32_t       mcount;
    avs_err_t     *err;
} avs_wcomp_t;


typedef struct {
    const uint8_t      *p;
    const uint8_t      *end;
    const avs_wnode_t  *nodes;
    const uint32_t     *kids;
    uint64_t            items;
    uint64_t            record;
    unsigned            max_depth;
    avs_err_t          *err;
} avs_walk_t;


static avs_rc_t avs_walk_value(avs_walk_t *c, uint32_t id, unsigned depth);


/* Saturating addition for encoded-size lower bounds. */
static uint32_t
avs_wmin_add(uint32_t a, uint32_t b)
{
    return (a > UINT32_MAX - b) ? UINT32_MAX : a + b;
}


/* Grows the node table by one node and returns its id. */
static avs_rc_t
avs_wcomp_node(avs_wcomp_t *cc, avs_wkind_t kind, uint32_t *id)
{
    uint32_t      cap;
    avs_wnode_t  *p;

    if (cc->w->nnodes == cc->ncap) {
        if (cc->ncap >= AVS_WALK_MAX_NODES) {
            return avs_err_set(cc->err, AVS_ETOOLARGE,
                               "schema: more than %u types",
                               AVS_WALK_MAX_NODES);
        }

        cap = cc->ncap ? cc->ncap * 2 : 64;

        p = realloc(cc->w->nodes, cap * sizeof(avs_wnode_t));
        if (p == NULL) {
            return avs_err_set(cc->err, AVS_ENOMEM, "out of memory");
        }

        cc->w->nodes = p;
        cc->ncap = cap;
    }

    *id = cc->w->nnodes++;

    p = &cc->w->nodes[*id];
    memset(p, 0, sizeof(avs_wnode_t));
    p->kind = (uint8_t) kind;

    return AVS_OK;
}


/* Reserves n consecutive child slots and returns the index of the first. */
static avs_rc_t
avs_wcomp_kids(avs_wcomp_t *cc, size_t n, uint32_t *first)
{
    size_t     want, cap;
    uint32_t  *p;

    want = (size_t) cc->w->nkids + n;

    if (want > AVS_WALK_MAX_NODES) {
        return avs_err_set(cc->err, AVS_ETOOLARGE,
                           "schema: more than %u fields and branches",
                           AVS_WALK_MAX_NODES);
    }

    if (want > cc->kcap) {
        cap = cc->kcap ? cc->kcap : 64;

        while (cap < want) {
            cap *= 2;
        }

        p = realloc(cc->w->kids, cap * sizeof(uint32_t));
        if (p == NULL) {
            return avs_err_set(cc->err, AVS_ENOMEM, "out of memory");
        }

        cc->w->kids = p;
        cc->kcap = (uint32_t) cap;
    }

    *first = cc->w->nkids;
    cc->w->nkids = (uint32_t) want;

    return AVS_OK;
}


static uint32_t
avs_wmemo_hash(avro_schema_t s, uint32_t mask)
{
    uint64_t  h;

    h = (uint64_t) (uintptr_t) s * 0x9e3779b97f4a7c15ULL;

    return (uint32_t) (h >> 32) & mask;
}


/* The node id of a named schema already compiled (or being compiled). */
static int
avs_wmemo_find(avs_wcomp_t *cc, avro_schema_t s, uint32_t *id)
{
    uint32_t  i, mask;

    if (cc->mcap == 0) {
        return 0;
    }

    mask = cc->mcap - 1;

    for (i = avs_wmemo_hash(s, mask); cc->memo[i].key != NULL;
         i = (i + 1) & mask)
    {
        if (cc->memo[i].key == s) {
            *id = cc->memo[i].id;
            return 1;
        }
    }

    return 0;
}


/*
 * Remembers the node of a named schema, so that later references and
 * recursive links resolve to it instead of compiling it again.
 */
static avs_rc_t
avs_wmemo_add(avs_wcomp_t *cc, avro_schema_t s, uint32_t id)
{
    uint32_t      i, j, cap, mask;
    avs_wmemo_t  *m;

    if ((cc->mcount + 1) * 2 > cc->mcap) {
        cap = cc->mcap ? cc->mcap * 2 : 32;

        m = calloc(cap, sizeof(avs_wmemo_t));
        if (m == NULL) {
            return avs_err_set(cc->err, AVS_ENOMEM, "out of memory");
        }

        mask = cap - 1;

        for (i = 0; i < cc->mcap; i++) {
            if (cc->memo[i].key == NULL) {
                continue;
            }

            for (j = avs_wmemo_hash(cc->memo[i].key, mask); m[j].key != NULL;
                 j = (j + 1) & mask)
            {
                /* probe */
            }

            m[j] = cc->memo[i];
        }

        free(cc->memo);
        cc->memo = m;
        cc->mcap = cap;
    }

    mask = cc->mcap - 1;

    for (i = avs_wmemo_hash(s, mask); cc->memo[i].key != NULL;
         i = (i + 1) & mask)
    {
        /* probe */
    }

    cc->memo[i].key = s;
    cc->memo[i].id = id;
    cc->mcount++;

    return AVS_OK;
}


/*
 * Compiles one schema into a node and returns its id.  Named types are
 * looked up first, so that a link back to a type still being compiled
 * closes a cycle.  After the children are known, a record drops its
 * zero-size fields and becomes zero-size itself if nothing is left.
 */
static avs_rc_t
avs_wcomp_schema(avs_wcomp_t *cc, avro_schema_t s, unsigned depth,
    uint32_t *out)
{
    int            named;
    size_t         i, nf;
    int64_t        size;
    uint32_t       id, first, kid, kept, min, reach;
    avs_rc_t       rc;
    avs_wnode_t   *nd, *kn;
    avro_schema_t  sub;

    if (depth > AVS_WALK_SCHEMA_DEPTH) {
        return avs_err_set(cc->err, AVS_ETOOLARGE,
                           "schema: nesting deeper than %d",
                           AVS_WALK_SCHEMA_DEPTH);
    }

    if (s == NULL) {
        return avs_err_set(cc->err, AVS_EINTERNAL, "schema: missing type");
    }

    if (is_avro_link(s)) {
        s = avro_schema_link_target(s);

        if (s == NULL) {
            return avs_err_set(cc->err, AVS_EINTERNAL,
                               "schema: dangling named type reference");
        }
    }

    named = is_avro_record(s) || is_avro_enum(s) || is_avro_fixed(s);

    if (named && avs_wmemo_find(cc, s, out)) {
        return AVS_OK;
    }

    switch (avro_typeof(s)) {

    case AVRO_NULL:
        rc = avs_wcomp_node(cc, AVS_WK_ZERO, &id);
        break;

    case AVRO_BOOLEAN:
        rc = avs_wcomp_node(cc, AVS_WK_BOOLEAN, &id);
        break;

    case AVRO_INT32:
        rc = avs_wcomp_node(cc, AVS_WK_INT, &id);
        break;

    case AVRO_INT64:
        rc = avs_wcomp_node(cc, AVS_WK_LONG, &id);
        break;

    case AVRO_FLOAT:
        rc = avs_wcomp_node(cc, AVS_WK_FLOAT, &id);
        break;

    case AVRO_DOUBLE:
        rc = avs_wcomp_node(cc, AVS_WK_DOUBLE, &id);
        break;

    case AVRO_BYTES:
        rc = avs_wcomp_node(cc, AVS_WK_BYTES, &id);
        break;

    case AVRO_STRING:
        rc = avs_wcomp_node(cc, AVS_WK_STRING, &id);
        break;

    case AVRO_ENUM:
    case AVRO_FIXED:
    case AVRO_RECORD:
    case AVRO_ARRAY:
    case AVRO_MAP:
    case AVRO_UNION:
        rc = avs_wcomp_node(cc, AVS_WK_RECORD, &id);
        break;

    default:
        return avs_err_set(cc->err, AVS_EUNSUPPORTED,
                           "schema: unknown type %d", (int) avro_typeof(s));
    }

    if (rc != AVS_OK) {
        return rc;
    }

    if (named) {
        rc = avs_wmemo_add(cc, s, id);
        if (rc != AVS_OK) {
            return rc;
        }
    }

    nd = &cc->w->nodes[id];

    switch (avro_typeof(s)) {

    case AVRO_BOOLEAN:
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_BYTES:
    case AVRO_STRING:
        nd->min = 1;
        break;

    case AVRO_FLOAT:
        nd->min = 4;
        break;

    case AVRO_DOUBLE:
        nd->min = 8;
        break;

    case AVRO_ENUM:
        nd->kind = AVS_WK_ENUM;
        nd->min = 1;

        if (avro_schema_enum_number_of_symbols(s) <= 0) {
            return avs_err_set(cc->err, AVS_EMALFORMED,
                               "schema: enum without symbols");
        }

        nd->n = (uint32_t) avro_schema_enum_number_of_symbols(s);
        break;

    case AVRO_FIXED:
        size = avro_schema_fixed_size(s);

        if (size < 0 || size > AVS_WALK_MAX_FIXED) {
            return avs_err_set(cc->err, AVS_EMALFORMED,
                               "schema: fixed size %" PRId64, size);
        }

        nd->kind = (size == 0) ? AVS_WK_ZERO : AVS_WK_FIXED;
        nd->n = (uint32_t) size;
        nd->min = (uint32_t) size;
        break;

    case AVRO_ARRAY:
    case AVRO_MAP:
        nd->kind = is_avro_array(s) ? AVS_WK_ARRAY : AVS_WK_MAP;
        nd->min = 1;
        nd->reach = 1;

        sub = is_avro_array(s) ? avro_schema_array_items(s)
                               : avro_schema_map_values(s);

        rc = avs_wcomp_schema(cc, sub, depth + 1, &kid);
        if (rc != AVS_OK) {
            return rc;
        }

        nd = &cc->w->nodes[id];
        nd->ref = kid;
        break;

    case AVRO_UNION:
        nf = avro_schema_union_size(s);

        if (nf == 0) {
            return avs_err_set(cc->err, AVS_EMALFORMED,
                               "schema: union without branches");
        }

        rc = avs_wcomp_kids(cc, nf, &first);
        if (rc != AVS_OK) {
            return rc;
        }

        nd = &cc->w->nodes[id];
        nd->kind = AVS_WK_UNION;
        nd->n = (uint32_t) nf;
        nd->ref = first;
        nd->min = 1;
        nd->reach = 1;

        min = UINT32_MAX;

        for (i = 0; i < nf; i++) {
            sub = avro_schema_union_branch(s, (int) i);

            rc = avs_wcomp_schema(cc, sub, depth + 1, &kid);
            if (rc != AVS_OK) {
                return rc;
            }

            cc->w->kids[first + i] = kid;

            if (cc->w->nodes[kid].min < min) {
                min = cc->w->nodes[kid].min;
            }
        }

        nd = &cc->w->nodes[id];
        nd->min = avs_wmin_add(1, min);
        break;

    case AVRO_RECORD:
        nf = avro_schema_record_size(s);

        rc = avs_wcomp_kids(cc, nf, &first);
        if (rc != AVS_OK) {
            return rc;
        }

        nd = &cc->w->nodes[id];
        nd->ref = first;
        nd->reach = 1;

        for (i = 0; i < nf; i++) {
            sub = avro_schema_record_field_get_by_index(s, (int) i);

            rc = avs_wcomp_schema(cc, sub, depth + 1, &kid);
            if (rc != AVS_OK) {
                return rc;
            }

            cc->w->kids[first + i] = kid;
        }

        kept = 0;
        min = 0;
        reach = 0;

        for (i = 0; i < nf; i++) {
            kid = cc->w->kids[first + i];
            kn = &cc->w->nodes[kid];

            if (kn->kind == AVS_WK_ZERO) {
                if (kn->reach > reach) {
                    reach = kn->reach;
                }

                continue;
            }

            cc->w->kids[first + kept++] = kid;
            min = avs_wmin_add(min, kn->min);
        }

        nd = &cc->w->nodes[id];
        nd->kind = kept ? AVS_WK_RECORD : AVS_WK_ZERO;
        nd->n = kept;
        nd->min = min;
        nd->reach = (uint16_t) (1 + reach);
        break;

    default:
        break;
    }

    *out = id;

    return AVS_OK;
}


avs_rc_t
avs_walker_compile(avro_schema_t schema, avs_walker_t **out, avs_err_t *err)
{
    avs_rc_t      rc;
    avs_wcomp_t   cc;
    avs_walker_t  *w;

    *out = NULL;

    w = calloc(1, sizeof(avs_walker_t));
    if (w == NULL) {
        return avs_err_set(err, AVS_ENOMEM, "out of memory");
    }

    memset(&cc, 0, sizeof(avs_wcomp_t));
    cc.w = w;
    cc.err = err;

    rc = avs_wcomp_schema(&cc, schema, 0, &w->root);

    free(cc.memo);

    if (rc != AVS_OK) {
        avs_walker_free(w);
        return rc;
    }

    *out = w;

    return AVS_OK;
}


void
avs_walker_free(avs_walker_t *w)
{
    if (w == NULL) {
        return;
    }

    free(w->nodes);
    free(w->kids);
    free(w);
}


/*
 * Records an error about the current record.  Always returns rc, so that
 * callers can write "return avs_walk_fail(...)".
 */
static avs_rc_t
avs_walk_fail(avs_walk_t *c, avs_rc_t rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noinline, cold))
#endif
    ;


static avs_rc_t
avs_walk_fail(avs_walk_t *c, avs_rc_t rc, const char *fmt, ...)
{
    char     msg[200];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    return avs_err_set(c->err, rc, "record %" PRIu64 ": %s", c->record + 1,
                       msg);
}


static avs_rc_t
avs_walk_too_deep(avs_walk_t *c)
{
    return avs_walk_fail(c, AVS_ETOOLARGE, "nesting deeper than %u",
                         c->max_depth);
}


/*
 * Reads the rest of a varint whose first byte had the continuation bit
 * set: at most max bytes in all.  The callers check the value's range.
 */
static avs_rc_t
avs_walk_varint_slow(avs_walk_t *c, unsigned max, const char *what,
    uint64_t *out)
{
    unsigned        i, shift;
    uint64_t        z;
    const uint8_t  *p;

    *out = 0;

    p = c->p;
    z = 0;
    shift = 0;

    for (i = 0; i < max; i++) {
        if (p == c->end) {
            return avs_walk_fail(c, AVS_EMALFORMED, "truncated");
        }

        z |= (uint64_t) (*p & 0x7f) << shift;

        if ((*p++ & 0x80) == 0) {

            if (i == 9 && p[-1] > 1) {
                break;
            }

            c->p = p;
            *out = z;
            return AVS_OK;
        }

        shift += 7;
    }

    return avs_walk_fail(c, AVS_EMALFORMED, "%s out of range", what);
}


/* Reads an Avro long. */
static inline avs_rc_t
avs_walk_long(avs_walk_t *c, int64_t *v)
{
    uint64_t  z;
    avs_rc_t  rc;

    if (c->p < c->end && *c->p < 0x80) {
        z = *c->p++;
        rc = AVS_OK;

    } else {
        rc = avs_walk_varint_slow(c, 10, "long", &z);
    }

    *v = (int64_t) (z >> 1) ^ -(int64_t) (z & 1);

    return rc;
}


/* Reads an Avro int: at most 5 bytes and a value that fits 32 bits. */
static inline avs_rc_t
avs_walk_int(avs_walk_t *c, int64_t *v)
{
    uint64_t  z;
    avs_rc_t  rc;

    if (c->p < c->end && *c->p < 0x80) {
        z = *c->p++;
        rc = AVS_OK;

    } else {
        rc = avs_walk_varint_slow(c, 5, "int", &z);

        if (rc == AVS_OK && z > UINT32_MAX) {
            rc = avs_walk_fail(c, AVS_EMALFORMED, "int out of range");
        }
    }

    *v = (int64_t) (z >> 1) ^ -(int64_t) (z & 1);

    return rc;
}


/*
 * Whether p[0..n) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF.  Runs of ASCII are checked eight bytes at a time.
 */
static int
avs_utf8_valid(const uint8_t *p, size_t n)
{
    uint8_t         ch, lo, hi;
    uint64_t        word;
    const uint8_t  *end;

    end = p + n;

    while (p < end) {

        if (end - p >= 8) {
            memcpy(&word, p, 8);

            if ((word & 0x8080808080808080ULL) == 0) {
                p += 8;
                continue;
            }
        }

        ch = *p;

        if (ch < 0x80) {
            p++;
            continue;
        }

        if (ch < 0xc2) {
            return 0;       /* stray continuation or overlong 2-byte form */
        }

        if (ch < 0xe0) {
            if (end - p < 2 || (p[1] & 0xc0) != 0x80) {
                return 0;
            }

            p += 2;
            continue;
        }

        if (ch < 0xf0) {
            lo = (ch == 0xe0) ? 0xa0 : 0x80;    /* overlong */
            hi = (ch == 0xed) ? 0x9f : 0xbf;    /* surrogates */

            if (end - p < 3 || p[1] < lo || p[1] > hi
                || (p[2] & 0xc0) != 0x80)
            {
                return 0;
            }

            p += 3;
            continue;
        }

        if (ch < 0xf5) {
            lo = (ch == 0xf0) ? 0x90 : 0x80;    /* overlong */
            hi = (ch == 0xf4) ? 0x8f : 0xbf;    /* above U+10FFFF */

            if (end - p < 4 || p[1] < lo || p[1] > hi
                || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            {
                return 0;
            }

            p += 4;
            continue;
        }

        return 0;
    }

    return 1;
}


/* Skips a length-prefixed string or bytes value, checking it. */
static avs_rc_t
avs_walk_string(avs_walk_t *c, int utf8, const char *what)
{
    int64_t   len;
    avs_rc_t  rc;

    rc = avs_walk_long(c, &len);
    if (rc != AVS_OK) {
        return rc;
    }

    if (len < 0) {
        return avs_walk_fail(c, AVS_EMALFORMED, "%s length %" PRId64,
                             what, len);
    }

    if ((uint64_t) len > (uint64_t) (c->end - c->p)) {
        return avs_walk_fail(c, AVS_EMALFORMED,
                             "%s length %" PRId64 " exceeds the %zu bytes"
                             " left", what, len, (size_t) (c->end - c->p));
    }

    if (utf8 && !avs_utf8_valid(c->p, (size_t) len)) {
        return avs_walk_fail(c, AVS_EMALFORMED, "%s is not valid UTF-8",
                             what);
    }

    c->p += len;

    return AVS_OK;
}


/*
 * Walks the blocks of an array or map whose own nesting level is depth.
 * Each block's item count is charged to the items budget before any item
 * is walked, so a huge count fails at once.
 */
static avs_rc_t
avs_walk_blocks(avs_walk_t *c, const avs_wnode_t *nd, unsigned depth)
{
    int                 map;
    int64_t             count, size, i;
    uint64_t            min, left;
    avs_rc_t            rc;
    const char         *what;
    const uint8_t      *bend;
    const avs_wnode_t  *item;

    size = 0;
    map = (nd->kind == AVS_WK_MAP);
    what = map ? "map" : "array";
    item = &c->nodes[nd->ref];
    min = (uint64_t) item->min + (map ? 1 : 0);

    for ( ;; ) {
        rc = avs_walk_long(c, &count);
        if (rc != AVS_OK) {
            return rc;
        }

        if (count == 0) {
            return AVS_OK;
        }

        bend = NULL;

        if (count < 0) {
            if (count == INT64_MIN) {
                return avs_walk_fail(c, AVS_EMALFORMED,
                                     "%s block count out of range", what);
            }

            count = -count;

            rc = avs_walk_long(c, &size);
            if (rc != AVS_OK) {
                return rc;
            }

            if (size < 0) {
                return avs_walk_fail(c, AVS_EMALFORMED,
                                     "%s block size %" PRId64, what, size);
            }

            if ((uint64_t) size > (uint64_t) (c->end - c->p)) {
                return avs_walk_fail(c, AVS_EMALFORMED,
                                     "%s block size %" PRId64 " exceeds the"
                                     " %zu bytes left", what, size,
                                     (size_t) (c->end - c->p));
            }

            bend = c->p + size;
        }

        left = (uint64_t) (c->end - c->p);

        if (min != 0 && (uint64_t) count > left / min) {
            return avs_walk_fail(c, AVS_EMALFORMED,
                                 "%s block of %" PRId64 " items exceeds the"
                                 " %" PRIu64 " bytes left", what, count,
                                 left);
        }

        if ((uint64_t) count > c->items) {
            return avs_walk_fail(c, AVS_ETOOLARGE,
                                 "more array and map items than allowed");
        }

        c->items -= (uint64_t) count;

        if (!map && item->kind == AVS_WK_ZERO) {
            if (depth + item->reach > c->max_depth) {
                return avs_walk_too_deep(c);
            }

        } else {
            for (i = 0; i < count; i++) {
                if (map) {
                    rc = avs_walk_string(c, 1, "map key");
                    if (rc != AVS_OK) {
                        return rc;
                    }
                }

                rc = avs_walk_value(c, nd->ref, depth);
                if (rc != AVS_OK) {
                    return rc;
                }
            }
        }

        if (bend != NULL && c->p != bend) {
            return avs_walk_fail(c, AVS_EMALFORMED,
                                 "%s block size %" PRId64 " does not match"
                                 " its items", what, size);
        }
    }
}


/*
 * Walks one value of node id.  depth is the nesting level of the enclosing
 * container; every container checks its own level before going in, so the
 * recursion is never deeper than max_depth.  Union branches and the last
 * field of a record are walked in the same frame.
 */
static avs_rc_t
avs_walk_value(avs_walk_t *c, uint32_t id, unsigned depth)
{
    int64_t             v;
    avs_rc_t            rc;
    const uint32_t     *kid, *last;
    const avs_wnode_t  *nd;

again:

    nd = &c->nodes[id];

    switch (nd->kind) {

    case AVS_WK_ZERO:
        if (depth + nd->reach > c->max_depth) {
            return avs_walk_too_deep(c);
        }

        return AVS_OK;

    case AVS_WK_BOOLEAN:
        if (c->p == c->end) {
            return avs_walk_fail(c, AVS_EMALFORMED, "truncated");
        }

        if (*c->p > 1) {
            return avs_walk_fail(c, AVS_EMALFORMED, "boolean byte %u",
                                 (unsigned) *c->p);
        }

        c->p++;
        return AVS_OK;

    case AVS_WK_INT:
        return avs_walk_int(c, &v);

    case AVS_WK_LONG:
        return avs_walk_long(c, &v);

    case AVS_WK_FLOAT:
    case AVS_WK_DOUBLE:
    case AVS_WK_FIXED:
        if ((size_t) (c->end - c->p) < nd->min) {
            return avs_walk_fail(c, AVS_EMALFORMED, "truncated");
        }

        c->p += nd->min;
        return AVS_OK;

    case AVS_WK_STRING:
        return avs_walk_string(c, 1, "string");

    case AVS_WK_BYTES:
        return avs_walk_string(c, 0, "bytes");

    case AVS_WK_ENUM:
        rc = avs_walk_int(c, &v);
        if (rc != AVS_OK) {
            return rc;
        }

        if (v < 0 || v >= (int64_t) nd->n) {
            return avs_walk_fail(c, AVS_EMALFORMED,
                                 "enum index %" PRId64 " out of range", v);
        }

        return AVS_OK;

    case AVS_WK_UNION:
        if (depth >= c->max_depth) {
            return avs_walk_too_deep(c);
        }

        rc = avs_walk_long(c, &v);
        if (rc != AVS_OK) {
            return rc;
        }

        if (v < 0 || v >= (int64_t) nd->n) {
            return avs_walk_fail(c, AVS_EMALFORMED,
                                 "union index %" PRId64 " out of range", v);
        }

        id = c->kids[nd->ref + v];
        depth++;
        goto again;

    case AVS_WK_RECORD:
        if (depth + nd->reach > c->max_depth) {
            return avs_walk_too_deep(c);
        }

        depth++;
        kid = c->kids + nd->ref;
        last = kid + nd->n - 1;

        for ( ; kid < last; kid++) {
            rc = avs_walk_value(c, *kid, depth);
            if (rc != AVS_OK) {
                return rc;
            }
        }

        id = *last;
        goto again;

    case AVS_WK_ARRAY:
    case AVS_WK_MAP:
        if (depth >= c->max_depth) {
            return avs_walk_too_deep(c);
        }

        return avs_walk_blocks(c, nd, depth + 1);

    default:
        return avs_walk_fail(c, AVS_EINTERNAL, "bad walker node %u",
                             (unsigned) nd->kind);
    }
}


avs_rc_t
avs_walker_check(const avs_walker_t *w, const uint8_t *data, size_t n,
    int64_t count, const avs_limits_t *lim, uint64_t *items, avs_err_t *err)
{
    avs_rc_t            rc;
    avs_walk_t          c;
    const avs_wnode_t  *root;

    if (count < 0) {
        return avs_err_set(err, AVS_EMALFORMED, "record count %" PRId64,
                           count);
    }

    if (data == NULL) {
        /* an empty block may come without a buffer at all */
        data = (const uint8_t *) "";
        n = 0;
    }

    c.p = data;
    c.end = data + n;
    c.nodes = w->nodes;
    c.kids = w->kids;
    c.items = items ? *items : UINT64_MAX;
    c.record = 0;
    c.max_depth = lim ? lim->max_depth : AVS_DEFAULT_MAX_DEPTH;
    c.err = err;

    if (c.max_depth > AVS_WALK_DEPTH_CAP) {
        c.max_depth = AVS_WALK_DEPTH_CAP;
    }

    rc = AVS_OK;
    root = &w->nodes[w->root];

    if (root->kind == AVS_WK_ZERO) {
        /* records of no bytes: one check stands for all of them */

        if (count > 0) {
            rc = avs_walk_value(&c, w->root, 0);
        }

    } else {
        for ( /* void */ ; c.record < (uint64_t) count; c.record++) {
            rc = avs_walk_value(&c, w->root, 0);
            if (rc != AVS_OK) {
                break;
            }
        }
    }

    if (items) {
        *items = c.items;
    }

    if (rc != AVS_OK) {
        return rc;
    }

    if (c.p != c.end) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "%zu trailing bytes after %" PRId64 " records",
                           (size_t) (c.end - c.p), count);
    }

    return AVS_OK;
}
