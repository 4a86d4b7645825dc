/* Replays fuzz inputs without libFuzzer: `fuzz_<target> FILE|DIR...` calls the target's
 * LLVMFuzzerTestOneInput once per file (folders are read one level deep, in name order). CTest runs
 * every target this way over tests/fuzz/corpus/<target> and tests/fuzz/regress/<target> with the
 * normal compiler, so the seeds and every crasher ever found stay regression tests. A crash or a
 * failed check inside the target fails the test; so does finding no input at all (a corpus that
 * went missing must not pass silently). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads and runs one file; returns 0 when it ran, -1 when it could not be read. */
static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return -1;
    }
    /* Named before running, so that the log of a crash says which input it was. */
    fprintf(stderr, "  %s (%zu bytes)\n", path, n);
    /* An exact-size copy, so that ASan catches a read one byte past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
    long ran = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (run_file(argv[i]) == 0)
                ran++;
            else
                failed = 1;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            failed = 1;
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            /* dot files (.gitkeep) are not inputs */
            if (names[k]->d_name[0] != '.' && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                if (run_file(path) == 0)
                    ran++;
                else
                    failed = 1;
            }
            free(names[k]);
        }
        free(names);
    }
    fprintf(stderr, "%s: %ld inputs run%s\n", argv[0], ran, failed ? ", some unreadable" : "");
    if (ran == 0) {
        fprintf(stderr, "%s: no input found\n", argv[0]);
        return 1;
    }
    return failed;
}
