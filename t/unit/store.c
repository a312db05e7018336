/*
 * Unit tests of the hot store: migrations, streams, the group commit with
 * its de-duplication, the size limit, waiting for a busy file or lock, the
 * recovery of a lock whose owner died, and several processes writing the
 * same file through their own connections under the shared lock.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "avs_migrations.h"
#include "sql_count.h"
#include "avs_store.h"
#include "tap.h"


#define NCHILDREN       4
#define CHILD_COMMITS   200


/* What the processes of the test share: the lock and the children's word. */
typedef struct {
    avs_lock_t  lock;
    int64_t     stream_ids[NCHILDREN];
} shared_t;


static shared_t  *shared;
static char       dir[] = "/tmp/avs-store-XXXXXX";
static char       path[256];

static char  canon_a[] = "{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}";
static char  json_a[] = "{\"type\": \"record\", \"name\": \"A\", "
                        "\"fields\": []}";
static char  canon_b[] = "{\"type\":\"record\",\"name\":\"B\",\"fields\":[]}";

static avs_schema_t  schema_a, schema_b;

/* fdatasync as the store calls it: the real one unless told to fail */
static int  fail_fdatasync;


/* A schema as avs_schema.c would make it, by hand: the store needs no more. */
static void
schema_init(avs_schema_t *s, char *canonical, char *json, const char *fp)
{
    memset(s, 0, sizeof(avs_schema_t));
    s->json = json;
    s->json_len = strlen(json);
    s->canonical = canonical;
    s->canonical_len = strlen(canonical);
    snprintf(s->fp_hex, sizeof(s->fp_hex), "%s", fp);
}


static void
conf_init(avs_store_conf_t *conf, unsigned busy_ms, uint64_t max_size)
{
    memset(conf, 0, sizeof(avs_store_conf_t));
    conf->path = path;
    conf->synchronous = AVS_SYNC_NORMAL;
    conf->busy_timeout_ms = busy_ms;
    conf->max_size = max_size;
    conf->lock = &shared->lock;
}


static avs_store_t *
store_open(unsigned busy_ms, uint64_t max_size)
{
    avs_store_conf_t   conf;
    avs_store_t       *st;
    avs_err_t          err;

    conf_init(&conf, busy_ms, max_size);

    if (avs_store_open(&conf, &st, &err) != AVS_OK) {
        printf("# open: %s\n", err.msg);
        return NULL;
    }

    return st;
}


/* A row of fake blocks; the store does not look inside data. */
static void
row_init(avs_row_t *r, const char *dataset, const char *table, int hash,
    int64_t stream_id, const char *data)
{
    memset(r, 0, sizeof(avs_row_t));
    r->dataset = dataset;
    r->table = table;
    r->period = "2026_11_21";
    r->uploaded_by = "tester";
    r->timestamp_ms = 1763683200000 + hash;
    r->stream_id = stream_id;
    snprintf(r->fingerprint, sizeof(r->fingerprint), "%s", schema_a.fp_hex);
    snprintf(r->content_hash, sizeof(r->content_hash), "%064x", hash);
    r->data = (const uint8_t *) data;
    r->len = strlen(data);
    r->records = 3;
    r->blocks = 1;
}


/*
 * Defined here, it takes the place of the C library's for the store's
 * code linked into this program: the disk's write-back failing.
 */
int
fdatasync(int fd)
{
    if (fail_fdatasync) {
        errno = EIO;
        return -1;
    }

    return (int) syscall(SYS_fdatasync, fd);
}


/*
 * The same for clock_gettime: the wall clock, when clock_skew_s is set,
 * reads that many seconds off, as after NTP or an operator set it while
 * the store waits.
 */
static time_t  clock_skew_s;

int
clock_gettime(clockid_t id, struct timespec *ts)
{
    int  rc;

    rc = (int) syscall(SYS_clock_gettime, id, ts);

    if (rc == 0 && id == CLOCK_REALTIME) {
        ts->tv_sec += clock_skew_s;
    }

    return rc;
}


/* Runs a query on a connection of the test's own; -1 on any failure. */
static long long
query_int(const char *sql)
{
    return sql_count(path, sql);
}


static int
exec_sql(const char *sql)
{
    return sql_exec(path, sql);
}


static long long
count_rows(void)
{
    return query_int("SELECT count(*) FROM buffer_logs");
}


static int64_t
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static int
latest_migration(void)
{
    const avs_migration_t  *m;
    int                     v;

    v = 0;

    for (m = avs_migrations; m->name != NULL; m++) {
        v = m->version;
    }

    return v;
}


