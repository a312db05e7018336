/*
 * The avro module: directives, configuration, and the per-process life of
 * the hot store (opened in every worker, closed when it exits).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"
#include "avs_names.h"


#define NGX_HTTP_AVRO_ZONE_SIZE  (8 * ngx_pagesize)


static ngx_int_t ngx_http_avro_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_avro_hot_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_upload(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_schemas(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_cold_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_cold_store_open(ngx_conf_t *cf,
    ngx_http_avro_main_conf_t *amcf);
static void ngx_http_avro_cold_store_cleanup(void *data);
static void ngx_http_avro_objstore_conf(ngx_http_avro_main_conf_t *amcf,
    avs_objstore_conf_t *oc);
static char *ngx_http_avro_archive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_archive_now(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_avro_read(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_avro_param(ngx_str_t *arg, const char *name,
    ngx_str_t *value);
static ngx_int_t ngx_http_avro_make_dirs(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_avro_make_dir(ngx_cycle_t *cycle, u_char *dir,
    const char *what);
static ngx_int_t ngx_http_avro_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_avro_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_avro_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_avro_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_avro_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_avro_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_avro_load_schemas(ngx_conf_t *cf,
    ngx_http_avro_loc_conf_t *alcf);
static void ngx_http_avro_free_allow(void *data);
static ngx_int_t ngx_http_avro_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_avro_init_process(ngx_cycle_t *cycle);
static void ngx_http_avro_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_avro_synchronous[] = {
    { ngx_string("normal"), AVS_SYNC_NORMAL },
    { ngx_string("full"), AVS_SYNC_FULL },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_avro_commands[] = {

    { ngx_string("avro_hot_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_avro_hot_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_avro_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("avro_cold_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_avro_cold_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_archive"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_ANY,
      ngx_http_avro_archive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_archive_now"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_avro_archive_now,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_upload"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_avro_upload,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_avro_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_read"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_avro_read,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_read_hot_memory"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, read_hot_memory),
      NULL },

    { ngx_string("avro_read_max_ranges"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, read_max_ranges),
      NULL },

    { ngx_string("avro_dataset"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, dataset),
      NULL },

    { ngx_string("avro_table"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, table),
      NULL },

    { ngx_string("avro_period"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, period),
      NULL },

    { ngx_string("avro_uploaded_by"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, uploaded_by),
      NULL },

    { ngx_string("avro_schemas"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_avro_schemas,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("avro_max_upload_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, max_upload),
      NULL },

    { ngx_string("avro_max_schema_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, max_schema),
      NULL },

    { ngx_string("avro_max_records"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, max_records),
      NULL },

    { ngx_string("avro_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_avro_loc_conf_t, max_depth),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_avro_module_ctx = {
    ngx_http_avro_preconfiguration,        /* preconfiguration */
    ngx_http_avro_postconfiguration,       /* postconfiguration */

    ngx_http_avro_create_main_conf,        /* create main configuration */
    ngx_http_avro_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_avro_create_loc_conf,         /* create location configuration */
    ngx_http_avro_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_avro_module = {
    NGX_MODULE_V1,
    &ngx_http_avro_module_ctx,             /* module context */
    ngx_http_avro_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_avro_init_module,             /* init module */
    ngx_http_avro_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_avro_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_avro_zone_name = ngx_string("avro_hot_store");


/*
 * The write lock lives in a shared zone; on reload nginx hands the old
 * zone's data back, so old and new workers keep sharing the same lock.
 */
static ngx_int_t
ngx_http_avro_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;
    avs_lock_t       *lock;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    lock = ngx_slab_calloc(shpool, sizeof(avs_lock_t));
    if (lock == NULL) {
        return NGX_ERROR;
    }

    if (avs_lock_init(lock) != AVS_OK) {
        return NGX_ERROR;
    }

    shpool->data = lock;
    shm_zone->data = lock;

    return NGX_OK;
}


