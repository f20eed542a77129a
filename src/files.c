/* files.c — the files a command writes: never one of its inputs or another
 * of its outputs, and each written whole or not at all.
 *
 * Two paths name one file when stat gives both the same device and inode
 * (hard links and symbolic links included); an output that does not exist
 * yet is compared by its canonical name (the real path of its folder, then
 * its base name).  An output is written to a temporary file in its own
 * folder and renamed over the target only once complete, so a failed or
 * interrupted compile leaves the old file (or none), never a truncated
 * one.  Outputs that are not regular files (/dev/null, a FIFO) are written
 * in place: renaming over them would replace the device node. */
#include "gradc.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The canonical name of a path whose file may not exist yet. */
static const char *canonical(Arena *a, const char *path)
{
    char *dcopy = arena_strdup(a, path), *bcopy = arena_strdup(a, path);
    char dir[PATH_MAX];
    if (!realpath(dirname(dcopy), dir))
        return path;
    return arena_printf(a, "%s/%s", dir, basename(bcopy));
}

static bool same_file(Arena *a, const char *p, const char *q)
{
    struct stat sp, sq;
    bool ep = stat(p, &sp) == 0, eq = stat(q, &sq) == 0;
    if (ep && eq)   /* devices (/dev/null for both outputs) are not overwritten */
        return sp.st_dev == sq.st_dev && sp.st_ino == sq.st_ino && S_ISREG(sp.st_mode);
    if (ep || eq)
        return false;
    return strcmp(canonical(a, p), canonical(a, q)) == 0;
}

bool files_distinct(Arena *a, const char *cmd, const FileRole *files, int n)
{
    for (int i = 0; i < n; i++) {
        if (!files[i].path || files[i].input)
            continue;
        for (int k = 0; k < n; k++) {
            if (k == i || !files[k].path || (!files[k].input && k > i))
                continue;
            if (!same_file(a, files[i].path, files[k].path))
                continue;
            if (files[k].input)
                diag_plain("%s: %s '%s' is %s; refusing to overwrite it", cmd, files[i].role,
                           files[i].path, files[k].role);
            else
                diag_plain("%s: %s and %s name one file ('%s'); give them different names", cmd,
                           files[k].role, files[i].role, files[i].path);
            return false;
        }
    }
    return true;
}

/* ---- atomic writes ---- */

const char *out_begin(Arena *a, const char *path)
{
    struct stat st;
    char real[PATH_MAX];
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real))
        path = arena_strdup(a, real);           /* write through a symbolic link */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return path;                            /* /dev/null, a FIFO: in place */
    char *dcopy = arena_strdup(a, path), *bcopy = arena_strdup(a, path);
    char *tmp = arena_printf(a, "%s/.%s.XXXXXX", dirname(dcopy), basename(bcopy));
    int fd = mkstemp(tmp);
    if (fd < 0) {
        diag_plain("cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    /* mkstemp makes the file 0600; give it the mode a plain create would */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || close(fd) != 0) {
        diag_plain("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return NULL;
    }
    return tmp;
}

bool out_end(const char *tmp, const char *path, bool ok)
{
    char real[PATH_MAX];
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(path, real))
        path = real;
    if (strcmp(tmp, path) == 0)
        return ok;
    if (ok && rename(tmp, path) == 0)
        return true;
    if (ok)
        diag_plain("cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return false;
}

FILE *out_open(Arena *a, const char *path, const char **tmp)
{
    *tmp = out_begin(a, path);
    if (!*tmp)
        return NULL;
    FILE *f = fopen(*tmp, "w");
    if (!f) {
        diag_plain("cannot write %s: %s", path, strerror(errno));
        out_end(*tmp, path, false);
    }
    return f;
}

bool out_close(FILE *f, const char *tmp, const char *path)
{
    bool ok = !ferror(f);
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        diag_plain("cannot write %s: %s", path, strerror(errno));
    return out_end(tmp, path, ok);
}
