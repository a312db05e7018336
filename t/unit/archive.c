/*
 * Unit tests of the archive cycle on a real SQLite file and a file: cold
 * store: a cycle that dies after each of its steps (claim, build, put) is
 * finished by the next one, under the same key, and every upload ends up
 * indexed exactly once; the lease admits one owner at a time; the
 * segment size bounds every file.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>

#include "tap.h"
#include "avs_archive.h"
#include "avs_ingest.h"
#include "avs_ocf.h"

#define SCHEMA  "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" \
                "{\"name\":\"a\",\"type\":\"long\"}," \
                "{\"name\":\"s\",\"type\":\"string\"}]}"

static const uint8_t  sync_a[AVS_SYNC_SIZE] = "0123456789abcdef";
static char           db_path[512];


static void
make_file(avs_buf_t *out, int64_t seed, int n)
{
    avs_buf_t  recs;
    int        i;

    memset(&recs, 0, sizeof(recs));

    for (i = 0; i < n; i++) {
        avs_buf_append_long(&recs, seed + i);
        avs_buf_append_long(&recs, 40);
        avs_buf_append(&recs, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 40);
    }

    avs_ocf_write_header(out, SCHEMA, strlen(SCHEMA), AVS_CODEC_NULL, sync_a);
    avs_ocf_write_block(out, n, recs.data, recs.len, sync_a);
    avs_buf_free(&recs);
}


static long long
query(const char *sql)
{
    sqlite3       *db;
    sqlite3_stmt  *st;
    long long      n;

    n = -1;
    sqlite3_open(db_path, &db);

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }

    sqlite3_close(db);
    return n;
}


static int   records_in;
static int   upload_seq;


/* n uploads of 5 records for datasets d0..d2 of table t */
static void
upload(avs_ingest_env_t *env, int n)
{
    avs_ingest_t  req;
    avs_buf_t     file;
    char          ds[16];
    int           i;

    for (i = 0; i < n; i++) {
        memset(&file, 0, sizeof(file));
        make_file(&file, ++upload_seq * 100, 5);
        snprintf(ds, sizeof(ds), "d%d", upload_seq % 3);

        memset(&req, 0, sizeof(req));
        req.body = file.data;
        req.body_len = file.len;
        req.dataset = ds;
        req.table = "t";
        req.period = "p";
        req.now_ms = 1763683200000LL + upload_seq;
        avs_ingest_run(env, &req);

        if (req.status == 201) {
            records_in += 5;
        }

        avs_buf_free(&req.response);
        avs_buf_free(&file);
    }
}


static avs_archive_step_t  die_at;
static int                 died;


static avs_rc_t
crash_hook(void *data, avs_archive_step_t step, const char *key)
{
    if (step == die_at && !died) {
        died = 1;
        return AVS_EINTERNAL;
    }

    return AVS_OK;
}


static void
check_once(const char *what)
{
    is_int(query("SELECT count(*) FROM buffer_logs"), 0,
           "%s: no hot row left", what);
    is_int(query("SELECT sum(record_count) FROM block_indexes"), records_in,
           "%s: every record indexed once", what);
    is_int(query("SELECT count(*) FROM (SELECT file_path FROM archived_files "
                 "GROUP BY file_path HAVING count(*) > 1)"), 0,
           "%s: no file twice", what);
    is_int(query("SELECT count(*) FROM archive_jobs WHERE state <> 'done'"),
           0, "%s: no job left pending", what);
}