static void
test_open(void)
{
    avs_store_conf_t   conf;
    avs_store_t       *st;
    avs_err_t          err;
    avs_rc_t           rc;
    char               bad[300], want[400], sql[64];
    struct stat        sb;

    snprintf(bad, sizeof(bad), "%s/missing/hot.db", dir);
    conf_init(&conf, 1000, 0);
    conf.path = bad;

    rc = avs_store_open(&conf, &st, &err);
    is_int(rc, AVS_ESTORE, "open in a missing directory fails");
    snprintf(want, sizeof(want), "hot store %s: unable to open database file",
             bad);
    is_str(err.msg, want, "and says where and why");
    ok(st == NULL, "and gives no store");

    ok(!avs_store_is_current(bad), "no file: not current");
    ok(!avs_store_is_current("/etc/hostname"), "not a database: not current");

    st = store_open(1000, 0);
    ok(st != NULL, "open creates the store");
    ok(stat(path, &sb) == 0, "the file exists");
    ok(avs_store_is_current(path), "its header says it is current while "
       "it is open (checkpointed after the migrations)");
    ok(latest_migration() >= 1, "there is a migration");
    is_int(query_int("PRAGMA user_version"), latest_migration(),
           "user_version is the latest migration");
    is_int(query_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('schemas', 'streams', 'buffer_logs', "
                     "'idx_buffer_search', 'idx_buffer_dedup', "
                     "'idx_buffer_archive')"), 6,
           "tables and indexes are there");
    is_int(query_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                     "('block_indexes', "
                     "'idx_block_indexes_dataset_table')"), 2,
           "the block index and its read index are there");
    is_int(query_int("SELECT count(*) FROM sqlite_master WHERE name = "
                     "'idx_block_indexes_dataset_period'"), 0,
           "003 dropped the block index's unused period index");
    is_int(query_int("SELECT count(*) FROM pragma_index_info("
                     "'idx_buffer_archive') WHERE name IN ('data_size', "
                     "'dataset_id')"), 2,
           "the archive index holds the sizes (004) and datasets (005)");

    avs_store_close(st);

    is_int(exec_sql("PRAGMA journal_mode"), SQLITE_OK, "file still readable");
    is_int(exec_sql("INSERT INTO schemas VALUES ('ffffffffffffffff', 'x', "
                    "'x', 0)"), SQLITE_OK, "a marker row");

    st = store_open(1000, 0);
    ok(st != NULL, "reopen works (the migration is not run again)");
    is_int(query_int("SELECT count(*) FROM schemas"), 1, "marker row kept");
    is_int(query_int("PRAGMA user_version"), latest_migration(),
           "user_version unchanged");
    avs_store_close(st);

    exec_sql("DELETE FROM schemas");

    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
             latest_migration() + 1);
    exec_sql(sql);

    ok(!avs_store_is_current(path), "a newer user_version: not current");

    conf_init(&conf, 1000, 0);
    rc = avs_store_open(&conf, &st, &err);
    is_int(rc, AVS_ESTORE, "a file from a newer module is refused");
    ok(strstr(err.msg, "is newer than") != NULL, "with a message: %s",
       err.msg);

    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
             latest_migration());
    exec_sql(sql);
    ok(avs_store_is_current(path), "the latest again: current");
}


static void
test_streams(void)
{
    avs_store_t   *st;
    avs_stream_t   s1, s2, s3, s4;
    avs_err_t      err;
    avs_rc_t       rc;

    st = store_open(1000, 0);
    ok(st != NULL, "open for streams");

    if (st == NULL) {
        return;
    }

    rc = avs_store_stream(st, "battle", &schema_a, AVS_CODEC_DEFLATE, &s1,
                          &err);
    is_int(rc, AVS_OK, "stream created");
    ok(s1.id > 0, "stream has an id");
    is_int(s1.codec, AVS_CODEC_DEFLATE, "with the codec asked for");

    rc = avs_store_stream(st, "battle", &schema_a, AVS_CODEC_SNAPPY, &s2,
                          &err);
    is_int(rc, AVS_OK, "stream found again");
    is_int(s2.id, s1.id, "same id");
    ok(memcmp(s1.sync, s2.sync, AVS_SYNC_SIZE) == 0, "same sync");
    is_int(s2.codec, AVS_CODEC_DEFLATE, "first codec wins");

    rc = avs_store_stream(st, "ship", &schema_a, AVS_CODEC_DEFLATE, &s3,
                          &err);
    is_int(rc, AVS_OK, "another table's stream");
    ok(s3.id != s1.id, "has another id");
    ok(memcmp(s1.sync, s3.sync, AVS_SYNC_SIZE) != 0, "and another sync");

    is_int(query_int("SELECT count(*) FROM schemas"), 1, "one schema row");
    is_int(query_int("SELECT count(*) FROM streams"), 2, "two stream rows");

    rc = avs_store_stream(st, "battle", &schema_b, AVS_CODEC_DEFLATE, &s4,
                          &err);
    is_int(rc, AVS_EREJECTED, "fingerprint collision refused (cache)");
    ok(strstr(err.msg, "collides") != NULL, "message: %s", err.msg);

    rc = avs_store_stream(st, "newtable", &schema_b, AVS_CODEC_DEFLATE, &s4,
                          &err);
    is_int(rc, AVS_EREJECTED, "fingerprint collision refused (database)");
    is_int(query_int("SELECT count(*) FROM streams"), 2, "no stream added");

    avs_store_close(st);

    st = store_open(1000, 0);
    ok(st != NULL, "reopen");

    if (st == NULL) {
        return;
    }

    rc = avs_store_stream(st, "battle", &schema_a, AVS_CODEC_NULL, &s4, &err);
    is_int(rc, AVS_OK, "stream found after reopen");
    is_int(s4.id, s1.id, "same id from the database");
    ok(memcmp(s1.sync, s4.sync, AVS_SYNC_SIZE) == 0, "same sync");
    is_int(s4.codec, AVS_CODEC_DEFLATE, "same codec");

    avs_store_close(st);
}


static int64_t
stream_id(avs_store_t *st, const char *table)
{
    avs_stream_t  s;
    avs_err_t     err;

    if (avs_store_stream(st, table, &schema_a, AVS_CODEC_NULL, &s, &err)
        != AVS_OK)
    {
        printf("# stream: %s\n", err.msg);
        return -1;
    }

    return s.id;
}


