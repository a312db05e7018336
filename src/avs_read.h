/*
 * The read path's plan: what one answer holds for one dataset and table.
 * An answer is one Avro container file: the header of the data's stream,
 * then the dataset's archived blocks (byte ranges of objects in the cold
 * store, in archive order), then its hot blocks (in upload order).  All of
 * a stream's blocks share its codec and sync marker, so they follow one
 * header as they are, without being decoded.
 *
 * The plan is read from one SQLite snapshot: an upload the archiver moves
 * from the hot store to an object while the plan is read is seen once,
 * either hot or archived.  Fetching the ranges is the caller's business
 * (nginx subrequests); the hot blocks are in the plan.
 *
 * avs_read_plan waits on SQLite: call it off the event loop.
 */

#ifndef AVS_READ_H
#define AVS_READ_H

#include <stdint.h>

#include "avs_base.h"
#include "avs_store.h"

typedef struct {
    const char  *dataset;
    const char  *table;
    const char  *period;        /* NULL: every period */
    const char  *fingerprint;   /* NULL: the data's one schema */
    int64_t      from_ms;       /* uploads received at or after; */
    int64_t      to_ms;         /* and at or before (INT64_MIN/MAX: open) */

    /* Hot blocks past hot_memory bytes go to an unlinked temporary file
     * in spill_dir instead (0 or NULL: all in memory). */
    size_t       hot_memory;
    const char  *spill_dir;
} avs_read_query_t;

/* length bytes of the object key from offset: the blocks of one or more
 * archived ranges that follow each other in the object. */
typedef struct {
    char      *key;
    uint64_t   offset;
    uint64_t   length;
} avs_read_range_t;

typedef struct {
    char               fingerprint[17];     /* "" when there is no data */
    avs_buf_t          header;              /* the OCF header */
    avs_read_range_t  *ranges;
    size_t             nranges;
    avs_buf_t          hot;                 /* hot blocks, upload order */
    int                hot_in_file;         /* else in hot */
    int                hot_fd;              /* the file, when hot_in_file */
    uint64_t           hot_file_bytes;
    uint64_t           cold_bytes;
    uint64_t           cold_records;
    uint64_t           hot_rows;
    uint64_t           hot_records;

    /* AVS_ECONFLICT: a JSON array of the schemas found, each
     * {"fingerprint": "...", "periods": ["...", ...]} */
    avs_buf_t          schemas;
} avs_read_plan_t;

/*
 * Reads the plan of q into plan (zeroed by the caller).  Results:
 * AVS_OK; AVS_ECONFLICT when q names no schema and the data has several
 * (plan->schemas lists them); AVS_ENOTFOUND when q names a schema the
 * table has never had; AVS_EBUSY, AVS_ESTORE, AVS_ENOMEM.  With no data
 * the plan has a header and nothing else: the header of the schema asked
 * for, else of the table's only schema, else of the schema "null".
 */
avs_rc_t avs_read_plan(avs_store_t *st, const avs_read_query_t *q,
    avs_read_plan_t *plan, avs_err_t *err);

/* Frees what the plan holds (not the plan itself). */
void avs_read_plan_free(avs_read_plan_t *plan);

/* Total bytes of the answer: header, ranges and hot blocks (in memory or
 * in the file). */
uint64_t avs_read_plan_size(const avs_read_plan_t *plan);

#endif /* AVS_READ_H */
