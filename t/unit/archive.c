/*
 * Unit tests of the archive cycle on a real SQLite file and a file: cold
 * store.  Every archived object, and the header followed by every
 * block_indexes range, is read back by python3-avro and must hold exactly
 * the records uploaded for it; a cycle that dies after each of its steps
 * (claim, build, put) is finished by the next one under the same key and
 * with the same bytes; failing stores leave the job pending and count the
 * failures; an object that is not the job's is never overwritten; a reader
 * sees every upload hot or indexed at any moment of a cycle; two archivers
 * at once still archive everything once; the lease admits one owner at a
 * time; the segment size bounds every file.
 */

#define _GNU_SOURCE             /* O_DIRECT */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "tap.h"
#include "sql_count.h"
#include "avs_archive.h"
#include "avs_ingest.h"
#include "avs_ocf.h"

#define SCHEMA  "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" \
                "{\"name\":\"a\",\"type\":\"long\"}," \
                "{\"name\":\"s\",\"type\":\"string\"}]}"

#define MAX_UPLOADS  1024


/* One upload the test made: its records are a = seed .. seed + n - 1. */
typedef struct {
    char     dataset[16];
    char     table[16];
    char     period[16];
    int64_t  seed;
    int      n;
} upload_t;


/* An object or a block range to decode, and what python made of it. */
typedef struct {
    int      is_file;
    int64_t  file_id;
    char     dataset[16];
    char     table[16];
    char     period[16];
    int64_t  records;
    char     path[700];
    char    *values;
} item_t;


static const uint8_t      sync_a[AVS_SYNC_SIZE] = "0123456789abcdef";
static char               dir[] = "/tmp/avs-archive-XXXXXX";
static char               db_path[600], cold[600], tmp[600], scratch[600];
static avs_ingest_env_t   env;
static avs_objstore_t    *os;
static avs_archive_conf_t ac;

static upload_t           uploads[MAX_UPLOADS];
static int                nuploads;
static long long          records_in;
static int                upload_seq;

static avs_archive_step_t die_at;
static int                died;
static char               died_key[AVS_ARCHIVE_KEY_MAX];


/* An OCF of n records (a = seed + i, s = slen times 'x'), null codec. */
static void
make_file(avs_buf_t *out, int64_t seed, int n, int slen)
{
    avs_buf_t  recs;
    int        i, j;

    memset(&recs, 0, sizeof(recs));

    for (i = 0; i < n; i++) {
        avs_buf_append_long(&recs, seed + i);
        avs_buf_append_long(&recs, slen);

        for (j = 0; j < slen; j++) {
            avs_buf_append(&recs, "x", 1);
        }
    }

    avs_ocf_write_header(out, SCHEMA, strlen(SCHEMA), AVS_CODEC_NULL, sync_a);
    avs_ocf_write_block(out, n, recs.data, recs.len, sync_a);
    avs_buf_free(&recs);
}


/* Uploads one file through the real upload path; remembers it if stored. */
static int
upload_one(const char *dataset, const char *table, const char *period,
    int n, int slen)
{
    avs_ingest_t  req;
    avs_buf_t     file;
    upload_t     *u;
    int64_t       seed;
    int           status;

    seed = (int64_t) ++upload_seq * 1000;

    memset(&file, 0, sizeof(file));
    make_file(&file, seed, n, slen);

    memset(&req, 0, sizeof(req));
    req.body = file.data;
    req.body_len = file.len;
    req.dataset = dataset;
    req.table = table;
    req.period = period;
    req.now_ms = 1763683200000LL + upload_seq;
    avs_ingest_run(&env, &req);
    status = req.status;

    if (status == 201 && nuploads < MAX_UPLOADS) {
        u = &uploads[nuploads++];
        snprintf(u->dataset, sizeof(u->dataset), "%s", dataset);
        snprintf(u->table, sizeof(u->table), "%s", table);
        snprintf(u->period, sizeof(u->period), "%s", period);
        u->seed = seed;
        u->n = n;
        records_in += n;

    } else {
        printf("# upload refused: %d %s\n", status, req.err.msg);
    }

    avs_buf_free(&req.response);
    avs_buf_free(&file);

    return status;
}


/* n uploads of 5 records for datasets d0..d2 of table t, period p. */
static void
upload(int n)
{
    char  ds[16];
    int   i;

    for (i = 0; i < n; i++) {
        snprintf(ds, sizeof(ds), "d%d", (upload_seq + 1) % 3);
        upload_one(ds, "t", "p", 5, 40);
    }
}


static long long
query(const char *sql)
{
    return sql_count(db_path, sql);
}


/* Runs sql on a connection of its own, as an operator's tool would. */
static int
exec_sql(const char *sql)
{
    return sql_exec(db_path, sql);
}


/* The first column of the first row as text ("" when there is none). */
static void
query_text(const char *sql, char *out, size_t size)
{
    sqlite3       *db;
    sqlite3_stmt  *st;
    const char    *s;

    out[0] = '\0';
    sqlite3_open(db_path, &db);

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            s = (const char *) sqlite3_column_text(st, 0);
            snprintf(out, size, "%s", s ? s : "");
        }
        sqlite3_finalize(st);
    }

    sqlite3_close(db);
}


static int
read_file(const char *path, avs_buf_t *out)
{
    FILE    *f;
    uint8_t  piece[4096];
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }

    while ((n = fread(piece, 1, sizeof(piece), f)) > 0) {
        avs_buf_append(out, piece, n);
    }

    fclose(f);
    return 0;
}


static int
write_file(const char *path, const void *p, size_t n)
{
    FILE  *f;

    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }

    if (n > 0 && fwrite(p, 1, n, f) != n) {
        fclose(f);
        return -1;
    }

    return fclose(f);
}


/* SHA-256 hex of a file, "" if it cannot be read. */
static void
sha256_file(const char *path, char out[65])
{
    avs_buf_t      b;
    unsigned char  md[32];
    unsigned int   len;
    int            i;

    out[0] = '\0';
    memset(&b, 0, sizeof(b));

    if (read_file(path, &b) == 0
        && EVP_Digest(b.data ? b.data : (uint8_t *) "", b.len, md, &len,
                      EVP_sha256(), NULL) == 1)
    {
        for (i = 0; i < 32; i++) {
            snprintf(out + 2 * i, 3, "%02x", md[i]);
        }
    }

    avs_buf_free(&b);
}


/* Entries of a directory, not counting . and .. (-1 if unreadable). */
static int
dir_entries(const char *path)
{
    struct dirent  *de;
    DIR            *d;
    int             n;

    d = opendir(path);
    if (d == NULL) {
        return -1;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    }

    closedir(d);
    return n;
}