static void
test_commit(avs_store_t *st)
{
    avs_row_t     ra[2], rb[1], rc3[3], rd[2], re[1];
    avs_batch_t   a, b, c, d, e, *group[5];
    avs_err_t     err;
    avs_rc_t      rc;
    int64_t       sid;
    long long     before;

    sid = stream_id(st, "battle");
    before = count_rows();

    row_init(&ra[0], "alice", "battle", 1, sid, "blocks-1");
    row_init(&ra[1], "alice", "battle", 2, sid, "blocks-2");
    row_init(&rb[0], "bob", "battle", 1, sid, "blocks-1");
    row_init(&rc3[0], "alice", "battle", 1, sid, "blocks-1");
    row_init(&rc3[1], "alice", "battle", 3, sid, "blocks-3");
    row_init(&rc3[2], "alice", "battle", 3, sid, "blocks-3");
    rb[0].uploaded_by = NULL;

    a.rows = ra;
    a.nrows = 2;
    b.rows = rb;
    b.nrows = 1;
    c.rows = rc3;
    c.nrows = 3;
    group[0] = &a;
    group[1] = &b;
    group[2] = &c;

    rc = avs_store_commit(st, group, 3, &err);
    is_int(rc, AVS_OK, "group of 3 batches committed");
    is_int(a.err.rc, AVS_OK, "batch 1 stored");
    is_int(b.err.rc, AVS_OK, "batch 2 stored");
    is_int(c.err.rc, AVS_OK, "batch 3 stored");
    ok(ra[0].id > 0 && ra[1].id > ra[0].id, "ids in order");
    ok(!ra[0].duplicate && !ra[1].duplicate, "batch 1 is new");
    ok(rb[0].id != ra[0].id && !rb[0].duplicate,
       "same bytes from another dataset are stored");
    is_int(rc3[0].id, ra[0].id, "a re-upload gets the stored id");
    ok(rc3[0].duplicate, "and is marked duplicate");
    ok(rc3[1].id > rb[0].id && !rc3[1].duplicate, "new row of batch 3");
    is_int(rc3[2].id, rc3[1].id, "a repeat inside the transaction...");
    ok(rc3[2].duplicate, "...is a duplicate too");
    is_int(count_rows(), before + 4, "4 rows stored, not 6");

    is_int(query_int("SELECT count(*) FROM buffer_logs WHERE "
                     "dataset_id = 'alice' AND table_name = 'battle' AND "
                     "period_tag = '2026_11_21' AND "
                     "timestamp = 1763683200002 AND data = CAST('blocks-2' "
                     "AS BLOB) AND uploaded_by = 'tester' AND "
                     "record_count = 3 AND block_count = 1 AND "
                     "schema_fingerprint = '00000000000000a1' AND "
                     "content_hash = printf('%064x', 2) AND created_at > 0"),
           1, "columns as given");
    is_int(query_int("SELECT count(*) FROM buffer_logs WHERE "
                     "dataset_id = 'bob' AND uploaded_by IS NULL"), 1,
           "uploaded_by NULL kept");

    /* a failing row undoes its batch only */

    row_init(&rd[0], "carol", "battle", 10, sid, "blocks-10");
    row_init(&rd[1], "carol", "battle", 11, 999999, "blocks-11");
    row_init(&re[0], "carol", "battle", 12, sid, "blocks-12");
    d.rows = rd;
    d.nrows = 2;
    e.rows = re;
    e.nrows = 1;
    group[0] = &d;
    group[1] = &e;
    before = count_rows();

    rc = avs_store_commit(st, group, 2, &err);
    is_int(rc, AVS_OK, "group with a bad batch committed");
    is_int(d.err.rc, AVS_ESTORE, "the bad batch failed");
    ok(strstr(d.err.msg, "row 2: insert") != NULL, "message: %s",
       d.err.msg);
    is_int(rd[0].id, 0, "its good row has no id");
    is_int(e.err.rc, AVS_OK, "the other batch stored");
    ok(re[0].id > 0, "with an id");
    is_int(count_rows(), before + 1, "only the good batch's row is there");
    is_int(query_int("SELECT count(*) FROM buffer_logs "
                     "WHERE dataset_id = 'carol'"), 1, "not carol's 10");

    /* a batch of one row, stored without a savepoint, fails alone too */

    row_init(&rd[0], "dave", "battle", 14, sid, "blocks-14");
    row_init(&rb[0], "dave", "battle", 15, 999999, "blocks-15");
    row_init(&re[0], "dave", "battle", 16, sid, "blocks-16");
    d.nrows = 1;
    b.nrows = 1;
    group[0] = &d;
    group[1] = &b;
    group[2] = &e;
    before = count_rows();

    rc = avs_store_commit(st, group, 3, &err);
    is_int(rc, AVS_OK, "group with a bad one-row batch committed");
    is_int(b.err.rc, AVS_ESTORE, "the one-row batch failed");
    ok(strstr(b.err.msg, "row 1: insert") != NULL, "message: %s",
       b.err.msg);
    is_int(rb[0].id, 0, "it has no id");
    ok(d.err.rc == AVS_OK && e.err.rc == AVS_OK && rd[0].id > 0
       && re[0].id > rd[0].id, "the batches before and after it stored");
    is_int(count_rows(), before + 2, "their two rows are there");
    is_int(query_int("SELECT count(*) FROM buffer_logs "
                     "WHERE dataset_id = 'dave' AND timestamp = "
                     "1763683200015"), 0, "not the bad one");

    /* a row the caller did not finish */

    row_init(&rd[0], "carol", "battle", 13, sid, "blocks-13");
    rd[0].content_hash[0] = '\0';
    d.nrows = 1;
    group[0] = &d;

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "commit with an incomplete row");
    is_int(d.err.rc, AVS_EINTERNAL, "that batch is refused");

    /* the same group again: everything is a duplicate */

    row_init(&ra[0], "alice", "battle", 1, sid, "blocks-1");
    row_init(&ra[1], "alice", "battle", 2, sid, "blocks-2");
    a.nrows = 2;
    group[0] = &a;
    before = count_rows();

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "retry committed");
    ok(ra[0].duplicate && ra[1].duplicate, "both rows are duplicates");
    is_int(count_rows(), before, "nothing stored twice");
}


