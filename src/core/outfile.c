/* Safe output files (see outfile.h). */
#include "core/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"

typedef enum fr_outfile_kind {
    FR_OUTFILE_REPLACE,    /* temporary file renamed over a regular file or a new path */
    FR_OUTFILE_IN_PLACE,   /* FIFO or character device, opened for writing */
    FR_OUTFILE_DESCRIPTOR, /* "-", /dev/stdout and the like: an inherited descriptor */
} fr_outfile_kind;

struct fr_outfile {
    fr_outfile_kind kind;
    FILE *f;
    char *name;   /* as the caller spelled it */
    char *target; /* REPLACE: the final file the rename lands on (symlinks resolved) */
    char *tmp;    /* REPLACE: the temporary file beside it */
    bool replacing;
    bool unnamed;    /* REPLACE: the temporary file is an O_TMPFILE, named only at commit */
    struct stat old; /* REPLACE with replacing: the file being replaced */
};

/* Symlink hops followed before giving up, as the kernel's own limit. */
#define MAX_LINK_HOPS 40

static void outfile_free(fr_outfile *o) {
    free(o->name);
    free(o->target);
    free(o->tmp);
    free(o);
}

/* "-", /dev/stdin|stdout|stderr, /dev/fd/N, /proc/self/fd/N -> N; -1 for any other path. */
static int descriptor_of(const char *path) {
    if (!strcmp(path, "-") || !strcmp(path, "/dev/stdout")) return 1;
    if (!strcmp(path, "/dev/stderr")) return 2;
    if (!strcmp(path, "/dev/stdin")) return 0;
    const char *num = NULL;
    if (!strncmp(path, "/dev/fd/", 8))
        num = path + 8;
    else if (!strncmp(path, "/proc/self/fd/", 14))
        num = path + 14;
    if (!num || *num < '0' || *num > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(num, &end, 10);
    return errno || *end || v > INT_MAX ? -1 : (int)v;
}

static char *join_dir(const char *dir, size_t dir_len, const char *name) {
    size_t n = strlen(name);
    char *p = malloc(dir_len + n + 2);
    if (!p) return NULL;
    memcpy(p, dir, dir_len);
    p[dir_len] = '/';
    memcpy(p + dir_len + 1, name, n + 1);
    return p;
}

/* A path that does not exist may still be a dangling symlink (or a chain of them): the file to
 * create is the last link's target, so the link survives and points at the new file. */
static fr_status resolve_new(const char *path, char **out, fr_error *err) {
    char *cur = strdup(path);
    if (!cur) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    for (int hops = 0;; hops++) {
        struct stat ls;
        if (lstat(cur, &ls) != 0 || !S_ISLNK(ls.st_mode)) break;
        if (hops == MAX_LINK_HOPS) {
            free(cur);
            return fr_error_set(err, FR_ERR_IO, "%s: too many levels of symbolic links", path);
        }
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) {
            fr_status st = fr_error_set(err, FR_ERR_IO, "%s: cannot read the symbolic link %s: %s",
                                        path, cur, strerror(errno));
            free(cur);
            return st;
        }
        link[n] = 0;
        char *next;
        const char *slash = strrchr(cur, '/');
        if (link[0] == '/' || !slash)
            next = strdup(link);
        else
            next = join_dir(cur, (size_t)(slash - cur), link);
        free(cur);
        if (!next) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
        cur = next;
    }
    *out = cur;
    return FR_OK;
}

static fr_status check_inputs(const char *path, const struct stat *sb, const char *const *inputs,
                              size_t n_inputs, fr_error *err) {
    for (size_t i = 0; i < n_inputs; i++) {
        struct stat si;
        if (!inputs[i] || stat(inputs[i], &si) != 0) continue;
        if (si.st_dev != sb->st_dev || si.st_ino != sb->st_ino) continue;
        if (!strcmp(path, inputs[i]))
            return fr_error_set(err, FR_ERR_INVALID,
                                "%s: is an input file; refusing to write the output over it", path);
        return fr_error_set(err, FR_ERR_INVALID,
                            "%s: is the same file as the input %s; refusing to write the output "
                            "over it",
                            path, inputs[i]);
    }
    return FR_OK;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* Writes TARGET.tmp.XXXXXX into o->tmp (allocated by the caller), the attempt-th candidate. */
static void tmp_name(fr_outfile *o, uint64_t seed, int attempt) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = strlen(o->target);
    uint64_t r = mix64(seed + (uint64_t)attempt);
    memcpy(o->tmp, o->target, len);
    memcpy(o->tmp + len, ".tmp.", 5);
    for (int i = 0; i < 6; i++, r /= 36)
        o->tmp[len + 5 + i] = alphabet[r % 36];
    o->tmp[len + 11] = 0;
}

static uint64_t tmp_seed(const fr_outfile *o) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 42) ^
                 (uint64_t)(uintptr_t)o);
}

