/*
 * The JSON upload envelope of the original clients:
 *   {"dataset_id", "table_name" | "table", "period_tag", "avro_base64"}
 * or the same with "slices": [base64, ...] for several files at once.
 */

#ifndef AVS_ENVELOPE_H
#define AVS_ENVELOPE_H

#include "avs_base.h"

#define AVS_MAX_SLICES  256

typedef struct {
    char      *dataset;     /* NULL when absent */
    char      *table;
    char      *period;
    size_t     nfiles;
    size_t     cap;
    avs_buf_t *files;       /* decoded Avro files, nfiles of them */
} avs_envelope_t;

/*
 * Parses the envelope and decodes its base64 files, none larger than
 * max_file bytes.  Unknown fields are ignored; wrong types, bad base64 and
 * both or neither of "avro_base64" and "slices" are AVS_EMALFORMED.
 */
avs_rc_t avs_envelope_parse(const uint8_t *json, size_t n, size_t max_file,
    avs_envelope_t *env, avs_err_t *err);

void avs_envelope_free(avs_envelope_t *env);

/* Decodes standard base64 (padding optional) and appends to out. */
avs_rc_t avs_base64_decode(const char *s, size_t n, avs_buf_t *out);

#endif /* AVS_ENVELOPE_H */