/* The take() of test_take: the group in arg, counting its calls. */
typedef struct {
    avs_batch_t  **batches;
    size_t         n;
    int            calls;
} take_arg_t;


static size_t
take_group(void *arg, avs_batch_t ***batches)
{
    take_arg_t *t = arg;

    t->calls++;
    *batches = t->batches;

    return t->n;
}


static void
test_take(avs_store_t *st)
{
    avs_row_t     r[2];
    avs_batch_t   a, b, *group[2];
    avs_err_t     err;
    avs_rc_t      rc;
    take_arg_t    t;
    int64_t       sid;
    long long     before;

    sid = stream_id(st, "battle");
    before = count_rows();

    memset(&t, 0, sizeof(t));
    rc = avs_store_commit_take(st, take_group, &t, &err);
    is_int(rc, AVS_DONE, "take: an empty group is no commit");
    is_int(t.calls, 1, "take() called once");

    row_init(&r[0], "gina", "battle", 50, sid, "blocks-50");
    row_init(&r[1], "gina", "battle", 51, sid, "blocks-51");
    a.rows = &r[0];
    a.nrows = 1;
    b.rows = &r[1];
    b.nrows = 1;
    group[0] = &a;
    group[1] = &b;
    t.batches = group;
    t.n = 2;
    t.calls = 0;

    rc = avs_store_commit_take(st, take_group, &t, &err);
    is_int(rc, AVS_OK, "take: the group taken is committed");
    is_int(t.calls, 1, "take() called once");
    ok(a.err.rc == AVS_OK && b.err.rc == AVS_OK && r[1].id > r[0].id,
       "both batches stored");
    is_int(count_rows(), before + 2, "their rows are there");
}


static void
test_full(avs_store_t *st)
{
    avs_store_status_t   s;
    avs_store_t         *small;
    avs_row_t            r, r2;
    avs_batch_t          b, b2, *group[2];
    avs_err_t            err;
    avs_rc_t             rc;
    long long            before;
    char                 big[3000];
    int64_t              sid;

    rc = avs_store_status(st, &s, &err);
    is_int(rc, AVS_OK, "status");

    small = store_open(1000, s.db_bytes + 1000);
    ok(small != NULL, "open with max_size = in use + 1000");

    if (small == NULL) {
        return;
    }

    sid = stream_id(small, "battle");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    row_init(&r, "dave", "battle", 20, sid, big);
    b.rows = &r;
    b.nrows = 1;
    group[0] = &b;
    before = count_rows();

    rc = avs_store_commit(small, group, 1, &err);
    is_int(rc, AVS_EFULL, "too big for max_size");
    ok(strncmp(err.msg, "hot store full: ", 16) == 0, "message: %s",
       err.msg);
    is_int(b.err.rc, AVS_EFULL, "the batch says so too");
    is_int(r.id, 0, "no id");
    is_int(count_rows(), before, "nothing stored");

    row_init(&r, "dave", "battle", 21, sid, "tiny");
    rc = avs_store_commit(small, group, 1, &err);
    is_int(rc, AVS_OK, "a small row still fits");

    /* a group: the batch that fits is stored, the one that does not is
     * refused alone */

    row_init(&r, "dave", "battle", 22, sid, big);
    row_init(&r2, "dave", "battle", 23, sid, "tiny too");
    b2.rows = &r2;
    b2.nrows = 1;
    group[1] = &b2;
    before = count_rows();

    rc = avs_store_commit(small, group, 2, &err);
    is_int(rc, AVS_OK, "a group near max_size commits");
    is_int(b.err.rc, AVS_EFULL, "its batch too big for the room is full");
    is_int(r.id, 0, "and has no id");
    is_int(b2.err.rc, AVS_OK, "the batch that fits is stored");
    ok(r2.id > 0, "with an id");
    is_int(count_rows(), before + 1, "one row more");

    avs_store_close(small);
}


static void
test_busy_file(avs_store_t *st)
{
    sqlite3      *db;
    avs_row_t     r;
    avs_batch_t   b, *group[1];
    avs_err_t     err;
    avs_rc_t      rc;
    int64_t       t0, spent, sid;
    long long     before;

    sid = stream_id(st, "battle");

    ok(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK
       && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK,
       "another connection holds the write lock of SQLite");

    row_init(&r, "erin", "battle", 30, sid, "blocks-30");
    b.rows = &r;
    b.nrows = 1;
    group[0] = &b;
    before = count_rows();

    t0 = now_ms();
    rc = avs_store_commit(st, group, 1, &err);
    spent = now_ms() - t0;

    is_int(rc, AVS_EBUSY, "commit is busy");
    ok(spent >= 150 && spent < 2000, "after about 200 ms (%lld ms)",
       (long long) spent);
    is_int(b.err.rc, AVS_EBUSY, "the batch is busy too");
    is_int(count_rows(), before, "nothing stored");

    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "works once released");
    is_int(count_rows(), before + 1, "stored");
}


