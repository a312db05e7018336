/*
 * Bounded walk of binary-encoded Avro records against a schema.  avro-c
 * trusts lengths and counts in the data, so untrusted records never reach
 * it: the schema parsed by avro-c is compiled into a small table of nodes,
 * and the walk checks every length, count, index and the nesting depth.
 */

#ifndef AVS_WALK_H
#define AVS_WALK_H

#include <avro.h>
#include "avs_base.h"

typedef struct avs_walker_s  avs_walker_t;

/* Compiles an avro-c schema (recursive types allowed) into a walker. */
avs_rc_t avs_walker_compile(avro_schema_t schema, avs_walker_t **out,
    avs_err_t *err);

void avs_walker_free(avs_walker_t *w);

/*
 * Checks that data[0..n) holds exactly count records of the schema: every
 * value well-formed (booleans 0/1, ints in range, strings valid UTF-8, enum
 * and union indexes in range), nesting at most lim->max_depth, and no
 * trailing bytes.  *items is a budget of array and map items shared by all
 * blocks of an upload; it is decreased by what this call walks, and
 * exhausting it is AVS_ETOOLARGE.
 */
avs_rc_t avs_walker_check(const avs_walker_t *w, const uint8_t *data,
    size_t n, int64_t count, const avs_limits_t *lim, uint64_t *items,
    avs_err_t *err);

#endif /* AVS_WALK_H */
