/* Tokenizer speed: encodes a few MB of generated mixed text (English, code, CJK, emoji, numbers)
 * on one core and reports MB/s, plus decode speed.
 * usage: bench_tokenizer [TOKENIZER_PATH ...] [--mb N]
 * Default paths: $FR_TEST_TOKENIZERS/{qwen3,llama3}, the test tokenizers the build unpacks
 * (FR_TEST_TOKENIZERS defaults to test-data/tokenizers: run it from the build folder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferrum.h"

typedef struct {
    char *p;
    size_t n, cap;
} text_buf;

static void put(text_buf *b, const char *s, size_t n) {
    while (b->n + n + 1 > b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1 << 20;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(1);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(text_buf *b, const char *s) {
    put(b, s, strlen(s));
}

static void put_cp(text_buf *b, unsigned cp) {
    char o[4];
    size_t n;
    if (cp < 0x80)
        o[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 63)),
        o[2] = (char)(0x80 | (cp & 63)), n = 3;
    else
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 63)),
        o[2] = (char)(0x80 | ((cp >> 6) & 63)), o[3] = (char)(0x80 | (cp & 63)), n = 4;
    put(b, o, n);
}

static uint64_t rng_state = 12345;
static unsigned rnd(unsigned n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng_state >> 33) % n);
}

static const char *words[] = {"the",
                              "of",
                              "and",
                              "to",
                              "in",
                              "is",
                              "was",
                              "that",
                              "for",
                              "it",
                              "with",
                              "as",
                              "on",
                              "be",
                              "at",
                              "by",
                              "this",
                              "had",
                              "not",
                              "are",
                              "but",
                              "from",
                              "or",
                              "have",
                              "an",
                              "they",
                              "which",
                              "one",
                              "you",
                              "were",
                              "her",
                              "all",
                              "she",
                              "there",
                              "would",
                              "their",
                              "we",
                              "him",
                              "been",
                              "has",
                              "when",
                              "who",
                              "will",
                              "more",
                              "no",
                              "if",
                              "out",
                              "so",
                              "said",
                              "what",
                              "up",
                              "its",
                              "about",
                              "into",
                              "than",
                              "them",
                              "can",
                              "only",
                              "other",
                              "new",
                              "some",
                              "could",
                              "time",
                              "these",
                              "two",
                              "may",
                              "then",
                              "do",
                              "first",
                              "any",
                              "my",
                              "now",
                              "such",
                              "like",
                              "our",
                              "over",
                              "man",
                              "me",
                              "even",
                              "most",
                              "made",
                              "after",
                              "also",
                              "did",
                              "many",
                              "before",
                              "must",
                              "through",
                              "back",
                              "years",
                              "where",
                              "much",
                              "your",
                              "way",
                              "well",
                              "down",
                              "should",
                              "because",
                              "each",
                              "just",
                              "those",
                              "people",
                              "how",
                              "too",
                              "little",
                              "state",
                              "good",
                              "very",
                              "make",
                              "world",
                              "still",
                              "own",
                              "see",
                              "men",
                              "work",
                              "long",
                              "get",
                              "here",
                              "between",
                              "both",
                              "life",
                              "being",
                              "under",
                              "never",
                              "day",
                              "same",
                              "another",
                              "know",
                              "while",
                              "last",
                              "might",
                              "us",
                              "great",
                              "old",
                              "year",
                              "off",
                              "come",
                              "since",
                              "against",
                              "go",
                              "came",
                              "right",
                              "used",
                              "take",
                              "three",
                              "tokenizer",
                              "inference",
                              "kernel",
                              "bandwidth",
                              "throughput",
                              "latency",
                              "transformer",
                              "attention",
                              "quantization",
                              "Wednesday",
                              "government",
                              "development",
                              "international",
                              "responsibility",
                              "characteristically",
                              "I'm",
                              "don't",
                              "we'll",
                              "they're",
                              "it's",
                              "you've",
                              "she'd"};

static void gen_english(text_buf *b) {
    int n = 8 + (int)rnd(20);
    for (int i = 0; i < n; i++) {
        const char *w = words[rnd(sizeof words / sizeof *words)];
        if (i) puts_(b, " ");
        if (i == 0 || rnd(15) == 0) {
            char c[64];
            snprintf(c, sizeof c, "%s", w);
            c[0] = (char)(c[0] >= 'a' && c[0] <= 'z' ? c[0] - 32 : c[0]);
            puts_(b, c);
        } else {
            puts_(b, w);
        }
        if (rnd(9) == 0) puts_(b, rnd(2) ? "," : ";");
    }
    puts_(b, rnd(5) ? ". " : "?\n");
}

static void gen_ident(text_buf *b) {
    int n = 3 + (int)rnd(10);
    for (int i = 0; i < n; i++) {
        char c = (char)(rnd(7) == 0 ? '_' : 'a' + rnd(26));
        if (rnd(6) == 0) c = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        put(b, &c, 1);
    }
}

static void gen_code(text_buf *b) {
    int lines = 2 + (int)rnd(6);
    puts_(b, "static int ");
    gen_ident(b);
    puts_(b, "(const float *x, size_t n) {\n");
    for (int l = 0; l < lines; l++) {
        char num[32];
        puts_(b, rnd(3) ? "    " : "\t");
        gen_ident(b);
        puts_(b, rnd(2) ? " += " : " = ");
        gen_ident(b);
        puts_(b, "[i * ");
        snprintf(num, sizeof num, "%u", rnd(100000));
        puts_(b, num);
        puts_(b, rnd(2) ? "] >> 2;" : "] * 0.5f; // ");
        if (rnd(3) == 0) puts_(b, "TODO: check bounds");
        puts_(b, "\n");
    }
    puts_(b, "    return 0;\n}\n\n");
}

static void gen_cjk(text_buf *b) {
    int n = 10 + (int)rnd(40);
    for (int i = 0; i < n; i++) {
        unsigned r = rnd(10);
        if (r < 6)
            put_cp(b, 0x4E00 + rnd(0x2000)); /* common CJK ideographs block start */
        else if (r < 8)
            put_cp(b, 0x3041 + rnd(0x56)); /* hiragana */
        else if (r < 9)
            put_cp(b, 0xAC00 + rnd(2000)); /* hangul */
        else
            put_cp(b, rnd(2) ? 0x3002 : 0xFF0C); /* 。， */
    }
    puts_(b, "\n");
}

