/*
 * A digest computed in a helper thread.  The bytes fed are copied into a
 * small ring and hashed by the helper in order, so that the thread feeding
 * them (one that also reads and sends them) does not wait for the hash.
 * Without a thread, the bytes are hashed as they are fed.
 */

#ifndef AVS_HASHPIPE_H
#define AVS_HASHPIPE_H

#include <stddef.h>

#include <openssl/evp.h>

typedef struct avs_hashpipe_s  avs_hashpipe_t;

/* A pipe for digest md, or NULL when out of memory. */
avs_hashpipe_t *avs_hashpipe_start(const EVP_MD *md);

/* Hashes n more bytes; 0, or -1 when the digest failed. */
int avs_hashpipe_feed(avs_hashpipe_t *hp, const void *p, size_t n);

/*
 * Waits for the bytes fed to be hashed and writes the digest (*len bytes,
 * at most EVP_MAX_MD_SIZE); 0, or -1 when the digest failed.  Once only.
 */
int avs_hashpipe_finish(avs_hashpipe_t *hp, unsigned char *md,
    unsigned int *len);

/* Stops the helper, if finish did not, and frees the pipe. */
void avs_hashpipe_free(avs_hashpipe_t *hp);

#endif /* AVS_HASHPIPE_H */
