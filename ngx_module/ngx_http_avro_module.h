/*
 * Shared declarations of the avro module's nginx glue.  The work itself is
 * done by the core library in src/; these files adapt it to nginx.
 */

#ifndef _NGX_HTTP_AVRO_MODULE_H_INCLUDED_
#define _NGX_HTTP_AVRO_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "avs_allow.h"
#include "avs_ingest.h"
#include "avs_objstore.h"
#include "avs_schema.h"
#include "avs_store.h"


typedef struct ngx_http_avro_committer_s  ngx_http_avro_committer_t;
typedef struct ngx_http_avro_archiver_s   ngx_http_avro_archiver_t;


typedef struct {
    ngx_str_t                  hot_store;       /* path, empty: none */
    ngx_uint_t                 synchronous;
    ngx_msec_t                 busy_timeout;
    off_t                      max_size;

    ngx_str_t                  thread_pool_name;
    ngx_thread_pool_t         *thread_pool;
    ngx_shm_zone_t            *shm_zone;        /* holds the write lock */

    avs_codec_t                codec;           /* of new streams */
    ngx_int_t                  level;

    ngx_str_t                  cold_store;      /* file:dir or s3://b/p */
    ngx_str_t                  cold_endpoint;
    ngx_str_t                  cold_region;
    ngx_flag_t                 cold_signed_payload;
    ngx_str_t                  cold_credentials;
    ngx_str_t                  cold_ca;

    ngx_flag_t                 archive;         /* avro_archive given */
    ngx_msec_t                 archive_interval;
    off_t                      segment_size;
    ngx_msec_t                 lease_ttl;
    ngx_str_t                  archive_node;
    ngx_str_t                  archive_tmp;

    /* per worker process, from init_process on */
    avs_store_t               *store;
    ngx_http_avro_committer_t *committer;
    avs_schema_cache_t        *schemas;
    avs_objstore_t            *objstore;
    ngx_http_avro_archiver_t  *archiver;
} ngx_http_avro_main_conf_t;


typedef struct {
    ngx_flag_t                 upload;
    ngx_flag_t                 status;
    ngx_flag_t                 archive_now;
    ngx_str_t                  read_uri;        /* avro_read, else empty */
    size_t                     read_hot_memory;
    ngx_uint_t                 read_max_ranges;

    ngx_http_complex_value_t  *dataset;
    ngx_http_complex_value_t  *table;
    ngx_http_complex_value_t  *period;
    ngx_http_complex_value_t  *uploaded_by;

    ngx_array_t               *schema_files;    /* of ngx_str_t */
    avs_allow_t               *allow;

    size_t                     max_upload;
    size_t                     max_schema;
    ngx_uint_t                 max_records;
    ngx_uint_t                 max_depth;
} ngx_http_avro_loc_conf_t;


typedef struct {
    u_char                    *dst;
    ngx_fd_t                   fd;
    off_t                      offset;
    size_t                     len;
} ngx_http_avro_segment_t;


/* One upload request on its way: validated, queued, committed, answered. */
typedef struct {
    ngx_http_request_t        *request;
    avs_ingest_env_t           env;
    avs_ingest_t               ingest;
    ngx_http_avro_segment_t   *segments;    /* body parts still in a file */
    ngx_uint_t                 nsegments;
    ngx_err_t                  read_errno;
    avs_rc_t                   validated;
    ngx_uint_t                 waiting;     /* for a thread or a commit */
    ngx_queue_t                queue;       /* in the committer's queue */
} ngx_http_avro_upload_ctx_t;


ngx_int_t ngx_http_avro_open_store(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf);
ngx_int_t ngx_http_avro_store_ready(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf, avs_store_t *st);

ngx_int_t ngx_http_avro_upload_handler(ngx_http_request_t *r);
void ngx_http_avro_upload_answer(ngx_http_request_t *r);

ngx_int_t ngx_http_avro_archive_now_handler(ngx_http_request_t *r);
ngx_http_avro_archiver_t *ngx_http_avro_archiver_create(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf);

ngx_http_avro_committer_t *ngx_http_avro_committer_create(ngx_cycle_t *cycle,
    ngx_http_avro_main_conf_t *amcf);
ngx_int_t ngx_http_avro_commit(ngx_http_avro_committer_t *cm,
    ngx_http_avro_upload_ctx_t *ctx);
ngx_int_t ngx_http_avro_status_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_avro_read_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_avro_read_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_avro_read_init_filters(ngx_conf_t *cf);

ngx_int_t ngx_http_avro_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len);
ngx_int_t ngx_http_avro_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message);
ngx_int_t ngx_http_avro_send_error_with(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *message,
    const char *name, const u_char *json, size_t len);
ngx_int_t ngx_http_avro_send_pool_full(ngx_http_request_t *r);
ngx_int_t ngx_http_avro_send_no_memory(ngx_http_request_t *r);
ngx_int_t ngx_http_avro_send_avs_error(ngx_http_request_t *r, avs_rc_t rc,
    const char *message);
ngx_int_t ngx_http_avro_get_checks(ngx_http_request_t *r, const char *what);
ngx_thread_task_t *ngx_http_avro_task_alloc(ngx_http_request_t *r,
    size_t size, ngx_pool_cleanup_pt cleanup);
ngx_int_t ngx_http_avro_post_task(ngx_http_request_t *r,
    ngx_thread_task_t *task, ngx_http_event_handler_pt done);
void ngx_http_avro_task_done(ngx_event_t *ev);
void ngx_http_avro_busy(ngx_int_t delta);
const char *ngx_http_avro_cv(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_int_t *rc);
const char *ngx_http_avro_arg(ngx_http_request_t *r, char *name, size_t len,
    ngx_int_t *rc);


extern ngx_module_t  ngx_http_avro_module;


#endif /* _NGX_HTTP_AVRO_MODULE_H_INCLUDED_ */