static pthread_mutex_t  hold_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   hold_cond = PTHREAD_COND_INITIALIZER;
static int              hold_state;     /* 1: holding, 2: let go */


static void *
hold_lock(void *arg)
{
    avs_err_t  err;

    (void) arg;

    if (avs_lock_acquire(&shared->lock, 1000, &err) != AVS_OK) {
        printf("# holder: %s\n", err.msg);
    }

    pthread_mutex_lock(&hold_mutex);
    hold_state = 1;
    pthread_cond_broadcast(&hold_cond);

    while (hold_state != 2) {
        pthread_cond_wait(&hold_cond, &hold_mutex);
    }

    pthread_mutex_unlock(&hold_mutex);

    avs_lock_release(&shared->lock);

    return NULL;
}


static void
test_busy_lock(avs_store_t *st)
{
    pthread_t     tid;
    avs_row_t     r;
    avs_batch_t   b, *group[1];
    avs_err_t     err;
    avs_rc_t      rc;
    int64_t       t0, spent, sid;
    long long     before;

    sid = stream_id(st, "battle");
    hold_state = 0;

    ok(pthread_create(&tid, NULL, hold_lock, NULL) == 0, "holder started");

    pthread_mutex_lock(&hold_mutex);
    while (hold_state != 1) {
        pthread_cond_wait(&hold_cond, &hold_mutex);
    }
    pthread_mutex_unlock(&hold_mutex);

    row_init(&r, "frank", "battle", 40, sid, "blocks-40");
    b.rows = &r;
    b.nrows = 1;
    group[0] = &b;
    before = count_rows();

    t0 = now_ms();
    rc = avs_store_commit(st, group, 1, &err);
    spent = now_ms() - t0;

    is_int(rc, AVS_EBUSY, "commit waits for the lock, then is busy");
    ok(strstr(err.msg, "write lock") != NULL, "message: %s", err.msg);
    ok(spent >= 150 && spent < 2000, "after about 200 ms (%lld ms)",
       (long long) spent);
    is_int(count_rows(), before, "nothing stored");

    pthread_mutex_lock(&hold_mutex);
    hold_state = 2;
    pthread_cond_broadcast(&hold_cond);
    pthread_mutex_unlock(&hold_mutex);
    pthread_join(tid, NULL);

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "works once the lock is free");
}


/* The lock test again with the wall clock set back, then forward. */
static void
test_busy_lock_clock(avs_store_t *st)
{
    clock_skew_s = -3600;
    test_busy_lock(st);
    clock_skew_s = 3600;
    test_busy_lock(st);
    clock_skew_s = 0;
}


static pthread_mutex_t  read_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   read_cond = PTHREAD_COND_INITIALIZER;
static int              readers_in, readers_go;


/* A read transaction that lasts until the test lets it go. */
static avs_rc_t
slow_read(sqlite3 *db, void *arg, avs_err_t *err)
{
    (void) db;
    (void) arg;
    (void) err;

    pthread_mutex_lock(&read_mutex);
    readers_in++;
    pthread_cond_broadcast(&read_cond);

    while (!readers_go) {
        pthread_cond_wait(&read_cond, &read_mutex);
    }

    pthread_mutex_unlock(&read_mutex);

    return AVS_OK;
}


static avs_rc_t
quick_read(sqlite3 *db, void *arg, avs_err_t *err)
{
    (void) db;
    (void) arg;
    (void) err;

    return AVS_OK;
}


static void *
slow_reader(void *arg)
{
    avs_err_t  err;

    if (avs_store_read(arg, slow_read, NULL, &err) != AVS_OK) {
        printf("# slow reader: %s\n", err.msg);
    }

    return NULL;
}


/*
 * Every read connection taken: a read waits for one up to the busy
 * timeout, then is busy (a 503), also with the wall clock set back.
 */
static void
test_busy_readers(avs_store_t *st)
{
    pthread_t  tid[4];
    avs_err_t  err;
    avs_rc_t   rc;
    int64_t    t0, spent;
    int        i, started;

    readers_in = 0;
    readers_go = 0;
    started = 0;

    for (i = 0; i < 4; i++) {
        started += pthread_create(&tid[i], NULL, slow_reader, st) == 0;
    }

    is_int(started, 4, "four slow readers started");

    pthread_mutex_lock(&read_mutex);
    while (readers_in < started) {
        pthread_cond_wait(&read_cond, &read_mutex);
    }
    pthread_mutex_unlock(&read_mutex);

    clock_skew_s = -3600;

    t0 = now_ms();
    rc = avs_store_read(st, quick_read, NULL, &err);
    spent = now_ms() - t0;

    clock_skew_s = 0;

    is_int(rc, AVS_EBUSY, "every read connection busy: the read is busy");
    ok(strstr(err.msg, "every read connection is busy") != NULL,
       "message: %s", err.msg);
    ok(spent >= 150 && spent < 2000, "after about 200 ms, the wall clock "
       "set back an hour (%lld ms)", (long long) spent);

    pthread_mutex_lock(&read_mutex);
    readers_go = 1;
    pthread_cond_broadcast(&read_cond);
    pthread_mutex_unlock(&read_mutex);

    for (i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }

    is_int(avs_store_read(st, quick_read, NULL, &err), AVS_OK,
           "reads again once they are done");
}


