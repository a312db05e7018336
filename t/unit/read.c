/*
 * Unit tests of the read plan (src/avs_read.c) on a real SQLite store whose
 * catalog is written by hand: which ranges and hot rows, in which order,
 * the time window, the header chosen with and without data, the conflict
 * list and the unknown schema.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avs_ocf.h"
#include "avs_read.h"
#include "avs_store.h"
#include "tap.h"

static char    dir[] = "/tmp/avs-read-XXXXXX";
static char    path[256];
static size_t  hot_memory;          /* of the next plans */

/*
 * Two streams of own_ship (schemas ...a1, ...b2) and one of battle.  File 1
 * holds u1 and u2 of own_ship/p1/a1; file 2 holds u1 of own_ship/p2/a1;
 * file 3 holds u1 of own_ship/p3/b2.  Hot rows: u1 a1 p2 (two), u2 a1 p1.
 */
static const char  *catalog =
    "INSERT INTO schemas VALUES"
    " ('00000000000000a1', '\"int\"', '\"int\"', 0),"
    " ('00000000000000b2', '\"long\"', '\"long\"', 0),"
    " ('00000000000000c3', '\"string\"', '\"string\"', 0);"
    "INSERT INTO streams VALUES"
    " (1, 'own_ship', '00000000000000a1', 'null', zeroblob(16), 0),"
    " (2, 'own_ship', '00000000000000b2', 'deflate', zeroblob(16), 0),"
    " (3, 'battle', '00000000000000c3', 'null', zeroblob(16), 0);"
    "INSERT INTO archived_files (id, file_path, table_name, period_tag,"
    " schema_fingerprint, record_count) VALUES"
    " (1, 'own_ship/p1/00000000000000a1/n-1.avro', 'own_ship', 'p1',"
    "  '00000000000000a1', 9),"
    " (2, 'own_ship/p2/00000000000000a1/n-2.avro', 'own_ship', 'p2',"
    "  '00000000000000a1', 4),"
    " (3, 'own_ship/p3/00000000000000b2/n-3.avro', 'own_ship', 'p3',"
    "  '00000000000000b2', 2);"
    "INSERT INTO block_indexes (dataset_id, table_name, file_id, start_byte,"
    " length, record_count, start_timestamp, end_timestamp, period_tag,"
    " schema_fingerprint, created_at) VALUES"
    " ('u2', 'own_ship', 1, 100, 50, 5, 1000, 2000, 'p1',"
    "  '00000000000000a1', 0),"
    " ('u1', 'own_ship', 1, 150, 40, 4, 3000, 4000, 'p1',"
    "  '00000000000000a1', 0),"
    " ('u1', 'own_ship', 2, 30, 20, 4, 5000, 6000, 'p2',"
    "  '00000000000000a1', 0),"
    " ('u1', 'own_ship', 3, 30, 10, 2, 5000, 6000, 'p3',"
    "  '00000000000000b2', 0);"
    "INSERT INTO buffer_logs (dataset_id, table_name, period_tag, timestamp,"
    " data, record_count, block_count, schema_fingerprint, stream_id,"
    " content_hash) VALUES"
    " ('u1', 'own_ship', 'p2', 7000, x'0102', 1, 1, '00000000000000a1', 1,"
    "  printf('%064d', 1)),"
    " ('u2', 'own_ship', 'p1', 7500, x'0909', 1, 1, '00000000000000a1', 1,"
    "  printf('%064d', 2)),"
    " ('u1', 'own_ship', 'p2', 8000, x'030405', 2, 1, '00000000000000a1',"
    "  1, printf('%064d', 3));";


static avs_rc_t
run_sql(sqlite3 *db, void *arg, avs_err_t *err)
{
    char  *msg;

    if (sqlite3_exec(db, arg, NULL, NULL, &msg) != SQLITE_OK) {
        avs_err_set(err, AVS_ESTORE, "%s", msg);
        sqlite3_free(msg);
        return AVS_ESTORE;
    }

    return AVS_OK;
}


