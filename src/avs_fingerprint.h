/*
 * Schema identity: the Parsing Canonical Form of the Avro specification
 * and its CRC-64-AVRO (Rabin) fingerprint.  avro-c has neither.
 */

#ifndef AVS_FINGERPRINT_H
#define AVS_FINGERPRINT_H

#include "avs_base.h"

/*
 * Appends the Parsing Canonical Form of the schema JSON text to out and a
 * terminating NUL (not counted in out->len).  AVS_EMALFORMED if the text is
 * not JSON or not a schema the canonical form can be built for.
 */
avs_rc_t avs_schema_canonical_form(const char *json, size_t len,
    avs_buf_t *out, avs_err_t *err);

/* CRC-64-AVRO of p[0..n): the specification's 64-bit Rabin fingerprint. */
uint64_t avs_crc64_avro(const void *p, size_t n);

/* 16 lowercase hex digits of the fingerprint value, most significant first,
 * NUL-terminated (out must hold 17 bytes). */
void avs_fingerprint_hex(uint64_t fp, char out[17]);

#endif /* AVS_FINGERPRINT_H */