/* Regular files under a directory named like glob, at any depth. */
static long long
count_files(const char *path, const char *glob)
{
    FILE       *p;
    char        cmd[800];
    long long   n;

    snprintf(cmd, sizeof(cmd), "find %s -type f -name '%s' | wc -l", path,
             glob);
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }

    if (fscanf(p, "%lld", &n) != 1) {
        n = -1;
    }

    pclose(p);
    return n;
}


static int
run(const char *fmt, const char *arg)
{
    char  cmd[1600];

    snprintf(cmd, sizeof(cmd), fmt, arg, arg);
    return system(cmd);
}


static avs_rc_t
crash_hook(void *data, avs_archive_step_t step, const char *key)
{
    (void) data;

    if (step == die_at && !died) {
        died = 1;
        snprintf(died_key, sizeof(died_key), "%s", key ? key : "");
        return AVS_EINTERNAL;
    }

    return AVS_OK;
}


static avs_rc_t
cycle(avs_archive_summary_t *sum, avs_err_t *err)
{
    avs_rc_t  rc;

    rc = avs_archive_cycle(env.store, os, &ac, sum, err);
    if (rc != AVS_OK && !died) {
        printf("# cycle: %s\n", err->msg);
    }

    return rc;
}


/*
 * Decodes every path with python3-avro, one process for all of them: for
 * each path, its records' "a" values joined by commas (or "ERROR ...").
 */
static int
python_decode(item_t *items, size_t n)
{
    static const char  script[] =
        "import sys, avro.datafile, avro.io\n"
        "for i, p in enumerate(open(sys.argv[1]).read().split('\\n')):\n"
        "    if not p:\n"
        "        continue\n"
        "    try:\n"
        "        r = avro.datafile.DataFileReader(open(p, 'rb'),\n"
        "                                         avro.io.DatumReader())\n"
        "        v = []\n"
        "        for x in r:\n"
        "            if x['s'] != 'x' * len(x['s']):\n"
        "                raise ValueError('bad string')\n"
        "            v.append(str(x['a']))\n"
        "        r.close()\n"
        "        print('%d\\t%s' % (i, ','.join(v)))\n"
        "    except Exception as e:\n"
        "        print('%d\\tERROR %s %s' % (i, type(e).__name__, e))\n";

    FILE     *f, *p;
    char      list[700], py[700], cmd[1600], *line, *tab;
    size_t    cap, i;
    ssize_t   len;
    long      k;

    snprintf(py, sizeof(py), "%s/decode.py", scratch);
    snprintf(list, sizeof(list), "%s/list", scratch);

    if (write_file(py, script, strlen(script)) != 0) {
        return -1;
    }

    f = fopen(list, "w");
    if (f == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        fprintf(f, "%s\n", items[i].path);
    }

    fclose(f);

    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s", py, list);
    p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }

    line = NULL;
    cap = 0;

    while ((len = getline(&line, &cap, p)) > 0) {
        if (line[len - 1] == '\n') {
            line[len - 1] = '\0';
        }

        tab = strchr(line, '\t');
        k = strtol(line, NULL, 10);

        if (tab != NULL && k >= 0 && (size_t) k < n
            && items[k].values == NULL)
        {
            items[k].values = strdup(tab + 1);
        }
    }

    free(line);

    return pclose(p) == 0 ? 0 : -1;
}


/* A new zeroed item at the end of the array, which grows as needed. */
static item_t *
item_new(item_t **items, size_t *n, size_t *cap)
{
    item_t  *p;

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        p = realloc(*items, *cap * sizeof(item_t));
        if (p == NULL) {
            printf("# out of memory\n");
            exit(1);
        }
        *items = p;
    }

    p = &(*items)[(*n)++];
    memset(p, 0, sizeof(item_t));

    return p;
}


/* The "a" values expected for one dataset, table and period. */
static void
expected(const char *dataset, const char *table, const char *period,
    avs_buf_t *out)
{
    char  num[32];
    int   i, j, n;

    for (i = 0; i < nuploads; i++) {
        if (strcmp(uploads[i].dataset, dataset) != 0
            || strcmp(uploads[i].table, table) != 0
            || strcmp(uploads[i].period, period) != 0)
        {
            continue;
        }

        for (j = 0; j < uploads[i].n; j++) {
            n = snprintf(num, sizeof(num), "%s%lld", out->len ? "," : "",
                         (long long) (uploads[i].seed + j));
            avs_buf_append(out, num, (size_t) n);
        }
    }
}


static void
join(avs_buf_t *out, const char *v)
{
    if (v == NULL || v[0] == '\0') {
        return;
    }

    if (out->len) {
        avs_buf_append(out, ",", 1);
    }

    avs_buf_append(out, v, strlen(v));
}


/*
 * Reads back everything archived so far (every upload must be archived by
 * now): each object's size and SHA-256 against archived_files, its ranges
 * contiguous after the header, python3-avro on each object and on the
 * header followed by each range, and for every dataset, table and period
 * the ranges' records in file order are exactly its uploads' records.
 */
