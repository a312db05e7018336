/*
 * The avro module: directives, configuration, and the per-process life of
 * the hot store (opened in every worker, closed when it exits).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_avro_module.h"


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
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

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

    if (alcf->upload != NGX_CONF_UNSET || alcf->status != NGX_CONF_UNSET) {
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

    if (alcf->upload != NGX_CONF_UNSET || alcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    alcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_avro_status_handler;

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

    return amcf;
}


static char *
ngx_http_avro_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_avro_main_conf_t *amcf = conf;

    ngx_conf_init_uint_value(amcf->synchronous, AVS_SYNC_FULL);
    ngx_conf_init_msec_value(amcf->busy_timeout, 5000);
    ngx_conf_init_value(amcf->max_size, 0);
    ngx_conf_init_value(amcf->level, 0);

    if (amcf->hot_store.data == NULL) {
        return NGX_CONF_OK;
    }

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

    ngx_conf_merge_value(conf->upload, prev->upload, 0);
    ngx_conf_merge_value(conf->status, prev->status, 0);

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

    ngx_conf_merge_size_value(conf->max_upload, prev->max_upload,
                              AVS_DEFAULT_MAX_UPLOAD);
    ngx_conf_merge_size_value(conf->max_schema, prev->max_schema,
                              AVS_DEFAULT_MAX_SCHEMA);
    ngx_conf_merge_uint_value(conf->max_records, prev->max_records,
                              AVS_DEFAULT_MAX_RECORDS);
    ngx_conf_merge_uint_value(conf->max_depth, prev->max_depth,
                              AVS_DEFAULT_MAX_DEPTH);

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

    if (conf->upload == 1 || conf->status == 1) {
        amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_avro_module);

        if (amcf->hot_store.data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"avro_upload\" and \"avro_status\" need "
                               "\"avro_hot_store\" in the http block");
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
 * The master creates the hot store's directory when it is missing and
 * gives it to the worker user, as nginx does with its temporary paths:
 * SQLite must create the -wal and -shm files next to the database.
 */
static ngx_int_t
ngx_http_avro_init_module(ngx_cycle_t *cycle)
{
    u_char                     *path, *slash;
    ngx_err_t                   rc;
    ngx_uint_t                  i;
    ngx_file_info_t             fi;
    ngx_core_conf_t            *ccf;
    ngx_http_avro_main_conf_t  *amcf;

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_avro_module);

    if (amcf == NULL || amcf->hot_store.data == NULL) {
        return NGX_OK;
    }

    path = ngx_pnalloc(cycle->pool, amcf->hot_store.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(path, amcf->hot_store.data, amcf->hot_store.len + 1);

    slash = NULL;

    for (i = 1; i < amcf->hot_store.len; i++) {
        if (path[i] == '/') {
            slash = &path[i];
        }
    }

    if (slash == NULL) {
        return NGX_OK;
    }

    *slash = '\0';

    if (ngx_file_info(path, &fi) != NGX_FILE_ERROR) {
        return NGX_OK;
    }

    *slash = '/';

    rc = ngx_create_full_path(path, 0700);
    *slash = '\0';

    if (rc != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, rc,
                      "avro_hot_store: cannot create directory \"%s\"",
                      path);
        return NGX_ERROR;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        if (chown((char *) path, ccf->user, -1) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "avro_hot_store: chown(\"%s\", %d) failed",
                          path, ccf->user);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_avro_init_process(ngx_cycle_t *cycle)
{
    avs_err_t                   err;
    avs_store_conf_t            sc;
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

    ngx_memzero(&sc, sizeof(sc));
    sc.path = (const char *) amcf->hot_store.data;
    sc.synchronous = amcf->synchronous;
    sc.busy_timeout_ms = amcf->busy_timeout;
    sc.max_size = (uint64_t) amcf->max_size;
    sc.lock = amcf->shm_zone->data;

    amcf->schemas = avs_schema_cache_create(1024);
    if (amcf->schemas == NULL) {
        return NGX_ERROR;
    }

    if (avs_store_open(&sc, &amcf->store, &err) != AVS_OK) {
        /* the worker lives on and answers 503 until it is fixed */
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "%s", err.msg);
        amcf->store = NULL;
        return NGX_OK;
    }

    amcf->committer = ngx_http_avro_committer_create(cycle, amcf);
    if (amcf->committer == NULL) {
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

    if (amcf->store != NULL) {
        avs_store_close(amcf->store);
        amcf->store = NULL;
    }

    if (amcf->schemas != NULL) {
        avs_schema_cache_destroy(amcf->schemas);
        amcf->schemas = NULL;
    }
}