static char *
ngx_http_avro_hot_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_main_conf_t *amcf = conf;

    ngx_str_t        *value, s;
    ngx_int_t         n;
    ngx_uint_t        i, j;

    if (amcf->hot_store.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    amcf->hot_store = value[1];

    if (ngx_conf_full_name(cf->cycle, &amcf->hot_store, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "synchronous=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;

            for (j = 0; ngx_http_avro_synchronous[j].name.len; j++) {
                if (s.len == ngx_http_avro_synchronous[j].name.len
                    && ngx_strncmp(s.data,
                                   ngx_http_avro_synchronous[j].name.data,
                                   s.len) == 0)
                {
                    amcf->synchronous = ngx_http_avro_synchronous[j].value;
                    break;
                }
            }

            if (ngx_http_avro_synchronous[j].name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid synchronous \"%V\", "
                                   "use \"normal\" or \"full\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "busy_timeout=", 13) == 0) {
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid busy_timeout \"%V\"", &s);
                return NGX_CONF_ERROR;
            }

            amcf->busy_timeout = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            amcf->max_size = ngx_parse_offset(&s);
            if (amcf->max_size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_size \"%V\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    amcf->shm_zone = ngx_shared_memory_add(cf, &ngx_http_avro_zone_name,
                                           NGX_HTTP_AVRO_ZONE_SIZE,
                                           &ngx_http_avro_module);
    if (amcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->shm_zone->init = ngx_http_avro_init_zone;

    return NGX_CONF_OK;
}


static char *
ngx_http_avro_upload(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->upload != NGX_CONF_UNSET || alcf->status != NGX_CONF_UNSET
        || alcf->read_uri.data != NULL)
    {
        return "is duplicate";
    }

    alcf->upload = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_avro_upload_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_avro_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->upload != NGX_CONF_UNSET || alcf->status != NGX_CONF_UNSET
        || alcf->read_uri.data != NULL)
    {
        return "is duplicate";
    }

    alcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_avro_status_handler;

    return NGX_CONF_OK;
}


/*
 * avro_read <uri>: the location reads; each archived range is fetched by a
 * subrequest to <uri><object key>, an internal location of the operator's.
 */