/* An unnamed file (O_TMPFILE) in the target's folder has no name until commit links it in, so a
 * process killed mid-write (Ctrl-C, SIGXFSZ, kill -9) leaves nothing behind. It needs a file
 * system that supports it and /proc to link it by; -1 means use a named temporary file. */
static int open_unnamed(const fr_outfile *o, mode_t mode) {
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) != 0) return -1;
    char *dir = folder_of(o->target);
    if (!dir) return -1;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    free(dir);
    return fd;
#else
    (void)o;
    (void)mode;
    return -1;
#endif
}

/* The temporary file beside the target: unnamed where possible, else TARGET.tmp.XXXXXX. Not
 * mkstemp, which fixes mode 0600: a new output is created 0666 so the kernel applies the umask
 * (and any default ACL) exactly as for a file the user creates; a replacement starts 0600 and
 * gets the old mode at commit. */
static fr_status create_tmp(fr_outfile *o, mode_t mode, fr_error *err) {
    o->tmp = malloc(strlen(o->target) + sizeof ".tmp.XXXXXX");
    if (!o->tmp) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", o->name);
    int fd = open_unnamed(o, mode);
    o->unnamed = fd >= 0;
    const uint64_t seed = tmp_seed(o);
    int attempt = 0;
    for (; fd < 0 && attempt < 100; attempt++) {
        tmp_name(o, seed, attempt);
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) break;
    }
    fr_status st = FR_OK;
    if (fd < 0) {
        st = attempt == 100
                 ? fr_error_set(err, FR_ERR_IO, "%s: no free temporary name beside it", o->name)
                 : fr_error_set(err, FR_ERR_IO,
                                "%s: cannot create the temporary file %s in its folder: %s",
                                o->name, o->tmp, strerror(errno));
    } else if (!(o->f = fdopen(fd, "wb"))) {
        st = fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", o->name);
        close(fd);
        if (!o->unnamed) unlink(o->tmp);
    }
    if (st || o->unnamed) {
        /* o->tmp names no file of ours (yet): abort must not remove it */
        free(o->tmp);
        o->tmp = NULL;
    }
    return st;
}

/* Gives an unnamed temporary file its TARGET.tmp.XXXXXX name, so rename can move it over the
 * target (linkat cannot replace a name). */
static fr_status name_unnamed(fr_outfile *o, int fd, fr_error *err) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    o->tmp = malloc(strlen(o->target) + sizeof ".tmp.XXXXXX");
    if (!o->tmp) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", o->name);
    const uint64_t seed = tmp_seed(o);
    for (int attempt = 0; attempt < 100; attempt++) {
        tmp_name(o, seed, attempt);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0) return FR_OK;
        if (errno != EEXIST) break;
    }
    fr_status st = fr_error_set(err, FR_ERR_IO, "%s: cannot link the temporary file in: %s",
                                o->name, strerror(errno));
    free(o->tmp);
    o->tmp = NULL;
    return st;
}

static fr_status open_descriptor(fr_outfile *o, int fd, const char *const *inputs, size_t n_inputs,
                                 fr_error *err) {
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return fr_error_set(err, FR_ERR_IO, "%s: descriptor %d is not open", o->name, fd);
    FR_TRY(check_inputs(o->name, &sb, inputs, n_inputs, err));
    /* a duplicate, so finishing the output never closes the process's own stdout */
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (d < 0) return fr_error_set(err, FR_ERR_IO, "%s: %s", o->name, strerror(errno));
    o->f = fdopen(d, "wb");
    if (!o->f) {
        close(d);
        return fr_error_set(err, FR_ERR_IO, "%s: %s", o->name, strerror(errno));
    }
    o->kind = FR_OUTFILE_DESCRIPTOR;
    return FR_OK;
}

static fr_status open_path(fr_outfile *o, const char *const *inputs, size_t n_inputs,
                           fr_error *err) {
    const char *path = o->name;
    size_t len = strlen(path);
    if (!len) return fr_error_set(err, FR_ERR_INVALID, "empty output path");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) return fr_error_set(err, FR_ERR_IO, "%s: %s", path, strerror(errno));
        if (path[len - 1] == '/')
            return fr_error_set(err, FR_ERR_INVALID, "%s: names a folder, not a file", path);
        o->kind = FR_OUTFILE_REPLACE;
        FR_TRY(resolve_new(path, &o->target, err));
        return create_tmp(o, 0666, err);
    }
    if (S_ISDIR(sb.st_mode))
        return fr_error_set(err, FR_ERR_INVALID, "%s: is a folder, not a file", path);
    if (!S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode) && !S_ISCHR(sb.st_mode))
        return fr_error_set(err, FR_ERR_UNSUPPORTED,
                            "%s: is a %s; outputs go to regular files, FIFOs, character devices "
                            "or '-' (standard output)",
                            path, S_ISBLK(sb.st_mode) ? "block device" : "socket");
    FR_TRY(check_inputs(path, &sb, inputs, n_inputs, err));
    if (S_ISREG(sb.st_mode)) {
        /* A rename needs only the folder's permission; a file the user may not write (a
         * read-only file, as `>` or fopen would find it) is refused rather than replaced. */
        if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0)
            return fr_error_set(err, FR_ERR_IO, "%s: %s", path, strerror(errno));
        o->kind = FR_OUTFILE_REPLACE;
        o->replacing = true;
        o->old = sb;
        o->target = realpath(path, NULL);
        if (!o->target) return fr_error_set(err, FR_ERR_IO, "%s: %s", path, strerror(errno));
        return create_tmp(o, 0600, err);
    }
    /* FIFO or character device: no O_TRUNC (meaningless there), no O_CREAT (it exists) */
    o->kind = FR_OUTFILE_IN_PLACE;
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return fr_error_set(err, FR_ERR_IO, "%s: %s", path, strerror(errno));
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        return fr_error_set(err, FR_ERR_IO, "%s: %s", path, strerror(errno));
    }
    return FR_OK;
}