static void
verify_all(const char *what)
{
    sqlite3        *db;
    sqlite3_stmt   *fs, *bs;
    item_t         *items, *it, *file;
    avs_buf_t       obj, range, want, got;
    struct stat     sb;
    const char     *s;
    size_t          n, cap, i, j, file_item;
    int64_t         header, next, size, start, len;
    char            sha[65];
    int             bad_size, bad_sha, bad_layout, errors, bad_file;
    int             bad_group, bad_count, groups;

    items = NULL;
    n = 0;
    cap = 0;
    bad_size = 0;
    bad_sha = 0;
    bad_layout = 0;

    sqlite3_open(db_path, &db);
    sqlite3_prepare_v2(db,
                       "SELECT f.id, f.file_path, f.file_size, f.sha256,"
                       " j.header_bytes, f.table_name, f.period_tag,"
                       " f.record_count FROM archived_files f"
                       " JOIN archive_jobs j ON j.file_id = f.id"
                       " ORDER BY f.id", -1, &fs, NULL);
    sqlite3_prepare_v2(db,
                       "SELECT dataset_id, start_byte, length, record_count"
                       " FROM block_indexes WHERE file_id = ?1"
                       " ORDER BY start_byte", -1, &bs, NULL);

    while (sqlite3_step(fs) == SQLITE_ROW) {
        file_item = n;
        it = item_new(&items, &n, &cap);
        it->is_file = 1;
        it->file_id = sqlite3_column_int64(fs, 0);
        snprintf(it->path, sizeof(it->path), "%s/%s", cold,
                 (const char *) sqlite3_column_text(fs, 1));
        size = sqlite3_column_int64(fs, 2);
        s = (const char *) sqlite3_column_text(fs, 3);
        header = sqlite3_column_int64(fs, 4);
        snprintf(it->table, sizeof(it->table), "%s",
                 (const char *) sqlite3_column_text(fs, 5));
        snprintf(it->period, sizeof(it->period), "%s",
                 (const char *) sqlite3_column_text(fs, 6));
        it->records = sqlite3_column_int64(fs, 7);

        if (stat(it->path, &sb) != 0 || sb.st_size != size) {
            bad_size++;
        }

        sha256_file(it->path, sha);
        if (s == NULL || strcmp(s, sha) != 0) {
            bad_sha++;
        }

        memset(&obj, 0, sizeof(obj));
        read_file(it->path, &obj);

        sqlite3_bind_int64(bs, 1, it->file_id);
        next = header;

        while (sqlite3_step(bs) == SQLITE_ROW) {
            start = sqlite3_column_int64(bs, 1);
            len = sqlite3_column_int64(bs, 2);

            if (start != next || start + len > (int64_t) obj.len) {
                bad_layout++;
                continue;
            }

            next = start + len;

            it = item_new(&items, &n, &cap);
            file = &items[file_item];
            it->file_id = file->file_id;
            snprintf(it->dataset, sizeof(it->dataset), "%s",
                     (const char *) sqlite3_column_text(bs, 0));
            snprintf(it->table, sizeof(it->table), "%s", file->table);
            snprintf(it->period, sizeof(it->period), "%s", file->period);
            it->records = sqlite3_column_int64(bs, 3);
            snprintf(it->path, sizeof(it->path), "%s/range-%zu.avro",
                     scratch, n);

            memset(&range, 0, sizeof(range));
            avs_buf_append(&range, obj.data, (size_t) header);
            avs_buf_append(&range, obj.data + start, (size_t) len);
            write_file(it->path, range.data, range.len);
            avs_buf_free(&range);
        }

        sqlite3_reset(bs);

        if (next != (int64_t) obj.len) {
            bad_layout++;
        }

        avs_buf_free(&obj);
    }

    sqlite3_finalize(fs);
    sqlite3_finalize(bs);
    sqlite3_close(db);

    is_int(bad_size, 0, "%s: every object has its catalog size", what);
    is_int(bad_sha, 0, "%s: every object has its catalog SHA-256", what);
    is_int(bad_layout, 0, "%s: ranges are contiguous, header to end", what);

    ok(python_decode(items, n) == 0, "%s: python3-avro ran on %zu files",
       what, n);

    errors = 0;
    bad_file = 0;
    bad_count = 0;

    for (i = 0; i < n; i++) {
        if (items[i].values == NULL
            || strncmp(items[i].values, "ERROR", 5) == 0)
        {
            if (errors++ < 3) {
                printf("# %s: %s\n", items[i].path,
                       items[i].values ? items[i].values : "no answer");
            }
            continue;
        }

        len = items[i].values[0] ? 1 : 0;
        for (s = items[i].values; *s; s++) {
            len += (*s == ',');
        }

        if (len != items[i].records) {
            bad_count++;
        }

        if (!items[i].is_file) {
            continue;
        }

        /* the whole object is its ranges one after the other */

        memset(&got, 0, sizeof(got));

        for (j = i + 1; j < n && !items[j].is_file; j++) {
            join(&got, items[j].values);
        }

        avs_buf_append(&got, "", 1);

        if (strcmp((char *) got.data, items[i].values) != 0) {
            bad_file++;
        }

        avs_buf_free(&got);
    }

    is_int(errors, 0, "%s: python3-avro reads every object and range",
           what);
    is_int(bad_count, 0, "%s: record counts of the catalog are right",
           what);
    is_int(bad_file, 0, "%s: each object holds its ranges' records", what);

    /* every dataset's records, once, in upload order */

    bad_group = 0;
    groups = 0;

    for (i = 0; i < (size_t) nuploads; i++) {
        for (j = 0; j < i; j++) {
            if (strcmp(uploads[j].dataset, uploads[i].dataset) == 0
                && strcmp(uploads[j].table, uploads[i].table) == 0
                && strcmp(uploads[j].period, uploads[i].period) == 0)
            {
                break;
            }
        }

        if (j < i) {
            continue;
        }

        groups++;
        memset(&want, 0, sizeof(want));
        memset(&got, 0, sizeof(got));
        expected(uploads[i].dataset, uploads[i].table, uploads[i].period,
                 &want);

        for (j = 0; j < n; j++) {
            if (!items[j].is_file
                && strcmp(items[j].dataset, uploads[i].dataset) == 0
                && strcmp(items[j].table, uploads[i].table) == 0
                && strcmp(items[j].period, uploads[i].period) == 0)
            {
                join(&got, items[j].values);
            }
        }

        avs_buf_append(&want, "", 1);
        avs_buf_append(&got, "", 1);

        if (strcmp((char *) want.data, (char *) got.data) != 0) {
            if (bad_group++ < 3) {
                printf("# %s/%s/%s: want %.200s\n#   got %.200s\n",
                       uploads[i].dataset, uploads[i].table,
                       uploads[i].period, (char *) want.data,
                       (char *) got.data);
            }
        }

        avs_buf_free(&want);
        avs_buf_free(&got);
    }

    is_int(bad_group, 0, "%s: each of %d datasets' records are archived "
           "once, in upload order", what, groups);
    is_int(query("SELECT sum(record_count) FROM block_indexes"), records_in,
           "%s: the block index counts every record once", what);

    for (i = 0; i < n; i++) {
        if (!items[i].is_file) {
            unlink(items[i].path);
        }
        free(items[i].values);
    }

    free(items);
}


/* The catalog's own bookkeeping agrees with itself. */
static void
check_catalog(const char *what)
{
    is_int(query("SELECT (SELECT count(*) FROM archived_files)"
                 " - (SELECT count(*) FROM avro_segments)"), 0,
           "%s: one segment per object", what);
    is_int(query("SELECT (SELECT count(*) FROM avro_segments)"
                 " - (SELECT count(*) FROM avro_append_history)"), 0,
           "%s: one history row per segment", what);
    is_int(query("SELECT count(*) FROM avro_files f WHERE current_size <>"
                 " (SELECT sum(segment_size) FROM avro_segments"
                 " WHERE parent_file_id = f.id) OR segment_count <>"
                 " (SELECT count(*) FROM avro_segments"
                 " WHERE parent_file_id = f.id)"
                 " OR is_segmented <> (segment_count > 1)"), 0,
           "%s: logical files add up their segments", what);
    is_int(query("SELECT count(*) FROM avro_append_history h"
                 " WHERE action <> CASE WHEN segment_number = 1"
                 " THEN 'create' ELSE 'append' END"), 0,
           "%s: first segment 'create', the next ones 'append'", what);
    is_int(query("SELECT count(*) FROM archive_jobs j JOIN archived_files f"
                 " ON f.id = j.file_id WHERE j.key <> f.file_path"
                 " OR j.state <> 'done'"), 0,
           "%s: each done job names its object", what);
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
    is_int(dir_entries(tmp), 0, "%s: no temporary file left", what);
    is_int(count_files(cold, ".*"), 0,
           "%s: none in the store's directories either", what);
}