/*
 * A child takes the shared lock and dies holding it: it _exit()s, or the
 * parent kills it with SIGKILL as an operator kills a wedged worker.  It
 * must touch no SQLite connection inherited from the parent, so it only
 * locks.
 */
static int
child_dies_locked(int kill9)
{
    pid_t  pid;
    int    status, fds[2];
    char   c;

    if (pipe(fds) != 0) {
        return 0;
    }

    fflush(stdout);

    pid = fork();

    if (pid == 0) {
        close(fds[0]);

        if (avs_lock_acquire(&shared->lock, 1000, NULL) != AVS_OK) {
            _exit(1);
        }

        if (kill9) {
            if (write(fds[1], "L", 1) != 1) {
                _exit(1);
            }

            pause();
        }

        _exit(0);
    }

    close(fds[1]);

    if (pid > 0 && kill9) {
        if (read(fds[0], &c, 1) == 1) {
            kill(pid, SIGKILL);
        }
    }

    close(fds[0]);

    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return 0;
    }

    return kill9 ? WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
                 : WIFEXITED(status) && WEXITSTATUS(status) == 0;
}


/*
 * The lock's owner dies: first a child that _exit()s while no store of the
 * parent is open (so that valgrind's leak check in the child has nothing
 * of the parent's to report), then one killed by SIGKILL while the
 * parent's store is open (a killed process runs no leak check).
 */
static void
test_dead_owner(void)
{
    avs_store_status_t   s;
    avs_store_t         *st;
    avs_row_t            r;
    avs_batch_t          b, *group[1];
    avs_err_t            err;
    avs_rc_t             rc;
    int64_t              sid;
    uint32_t             before;

    before = shared->lock.recoveries;

    ok(child_dies_locked(0), "a child took the lock and _exit()ed");

    st = store_open(200, 0);
    ok(st != NULL, "open works after the owner died");

    if (st == NULL) {
        return;
    }

    sid = stream_id(st, "battle");
    row_init(&r, "grace", "battle", 50, sid, "blocks-50");
    b.rows = &r;
    b.nrows = 1;
    group[0] = &b;

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "commit works");
    ok(r.id > 0 && !r.duplicate, "row stored");
    is_int(shared->lock.recoveries, before + 1, "one recovery counted");

    ok(child_dies_locked(1), "a child took the lock and was killed");

    row_init(&r, "grace", "battle", 51, sid, "blocks-51");

    rc = avs_store_commit(st, group, 1, &err);
    is_int(rc, AVS_OK, "commit works after the kill");
    ok(r.id > 0 && !r.duplicate, "row stored");

    rc = avs_store_status(st, &s, &err);
    is_int(rc, AVS_OK, "status");
    is_int(s.lock_recoveries, before + 2, "two recoveries counted");

    avs_store_close(st);
}


/*
 * A child of the multi-process test: its own store on the same file (as a
 * worker opens its own in init_process), one commit per row.
 */
static int
child_writer(int k)
{
    avs_store_t  *st;
    avs_stream_t  s;
    avs_row_t     r;
    avs_batch_t   b, *group[1];
    avs_err_t     err;
    char          dataset[32];
    int           i, failures;

    st = store_open(10000, 0);
    if (st == NULL) {
        return 1;
    }

    failures = 0;

    if (avs_store_stream(st, "multi", &schema_a, AVS_CODEC_ZSTD, &s, &err)
        != AVS_OK)
    {
        printf("# child %d: %s\n", k, err.msg);
        avs_store_close(st);
        return 1;
    }

    shared->stream_ids[k] = s.id;
    snprintf(dataset, sizeof(dataset), "child-%d", k);

    for (i = 0; i < CHILD_COMMITS; i++) {
        row_init(&r, dataset, "multi", 1000 * k + i, s.id, "blocks");
        b.rows = &r;
        b.nrows = 1;
        group[0] = &b;

        if (avs_store_commit(st, group, 1, &err) != AVS_OK
            || b.err.rc != AVS_OK || r.duplicate)
        {
            printf("# child %d commit %d: %s\n", k, i, err.msg);
            failures++;
        }
    }

    avs_store_close(st);

    return failures ? 1 : 0;
}


