/* Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c). Each target is one
 * LLVMFuzzerTestOneInput, linked either with libFuzzer (clang, -DFERRUM_FUZZ=ON) or with
 * tests/fuzz/driver.c, which replays corpus and regression files under CTest.
 *
 * Targets keep a little state in function-level statics (a scratch folder, tokenizers loaded once):
 * libFuzzer calls the entry point millions of times in one process and reloading a 10 MB
 * tokenizer.json per input would make the run useless. */
#ifndef FR_FUZZ_UTIL_H
#define FR_FUZZ_UTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferrum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant of the library (not a refused input): report and crash, so that libFuzzer
 * saves the input and the driver's test fails. */
#define FR_FUZZ_CHECK(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A piece of the input. Multi-file targets take their files separated by NUL bytes (the formats
 * involved are text, so a NUL cannot occur inside a valid one; the last part may hold NULs). */
typedef struct fr_fuzz_part {
    const uint8_t *p;
    size_t n;
} fr_fuzz_part;

/* Splits data into at most max parts at NUL bytes; returns how many there are (at least 1). */
static inline size_t fr_fuzz_split(const uint8_t *data, size_t size, fr_fuzz_part *parts,
                                   size_t max) {
    size_t k = 0, start = 0;
    for (size_t i = 0; i < size && k + 1 < max; i++) {
        if (data[i] == 0) {
            parts[k].p = data + start;
            parts[k].n = i - start;
            k++;
            start = i + 1;
        }
    }
    parts[k].p = data + start;
    parts[k].n = size - start;
    return k + 1;
}

/* A NUL-terminated copy (the library's JSON entry points take C strings). */
static inline char *fr_fuzz_strdup(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* The scratch folder's path (empty until fr_fuzz_dir creates it). */
static inline char *fr_fuzz_dir_path(void) {
    static char path[256];
    return path;
}

static inline void fr_fuzz_rmdir(void) {
    const char *dir = fr_fuzz_dir_path();
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A private scratch folder in RAM (/dev/shm, else $TMPDIR or /tmp) for APIs that only take paths,
 * created on first use and removed at exit. */
static inline const char *fr_fuzz_dir(void) {
    char *path = fr_fuzz_dir_path();
    if (path[0]) return path;
    struct stat sb;
    const char *base = "/dev/shm";
    if (stat(base, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(base, W_OK) != 0) {
        base = getenv("TMPDIR");
        if (!base || !*base) base = "/tmp";
    }
    snprintf(path, 256, "%s/ferrum-fuzz-XXXXXX", base);
    if (!mkdtemp(path)) {
        perror(path);
        abort();
    }
    atexit(fr_fuzz_rmdir);
    return path;
}

/* Writes a whole file (name inside the scratch folder) and returns its path in buf. */
static inline const char *fr_fuzz_write(const char *name, const void *data, size_t n, char *buf,
                                        size_t cap) {
    snprintf(buf, cap, "%s/%s", fr_fuzz_dir(), name);
    FILE *f = fopen(buf, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

static inline void fr_fuzz_remove(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fr_fuzz_dir(), name);
    unlink(p);
}

/* Folder of the real tokenizers (qwen3/ and llama3/, each tokenizer.json and
 * tokenizer_config.json): $FR_TEST_TOKENIZERS (the build unpacks them into
 * BUILD/test-data/tokenizers; CTest and scripts/sanitize-test.sh set it). */
static inline const char *fr_fuzz_tokenizers(void) {
    const char *d = getenv("FR_TEST_TOKENIZERS");
    if (!d || !*d) {
        fprintf(stderr, "fuzz: set FR_TEST_TOKENIZERS to a folder holding qwen3/ and llama3/\n");
        abort();
    }
    return d;
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as the tokenizer's
 * encoder requires: used to tell a refused input from a wrongly refused one. */
static inline bool fr_fuzz_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Loads a model as `ferrum run -m path` does (CPU, one thread) and, when it loads, runs a short
 * prefill and a decode step. Weights may be any bytes, so the logits may be anything, but they must
 * be computed without a crash or out-of-bounds access. */
static inline void fr_fuzz_load_and_run(const char *path) {
    fr_model_params mp = fr_model_default_params();
    mp.backend = "cpu";
    mp.n_threads = 1;
    fr_model *m = NULL;
    fr_error err = {0};
    if (fr_model_load(path, &mp, &m, &err) != FR_OK) {
        FR_FUZZ_CHECK(m == NULL, "failed load left a model");
        FR_FUZZ_CHECK(err.code != FR_OK && err.msg[0], "a failed load without a message");
        return;
    }
    fr_model_info info;
    fr_model_get_info(m, &info);
    const int vocab = fr_model_vocab_size(m);
    FR_FUZZ_CHECK(vocab > 0 && vocab == info.vocab, "vocab %d vs info %d", vocab, info.vocab);
    const int32_t *eos;
    int n_eos = fr_model_eos_ids(m, &eos);
    for (int i = 0; i < n_eos; i++)
        (void)fr_model_is_eos(m, eos[i]);
    fr_sampler_params sp = fr_sampler_default_params();
    (void)fr_model_sampling_defaults(m, &sp);
    (void)fr_model_decode_bytes(m, 3);
    fr_session_params ps = fr_session_default_params();
    ps.n_ctx = 4;
    fr_session *s = NULL;
    if (fr_session_create(m, &ps, &s, &err) == FR_OK) {
        float *logits = malloc(sizeof(float) * (size_t)vocab * 3);
        int32_t ids[3] = {0, vocab - 1, vocab / 2};
        if (logits && fr_session_eval(s, ids, 2, logits, &err) == FR_OK) {
            FR_FUZZ_CHECK(fr_session_pos(s) == 2, "pos %d after 2 tokens", fr_session_pos(s));
            (void)fr_session_eval_last(s, ids + 2, 1, logits, &err);
            /* past the end of the cache: refused, the session unchanged */
            FR_FUZZ_CHECK(fr_session_eval(s, ids, 3, logits, &err) != FR_OK,
                          "eval past n_ctx accepted");
        }
        free(logits);
        fr_session_free(s);
    }
    fr_model_free(m);
}

#endif