static void
test_basic(void)
{
    static const struct {
        const char   *table;
        avs_codec_t   codec;
    } tables[] = {
        { "tn", AVS_CODEC_NULL }, { "td", AVS_CODEC_DEFLATE },
        { "ts", AVS_CODEC_SNAPPY }, { "tz", AVS_CODEC_ZSTD }
    };

    static const char  *datasets[] = { "zed", "alice", "Bob", "bob_2" };

    avs_archive_summary_t  sum;
    struct stat            sb;
    avs_err_t              err;
    avs_buf_t              status;
    long long              files, objects;
    size_t                 t, d, p, k;
    char                   wal[700], period[16];

    for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        env.codec = tables[t].codec;

        for (k = 0; k < 3; k++) {
            for (p = 0; p < 2; p++) {
                for (d = 0; d < sizeof(datasets) / sizeof(datasets[0]); d++)
                {
                    snprintf(period, sizeof(period), "2026-11-2%zu", p);
                    upload_one(datasets[d], tables[t].table, period,
                               (int) (1 + d + k), 40);
                }
            }
        }
    }

    env.codec = AVS_CODEC_DEFLATE;

    is_int(cycle(&sum, &err), AVS_OK, "basic: the cycle succeeds");
    is_int(sum.files, 8, "basic: one file per table and period");
    is_int(sum.uploads, nuploads, "basic: every upload archived");
    is_int(sum.records, records_in, "basic: every record archived");
    is_int(sum.datasets, 32, "basic: one range per dataset and file");
    is_int(sum.claimed, 8, "basic: 8 jobs claimed");
    is_int(sum.pending, 0, "basic: none left pending");
    is_int(sum.bytes, query("SELECT sum(file_size) FROM archived_files"),
           "basic: bytes are the objects' sizes");
    check_once("basic");
    check_catalog("basic");
    verify_all("basic");

    is_int(query("SELECT count(*) FROM avro_files WHERE dataset_id IS NULL"
                 " AND segment_count = 1 AND is_segmented = 0"), 8,
           "basic: 8 logical files of one segment, shared by datasets");
    is_int(query("SELECT count(DISTINCT compression_codec)"
                 " FROM archived_files"), 4, "basic: four codecs");
    is_int(query("SELECT count(*) FROM archived_files WHERE file_path NOT"
                 " GLOB 't[ndsz]/2026-11-2[01]/[0-9a-f]*/n1-0000000[1-8]"
                 ".avro'"), 0,
           "basic: keys are {table}/{period}/{fp}/{node}-{seq}.avro");
    is_int(query("SELECT count(*) FROM block_indexes b JOIN archived_files f"
                 " ON f.id = b.file_id WHERE b.table_name <> f.table_name"
                 " OR b.period_tag <> f.period_tag"
                 " OR b.schema_fingerprint <> f.schema_fingerprint"
                 " OR b.start_timestamp > b.end_timestamp"), 0,
           "basic: ranges name their file's group and a time span");
    is_int(query("SELECT min(start_timestamp) FROM block_indexes"
                 " WHERE dataset_id = 'zed' AND table_name = 'tn'"
                 " AND period_tag = '2026-11-20'"), 1763683200001LL,
           "basic: time span from the uploads' timestamps");

    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    ok(stat(wal, &sb) != 0 || sb.st_size == 0,
       "basic: the WAL is checkpointed and truncated");

    memset(&status, 0, sizeof(status));
    ok(avs_archive_status(env.store, &status, &err) == AVS_OK, "status");
    avs_buf_append(&status, "", 1);
    ok(strstr((char *) status.data, "\"files\":8,") != NULL
       && strstr((char *) status.data, "\"segments\":8,") != NULL
       && strstr((char *) status.data, "\"pending_jobs\":0,") != NULL
       && strstr((char *) status.data, "\"consecutive_failures\":0,")
          != NULL
       && strstr((char *) status.data, "\"last_cycle\":{\"started_at\":")
          != NULL
       && strstr((char *) status.data, "\"result\":\"ok\"") != NULL,
       "status has the archive state: %s", (char *) status.data);
    avs_buf_free(&status);

    /* nothing new: nothing done */

    files = query("SELECT count(*) FROM archived_files");
    objects = count_files(cold, "*");

    is_int(cycle(&sum, &err), AVS_OK, "again: the cycle succeeds");
    ok(sum.files == 0 && sum.claimed == 0 && sum.uploads == 0,
       "again: no file, no job");
    is_int(query("SELECT count(*) FROM archived_files"), files,
           "again: the catalog is unchanged");
    is_int(count_files(cold, "*"), objects, "again: no object written");

    /* more uploads into a group: its logical file gets a second segment */

    upload_one("alice", "td", "2026-11-20", 3, 40);
    upload_one("carol", "td", "2026-11-20", 2, 40);

    is_int(cycle(&sum, &err), AVS_OK, "append: the cycle succeeds");
    is_int(sum.files, 1, "append: one file");
    is_int(query("SELECT segment_count * 10 + is_segmented FROM avro_files"
                 " WHERE table_name = 'td' AND period_tag = '2026-11-20'"),
           21, "append: the logical file has two segments");
    is_int(query("SELECT count(*) FROM avro_append_history"
                 " WHERE action = 'append' AND dataset_count = 2"
                 " AND upload_count = 2 AND record_count = 5"), 1,
           "append: the history says what was appended");
    check_once("append");
    check_catalog("append");
    verify_all("append");
}