static char *
ngx_http_avro_read(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_loc_conf_t *alcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->upload != NGX_CONF_UNSET || alcf->status != NGX_CONF_UNSET
        || alcf->read_uri.data != NULL)
    {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "avro_read: \"%V\" must be a URI that starts "
                           "with \"/\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    alcf->read_uri = value[1];

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_avro_read_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_avro_schemas(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *file;
    ngx_uint_t   i;

    if (alcf->schema_files == NULL) {
        alcf->schema_files = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (alcf->schema_files == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        file = ngx_array_push(alcf->schema_files);
        if (file == NULL) {
            return NGX_CONF_ERROR;
        }

        *file = value[i];

        if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* "name=value": NGX_OK with value set, NGX_DECLINED for another name. */
static ngx_int_t
ngx_http_avro_param(ngx_str_t *arg, const char *name, ngx_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    if (arg->len <= len || arg->data[len] != '='
        || ngx_strncmp(arg->data, name, len) != 0)
    {
        return NGX_DECLINED;
    }

    value->data = arg->data + len + 1;
    value->len = arg->len - len - 1;

    return NGX_OK;
}


static char *
ngx_http_avro_cold_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_main_conf_t *amcf = conf;

    u_char      *p;
    ngx_str_t   *value, v, dir;
    ngx_uint_t   i;

    if (amcf->cold_store.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "file:", 5) == 0) {
        dir.data = value[1].data + 5;
        dir.len = value[1].len - 5;

        if (dir.len == 0 || cf->args->nelts > 2) {
            return "takes \"file:<directory>\" alone";
        }

        if (ngx_conf_full_name(cf->cycle, &dir, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, dir.len + 6);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        amcf->cold_store.data = p;
        amcf->cold_store.len = ngx_sprintf(p, "file:%V%Z", &dir) - p - 1;

        return ngx_http_avro_cold_store_open(cf, amcf);
    }

    if (ngx_strncmp(value[1].data, "s3://", 5) != 0 || value[1].len < 6) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid cold store \"%V\", use "
                           "\"file:<directory>\" or "
                           "\"s3://<bucket>/<prefix>\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    amcf->cold_store = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_http_avro_param(&value[i], "endpoint", &v) == NGX_OK) {
            amcf->cold_endpoint = v;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "region", &v) == NGX_OK) {
            amcf->cold_region = v;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "payload", &v) == NGX_OK) {

            if (ngx_strcmp(v.data, "signed") == 0) {
                amcf->cold_signed_payload = 1;
                continue;
            }

            if (ngx_strcmp(v.data, "unsigned") == 0) {
                amcf->cold_signed_payload = 0;
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid payload \"%V\", use \"signed\" or "
                               "\"unsigned\"", &v);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_avro_param(&value[i], "credentials", &v) == NGX_OK) {
            if (ngx_conf_full_name(cf->cycle, &v, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            amcf->cold_credentials = v;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "ca", &v) == NGX_OK) {
            if (ngx_conf_full_name(cf->cycle, &v, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            amcf->cold_ca = v;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return ngx_http_avro_cold_store_open(cf, amcf);
}


/*
 * The store is opened here, in the master: nginx -t and a reload refuse a
 * bad one, and the credentials and ca= files are read as the master's
 * user, like TLS keys, so that they may be files only root can read.  The
 * workers inherit the store; a reload reads the files again.
 */
static char *
ngx_http_avro_cold_store_open(ngx_conf_t *cf, ngx_http_avro_main_conf_t *amcf)
{
    avs_err_t            err;
    ngx_pool_cleanup_t  *cln;
    avs_objstore_conf_t  oc;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_http_avro_objstore_conf(amcf, &oc);

    if (avs_objstore_open(&oc, &amcf->objstore, &err) != AVS_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err.msg);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_avro_cold_store_cleanup;
    cln->data = amcf->objstore;

    return NGX_CONF_OK;
}


static void
ngx_http_avro_cold_store_cleanup(void *data)
{
    avs_objstore_close(data);
}


/* The core's settings of the cold store, from the directive's. */
static void
ngx_http_avro_objstore_conf(ngx_http_avro_main_conf_t *amcf,
    avs_objstore_conf_t *oc)
{
    ngx_memzero(oc, sizeof(avs_objstore_conf_t));
    oc->url = (const char *) amcf->cold_store.data;
    oc->endpoint = (const char *) amcf->cold_endpoint.data;
    oc->region = (const char *) amcf->cold_region.data;
    oc->signed_payload = (int) amcf->cold_signed_payload;
    oc->credentials = (const char *) amcf->cold_credentials.data;
    oc->ca_file = (const char *) amcf->cold_ca.data;
    oc->timeout_ms = 60000;
}


static char *
ngx_http_avro_archive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_main_conf_t *amcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i;
    avs_codec_t  codec;

    if (amcf->archive != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    amcf->archive = 1;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_avro_param(&value[i], "interval", &v) == NGX_OK) {
            n = ngx_parse_time(&v, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            amcf->archive_interval = (ngx_msec_t) n;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "segment_size", &v) == NGX_OK) {
            amcf->segment_size = ngx_parse_offset(&v);
            if (amcf->segment_size == NGX_ERROR
                || amcf->segment_size < 4096)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_http_avro_param(&value[i], "codec", &v) == NGX_OK) {
            if (avs_codec_from_name((const char *) v.data, v.len, &codec)
                != AVS_OK)
            {
                goto invalid;
            }

            amcf->codec = codec;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "level", &v) == NGX_OK) {
            n = ngx_atoi(v.data, v.len);
            if (n == NGX_ERROR || n > 22) {
                goto invalid;
            }

            amcf->level = n;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "node", &v) == NGX_OK) {
            amcf->archive_node = v;
            continue;
        }

        if (ngx_http_avro_param(&value[i], "lease", &v) == NGX_OK) {
            n = ngx_parse_time(&v, 0);
            if (n == NGX_ERROR || n < 1000) {
                goto invalid;
            }

            amcf->lease_ttl = (ngx_msec_t) n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_avro_archive_now(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_avro_loc_conf_t *alcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (alcf->archive_now != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    alcf->archive_now = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_avro_archive_now_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_avro_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_avro_read_add_variables(cf);
}


static ngx_int_t
ngx_http_avro_postconfiguration(ngx_conf_t *cf)
{
    return ngx_http_avro_read_init_filters(cf);
}


static void *
ngx_http_avro_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_avro_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->hot_store = { 0, NULL };
     *     amcf->thread_pool_name = { 0, NULL };
     *     amcf->store = NULL;
     */

    amcf->synchronous = NGX_CONF_UNSET_UINT;
    amcf->busy_timeout = NGX_CONF_UNSET_MSEC;
    amcf->max_size = NGX_CONF_UNSET;
    amcf->level = NGX_CONF_UNSET;
    amcf->codec = AVS_CODEC_DEFLATE;
    amcf->archive = NGX_CONF_UNSET;
    amcf->archive_interval = NGX_CONF_UNSET_MSEC;
    amcf->segment_size = NGX_CONF_UNSET;
    amcf->lease_ttl = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_http_avro_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_avro_main_conf_t *amcf = conf;

    u_char  *p;

    ngx_conf_init_uint_value(amcf->synchronous, AVS_SYNC_FULL);
    ngx_conf_init_msec_value(amcf->busy_timeout, 5000);
    ngx_conf_init_value(amcf->max_size, 0);
    ngx_conf_init_value(amcf->level, 0);
    ngx_conf_init_value(amcf->archive, 0);
    ngx_conf_init_msec_value(amcf->archive_interval, 3600000);
    ngx_conf_init_value(amcf->segment_size, 512 * 1024 * 1024);
    ngx_conf_init_msec_value(amcf->lease_ttl, 600000);

    if (amcf->archive && amcf->hot_store.data == NULL) {
        return "\"avro_archive\" needs \"avro_hot_store\"";
    }

    if (amcf->archive && amcf->cold_store.data == NULL) {
        return "\"avro_archive\" needs \"avro_cold_store\"";
    }

    /* S3 takes at most 5 GiB in one PUT: a larger file would fail for
     * ever, and every later job behind it */

    if (amcf->archive
        && ngx_strncmp(amcf->cold_store.data, "s3://", 5) == 0
        && (uint64_t) amcf->segment_size > 5ULL * 1024 * 1024 * 1024)
    {
        return "segment_size: an S3 cold store takes at most 5g";
    }

    if (amcf->hot_store.data == NULL) {
        return NGX_CONF_OK;
    }

    if (amcf->archive_node.data == NULL) {
        amcf->archive_node = cf->cycle->hostname;
    }

    if (avs_name_check("avro_archive node", (const char *)
                       amcf->archive_node.data, amcf->archive_node.len,
                       NULL) != AVS_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "avro_archive: node \"%V\" must be a name of "
                           "A-Z a-z 0-9 . _ - @ ~; set node=",
                           &amcf->archive_node);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, amcf->archive_node.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(p, amcf->archive_node.data, amcf->archive_node.len + 1);
    amcf->archive_node.data = p;

    amcf->archive_tmp.len = amcf->hot_store.len + sizeof(".archive") - 1;
    amcf->archive_tmp.data = ngx_pnalloc(cf->pool, amcf->archive_tmp.len + 1);
    if (amcf->archive_tmp.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(amcf->archive_tmp.data, "%V.archive%Z", &amcf->hot_store);

    /* NULL asks for the "default" pool, added on demand like aio threads */
    amcf->thread_pool = ngx_thread_pool_add(cf,
                                            amcf->thread_pool_name.data
                                            ? &amcf->thread_pool_name
                                            : NULL);
    if (amcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_avro_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_avro_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_avro_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->dataset = NULL;
     *     alcf->table = NULL;
     *     alcf->period = NULL;
     *     alcf->uploaded_by = NULL;
     *     alcf->schema_files = NULL;
     *     alcf->allow = NULL;
     */

    alcf->upload = NGX_CONF_UNSET;
    alcf->status = NGX_CONF_UNSET;
    alcf->archive_now = NGX_CONF_UNSET;
    alcf->read_hot_memory = NGX_CONF_UNSET_SIZE;
    alcf->read_max_ranges = NGX_CONF_UNSET_UINT;
    alcf->max_upload = NGX_CONF_UNSET_SIZE;
    alcf->max_schema = NGX_CONF_UNSET_SIZE;
    alcf->max_records = NGX_CONF_UNSET_UINT;
    alcf->max_depth = NGX_CONF_UNSET_UINT;

    return alcf;
}


static char *
ngx_http_avro_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_avro_loc_conf_t *prev = parent;
    ngx_http_avro_loc_conf_t *conf = child;

    ngx_http_avro_main_conf_t  *amcf;

    /* a location's handler is its own, so are these: nested locations
     * do not inherit them */
    ngx_conf_init_value(conf->upload, 0);
    ngx_conf_init_value(conf->status, 0);
    ngx_conf_init_value(conf->archive_now, 0);

    if (conf->dataset == NULL) {
        conf->dataset = prev->dataset;
    }

    if (conf->table == NULL) {
        conf->table = prev->table;
    }

    if (conf->period == NULL) {
        conf->period = prev->period;
    }

    if (conf->uploaded_by == NULL) {
        conf->uploaded_by = prev->uploaded_by;
    }

    ngx_conf_merge_size_value(conf->read_hot_memory, prev->read_hot_memory,
                              4 * 1024 * 1024);
    ngx_conf_merge_uint_value(conf->read_max_ranges, prev->read_max_ranges,
                              4096);
    ngx_conf_merge_size_value(conf->max_upload, prev->max_upload,
                              AVS_DEFAULT_MAX_UPLOAD);
    ngx_conf_merge_size_value(conf->max_schema, prev->max_schema,
                              AVS_DEFAULT_MAX_SCHEMA);
    ngx_conf_merge_uint_value(conf->max_records, prev->max_records,
                              AVS_DEFAULT_MAX_RECORDS);
    ngx_conf_merge_uint_value(conf->max_depth, prev->max_depth,
                              AVS_DEFAULT_MAX_DEPTH);

    if (conf->read_max_ranges == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "avro_read_max_ranges must be at least 1");
        return NGX_CONF_ERROR;
    }

    if (conf->max_depth == 0 || conf->max_depth > 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "avro_max_depth must be between 1 and 1024");
        return NGX_CONF_ERROR;
    }

    if (conf->schema_files == NULL) {
        conf->schema_files = prev->schema_files;
        conf->allow = prev->allow;
    }

    if (conf->schema_files != NULL && conf->allow == NULL) {
        if (ngx_http_avro_load_schemas(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (conf->schema_files == prev->schema_files) {
            prev->allow = conf->allow;
        }
    }

    if (conf->archive_now == 1) {
        amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_avro_module);

        if (!amcf->archive) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"avro_archive_now\" needs \"avro_archive\" "
                               "in the http block");
            return NGX_CONF_ERROR;
        }
    }

    if (conf->upload == 1 || conf->status == 1
        || conf->read_uri.data != NULL)
    {
        amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_avro_module);

        if (amcf->hot_store.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"avro_upload\", \"avro_status\" and "
                               "\"avro_read\" need \"avro_hot_store\" "
                               "in the http block");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* Reads the schema bundles once per configuration cycle. */
static ngx_int_t
ngx_http_avro_load_schemas(ngx_conf_t *cf, ngx_http_avro_loc_conf_t *alcf)
{
    ngx_str_t           *files;
    ngx_uint_t           i;
    avs_err_t            err;
    ngx_pool_cleanup_t  *cln;

    alcf->allow = ngx_pcalloc(cf->pool, sizeof(avs_allow_t));
    if (alcf->allow == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_avro_free_allow;
    cln->data = alcf->allow;

    files = alcf->schema_files->elts;

    for (i = 0; i < alcf->schema_files->nelts; i++) {
        if (avs_allow_load(alcf->allow, (char *) files[i].data, &err)
            != AVS_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "avro_schemas: %s", err.msg);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_avro_free_allow(void *data)
{
    avs_allow_free(data);
}


/*
 * The master creates the directories the workers write to when they are
 * missing, and gives them to the worker user, as nginx does with its
 * temporary paths: SQLite must create its -wal and -shm files next to the
 * database, the archiver builds files next to it, and a file: cold store
 * is written by the workers.
 */
static ngx_int_t
ngx_http_avro_init_module(ngx_cycle_t *cycle)
{
    if (ngx_http_avro_make_dirs(cycle) == NGX_OK) {
        return NGX_OK;
    }

    if (ngx_is_init_cycle(cycle->old_cycle)) {
        return NGX_ERROR;
    }

    /*
     * A reload is past the point where nginx can refuse it, and an error
     * here would end the master: the workers answer 503 until the
     * directory is there.
     */

    ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                  "avro: the reloaded configuration runs without its "
                  "directories");

    return NGX_OK;
}


static ngx_int_t
ngx_http_avro_make_dirs(ngx_cycle_t *cycle)
{
    u_char                     *dir, *slash;
    ngx_uint_t                  i;
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_avro_module);

    if (amcf == NULL || amcf->hot_store.data == NULL) {
        return NGX_OK;
    }

    dir = ngx_pnalloc(cycle->pool, amcf->hot_store.len + 1);
    if (dir == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(dir, amcf->hot_store.data, amcf->hot_store.len + 1);
    slash = NULL;

    for (i = 1; i < amcf->hot_store.len; i++) {
        if (dir[i] == '/') {
            slash = &dir[i];
        }
    }

    if (slash != NULL) {
        *slash = '\0';

        if (ngx_http_avro_make_dir(cycle, dir, "avro_hot_store") != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (!amcf->archive) {
        return NGX_OK;
    }

    if (ngx_http_avro_make_dir(cycle, amcf->archive_tmp.data, "avro_archive")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_strncmp(amcf->cold_store.data, "file:", 5) == 0) {
        return ngx_http_avro_make_dir(cycle, amcf->cold_store.data + 5,
                                      "avro_cold_store");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_avro_make_dir(ngx_cycle_t *cycle, u_char *dir, const char *what)
{
    u_char           *p;
    ngx_err_t         err;
    ngx_uint_t        last;
    ngx_uint_t        level;
    ngx_file_info_t   fi;
    ngx_core_conf_t  *ccf;

    if (ngx_file_info(dir, &fi) != NGX_FILE_ERROR) {
        return NGX_OK;
    }

    /* at a reload the error is not the end (ngx_http_avro_init_module) */
    level = ngx_is_init_cycle(cycle->old_cycle) ? NGX_LOG_EMERG
                                                : NGX_LOG_ALERT;

    /*
     * Missing parents are made as "mkdir -p" makes them, since the workers
     * must pass through; the directory itself is theirs alone.
     */

    for (p = dir + 1; /* void */; p++) {
        last = (*p == '\0');

        if (*p != '/' && !last) {
            continue;
        }

        *p = '\0';
        err = (ngx_create_dir(dir, last ? 0700 : 0755) == NGX_FILE_ERROR)
              ? ngx_errno : 0;

        if (err != 0 && err != NGX_EEXIST) {
            ngx_log_error(level, cycle->log, err,
                          "%s: cannot create directory \"%s\"", what, dir);
            *p = last ? '\0' : '/';
            return NGX_ERROR;
        }

        if (last) {
            break;
        }

        *p = '/';
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        if (chown((char *) dir, ccf->user, -1) == -1) {
            ngx_log_error(level, cycle->log, ngx_errno,
                          "%s: chown(\"%s\", %d) failed", what, dir,
                          ccf->user);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_avro_init_process(ngx_cycle_t *cycle)
{
    ngx_http_avro_main_conf_t  *amcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_avro_module);

    if (amcf == NULL || amcf->hot_store.data == NULL) {
        return NGX_OK;
    }

    amcf->schemas = avs_schema_cache_create(1024);
    if (amcf->schemas == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_avro_open_store(cycle, amcf);
}


/*
 * The worker's hot store is open: the committer and the archiver, which
 * use it, are set up (the cold store was opened by the master).  Until
 * then uploads are answered 503.  NGX_ERROR only when memory runs out.
 */
ngx_int_t
ngx_http_avro_store_ready(ngx_cycle_t *cycle, ngx_http_avro_main_conf_t *amcf,
    avs_store_t *st)
{
    amcf->store = st;

    amcf->committer = ngx_http_avro_committer_create(cycle, amcf);
    if (amcf->committer == NULL) {
        amcf->store = NULL;
        avs_store_close(st);
        return NGX_ERROR;
    }

    if (amcf->objstore == NULL || !amcf->archive) {
        return NGX_OK;
    }

    amcf->archiver = ngx_http_avro_archiver_create(cycle, amcf);
    if (amcf->archiver == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_avro_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_avro_module);

    if (amcf == NULL) {
        return;
    }

    amcf->committer = NULL;
    amcf->archiver = NULL;

    if (amcf->store != NULL) {
        avs_store_close(amcf->store);
        amcf->store = NULL;
    }

    if (amcf->schemas != NULL) {
        avs_schema_cache_destroy(amcf->schemas);
        amcf->schemas = NULL;
    }
}