static void gen_emoji(text_buf *b) {
    int n = 1 + (int)rnd(6);
    for (int i = 0; i < n; i++) {
        put_cp(b, 0x1F600 + rnd(0x50));
        if (rnd(4) == 0) put_cp(b, 0x1F3FB + rnd(5)); /* skin tone */
        if (rnd(5) == 0) {
            put_cp(b, 0x200D);
            put_cp(b, 0x1F466 + rnd(4));
        }
    }
    puts_(b, rnd(2) ? " " : "!\n");
}

static void gen_numbers(text_buf *b) {
    char s[96];
    switch (rnd(4)) {
    case 0:
        snprintf(s, sizeof s, "%u.%02u%% ", rnd(100), rnd(100));
        break;
    case 1:
        snprintf(s, sizeof s, "%04u-%02u-%02u ", 1900 + rnd(200), 1 + rnd(12), 1 + rnd(28));
        break;
    case 2:
        snprintf(s, sizeof s, "%u%u%u ", rnd(1000000), rnd(1000000), rnd(1000));
        break;
    default:
        snprintf(s, sizeof s, "$%u,%03u.%02u ", rnd(1000), rnd(1000), rnd(100));
        break;
    }
    puts_(b, s);
}

static char *make_text(size_t target, size_t *len) {
    text_buf b = {0};
    while (b.n < target) {
        unsigned r = rnd(100);
        if (r < 45)
            gen_english(&b);
        else if (r < 65)
            gen_code(&b);
        else if (r < 80)
            gen_cjk(&b);
        else if (r < 88)
            gen_emoji(&b);
        else
            gen_numbers(&b);
    }
    b.p[b.n] = '\0';
    *len = b.n;
    return b.p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a busy shared machine it leaves out the time spent waiting for a
 * core, which wall time cannot. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_one(const char *path, const char *text, size_t len) {
    fr_error err = {0};
    fr_tokenizer *tok = NULL;
    double t0 = now();
    if (fr_tokenizer_load(path, &tok, &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    double t_load = now() - t0;
    double best = 1e30, first = 0, best_cpu = 1e30;
    int32_t *ids = NULL;
    size_t n = 0;
    for (int run = 0; run < 3; run++) {
        free(ids);
        ids = NULL;
        double c0 = cpu_now();
        t0 = now();
        if (fr_tokenizer_encode(tok, text, len, false, &ids, &n, &err)) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            fr_tokenizer_free(tok);
            return 1;
        }
        double dt = now() - t0, dc = cpu_now() - c0;
        if (run == 0) first = dt;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    char *dec = NULL;
    size_t dlen = 0;
    t0 = now();
    fr_status st = fr_tokenizer_decode(tok, ids, n, false, &dec, &dlen, &err);
    double t_dec = now() - t0;
    double mb = (double)len / 1e6;
    printf("%s\n  load %.0f ms; %.2f MB -> %zu tokens (%.2f bytes/token)\n", path, t_load * 1e3, mb,
           n, (double)len / (double)n);
    printf("  encode: %.1f MB/s wall, %.1f MB/s per CPU second (first run, cold word cache: "
           "%.1f MB/s wall)\n",
           mb / best, mb / best_cpu, mb / first);
    printf("  decode: %.1f MB/s, round trip %s\n", st ? 0.0 : (double)dlen / 1e6 / t_dec,
           !st && dlen == len && !memcmp(dec, text, len) ? "exact" : "DIFFERS");
    free(dec);
    free(ids);
    fr_tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv) {
    double mbs = 4.0;
    const char *paths[16];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mbs = atof(argv[++i]);
        else if (np < 16)
            paths[np++] = argv[i];
    }
    char defaults[2][1024];
    if (np == 0) {
        const char *dir = getenv("FR_TEST_TOKENIZERS");
        if (!dir) dir = "test-data/tokenizers";
        snprintf(defaults[0], sizeof defaults[0], "%s/qwen3", dir);
        snprintf(defaults[1], sizeof defaults[1], "%s/llama3", dir);
        paths[np++] = defaults[0];
        paths[np++] = defaults[1];
    }
    size_t len;
    char *text = make_text((size_t)(mbs * 1e6), &len);
    printf("mixed text: %.2f MB (English, code, CJK, emoji, numbers), one thread\n", len / 1e6);
    int rc = 0;
    for (int i = 0; i < np; i++)
        rc |= bench_one(paths[i], text, len);
    free(text);
    return rc;
}