fr_status fr_outfile_open(const char *path, const char *const *inputs, size_t n_inputs,
                          fr_outfile **out, fr_error *err) {
    if (!out) return fr_error_set(err, FR_ERR_INVALID, "fr_outfile_open: NULL argument");
    *out = NULL;
    if (!path) return fr_error_set(err, FR_ERR_INVALID, "fr_outfile_open: no path");
    fr_outfile *o = calloc(1, sizeof *o);
    if (!o) return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    o->name = strdup(path);
    if (!o->name) {
        free(o);
        return fr_error_set(err, FR_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = descriptor_of(path);
    fr_status st = fd >= 0 ? open_descriptor(o, fd, inputs, n_inputs, err)
                           : open_path(o, inputs, n_inputs, err);
    if (st) {
        fr_outfile_abort(o);
        return st;
    }
    *out = o;
    return FR_OK;
}

FILE *fr_outfile_stream(const fr_outfile *o) {
    return o->f;
}

const char *fr_outfile_name(const fr_outfile *o) {
    return o->name;
}

/* The rename is durable only once the folder entry is on disk; a file system that cannot fsync
 * a folder has already made the data durable, so a failure here is not an output failure. */
static void sync_folder(const char *target) {
    char *dir = folder_of(target);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

static fr_status commit_replace(fr_outfile *o, fr_error *err) {
    int fd = fileno(o->f);
    if (fflush(o->f) != 0 || ferror(o->f))
        return fr_error_set(err, FR_ERR_IO, "%s: write failed: %s", o->name,
                            strerror(errno ? errno : EIO));
    if (fsync(fd) != 0)
        return fr_error_set(err, FR_ERR_IO, "%s: fsync failed: %s", o->name, strerror(errno));
    if (o->replacing) {
        /* Ownership is kept where the caller may (root, or a group it belongs to); otherwise
         * the new file is the caller's, as with any editor that saves by rename. */
        if (o->old.st_uid != geteuid() || o->old.st_gid != getegid())
            if (fchown(fd, o->old.st_uid, o->old.st_gid) != 0)
                (void)!fchown(fd, (uid_t)-1, o->old.st_gid);
        /* set-id bits are not carried over to different contents */
        if (fchmod(fd, o->old.st_mode & 01777) != 0)
            return fr_error_set(err, FR_ERR_IO, "%s: cannot give the new file the old mode: %s",
                                o->name, strerror(errno));
    }
    if (o->unnamed) FR_TRY(name_unnamed(o, fd, err));
    FILE *f = o->f;
    o->f = NULL;
    if (fclose(f) != 0)
        return fr_error_set(err, FR_ERR_IO, "%s: close failed: %s", o->name, strerror(errno));
    if (rename(o->tmp, o->target) != 0)
        return fr_error_set(err, FR_ERR_IO, "%s: cannot rename %s into place: %s", o->name, o->tmp,
                            strerror(errno));
    free(o->tmp);
    o->tmp = NULL; /* it is the target now: nothing to remove */
    sync_folder(o->target);
    return FR_OK;
}

fr_status fr_outfile_commit(fr_outfile *o, fr_error *err) {
    if (!o) return fr_error_set(err, FR_ERR_INVALID, "fr_outfile_commit: NULL output");
    fr_status st;
    if (o->kind == FR_OUTFILE_REPLACE) {
        st = commit_replace(o, err);
    } else {
        FILE *f = o->f;
        o->f = NULL;
        int e = 0;
        if (fflush(f) != 0 || ferror(f)) e = errno ? errno : EIO;
        if (fclose(f) != 0 && !e) e = errno;
        st = e ? fr_error_set(err, FR_ERR_IO, "%s: write failed: %s", o->name, strerror(e)) : FR_OK;
    }
    fr_outfile_abort(o);
    return st;
}

void fr_outfile_abort(fr_outfile *o) {
    if (!o) return;
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    outfile_free(o);
}