int
main(void)
{
    static const struct {
        avs_archive_step_t  step;
        const char         *name;
    } steps[] = {
        { AVS_ARCHIVE_CLAIMED, "died after the claim" },
        { AVS_ARCHIVE_BUILT, "died after the build" },
        { AVS_ARCHIVE_PUT, "died after the put" }
    };

    avs_archive_summary_t  sum;
    avs_objstore_conf_t    oc;
    avs_archive_conf_t     ac;
    avs_ingest_env_t       env;
    avs_store_conf_t       sc;
    avs_objstore_t        *os;
    avs_err_t              err;
    avs_rc_t               rc;
    size_t                 i;
    char                   dir[] = "/tmp/avs-archive-XXXXXX";
    char                   url[600], tmp[600], cmd[700];

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    snprintf(db_path, sizeof(db_path), "%s/hot.db", dir);
    snprintf(url, sizeof(url), "file:%s/cold", dir);
    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", tmp);
    if (system(cmd) != 0) {
        return 1;
    }

    memset(&sc, 0, sizeof(sc));
    sc.path = db_path;
    sc.synchronous = AVS_SYNC_NORMAL;
    sc.busy_timeout_ms = 2000;

    memset(&env, 0, sizeof(env));
    ok(avs_store_open(&sc, &env.store, &err) == AVS_OK, "store opens");
    env.schemas = avs_schema_cache_create(8);
    avs_limits_default(&env.limits);
    env.codec = AVS_CODEC_DEFLATE;

    memset(&oc, 0, sizeof(oc));
    oc.url = url;
    ok(avs_objstore_open(&oc, &os, &err) == AVS_OK, "cold store opens");

    memset(&ac, 0, sizeof(ac));
    ac.node = "n1";
    ac.tmp_dir = tmp;
    ac.hook = crash_hook;

    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        upload(&env, 6);
        die_at = steps[i].step;
        died = 0;

        rc = avs_archive_cycle(env.store, os, &ac, &sum, &err);
        ok(rc != AVS_OK && died, "%s: the cycle stops there", steps[i].name);
        ok(query("SELECT count(*) FROM archive_jobs WHERE state = 'pending'")
           >= 1, "%s: its job is pending", steps[i].name);

        /* uploads that come meanwhile are archived too, in a later job */
        upload(&env, 2);

        rc = avs_archive_cycle(env.store, os, &ac, &sum, &err);
        is_int(rc, AVS_OK, "%s: the next cycle succeeds", steps[i].name);
        ok(sum.recovered >= 1, "%s: and finishes the pending job",
           steps[i].name);
        check_once(steps[i].name);
    }

    /* a cycle with nothing to do */
    rc = avs_archive_cycle(env.store, os, &ac, &sum, &err);
    ok(rc == AVS_OK && sum.files == 0, "nothing hot: no file");

    /* segment size */
    upload(&env, 30);
    ac.hook = NULL;
    ac.segment_size = 1024;
    rc = avs_archive_cycle(env.store, os, &ac, &sum, &err);
    is_int(rc, AVS_OK, "small segments: cycle succeeds");
    ok(sum.files >= 2, "small segments: %llu files",
       (unsigned long long) sum.files);
    is_int(query("SELECT count(*) FROM archived_files "
                 "WHERE file_size > 1024"), 0, "none larger than 1024");
    check_once("small segments");

    /* the lease */
    is_int(avs_archive_lease(env.store, "a", 60000, &err), AVS_OK,
           "owner a takes the lease");
    is_int(avs_archive_lease(env.store, "b", 60000, &err), AVS_EBUSY,
           "owner b waits");
    is_int(avs_archive_lease(env.store, "a", 60000, &err), AVS_OK,
           "owner a renews");
    avs_archive_release(env.store, "a", &err);
    is_int(avs_archive_lease(env.store, "b", 60000, &err), AVS_OK,
           "released: owner b takes it");
    avs_archive_release(env.store, "b", &err);
    is_int(avs_archive_lease(env.store, "c", 1000, &err), AVS_OK,
           "owner c takes a short lease");
    usleep(1200 * 1000);
    is_int(avs_archive_lease(env.store, "d", 60000, &err), AVS_OK,
           "expired: owner d takes it");

    avs_objstore_close(os);
    avs_store_close(env.store);
    avs_schema_cache_destroy(env.schemas);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
