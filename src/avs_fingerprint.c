/*
 * Schema identity.  Two schema texts that differ only in what does not
 * affect how data is read (whitespace, attribute order, documentation,
 * aliases, defaults, short versus full names) must land in the same
 * stream, so a schema is known by the 64-bit Rabin fingerprint of its
 * Parsing Canonical Form, both as the Avro specification defines them.
 *
 * The canonical form is built from the parsed JSON: primitives in their
 * simple form, full names everywhere, only name, type, fields, symbols,
 * items, values and size kept, in that order, no whitespace.  A named type
 * appears in full where it is defined and by its full name afterwards.
 */

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "avs_fingerprint.h"


/* Nesting of schema JSON followed before giving up on a schema. */
#define AVS_CANON_MAX_DEPTH  128

/* The fingerprint of the empty string, and the polynomial of the table. */
#define AVS_CRC64_EMPTY      0xc15d213aa4d7a795ULL


typedef struct {
    avs_buf_t   *out;
    json_t      *names;         /* full names defined so far, as a set */
    avs_err_t   *err;
    unsigned     depth;
} avs_canon_t;


static const char  *avs_primitives[] = {
    "null", "boolean", "int", "long", "float", "double", "bytes", "string"
};


static avs_rc_t avs_canon_node(avs_canon_t *cx, json_t *node,
    const char *ns);


static int
avs_is_primitive(const char *s)
{
    size_t  i;

    for (i = 0; i < sizeof(avs_primitives) / sizeof(avs_primitives[0]); i++)
    {
        if (strcmp(s, avs_primitives[i]) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * True if s is a name the specification allows: [A-Za-z_][A-Za-z0-9_]*,
 * or a dot-separated sequence of such when dotted is set.  Names that pass
 * need no escaping in JSON output.
 */
static int
avs_valid_name(const char *s, int dotted)
{
    int  start;

    start = 1;

    for ( ;; ) {
        if (start) {
            if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
                  || *s == '_'))
            {
                return 0;
            }

            start = 0;

        } else if (*s == '\0') {
            return 1;

        } else if (*s == '.' && dotted) {
            start = 1;

        } else if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
                     || (*s >= '0' && *s <= '9') || *s == '_'))
        {
            return 0;
        }

        s++;
    }
}


static avs_rc_t
avs_canon_put(avs_canon_t *cx, const char *s)
{
    avs_rc_t  rc;

    rc = avs_buf_append(cx->out, s, strlen(s));

    if (rc == AVS_ETOOLARGE) {
        return avs_err_set(cx->err, rc, "schema: canonical form too large");
    }

    if (rc != AVS_OK) {
        return avs_err_set(cx->err, rc, "schema: out of memory");
    }

    return AVS_OK;
}


/* Appends a name between quotes; names are validated, so never escaped. */
static avs_rc_t
avs_canon_put_name(avs_canon_t *cx, const char *name)
{
    avs_rc_t  rc;

    rc = avs_canon_put(cx, "\"");
    if (rc == AVS_OK) {
        rc = avs_canon_put(cx, name);
    }

    if (rc == AVS_OK) {
        rc = avs_canon_put(cx, "\"");
    }

    return rc;
}


/* Returns "ns.name", or a copy of name when ns is empty; NULL if no memory. */
static char *
avs_join_name(const char *ns, const char *name)
{
    size_t   nlen, len;
    char    *full;

    nlen = strlen(ns);
    len = strlen(name);

    full = malloc(nlen + len + 2);
    if (full == NULL) {
        return NULL;
    }

    if (nlen > 0) {
        memcpy(full, ns, nlen);
        full[nlen++] = '.';
    }

    memcpy(full + nlen, name, len + 1);

    return full;
}


/*
 * A type given by name: a primitive, or a named type defined earlier.  A
 * name without a dot is in the enclosing namespace, as the specification
 * says; the null namespace is not searched as a fallback (avro-c, which
 * parses the same schema later, does not search it either).
 */
static avs_rc_t
avs_canon_reference(avs_canon_t *cx, const char *name, const char *ns)
{
    char      *full;
    avs_rc_t   rc;

    if (avs_is_primitive(name)) {
        return avs_canon_put_name(cx, name);
    }

    if (!avs_valid_name(name, 1)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: invalid type name '%.64s'", name);
    }

    full = avs_join_name(strchr(name, '.') ? "" : ns, name);
    if (full == NULL) {
        return avs_err_set(cx->err, AVS_ENOMEM, "schema: out of memory");
    }

    if (json_object_get(cx->names, full) == NULL) {
        rc = avs_err_set(cx->err, AVS_EMALFORMED,
                         "schema: unknown type '%.64s'", full);

    } else {
        rc = avs_canon_put_name(cx, full);
    }

    free(full);

    return rc;
}


