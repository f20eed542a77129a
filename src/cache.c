/* cache.c — compiled objects on disk, addressed by the SHA-256 of what
 * determines them (jit.c builds the key).
 *
 * Where: $XDG_CACHE_HOME/gradc (an absolute path, as the XDG spec asks),
 * else $HOME/.cache/gradc; GRADC_NO_CACHE=1 turns the cache off.
 * An entry is the file HEX.o (HEX: the key) holding
 *     magic "gradcob1" | payload length (8 bytes) | key | SHA-256 of payload | payload
 * and is trusted only when all of it checks out, so a truncated, corrupt or
 * misplaced file is a miss (the caller compiles and stores a good entry
 * over it).  Writers write a temporary file in the same directory and
 * rename it into place: concurrent runs each see either no entry or a whole
 * one.  Nothing here is fatal; GRADC_CACHE_TRACE=1 says on stderr what
 * happened (the tests read it). */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'g', 'r', 'a', 'd', 'c', 'o', 'b', '1'};

typedef struct Header {
    char magic[8];
    uint64_t len;
    unsigned char key[CACHE_KEY_SIZE];
    unsigned char sum[SHA256_DIGEST_SIZE];
} Header;

static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static void trace(const char *what, const CacheKey *k)
{
    if (env_on("GRADC_CACHE_TRACE"))
        fprintf(stderr, "gradc: cache: %s %02x%02x%02x%02x\n", what, k->hash[0], k->hash[1], k->hash[2],
                k->hash[3]);
}

void cache_key(CacheKey *k, const void *const *parts, const size_t *lens, int n)
{
    struct sha256_ctx c;
    sha256_init(&c);
    for (int i = 0; i < n; i++) {
        uint64_t len = lens[i];
        sha256_update(&c, sizeof len, (const uint8_t *)&len);
        sha256_update(&c, lens[i], parts[i]);
    }
    sha256_digest(&c, CACHE_KEY_SIZE, k->hash);
}

static void checksum(const void *data, size_t len, unsigned char sum[SHA256_DIGEST_SIZE])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, len, data);
    sha256_digest(&c, SHA256_DIGEST_SIZE, sum);
}

/* The cache directory (malloc'd), or NULL when the cache is off. */
static char *cache_dir(void)
{
    if (env_on("GRADC_NO_CACHE"))
        return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *dir = NULL;
    int rc = xdg && xdg[0] == '/' ? asprintf(&dir, "%s/gradc", xdg)
           : home && home[0] == '/' ? asprintf(&dir, "%s/.cache/gradc", home)
           : -1;
    return rc < 0 ? NULL : dir;
}

/* DIR/HEX.o, or DIR/.HEX.XXXXXX (a mkstemp template) with tmp. */
static char *entry_path(const char *dir, const CacheKey *k, bool tmp)
{
    char hex[2 * CACHE_KEY_SIZE + 1];
    for (int i = 0; i < CACHE_KEY_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", k->hash[i]);
    char *p = NULL;
    int rc = tmp ? asprintf(&p, "%s/.%s.XXXXXX", dir, hex) : asprintf(&p, "%s/%s.o", dir, hex);
    return rc < 0 ? NULL : p;
}

/* Reads (or, with out, writes) all of buf, across short counts and EINTR. */
static bool transfer(int fd, void *buf, size_t len, bool out)
{
    for (char *p = buf; len > 0;) {
        ssize_t n = out ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n, len -= (size_t)n;
    }
    return true;
}

/* The payload of an open entry file when every check passes. */
static void *read_entry(int fd, const CacheKey *k, size_t *len)
{
    struct stat st;
    Header h;
    if (fstat(fd, &st) || (size_t)st.st_size < sizeof h || !transfer(fd, &h, sizeof h, false))
        return NULL;
    if (memcmp(h.magic, MAGIC, sizeof MAGIC) || memcmp(h.key, k->hash, CACHE_KEY_SIZE) ||
        h.len != (uint64_t)st.st_size - sizeof h)
        return NULL;
    void *data = malloc(h.len ? h.len : 1);
    unsigned char sum[SHA256_DIGEST_SIZE];
    if (data && transfer(fd, data, h.len, false)) {
        checksum(data, h.len, sum);
        if (!memcmp(sum, h.sum, sizeof sum)) {
            *len = h.len;
            return data;
        }
    }
    free(data);
    return NULL;
}

void *cache_load(const CacheKey *k, size_t *len)
{
    char *dir = cache_dir(), *path = dir ? entry_path(dir, k, false) : NULL;
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    void *data = fd >= 0 ? read_entry(fd, k, len) : NULL;
    trace(!dir ? "off" : data ? "hit" : fd >= 0 ? "corrupt" : "miss", k);
    if (fd >= 0)
        close(fd);
    free(path);
    free(dir);
    return data;
}

/* mkdir -p of dir, private to the user as the XDG spec asks. */
static bool make_dirs(char *dir)
{
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        bool ok = mkdir(dir, 0700) == 0 || errno == EEXIST;
        *p = c;
        if (!ok)
            return false;
        if (!c)
            return true;
    }
}

void cache_store(const CacheKey *k, const void *data, size_t len)
{
    char *dir = cache_dir();
    if (!dir)
        return;
    char *tmp = make_dirs(dir) ? entry_path(dir, k, true) : NULL, *path = tmp ? entry_path(dir, k, false) : NULL;
    int fd = path ? mkstemp(tmp) : -1;
    bool stored = false;
    if (fd >= 0) {
        Header h = {.len = len};
        memcpy(h.magic, MAGIC, sizeof MAGIC);
        memcpy(h.key, k->hash, CACHE_KEY_SIZE);
        checksum(data, len, h.sum);
        stored = transfer(fd, &h, sizeof h, true) && transfer(fd, (void *)data, len, true);
        stored = close(fd) == 0 && stored && rename(tmp, path) == 0;
        if (!stored)
            unlink(tmp);
    }
    trace(stored ? "stored" : "not stored", k);
    free(path);
    free(tmp);
    free(dir);
}