static avs_rc_t
plan(avs_store_t *st, const char *ds, const char *table, const char *period,
    const char *fp, int64_t from, int64_t to, avs_read_plan_t *p)
{
    avs_read_query_t  q;
    avs_err_t         err;
    avs_rc_t          rc;

    memset(&q, 0, sizeof(q));
    memset(p, 0, sizeof(avs_read_plan_t));
    q.dataset = ds;
    q.table = table;
    q.period = period;
    q.fingerprint = fp;
    q.from_ms = from;
    q.to_ms = to;
    q.hot_memory = hot_memory;
    q.spill_dir = dir;

    rc = avs_read_plan(st, &q, p, &err);

    if (rc != AVS_OK && rc != AVS_ECONFLICT && rc != AVS_ENOTFOUND) {
        printf("# plan: %s\n", err.msg);
    }

    return rc;
}


/* The schema text in a plan's header, as a C string in buf. */
static const char *
header_schema(const avs_read_plan_t *p, char *buf, size_t size)
{
    avs_ocf_header_t  h;
    avs_limits_t      lim;
    avs_err_t         err;

    avs_limits_default(&lim);

    if (avs_ocf_parse_header(p->header.data, p->header.len, &lim, &h, &err)
        != AVS_OK || h.schema.n >= size)
    {
        return "(bad header)";
    }

    memcpy(buf, h.schema.p, h.schema.n);
    buf[h.schema.n] = '\0';

    return buf;
}