/* The string value of an attribute, or NULL if it is absent. */
static avs_rc_t
avs_canon_attr_string(avs_canon_t *cx, json_t *obj, const char *attr,
    const char **out)
{
    json_t  *v;

    *out = NULL;
    v = json_object_get(obj, attr);

    if (v == NULL) {
        return AVS_OK;
    }

    if (!json_is_string(v)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: \"%s\" is not a string", attr);
    }

    *out = json_string_value(v);

    return AVS_OK;
}


/*
 * The size of a fixed: a non-negative integer, also accepted as a string
 * of digits (the specification's INTEGERS rule drops such quotes and
 * leading zeros).
 */
static avs_rc_t
avs_canon_size(avs_canon_t *cx, json_t *obj, long long *size)
{
    json_t      *v;
    const char  *s;
    long long    n;

    *size = 0;
    v = json_object_get(obj, "size");

    if (json_is_integer(v)) {
        n = json_integer_value(v);

    } else if (json_is_string(v) && json_string_value(v)[0] != '\0') {
        n = 0;

        for (s = json_string_value(v); *s; s++) {
            if (*s < '0' || *s > '9' || n > INT32_MAX) {
                n = -1;
                break;
            }

            n = n * 10 + (*s - '0');
        }

    } else {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: fixed without an integer size");
    }

    if (n < 0 || n > INT32_MAX) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: bad fixed size");
    }

    *size = n;

    return AVS_OK;
}


/* The fields of a record, each as name and type, in their given order. */
static avs_rc_t
avs_canon_fields(avs_canon_t *cx, json_t *obj, const char *ns)
{
    json_t      *fields, *f, *type;
    size_t       i;
    const char  *name;
    avs_rc_t     rc;

    fields = json_object_get(obj, "fields");

    if (!json_is_array(fields)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: record without a fields array");
    }

    rc = avs_canon_put(cx, ",\"fields\":[");

    json_array_foreach(fields, i, f) {
        if (rc != AVS_OK) {
            return rc;
        }

        if (!json_is_object(f)) {
            return avs_err_set(cx->err, AVS_EMALFORMED,
                               "schema: field is not an object");
        }

        rc = avs_canon_attr_string(cx, f, "name", &name);
        if (rc != AVS_OK) {
            return rc;
        }

        if (name == NULL || !avs_valid_name(name, 0)) {
            return avs_err_set(cx->err, AVS_EMALFORMED,
                               "schema: invalid field name '%.64s'",
                               name ? name : "");
        }

        type = json_object_get(f, "type");
        if (type == NULL) {
            return avs_err_set(cx->err, AVS_EMALFORMED,
                               "schema: field '%.64s' has no type", name);
        }

        rc = avs_canon_put(cx, i ? ",{\"name\":" : "{\"name\":");

        if (rc == AVS_OK) {
            rc = avs_canon_put_name(cx, name);
        }

        if (rc == AVS_OK) {
            rc = avs_canon_put(cx, ",\"type\":");
        }

        if (rc == AVS_OK) {
            rc = avs_canon_node(cx, type, ns);
        }

        if (rc == AVS_OK) {
            rc = avs_canon_put(cx, "}");
        }
    }

    if (rc == AVS_OK) {
        rc = avs_canon_put(cx, "]");
    }

    return rc;
}


/* The symbols of an enum, each a valid name, in their given order. */
static avs_rc_t
avs_canon_symbols(avs_canon_t *cx, json_t *obj)
{
    json_t    *symbols, *s;
    size_t     i;
    avs_rc_t   rc;

    symbols = json_object_get(obj, "symbols");

    if (!json_is_array(symbols)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: enum without a symbols array");
    }

    rc = avs_canon_put(cx, ",\"symbols\":[");

    json_array_foreach(symbols, i, s) {
        if (rc != AVS_OK) {
            return rc;
        }

        if (!json_is_string(s) || !avs_valid_name(json_string_value(s), 0)) {
            return avs_err_set(cx->err, AVS_EMALFORMED,
                               "schema: invalid enum symbol");
        }

        rc = avs_canon_put(cx, i ? "," : "");
        if (rc == AVS_OK) {
            rc = avs_canon_put_name(cx, json_string_value(s));
        }
    }

    if (rc == AVS_OK) {
        rc = avs_canon_put(cx, "]");
    }

    return rc;
}