static void
test_crashes(void)
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
    avs_err_t              err;
    avs_rc_t               rc;
    size_t                 i;
    char                   keys[2048], after[2048], sha[65], path[1200];
    char                   sql[2600], got[100];

    ac.hook = crash_hook;

    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        upload(6);
        die_at = steps[i].step;
        died = 0;

        rc = cycle(&sum, &err);
        ok(rc != AVS_OK && died, "%s: the cycle stops there", steps[i].name);
        ok(query("SELECT count(*) FROM archive_jobs WHERE state = 'pending'")
           >= 1, "%s: its job is pending", steps[i].name);
        is_int(query("SELECT count(*) FROM buffer_logs"), 6,
               "%s: the rows are still hot", steps[i].name);
        query_text("SELECT group_concat(key, ' ') FROM archive_jobs"
                   " WHERE state = 'pending'", keys, sizeof(keys));

        sha[0] = '\0';

        if (steps[i].step == AVS_ARCHIVE_PUT) {
            snprintf(path, sizeof(path), "%s/%s", cold, died_key);
            sha256_file(path, sha);
            ok(sha[0] != '\0', "%s: the object is there", steps[i].name);
        }

        /* uploads that come meanwhile are archived too, in a later job */
        upload(2);

        rc = cycle(&sum, &err);
        is_int(rc, AVS_OK, "%s: the next cycle succeeds", steps[i].name);
        ok(sum.recovered >= 1, "%s: and finishes the pending job",
           steps[i].name);

        snprintf(sql, sizeof(sql),
                 "SELECT group_concat(file_path, ' ') FROM archived_files"
                 " WHERE instr(' %s ', ' ' || file_path || ' ') > 0",
                 keys);
        query_text(sql, after, sizeof(after));
        is_str(after, keys, "%s: under the keys it was claimed with",
               steps[i].name);

        if (sha[0] != '\0') {
            snprintf(sql, sizeof(sql),
                     "SELECT sha256 FROM archived_files"
                     " WHERE file_path = '%s'", died_key);
            query_text(sql, got, sizeof(got));
            is_str(got, sha, "%s: put again with the same bytes",
                   steps[i].name);
        }

        check_once(steps[i].name);
    }

    ac.hook = NULL;

    /* a cycle with nothing to do */
    rc = cycle(&sum, &err);
    ok(rc == AVS_OK && sum.files == 0, "nothing hot: no file");

    check_catalog("crashes");
    verify_all("crashes");
}


/*
 * The store fails: before the job's first PUT (its HEAD fails), then on a
 * PUT repeated after a crash.  Each time the job stays pending with the
 * error, the failures are counted, and the next good cycle archives it
 * once under the same key.
 */
static void
test_failures(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    avs_buf_t              status;
    avs_rc_t               rc;
    char                   path[1200], sha[65], got[300], sql[1400];

    /* a file where the table's directory should be: the store fails
     * before any object of the job exists */

    upload_one("d1", "th", "p", 4, 40);
    snprintf(path, sizeof(path), "%s/th", cold);
    write_file(path, "block", 5);

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK, "store fails: the cycle fails (%s)", err.msg);
    ok(strstr(err.msg, "th/p/") != NULL, "store fails: the error names the "
       "key");
    is_int(query("SELECT attempts FROM archive_jobs"
                 " WHERE table_name = 'th'"), 1,
           "store fails: the job failed once");
    query_text("SELECT last_error FROM archive_jobs WHERE table_name = 'th'",
               got, sizeof(got));
    ok(strstr(got, "th/p/") != NULL, "store fails: last_error: %s", got);
    is_int(query("SELECT failures FROM archive_state"), 1,
           "store fails: one failure counted");
    is_int(query("SELECT count(*) FROM buffer_logs"), 1,
           "store fails: the row stays hot");

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK, "still failing");
    is_int(query("SELECT failures FROM archive_state"), 2,
           "two failures counted");

    memset(&status, 0, sizeof(status));
    avs_archive_status(env.store, &status, &err);
    avs_buf_append(&status, "", 1);
    ok(strstr((char *) status.data, "\"consecutive_failures\":2,") != NULL
       && strstr((char *) status.data, "\"pending_jobs\":1,") != NULL
       && strstr((char *) status.data, "\"pending_uploads\":1,") != NULL,
       "status shows the failures and the pending job");
    avs_buf_free(&status);

    unlink(path);

    is_int(cycle(&sum, &err), AVS_OK, "store back: the cycle succeeds");
    is_int(query("SELECT failures FROM archive_state"), 0,
           "store back: failures reset");
    check_once("store failure");

    /* a PUT whose answer was lost, repeated into a failing store */

    upload_one("d1", "tp", "p", 3, 40);
    upload_one("d2", "tp", "p", 3, 40);
    ac.hook = crash_hook;
    die_at = AVS_ARCHIVE_PUT;
    died = 0;
    ok(cycle(&sum, &err) != AVS_OK && died, "put: died after the put");
    ac.hook = NULL;

    snprintf(path, sizeof(path), "%s/%s", cold, died_key);
    sha256_file(path, sha);
    unlink(path);
    mkdir(path, 0755);
    snprintf(sql, sizeof(sql), "%s/x", path);
    write_file(sql, "x", 1);

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK && strstr(err.msg, "put") != NULL,
       "put fails: the cycle fails (%s)", err.msg);
    is_int(query("SELECT attempts * 10 + put_attempts FROM archive_jobs"
                 " WHERE table_name = 'tp'"), 12,
           "put fails: one failure, the second PUT counted");
    is_int(query("SELECT count(*) FROM buffer_logs"), 2,
           "put fails: the rows stay hot");

    run("rm -rf %s", path);

    is_int(cycle(&sum, &err), AVS_OK, "store back: the cycle succeeds");
    snprintf(sql, sizeof(sql), "SELECT sha256 FROM archived_files"
             " WHERE file_path = '%s'", died_key);
    query_text(sql, got, sizeof(got));
    is_str(got, sha, "store back: same key, same bytes");
    check_once("put failure");
    check_catalog("failures");
    verify_all("failures");
}


/*
 * A job that keeps failing (here: a file where its table's directory
 * should be) leaves its group hot and the other groups are archived; two
 * failed jobs in a row end the cycle.
 */