static void
test_processes(void)
{
    pid_t  pids[NCHILDREN];
    int    k, status, good;

    fflush(stdout);

    for (k = 0; k < NCHILDREN; k++) {
        pids[k] = fork();

        if (pids[k] == 0) {
            _exit(child_writer(k));
        }
    }

    good = 0;

    for (k = 0; k < NCHILDREN; k++) {
        if (pids[k] > 0 && waitpid(pids[k], &status, 0) == pids[k]
            && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        {
            good++;
        }
    }

    is_int(good, NCHILDREN, "%d children committed %d batches each",
           NCHILDREN, CHILD_COMMITS);
    is_int(query_int("SELECT count(*) FROM buffer_logs "
                     "WHERE table_name = 'multi'"),
           NCHILDREN * CHILD_COMMITS, "all their rows are there");
    ok(shared->stream_ids[0] > 0
       && shared->stream_ids[1] == shared->stream_ids[0]
       && shared->stream_ids[2] == shared->stream_ids[0]
       && shared->stream_ids[3] == shared->stream_ids[0],
       "all children agreed on one stream");
    is_int(query_int("SELECT count(*) FROM streams "
                     "WHERE table_name = 'multi'"), 1, "one stream row");
    is_int(query_int("SELECT count(*) FROM pragma_integrity_check "
                     "WHERE integrity_check = 'ok'"), 1,
           "integrity_check is ok");
}


static void
test_status(void)
{
    avs_store_status_t   s;
    avs_store_t         *st;
    avs_err_t            err;
    avs_rc_t             rc;

    st = store_open(1000, 12345678);
    ok(st != NULL, "open for status");

    if (st == NULL) {
        return;
    }

    rc = avs_store_status(st, &s, &err);
    is_int(rc, AVS_OK, "status read");
    is_int(s.hot_rows, count_rows(), "hot_rows");
    is_int(s.hot_bytes, query_int("SELECT sum(length(data)) "
                                  "FROM buffer_logs"), "hot_bytes");
    is_int(s.hot_records, query_int("SELECT sum(record_count) "
                                    "FROM buffer_logs"), "hot_records");
    is_int(s.datasets, query_int("SELECT count(DISTINCT dataset_id) "
                                 "FROM buffer_logs"), "datasets");
    is_int(s.streams, query_int("SELECT count(*) FROM streams"), "streams");
    is_int(s.oldest_ms, query_int("SELECT min(created_at) FROM buffer_logs"),
           "oldest_ms");
    is_int(s.db_bytes, query_int("SELECT (SELECT page_count FROM "
                                 "pragma_page_count) * (SELECT page_size "
                                 "FROM pragma_page_size) - (SELECT "
                                 "freelist_count FROM pragma_freelist_count)"
                                 " * (SELECT page_size FROM "
                                 "pragma_page_size)"), "db_bytes");
    is_int(s.max_size, 12345678, "max_size");
    is_int(s.lock_recoveries, 2, "lock_recoveries");
    ok(s.hot_rows > NCHILDREN * CHILD_COMMITS && s.datasets >= 8,
       "counts add up (%llu rows, %llu datasets)",
       (unsigned long long) s.hot_rows, (unsigned long long) s.datasets);

    avs_store_close(st);
}


/* Commits one new row; the commit's result, its batch's in *batch_rc. */
static avs_rc_t
commit_one(avs_store_t *st, int64_t sid, int hash, avs_rc_t *batch_rc,
    avs_err_t *err)
{
    avs_row_t     r;
    avs_batch_t   b, *group[1];
    avs_rc_t      rc;

    row_init(&r, "sync", "battle", hash, sid, "blocks");
    memset(&b, 0, sizeof(b));
    b.rows = &r;
    b.nrows = 1;
    group[0] = &b;

    rc = avs_store_commit(st, group, 1, err);
    *batch_rc = b.err.rc;

    return rc;
}


/*
 * synchronous=full through a store whose file is a symbolic link (SQLite
 * keeps the WAL beside the real file), and an fsync of the WAL that fails:
 * from then on every store that shares the lock refuses to write, since
 * the kernel reports a lost write-back only once.
 */
static void
test_sync(void)
{
    avs_store_conf_t   conf;
    avs_store_t       *st, *other;
    avs_lock_t         lock;
    avs_err_t          err;
    avs_rc_t           rc, batch_rc;
    int64_t            sid;
    avs_store_status_t status;
    char               real[300], link_path[300], name[320];
    struct stat        sb;

    snprintf(real, sizeof(real), "%s/real.db", dir);
    snprintf(link_path, sizeof(link_path), "%s/link.db", dir);
    ok(symlink("real.db", link_path) == 0, "the store's file is a symlink");

    memset(&lock, 0, sizeof(lock));
    avs_lock_init(&lock);

    conf_init(&conf, 1000, 0);
    conf.path = link_path;
    conf.synchronous = AVS_SYNC_FULL;
    conf.lock = &lock;

    rc = avs_store_open(&conf, &st, &err);
    is_int(rc, AVS_OK, "synchronous=full opens through the link: %s",
           rc == AVS_OK ? "" : err.msg);

    if (rc != AVS_OK) {
        goto done;
    }

    snprintf(name, sizeof(name), "%s-wal", real);
    ok(stat(name, &sb) == 0, "the WAL is beside the real file");

    sid = stream_id(st, "battle");
    rc = commit_one(st, sid, 1, &batch_rc, &err);
    ok(rc == AVS_OK && batch_rc == AVS_OK, "a commit, its WAL synced");

    rc = avs_store_open(&conf, &other, &err);
    is_int(rc, AVS_OK, "a second store on the same lock (another worker)");

    fail_fdatasync = 1;
    rc = commit_one(st, sid, 2, &batch_rc, &err);
    is_int(rc, AVS_ESTORE, "the WAL's fsync fails: the commit fails");
    ok(strstr(err.msg, "fsync of the WAL") != NULL, "and says so: %s",
       err.msg);
    is_int(batch_rc, AVS_ESTORE, "its upload is not acknowledged");
    fail_fdatasync = 0;

    rc = commit_one(st, sid, 3, &batch_rc, &err);
    is_int(rc, AVS_ESTORE, "the next commit is refused, fsync or not");
    ok(strstr(err.msg, "restart nginx") != NULL, "saying what to do: %s",
       err.msg);

    rc = commit_one(st, sid, 2, &batch_rc, &err);
    is_int(rc, AVS_ESTORE, "so is the failed upload's retry, which would "
           "have been answered as a duplicate");

    if (other != NULL) {
        rc = commit_one(other, sid, 4, &batch_rc, &err);
        is_int(rc, AVS_ESTORE, "and every other store on the lock");
        ok(avs_store_status(other, &status, &err) == AVS_OK
           && status.writes_refused, "whose status says so");
        avs_store_close(other);
    }

    avs_store_close(st);

    rc = avs_store_open(&conf, &st, &err);
    if (rc == AVS_OK) {
        rc = commit_one(st, sid, 5, &batch_rc, &err);
        avs_store_close(st);
    }
    is_int(rc, AVS_ESTORE, "reopening does not clear it: %s", err.msg);

    memset(&lock, 0, sizeof(lock));        /* a new zone */
    avs_lock_init(&lock);

    rc = avs_store_open(&conf, &st, &err);
    if (rc == AVS_OK) {
        rc = commit_one(st, sid, 6, &batch_rc, &err);
        ok(rc == AVS_OK && batch_rc == AVS_OK,
           "a new lock (nginx restarted) writes again");
        avs_store_close(st);
    }

done:

    unlink(link_path);
    snprintf(name, sizeof(name), "%s.lock", link_path);
    unlink(name);
    unlink(real);
    snprintf(name, sizeof(name), "%s-wal", real);
    unlink(name);
    snprintf(name, sizeof(name), "%s-shm", real);
    unlink(name);
    snprintf(name, sizeof(name), "%s.lock", real);
    unlink(name);
}


/* The child's write: tells the parent it holds the locks, waits for it. */
static avs_rc_t
hold_write(sqlite3 *db, void *arg, avs_err_t *err)
{
    int  *fds = arg;
    char  c;

    c = 'h';
    if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1) {
        return AVS_EINTERNAL;
    }

    return AVS_OK;
}