int
main(void)
{
    char               buf[256];
    avs_err_t          err;
    avs_store_t       *st;
    avs_store_conf_t   conf;
    avs_read_plan_t    p;
    avs_rc_t           rc;

    if (mkdtemp(dir) == NULL) {
        printf("Bail out! no temp dir: %s\n", strerror(errno));
        return 1;
    }

    snprintf(path, sizeof(path), "%s/hot.db", dir);
    memset(&conf, 0, sizeof(conf));
    conf.path = path;
    conf.synchronous = AVS_SYNC_NORMAL;
    conf.busy_timeout_ms = 1000;

    if (avs_store_open(&conf, &st, &err) != AVS_OK) {
        printf("Bail out! open: %s\n", err.msg);
        return 1;
    }

    /* before anything is stored: a file of the schema "null" */
    rc = plan(st, "u1", "own_ship", NULL, NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_OK, "empty store: a plan");
    is_str(header_schema(&p, buf, sizeof(buf)), "\"null\"",
           "empty store: the schema \"null\"");
    is_str(p.fingerprint, "", "empty store: no fingerprint");
    is_int(p.nranges + p.hot.len, 0, "empty store: nothing else");
    avs_read_plan_free(&p);

    rc = avs_store_write(st, run_sql, (void *) catalog, &err);
    if (!ok(rc == AVS_OK, "catalog written")) {
        printf("# %s\n", err.msg);
    }

    /* two schemas, none chosen */
    rc = plan(st, "u1", "own_ship", NULL, NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_ECONFLICT, "u1 own_ship: two schemas, a conflict");
    p.schemas.data[p.schemas.len] = '\0';
    is_str((char *) p.schemas.data,
           "[{\"fingerprint\":\"00000000000000a1\","
           "\"periods\":[\"p1\",\"p2\"]},"
           "{\"fingerprint\":\"00000000000000b2\",\"periods\":[\"p3\"]}]",
           "the conflict lists each schema with its periods, sorted");
    avs_read_plan_free(&p);

    /* schema a1: ranges in file order, then hot rows in id order */
    rc = plan(st, "u1", "own_ship", NULL, "00000000000000a1", INT64_MIN,
              INT64_MAX, &p);
    is_int(rc, AVS_OK, "schema a1: a plan");
    is_int(p.nranges, 2, "two ranges");
    is_str(p.ranges[0].key, "own_ship/p1/00000000000000a1/n-1.avro",
           "file 1 first");
    is_int(p.ranges[0].offset, 150, "u1's offset in file 1");
    is_int(p.ranges[0].length, 40, "u1's length in file 1");
    is_str(p.ranges[1].key, "own_ship/p2/00000000000000a1/n-2.avro",
           "then file 2");
    is_int(p.cold_bytes, 60, "cold bytes");
    is_int(p.cold_records, 8, "cold records");
    is_int(p.hot_rows, 2, "two hot rows, not u2's");
    ok(p.hot.len == 5 && memcmp(p.hot.data, "\x01\x02\x03\x04\x05", 5) == 0,
       "hot blocks in upload order");
    is_int(p.hot_records, 3, "hot records");
    is_str(header_schema(&p, buf, sizeof(buf)), "\"int\"",
           "the header of stream a1");
    is_int(avs_read_plan_size(&p), p.header.len + 60 + 5, "size");
    avs_read_plan_free(&p);

    /* a period with one schema needs no choice */
    rc = plan(st, "u1", "own_ship", "p3", NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_OK, "period p3: no conflict");
    is_str(p.fingerprint, "00000000000000b2", "its schema");
    is_int(p.nranges, 1, "its range");
    is_int(p.hot.len, 0, "no hot row");
    avs_read_plan_free(&p);

    /* the window: ranges by overlap, hot rows one by one */
    rc = plan(st, "u1", "own_ship", NULL, "00000000000000a1", 3500, 7500,
              &p);
    is_int(rc, AVS_OK, "window 3500-7500");
    is_int(p.nranges, 2, "both ranges overlap it");
    is_int(p.hot_rows, 1, "one hot row in it");
    avs_read_plan_free(&p);

    rc = plan(st, "u1", "own_ship", NULL, "00000000000000a1", 4001, 4999,
              &p);
    is_int(rc, AVS_OK, "window 4001-4999");
    is_int(p.nranges + p.hot_rows, 0, "nothing in it");
    is_str(p.fingerprint, "00000000000000a1", "the header still has a1");
    avs_read_plan_free(&p);

    /* no data for the dataset: the table's only stream, else "null" */
    rc = plan(st, "nobody", "battle", NULL, NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_OK, "nobody battle: a plan");
    is_str(p.fingerprint, "00000000000000c3", "the table's only schema");
    is_str(header_schema(&p, buf, sizeof(buf)), "\"string\"", "its header");
    avs_read_plan_free(&p);

    rc = plan(st, "nobody", "own_ship", NULL, NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_OK, "nobody own_ship: a plan");
    is_str(header_schema(&p, buf, sizeof(buf)), "\"null\"",
           "two schemas and no data: \"null\"");
    avs_read_plan_free(&p);

    rc = plan(st, "u1", "own_ship", NULL, "0000000000000000", INT64_MIN,
              INT64_MAX, &p);
    is_int(rc, AVS_ENOTFOUND, "a schema the table never had: not found");
    avs_read_plan_free(&p);

    /* past hot_memory, the hot blocks go to an unlinked temporary file */
    hot_memory = 2;
    rc = plan(st, "u1", "own_ship", NULL, "00000000000000a1", INT64_MIN,
              INT64_MAX, &p);
    is_int(rc, AVS_OK, "hot_memory 2: a plan");
    ok(p.hot_in_file && p.hot.len == 0, "the hot blocks are in a file");
    is_int(p.hot_file_bytes, 5, "all 5 bytes");
    ok(pread(p.hot_fd, buf, 5, 0) == 5
       && memcmp(buf, "\x01\x02\x03\x04\x05", 5) == 0, "in upload order");
    is_int(avs_read_plan_size(&p), p.header.len + 60 + 5, "size with the file");
    avs_read_plan_free(&p);
    ok(fcntl(p.hot_fd, F_GETFD) == -1, "freeing the plan closes the file");
    hot_memory = 0;

    /* the isolation of datasets */
    rc = plan(st, "u2", "own_ship", NULL, NULL, INT64_MIN, INT64_MAX, &p);
    is_int(rc, AVS_OK, "u2: a plan");
    ok(p.nranges == 1 && p.ranges[0].offset == 100
       && p.ranges[0].length == 50, "u2: its range only");
    ok(p.hot.len == 2 && memcmp(p.hot.data, "\x09\x09", 2) == 0,
       "u2: its hot row only");
    avs_read_plan_free(&p);

    avs_store_close(st);

    snprintf(buf, sizeof(buf), "rm -rf %s", dir);
    if (system(buf) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