static void
test_failed_group(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    avs_rc_t               rc;
    char                   fa[1200], fb[1200];

    /* most rows first: the blocked group's job runs first */

    upload_one("d1", "fa", "p", 3, 40);
    upload_one("d2", "fa", "p", 3, 40);
    upload_one("d3", "fa", "p", 3, 40);
    upload_one("d1", "fok", "p", 3, 40);
    upload_one("d1", "fok2", "p", 3, 40);
    snprintf(fa, sizeof(fa), "%s/fa", cold);
    write_file(fa, "block", 5);

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK && strstr(err.msg, "fa/p/") != NULL,
       "one group fails: the cycle fails with its job (%s)", err.msg);
    is_int((long long) sum.files, 2, "one group fails: the others archived");
    is_int((long long) sum.failed, 1, "one group fails: one failed job");
    is_int(query("SELECT count(*) FROM buffer_logs"), 3,
           "one group fails: its rows stay hot, no other");
    is_int(query("SELECT count(*) FROM buffer_logs WHERE table_name = 'fa'"),
           3, "one group fails: the hot rows are its own");

    /* the failed job goes first next time and fails again; the group's
     * new rows wait behind it, another group's do not */

    upload_one("d4", "fa", "p", 3, 40);
    upload_one("d2", "fok", "p", 3, 40);

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK, "still failing: the cycle fails");
    is_int((long long) sum.files, 1, "still failing: the other group's "
           "new rows archived");
    is_int(query("SELECT count(*) FROM archive_jobs WHERE state = 'pending'"
                 " AND table_name = 'fa' AND attempts = 0"), 1,
           "still failing: the group's later job waits, not tried");
    is_int(query("SELECT count(*) FROM buffer_logs WHERE table_name <> 'fa'"),
           0, "still failing: only the failing group is hot");

    /* two groups failing one after the other: the store, not a job */

    upload_one("d1", "fb", "p", 3, 40);
    upload_one("d2", "fb", "p", 3, 40);
    upload_one("d3", "fb", "p", 3, 40);
    upload_one("d4", "fb", "p", 3, 40);
    upload_one("d5", "fb", "p", 3, 40);
    upload_one("d3", "fok", "p", 3, 40);
    snprintf(fb, sizeof(fb), "%s/fb", cold);
    write_file(fb, "block", 5);

    rc = cycle(&sum, &err);
    ok(rc != AVS_OK, "two groups fail: the cycle fails");
    is_int((long long) sum.files, 0, "two groups fail in a row: the cycle "
           "stops there");
    is_int((long long) sum.failed, 2, "two groups fail in a row: two "
           "failed jobs");
    is_int(query("SELECT count(*) FROM buffer_logs WHERE table_name = 'fok'"),
           1, "two groups fail in a row: the next group stays hot");

    unlink(fa);
    unlink(fb);

    is_int(cycle(&sum, &err), AVS_OK, "store back: the cycle succeeds");
    is_int((long long) sum.failed, 0, "store back: no failed job");
    check_once("failed group");
    check_catalog("failed group");
    verify_all("failed group");
}


/* An object under the next key that this store did not write. */
/*
 * Pages of the file at path in the page cache (mapped, not read), or -1;
 * its size in *size.
 */
static long long
resident_pages(const char *path, long long *size)
{
    struct stat     sb;
    unsigned char  *vec;
    long long       n, i, pages;
    long            page;
    void           *map;
    int             fd;

    *size = -1;
    fd = open(path, O_RDONLY);
    if (fd == -1 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        if (fd != -1) {
            close(fd);
        }
        return -1;
    }

    *size = sb.st_size;
    page = sysconf(_SC_PAGESIZE);
    pages = (sb.st_size + page - 1) / page;
    map = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);

    if (map == MAP_FAILED) {
        return -1;
    }

    vec = malloc((size_t) pages);
    n = -1;

    if (vec != NULL && mincore(map, (size_t) sb.st_size, vec) == 0) {
        for (n = 0, i = 0; i < pages; i++) {
            n += vec[i] & 1;
        }
    }

    free(vec);
    munmap(map, (size_t) sb.st_size);

    return n;
}


/*
 * Whether a file written with O_DIRECT in dir stays out of the page cache
 * (not so on tmpfs, or where direct writes are refused).
 */
static int
direct_bypasses_cache(const char *d)
{
    char        path[700];
    void       *buf;
    long long   size, n;
    int         fd, flags;

    snprintf(path, sizeof(path), "%s/direct-probe", d);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1) {
        return 0;
    }

    n = -1;
    flags = fcntl(fd, F_GETFL);

    if (flags != -1 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0
        && posix_memalign(&buf, 4096, 65536) == 0)
    {
        memset(buf, 'x', 65536);
        if (write(fd, buf, 65536) == 65536) {
            n = 0;
        }
        free(buf);
    }

    close(fd);

    if (n == 0) {
        n = resident_pages(path, &size);
    }

    unlink(path);

    return n == 0;
}


/*
 * Files built into a file: store are written past the page cache, the
 * last piece too when the file ends on the alignment (its write is still
 * in flight when the rows end); the bytes are the same.
 */
static void
test_direct(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    avs_buf_t              f, hdr;
    long long              header, stored, gap, want, row, size, res;
    char                   path[1300], rel[600];
    int                    i, slen;

    /* a stream with the null codec: the rows' sizes are the files' */

    env.codec = AVS_CODEC_NULL;
    upload_one("d1", "al", "q0", 1, 10);
    is_int(cycle(&sum, &err), AVS_OK, "direct: first cycle succeeds");
    header = query("SELECT j.header_bytes FROM archive_jobs j"
                   " JOIN archived_files f ON f.id = j.file_id"
                   " WHERE f.table_name = 'al'");

    for (i = 0; i < 40; i++) {
        upload_one(i % 2 ? "d1" : "d2", "al", "q1", 5, 12000);
    }

    /* one more upload, of the size that ends the file on 4096 bytes */

    stored = header + query("SELECT sum(length(data)) FROM buffer_logs"
                            " WHERE table_name = 'al'");
    gap = (4096 - stored % 4096) % 4096;
    memset(&hdr, 0, sizeof(hdr));
    avs_ocf_write_header(&hdr, SCHEMA, strlen(SCHEMA), AVS_CODEC_NULL,
                         sync_a);

    for (slen = 0; slen < 9000; slen++) {
        memset(&f, 0, sizeof(f));
        make_file(&f, (int64_t) (upload_seq + 1) * 1000, 1, slen);
        row = (long long) (f.len - hdr.len);
        avs_buf_free(&f);

        if (row == gap || row == gap + 4096) {
            break;
        }
    }

    avs_buf_free(&hdr);
    upload_one("d3", "al", "q1", 1, slen);
    want = header + query("SELECT sum(length(data)) FROM buffer_logs"
                          " WHERE table_name = 'al'");
    is_int(want % 4096, 0, "direct: the group's file is %lld bytes, "
           "a multiple of 4096", want);

    env.codec = AVS_CODEC_DEFLATE;
    is_int(cycle(&sum, &err), AVS_OK, "direct: cycle succeeds");
    query_text("SELECT file_path FROM archived_files"
               " WHERE table_name = 'al' AND period_tag = 'q1'",
               rel, sizeof(rel));
    snprintf(path, sizeof(path), "%s/%s", cold, rel);
    res = resident_pages(path, &size);
    is_int(size, want, "direct: the file has the size the rows add up to");

    if (direct_bypasses_cache(cold)) {
        is_int(res, 0, "direct: no page of the file in the page cache");

    } else {
        printf("# direct writes keep pages cached here (%lld resident): "
               "not checked\n", res);
    }

    verify_all("direct");
    check_once("direct");
}


