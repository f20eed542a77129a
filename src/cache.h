/* cache.h — the content-addressed cache of compiled objects that `gradc
 * eval` (jit.c) loads instead of compiling.  Private to jit.c and cache.c;
 * no LLVM here.  docs/language.md (Command line) says what a key holds. */
#ifndef GRADC_CACHE_H
#define GRADC_CACHE_H

#include <stddef.h>

enum { CACHE_KEY_SIZE = 32 };   /* SHA-256 */

typedef struct CacheKey {
    unsigned char hash[CACHE_KEY_SIZE];
} CacheKey;

/* The SHA-256 of the n parts, each prefixed by its length (so that no two
 * different lists of parts hash the same bytes). */
void cache_key(CacheKey *k, const void *const *parts, const size_t *lens, int n);

/* The payload stored under k (malloc'd; *len its size), or NULL when the
 * cache is disabled, has no entry, or the entry is corrupt or truncated. */
void *cache_load(const CacheKey *k, size_t *len);

/* Stores data under k: a temporary file in the cache directory, renamed
 * into place, so readers never see a partial entry.  Best effort: any
 * failure (unwritable directory, full disk) leaves the cache as it was. */
void cache_store(const CacheKey *k, const void *data, size_t len);

#endif