/*
 * A record, enum or fixed definition.  Its full name comes from a dotted
 * name, else from its "namespace" attribute, else from the enclosing
 * namespace; the namespace part of that full name is what the types nested
 * in a record inherit.  The name is registered before the fields are
 * visited, so a record can refer to itself.
 */
static avs_rc_t
avs_canon_named(avs_canon_t *cx, json_t *obj, const char *type,
    const char *ns)
{
    const char  *name, *space, *dot;
    char        *full, *inner;
    long long    size;
    char         num[32];
    avs_rc_t     rc;

    rc = avs_canon_attr_string(cx, obj, "name", &name);
    if (rc != AVS_OK) {
        return rc;
    }

    if (name == NULL || !avs_valid_name(name, 1)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: %s with an invalid name '%.64s'", type,
                           name ? name : "");
    }

    rc = avs_canon_attr_string(cx, obj, "namespace", &space);
    if (rc != AVS_OK) {
        return rc;
    }

    if (strchr(name, '.') != NULL || space == NULL) {
        space = strchr(name, '.') ? "" : ns;

    } else if (space[0] != '\0' && !avs_valid_name(space, 1)) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: invalid namespace '%.64s'", space);
    }

    full = avs_join_name(space, name);
    if (full == NULL) {
        return avs_err_set(cx->err, AVS_ENOMEM, "schema: out of memory");
    }

    if (avs_is_primitive(full)) {
        rc = avs_err_set(cx->err, AVS_EMALFORMED,
                         "schema: '%s' redefines a primitive type", full);
        goto done;
    }

    if (json_object_get(cx->names, full) != NULL) {
        rc = avs_err_set(cx->err, AVS_EMALFORMED,
                         "schema: '%.64s' is defined twice", full);
        goto done;
    }

    if (json_object_set_new(cx->names, full, json_true()) != 0) {
        rc = avs_err_set(cx->err, AVS_ENOMEM, "schema: out of memory");
        goto done;
    }

    rc = avs_canon_put(cx, "{\"name\":");

    if (rc == AVS_OK) {
        rc = avs_canon_put_name(cx, full);
    }

    if (rc != AVS_OK) {
        goto done;
    }

    if (strcmp(type, "enum") == 0) {
        rc = avs_canon_put(cx, ",\"type\":\"enum\"");
        if (rc == AVS_OK) {
            rc = avs_canon_symbols(cx, obj);
        }

    } else if (strcmp(type, "fixed") == 0) {
        rc = avs_canon_size(cx, obj, &size);

        if (rc == AVS_OK) {
            snprintf(num, sizeof(num), ",\"size\":%lld", size);
            rc = avs_canon_put(cx, ",\"type\":\"fixed\"");
        }

        if (rc == AVS_OK) {
            rc = avs_canon_put(cx, num);
        }

    } else {
        /* "error" is a record too */

        dot = strrchr(full, '.');
        inner = NULL;

        if (dot != NULL) {
            inner = strndup(full, dot - full);
            if (inner == NULL) {
                rc = avs_err_set(cx->err, AVS_ENOMEM,
                                 "schema: out of memory");
                goto done;
            }
        }

        rc = avs_canon_put(cx, ",\"type\":\"record\"");
        if (rc == AVS_OK) {
            rc = avs_canon_fields(cx, obj, inner ? inner : "");
        }

        free(inner);
    }

    if (rc == AVS_OK) {
        rc = avs_canon_put(cx, "}");
    }

done:

    free(full);

    return rc;
}


/*
 * A schema given as a JSON object.  Attributes other than the ones the
 * canonical form keeps are ignored, including logicalType: a logical type
 * does not change how data is read.
 */
static avs_rc_t
avs_canon_object(avs_canon_t *cx, json_t *obj, const char *ns)
{
    json_t      *type, *sub;
    const char  *t, *attr;
    avs_rc_t     rc;

    type = json_object_get(obj, "type");

    if (type == NULL) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: object without a type");
    }

    if (!json_is_string(type)) {
        /* {"type": {...}} and {"type": [...]} wrap a schema */
        return avs_canon_node(cx, type, ns);
    }

    t = json_string_value(type);

    if (avs_is_primitive(t)) {
        return avs_canon_put_name(cx, t);
    }

    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0
        || strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0)
    {
        return avs_canon_named(cx, obj, t, ns);
    }

    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        attr = (t[0] == 'a') ? "items" : "values";
        sub = json_object_get(obj, attr);

        if (sub == NULL) {
            return avs_err_set(cx->err, AVS_EMALFORMED,
                               "schema: %s without %s", t, attr);
        }

        rc = avs_canon_put(cx, t[0] == 'a' ? "{\"type\":\"array\",\"items\":"
                                           : "{\"type\":\"map\",\"values\":");
        if (rc == AVS_OK) {
            rc = avs_canon_node(cx, sub, ns);
        }

        if (rc == AVS_OK) {
            rc = avs_canon_put(cx, "}");
        }

        return rc;
    }

    /* {"type": "some.Name"} refers to a named type */
    return avs_canon_reference(cx, t, ns);
}