static void
test_foreign_object(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    avs_buf_t              b;
    long long              seq;
    char                   fp[32], key[600], path[1200], want[600];
    char                   got[600];

    upload_one("d1", "tk", "p", 2, 40);
    query_text("SELECT schema_fingerprint FROM buffer_logs", fp, sizeof(fp));
    seq = query("SELECT next_sequence FROM archive_state");

    snprintf(key, sizeof(key), "tk/p/%s/n1-%08lld.avro", fp, seq);
    snprintf(path, sizeof(path), "%s/tk/p/%s", cold, fp);
    run("mkdir -p %s", path);
    snprintf(path, sizeof(path), "%s/%s", cold, key);
    write_file(path, "foreign", 7);

    is_int(cycle(&sum, &err), AVS_OK, "foreign object: the cycle succeeds");

    memset(&b, 0, sizeof(b));
    read_file(path, &b);
    ok(b.len == 7 && memcmp(b.data, "foreign", 7) == 0,
       "foreign object: left as it was");
    avs_buf_free(&b);

    snprintf(want, sizeof(want), "tk/p/%s/n1-%08lld.avro", fp, seq + 1);
    query_text("SELECT file_path FROM archived_files"
               " WHERE table_name = 'tk'", got, sizeof(got));
    is_str(got, want, "foreign object: the job took the next key");
    is_int(query("SELECT next_sequence FROM archive_state"), seq + 2,
           "foreign object: the sequence moved past it");
    check_once("foreign object");
}


static void
test_segments(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    avs_rc_t               rc;
    long long              before;
    char                   sql[200];
    int                    i;

    before = query("SELECT max(id) FROM archived_files");
    upload(30);
    ac.segment_size = 1024;
    rc = cycle(&sum, &err);
    is_int(rc, AVS_OK, "small segments: cycle succeeds");
    ok(sum.files >= 2, "small segments: %llu files",
       (unsigned long long) sum.files);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM archived_files"
             " WHERE file_size > 1024 AND id > %lld", before);
    is_int(query(sql), 0, "small segments: none larger than 1024");
    check_once("small segments");

    /* the claim adds up the sizes the rows carry; rows stored before
     * migration 004 carry none and are measured */

    upload(30);
    is_int(query("SELECT count(*) FROM buffer_logs WHERE data_size IS NULL"
                 " OR data_size != length(data)"), 0,
           "sizes: every upload stored with the size of its data");
    is_int(exec_sql("UPDATE buffer_logs SET data_size = NULL"
                    " WHERE id % 2 = 0"), SQLITE_OK,
           "sizes: half the rows made as old as migration 004");
    before = query("SELECT max(id) FROM archived_files");
    rc = cycle(&sum, &err);
    is_int(rc, AVS_OK, "sizes: cycle succeeds");
    ok(sum.files >= 2, "sizes: %llu files", (unsigned long long) sum.files);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM archived_files"
             " WHERE file_size > 1024 AND id > %lld", before);
    is_int(query(sql), 0, "sizes: none larger than 1024");
    check_once("sizes");

    /* one upload larger than a segment gets a file of its own */

    env.codec = AVS_CODEC_NULL;

    for (i = 0; i < 10; i++) {
        upload_one(i % 2 ? "d1" : "d2", "to", "p", 3, 40);

        if (i == 4) {
            upload_one("d3", "to", "p", 100, 60);
        }
    }

    env.codec = AVS_CODEC_DEFLATE;
    ac.segment_size = 2048;

    is_int(cycle(&sum, &err), AVS_OK, "oversize: cycle succeeds");
    ok(sum.files >= 3, "oversize: %llu files",
       (unsigned long long) sum.files);
    is_int(query("SELECT count(*) FROM archived_files f JOIN archive_jobs j"
                 " ON j.file_id = f.id WHERE f.table_name = 'to'"
                 " AND f.file_size > 2048 AND j.row_count = 1"), 1,
           "oversize: the large upload is alone in a larger file");
    is_int(query("SELECT count(*) FROM archived_files f JOIN archive_jobs j"
                 " ON j.file_id = f.id WHERE f.table_name = 'to'"
                 " AND f.file_size > 2048 AND j.row_count > 1"), 0,
           "oversize: every other file within the segment size");
    check_once("oversize");

    /* uploads per file */

    for (i = 0; i < 7; i++) {
        upload_one("d1", "tm", "p", 2, 40);
    }

    ac.segment_size = 0;
    ac.max_rows = 2;
    is_int(cycle(&sum, &err), AVS_OK, "max rows: cycle succeeds");
    is_int(sum.files, 4, "max rows: 7 uploads, 2 per file: 4 files");
    ac.max_rows = 0;
    check_once("max rows");

    check_catalog("segments");
    verify_all("segments");
}


typedef struct {
    int           stop;               /* atomic */
    long long     reads;
    long long     wrong;
    long long     seen;
} reader_t;


static avs_rc_t
reader_sum(sqlite3 *db, void *arg, avs_err_t *err)
{
    sqlite3_stmt  *st;
    reader_t      *r = arg;

    (void) err;

    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT coalesce(sum(record_count), 0)"
                           " FROM buffer_logs)"
                           " + (SELECT coalesce(sum(record_count), 0)"
                           " FROM block_indexes)", -1, &st, NULL)
        != SQLITE_OK)
    {
        return AVS_ESTORE;
    }

    if (sqlite3_step(st) == SQLITE_ROW) {
        r->seen = sqlite3_column_int64(st, 0);
    }

    sqlite3_finalize(st);
    return AVS_OK;
}


static void *
reader_main(void *arg)
{
    reader_t   *r = arg;
    avs_err_t   err;

    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        r->seen = -1;

        if (avs_store_read(env.store, reader_sum, r, &err) == AVS_OK) {
            r->reads++;
            r->wrong += (r->seen != records_in);
        }
    }

    return NULL;
}


/* A reader in the middle of a cycle sees each upload hot or indexed. */
static void
test_snapshot(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    pthread_t              th;
    reader_t               r;
    int                    i;

    for (i = 0; i < 40; i++) {
        upload_one(i % 3 ? "d1" : "d2", i % 2 ? "ta" : "tb", "p", 4, 40);
    }

    memset(&r, 0, sizeof(r));
    pthread_create(&th, NULL, reader_main, &r);

    ac.max_rows = 3;
    is_int(cycle(&sum, &err), AVS_OK, "snapshot: the cycle succeeds");
    ac.max_rows = 0;
    ok(sum.files >= 8, "snapshot: %llu files, as many commits",
       (unsigned long long) sum.files);

    usleep(20000);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);

    ok(r.reads > 0, "snapshot: %lld reads during the cycle", r.reads);
    is_int(r.wrong, 0, "snapshot: every read saw every record exactly once");
    check_once("snapshot");
}