/*
 * Two nginx masters (a binary upgrade) have a lock in shared memory each:
 * the store also locks a file beside it, so a write of one keeps the
 * other's out.
 */
static void
test_file_lock(void)
{
    avs_store_conf_t   conf;
    avs_store_t       *st, *other;
    avs_lock_t        *other_lock;
    avs_err_t          err;
    avs_rc_t           rc, batch_rc;
    int64_t            sid;
    int                to_child[2], to_parent[2], fds[2], fd, status;
    char               c, name[300];
    pid_t              pid;

    st = store_open(200, 0);
    ok(st != NULL, "open (the first nginx)");
    if (st == NULL) {
        return;
    }

    sid = stream_id(st, "battle");

    /* the child uses a store of its own, never this one's connections */

    other_lock = mmap(NULL, sizeof(avs_lock_t), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(other_lock, 0, sizeof(avs_lock_t));
    avs_lock_init(other_lock);

    if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
        ok(0, "pipes");
        return;
    }

    pid = fork();
    if (pid == 0) {
        conf_init(&conf, 2000, 0);
        conf.lock = other_lock;
        fds[0] = to_child[0];
        fds[1] = to_parent[1];
        if (avs_store_open(&conf, &other, &err) != AVS_OK) {
            _exit(1);
        }
        rc = avs_store_write(other, hold_write, fds, &err);
        avs_store_close(other);
        _exit(rc == AVS_OK ? 0 : 2);
    }

    ok(read(to_parent[0], &c, 1) == 1, "the other nginx writes");

    snprintf(name, sizeof(name), "%s.lock", path);
    fd = open(name, O_RDWR | O_CLOEXEC);
    ok(fd != -1 && flock(fd, LOCK_EX | LOCK_NB) == -1
       && errno == EWOULDBLOCK, "it holds %s", name);
    if (fd != -1) {
        close(fd);
    }

    rc = commit_one(st, sid, 90, &batch_rc, &err);
    is_int(rc, AVS_EBUSY, "a commit of this nginx waits, then is busy");
    ok(strstr(err.msg, "held by another nginx") != NULL, "saying why: %s",
       err.msg);

    c = 'g';
    ok(write(to_child[1], &c, 1) == 1, "the other nginx ends its write");
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "and it succeeded");

    rc = commit_one(st, sid, 91, &batch_rc, &err);
    ok(rc == AVS_OK && batch_rc == AVS_OK, "then this one commits");
    avs_store_close(st);

    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    munmap(other_lock, sizeof(avs_lock_t));
}


static void
cleanup(void)
{
    static const char  *suffix[] = { "", "-wal", "-shm", ".lock" };
    char                name[300];
    size_t              i;

    for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(name, sizeof(name), "%s%s", path, suffix[i]);
        unlink(name);
    }

    rmdir(dir);
}


int
main(void)
{
    avs_store_t  *st;

    shared = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (shared == MAP_FAILED || mkdtemp(dir) == NULL) {
        printf("Bail out! no shared memory or temp dir: %s\n",
               strerror(errno));
        return 1;
    }

    memset(shared, 0, sizeof(shared_t));
    avs_lock_init(&shared->lock);
    snprintf(path, sizeof(path), "%s/hot.db", dir);

    schema_init(&schema_a, canon_a, json_a, "00000000000000a1");
    schema_init(&schema_b, canon_b, canon_b, "00000000000000a1");

    test_open();
    test_streams();

    st = store_open(200, 0);
    ok(st != NULL, "open with a 200 ms busy timeout");

    if (st != NULL) {
        test_commit(st);
        test_take(st);
        test_full(st);
        test_busy_file(st);
        test_busy_lock(st);
        test_busy_lock_clock(st);
        test_busy_readers(st);
        avs_store_close(st);
    }

    /* no connection may cross a fork: every store is closed by now */

    test_dead_owner();
    test_sync();
    test_file_lock();

    test_processes();
    test_status();

    cleanup();
    munmap(shared, sizeof(shared_t));

    return done_testing();
}