/*
 * Any schema: a name, an object or a union.  The depth is bounded so that
 * a hostile schema cannot exhaust the stack.
 */
static avs_rc_t
avs_canon_node(avs_canon_t *cx, json_t *node, const char *ns)
{
    json_t    *v;
    size_t     i;
    avs_rc_t   rc;

    if (cx->depth >= AVS_CANON_MAX_DEPTH) {
        return avs_err_set(cx->err, AVS_EMALFORMED,
                           "schema: nested deeper than %d",
                           AVS_CANON_MAX_DEPTH);
    }

    cx->depth++;

    if (json_is_string(node)) {
        rc = avs_canon_reference(cx, json_string_value(node), ns);

    } else if (json_is_object(node)) {
        rc = avs_canon_object(cx, node, ns);

    } else if (json_is_array(node)) {
        rc = avs_canon_put(cx, "[");

        json_array_foreach(node, i, v) {
            if (rc == AVS_OK && i > 0) {
                rc = avs_canon_put(cx, ",");
            }

            if (rc == AVS_OK) {
                rc = avs_canon_node(cx, v, ns);
            }
        }

        if (rc == AVS_OK) {
            rc = avs_canon_put(cx, "]");
        }

    } else {
        rc = avs_err_set(cx->err, AVS_EMALFORMED,
                         "schema: a type must be a string, object or array");
    }

    cx->depth--;

    return rc;
}


/*
 * Parses the schema text and writes its canonical form.  The JSON parser
 * has already turned escapes into characters and numbers into integers,
 * which takes care of the STRINGS and INTEGERS rules; duplicate keys are
 * refused because which of them would count is not defined.
 */
avs_rc_t
avs_schema_canonical_form(const char *json, size_t len, avs_buf_t *out,
    avs_err_t *err)
{
    json_t        *root;
    json_error_t   jerr;
    avs_canon_t    cx;
    size_t         start;
    avs_rc_t       rc;

    start = out->len;

    root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                      &jerr);
    if (root == NULL) {
        return avs_err_set(err, AVS_EMALFORMED,
                           "schema: invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    }

    cx.out = out;
    cx.err = err;
    cx.depth = 0;
    cx.names = json_object();

    if (cx.names == NULL) {
        json_decref(root);
        return avs_err_set(err, AVS_ENOMEM, "schema: out of memory");
    }

    rc = avs_canon_node(&cx, root, "");

    if (rc == AVS_OK) {
        rc = avs_buf_reserve(out, 1);

        if (rc == AVS_OK) {
            out->data[out->len] = '\0';

        } else {
            avs_err_set(err, rc, "schema: canonical form too large");
        }
    }

    if (rc != AVS_OK) {
        out->len = start;
    }

    json_decref(cx.names);
    json_decref(root);

    return rc;
}


static uint64_t        avs_crc64_table[256];
static pthread_once_t  avs_crc64_once = PTHREAD_ONCE_INIT;


/*
 * Fills the table for byte-at-a-time CRC-64-AVRO: entry i is the fingerprint
 * step of byte i, derived from the polynomial as the specification shows.
 */
static void
avs_crc64_init(void)
{
    uint64_t  fp;
    int       i, j;

    for (i = 0; i < 256; i++) {
        fp = (uint64_t) i;

        for (j = 0; j < 8; j++) {
            fp = (fp >> 1) ^ (AVS_CRC64_EMPTY & (0 - (fp & 1)));
        }

        avs_crc64_table[i] = fp;
    }
}


/* The fingerprint of p[0..n), one table step per byte. */
uint64_t
avs_crc64_avro(const void *p, size_t n)
{
    const uint8_t  *s;
    uint64_t        fp;
    size_t          i;

    pthread_once(&avs_crc64_once, avs_crc64_init);

    s = p;
    fp = AVS_CRC64_EMPTY;

    for (i = 0; i < n; i++) {
        fp = (fp >> 8) ^ avs_crc64_table[(fp ^ s[i]) & 0xff];
    }

    return fp;
}


void
avs_fingerprint_hex(uint64_t fp, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, fp);
}