typedef struct {
    avs_archive_conf_t  conf;
    int                *stop;           /* atomic */
    int                 ok;
    int                 busy;
} archiver_t;


static void *
archiver_main(void *arg)
{
    avs_archive_summary_t  sum;
    avs_store_status_t     s;
    archiver_t            *a = arg;
    avs_err_t              err;
    avs_rc_t               rc;

    for ( ;; ) {
        rc = avs_archive_cycle(env.store, os, &a->conf, &sum, &err);
        a->ok += (rc == AVS_OK);
        a->busy += (rc == AVS_EBUSY);

        if (__atomic_load_n(a->stop, __ATOMIC_ACQUIRE) && rc == AVS_OK
            && avs_store_status(env.store, &s, &err) == AVS_OK
            && s.hot_rows == 0)
        {
            return NULL;
        }

        usleep(1000);
    }
}


/* Two archivers at once (no lease): still everything once. */
static void
test_two_archivers(void)
{
    int           stop;
    archiver_t    a[2];
    pthread_t     th[2];
    int           i;

    stop = 0;

    for (i = 0; i < 2; i++) {
        memset(&a[i], 0, sizeof(archiver_t));
        a[i].conf = ac;
        a[i].conf.segment_size = 700;
        a[i].stop = &stop;
        pthread_create(&th[i], NULL, archiver_main, &a[i]);
    }

    for (i = 0; i < 60; i++) {
        upload_one(i % 4 ? "d1" : "d2", i % 3 ? "tc" : "te", "p", 3, 40);
    }

    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);

    for (i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }

    ok(a[0].ok > 0 && a[1].ok > 0, "two archivers: both ran cycles "
       "(%d and %d, busy %d and %d)", a[0].ok, a[1].ok, a[0].busy,
       a[1].busy);
    check_once("two archivers");
    check_catalog("two archivers");
    verify_all("two archivers");
}


static void
test_lease(void)
{
    avs_archive_summary_t  sum;
    avs_err_t              err;
    long long              cycles;
    char                   owner[64];

    is_int(avs_archive_lease(env.store, "a", 60000, &err), AVS_OK,
           "owner a takes the lease");
    is_int(avs_archive_lease(env.store, "b", 60000, &err), AVS_EBUSY,
           "owner b waits");
    is_int(avs_archive_lease(env.store, "a", 60000, &err), AVS_OK,
           "owner a renews");
    avs_archive_release(env.store, "b", &err);
    is_int(avs_archive_lease(env.store, "b", 60000, &err), AVS_EBUSY,
           "a release by b does not free a's lease");

    /* a cycle of another owner does nothing */

    upload_one("d1", "tl", "p", 2, 40);
    cycles = query("SELECT cycles FROM archive_state");
    ac.owner = "x";
    is_int(cycle(&sum, &err), AVS_EBUSY, "cycle of owner x: busy");
    is_int(query("SELECT count(*) FROM buffer_logs"), 1,
           "cycle of owner x: nothing archived");
    is_int(query("SELECT cycles FROM archive_state"), cycles,
           "cycle of owner x: nothing recorded");

    avs_archive_release(env.store, "a", &err);
    is_int(cycle(&sum, &err), AVS_OK, "lease free: owner x archives");
    query_text("SELECT owner FROM archive_lease", owner, sizeof(owner));
    is_str(owner, "x", "owner x holds the lease");
    avs_archive_release(env.store, "x", &err);
    ac.owner = NULL;
    check_once("lease");

    is_int(avs_archive_lease(env.store, "b", 60000, &err), AVS_OK,
           "released: owner b takes it");
    avs_archive_release(env.store, "b", &err);
    is_int(avs_archive_lease(env.store, "c", 1000, &err), AVS_OK,
           "owner c takes a short lease");
    is_int(avs_archive_lease(env.store, "d", 60000, &err), AVS_EBUSY,
           "owner d waits");
    usleep(1200 * 1000);
    is_int(avs_archive_lease(env.store, "d", 60000, &err), AVS_OK,
           "expired: owner d takes it");
    is_int(avs_archive_lease(env.store, "c", 1000, &err), AVS_EBUSY,
           "and owner c has lost it");
    avs_archive_release(env.store, "d", &err);
}


static void
test_summary_json(void)
{
    avs_archive_summary_t  s;
    avs_buf_t              b;

    memset(&s, 0, sizeof(s));
    s.started_ms = 5;
    s.files = 2;
    s.datasets = 3;
    s.uploads = 4;
    s.records = 5;
    s.bytes = 6;
    s.duration_ms = 7;
    s.claim_ms = 1;
    s.build_ms = 2;
    s.put_ms = 3;
    s.commit_ms = 4;
    s.checkpoint_ms = 5;

    memset(&b, 0, sizeof(b));
    ok(avs_archive_summary_json(&s, &b) == AVS_OK, "summary JSON");
    avs_buf_append(&b, "", 1);
    is_str((char *) b.data,
           "{\"started_at\":5,\"duration_ms\":7,\"files\":2,\"datasets\":3,"
           "\"uploads\":4,\"records\":5,\"bytes\":6,\"claimed_jobs\":0,"
           "\"recovered_jobs\":0,\"pending_jobs\":0,\"skipped_groups\":0,"
           "\"failed_jobs\":0,\"steps_ms\":{\"claim\":1,\"build\":2,\"put\":3,"
           "\"commit\":4,\"checkpoint\":5},"
           "\"result\":\"ok\"}", "summary JSON text");
    avs_buf_free(&b);
}


int
main(void)
{
    avs_objstore_conf_t  oc;
    avs_store_conf_t     sc;
    avs_err_t            err;
    char                 url[700];

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    snprintf(db_path, sizeof(db_path), "%s/hot.db", dir);
    snprintf(cold, sizeof(cold), "%s/cold", dir);
    snprintf(url, sizeof(url), "file:%s", cold);
    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    snprintf(scratch, sizeof(scratch), "%s/scratch", dir);

    if (mkdir(tmp, 0755) != 0 || mkdir(scratch, 0755) != 0) {
        perror("mkdir");
        return 1;
    }

    memset(&sc, 0, sizeof(sc));
    sc.path = db_path;
    sc.synchronous = AVS_SYNC_NORMAL;
    sc.busy_timeout_ms = 5000;

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

    test_summary_json();
    test_basic();
    test_crashes();
    test_failures();
    test_failed_group();
    test_foreign_object();
    test_direct();
    test_segments();
    test_snapshot();
    test_two_archivers();
    test_lease();

    avs_objstore_close(os);
    avs_store_close(env.store);
    avs_schema_cache_destroy(env.schemas);

    if (run("rm -rf %s", dir) != 0) {
        printf("# could not remove %s\n", dir);
    }

    return done_testing();
}
