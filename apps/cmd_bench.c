/* ferrum bench: prompt processing (pp) and token generation (tg) speed, in the manner of
 * llama-bench. ppP prefills P random valid ids into an empty cache; tgN runs N decode steps of
 * one token from an empty cache. With -d D the cache first holds D prefilled tokens (not timed),
 * so "tg32 @ d4096" is decode speed at a context of 4096, as llama-bench's -d. Each test runs once
 * to warm up, then -r times; the median is reported. tg rows also give the bytes one step reads
 * (weights as stored + the KV cache rows attention visits, averaged over the steps), GB/s = bytes x
 * tok/s, and that as a share of the read bandwidth the bench measures on this machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ferrum bench -m PATH [options]\n");
    fr_cli_usage_model(f);
    fprintf(
        f,
        "  -p, --n-prompt LIST     prompt lengths to test, comma-separated (default 128); "
        "0 = none\n"
        "  -n, --n-gen N           decode steps to test (default 32); 0 = none\n"
        "  -d, --n-depth LIST      tokens already in the cache before each test, comma-separated\n"
        "                          (default 0): prefilled untimed, as llama-bench's -d\n"
        "  -r, --repeats N         timed runs per test after one warm-up (default 3)\n"
        "  -b, --batch N           prefill chunk size in tokens (default: the session's, 256 on\n"
        "                          the CPU, 2048 on a GPU)\n"
        "  --no-bandwidth          skip measuring the machine's read bandwidth\n"
        "  --json                  one JSON object on stdout instead of the table\n");
}

typedef struct {
    char name[48];
    int n_prompt, n_gen, n_depth;
    double tok_s; /* median */
    double min_tok_s, max_tok_s;
    double bytes_per_token; /* tg only */
    double gbps;            /* tg only */
} bench_row;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* xorshift64*: random prompt ids, the same every run */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Empties the cache and prefills ids[0..depth) untimed: the context a test starts from. */
static fr_status start_at_depth(fr_session *s, const int32_t *ids, int depth, float *logits,
                                fr_error *err) {
    fr_session_reset(s);
    return depth ? fr_session_eval_last(s, ids, depth, logits, err) : FR_OK;
}

/* One timed test after `depth` tokens: a prefill of n tokens, or n decode steps (is_tg). */
static fr_status time_test(fr_session *s, const int32_t *ids, int depth, int n, bool is_tg,
                           float *logits, double *sec, fr_error *err) {
    fr_status st = start_at_depth(s, ids, depth, logits, err);
    if (st) return st;
    const int32_t *next = ids + depth;
    double t0 = fr_cli_now();
    if (!is_tg) {
        st = fr_session_eval_last(s, next, n, logits, err);
    } else {
        for (int i = 0; i < n && !st; i++)
            st = fr_session_eval_last(s, &next[i], 1, logits, err);
    }
    *sec = fr_cli_now() - t0;
    return st;
}

static void human_bytes(double b, char *buf, size_t n) {
    if (b >= 1e9)
        snprintf(buf, n, "%.2f GB", b / 1e9);
    else
        snprintf(buf, n, "%.1f MB", b / 1e6);
}

static void human_count(double v, char *buf, size_t n) {
    if (v >= 1e9)
        snprintf(buf, n, "%.2f B", v / 1e9);
    else
        snprintf(buf, n, "%.1f M", v / 1e6);
}

int fr_cmd_bench(int argc, char **argv) {
    fr_cli c;
    fr_cli_init(&c, "bench");
    int *pp = NULL, n_pp = 0, *depths = NULL, n_depths = 0;
    int n_gen = 32, repeats = 3, batch = 0;
    bool json = false, measure_bw = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = fr_cli_parse_flag(&c, argc, argv, &i, false);
        if (r < 0) goto usage_error;
        if (r > 0) continue;
        const bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            free(pp);
            free(depths);
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-bandwidth")) {
            measure_bw = false;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) && has_val) {
            free(pp);
            pp = NULL;
            if (fr_cli_int_list("bench", a, argv[++i], 0, 1 << 20, &pp, &n_pp)) goto usage_error;
        } else if ((!strcmp(a, "-d") || !strcmp(a, "--n-depth")) && has_val) {
            free(depths);
            depths = NULL;
            if (fr_cli_int_list("bench", a, argv[++i], 0, 1 << 20, &depths, &n_depths))
                goto usage_error;
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-gen")) && has_val) {
            if (fr_cli_int("bench", a, argv[++i], 0, 1 << 20, &n_gen)) goto usage_error;
        } else if ((!strcmp(a, "-r") || !strcmp(a, "--repeats")) && has_val) {
            if (fr_cli_int("bench", a, argv[++i], 1, 1000, &repeats)) goto usage_error;
        } else if ((!strcmp(a, "-b") || !strcmp(a, "--batch")) && has_val) {
            if (fr_cli_int("bench", a, argv[++i], 1, 1 << 20, &batch)) goto usage_error;
        } else {
            fprintf(stderr, "ferrum bench: unknown or incomplete option '%s'\n", a);
            goto usage_error;
        }
    }
    if (!c.model_path) {
        fprintf(stderr, "ferrum bench: -m PATH is required\n");
        goto usage_error;
    }
    if (!pp) {
        pp = malloc(sizeof *pp);
        if (!pp) return 1;
        pp[0] = 128;
        n_pp = 1;
    }
    if (!depths) {
        depths = calloc(1, sizeof *depths);
        if (!depths) {
            free(pp);
            return 1;
        }
        n_depths = 1;
    }

    int rc = 1;
    fr_model *model = NULL;
    fr_session *s = NULL;
    float *logits = NULL;
    int32_t *ids = NULL;
    double *samples = NULL;
    bench_row *rows = calloc(((size_t)n_pp + 1) * (size_t)n_depths, sizeof *rows);
    int n_rows = 0;
    fr_error err = {0};
    double load_s;
    if (!rows) goto done;
    if (fr_cli_load_model(&c, &model, &load_s)) goto done;
    fr_model_info info;
    fr_model_get_info(model, &info);

    int max_tokens = n_gen, max_depth = 0;
    for (int i = 0; i < n_pp; i++)
        if (pp[i] > max_tokens) max_tokens = pp[i];
    for (int i = 0; i < n_depths; i++)
        if (depths[i] > max_depth) max_depth = depths[i];
    max_tokens += max_depth;
    if (max_tokens < 1) max_tokens = 1;
    if (max_tokens > info.max_context) {
        fprintf(stderr, "ferrum bench: %d tokens exceed the model's context of %d\n", max_tokens,
                info.max_context);
        goto done;
    }
    fr_session_params sp = fr_session_default_params();
    sp.n_ctx = c.n_ctx ? c.n_ctx : max_tokens;
    if (sp.n_ctx < max_tokens) {
        fprintf(stderr, "ferrum bench: --ctx %d is smaller than the longest test (%d tokens)\n",
                sp.n_ctx, max_tokens);
        goto done;
    }
    sp.n_batch = batch;
    sp.compute = c.compute;
    if (fr_session_create(model, &sp, &s, &err)) goto fail;
    batch = fr_session_n_batch(s);
    logits = malloc(sizeof(float) * (size_t)info.vocab);
    ids = malloc(sizeof(int32_t) * (size_t)max_tokens);
    samples = malloc(sizeof(double) * (size_t)repeats);
    if (!logits || !ids || !samples) goto fail_oom;
    uint64_t seed = 0x243f6a8885a308d3ull;
    for (int i = 0; i < max_tokens; i++)
        ids[i] = (int32_t)(rng_next(&seed) % (uint64_t)info.vocab);

    for (int t = 0; t < (n_pp + 1) * n_depths; t++) {
        const int depth = depths[t / (n_pp + 1)];
        const bool is_tg = t % (n_pp + 1) == n_pp;
        const int n = is_tg ? n_gen : pp[t % (n_pp + 1)];
        if (n == 0) continue;
        double sec;
        /* the first run pays for page faults, caches and lazy set-up: not counted */
        fr_status st = time_test(s, ids, depth, n, is_tg, logits, &sec, &err);
        for (int r = 0; !st && r < repeats; r++) {
            st = time_test(s, ids, depth, n, is_tg, logits, &sec, &err);
            samples[r] = n / (sec > 0 ? sec : 1e-12);
        }
        if (st) goto fail;
        bench_row *row = &rows[n_rows++];
        if (depth)
            snprintf(row->name, sizeof row->name, "%s%d @ d%d", is_tg ? "tg" : "pp", n, depth);
        else
            snprintf(row->name, sizeof row->name, "%s%d", is_tg ? "tg" : "pp", n);
        row->n_prompt = is_tg ? 0 : n;
        row->n_gen = is_tg ? n : 0;
        row->n_depth = depth;
        row->tok_s = median(samples, repeats);
        row->min_tok_s = samples[0];
        row->max_tok_s = samples[repeats - 1];
        if (is_tg) {
            double bytes = 0;
            for (int i = 0; i < n; i++)
                bytes += (double)fr_session_decode_bytes(s, depth + i);
            row->bytes_per_token = bytes / n;
            row->gbps = row->bytes_per_token * row->tok_s / 1e9;
        }
        if (!json && isatty(STDERR_FILENO)) fprintf(stderr, "  %s done\n", row->name);
    }
    /* measured last, so it does not evict the weights before the timed runs */
    double bw = 0;
    const char *bw_note = NULL;
    fr_error bw_err = {0};
    if (measure_bw && fr_measure_read_bandwidth(model, c.mp.n_threads, 0, &bw, &bw_err)) {
        bw = 0;
        bw_note = bw_err.msg;
    } else if (!measure_bw) {
        bw_note = "not measured (--no-bandwidth)";
    }

    long threads = c.mp.n_threads;
    if (threads == 0) threads = sysconf(_SC_NPROCESSORS_ONLN);
    /* host threads only matter where the CPU computes */
    const bool on_cpu = !strcmp(info.backend, "cpu");
    char threads_s[24] = "-";
    if (on_cpu) snprintf(threads_s, sizeof threads_s, "%ld", threads);
    if (json) {
        char *mj = fr_cli_json_string(c.model_path);
        char *nj = bw_note ? fr_cli_json_string(bw_note) : NULL;
        printf("{\"model\":%s,\"arch\":\"%s\",\"weight_dtypes\":\"%s\",\"weight_bytes\":%zu,"
               "\"n_params\":%lld,\"backend\":\"%s\",\"compute\":\"%s\",\"threads\":%s,"
               "\"batch\":%d,\"repeats\":%d,\"load_s\":%.4f,",
               mj ? mj : "\"\"", info.family, info.weight_dtypes, info.weight_bytes,
               (long long)info.n_params, info.backend, fr_compute_type_name(c.compute),
               on_cpu ? threads_s : "null", batch, repeats, load_s);
        if (bw > 0)
            printf("\"read_bandwidth_gbps\":%.3f,", bw);
        else
            printf("\"read_bandwidth_gbps\":null,\"read_bandwidth_note\":%s,", nj ? nj : "null");
        printf("\"results\":[");
        for (int i = 0; i < n_rows; i++) {
            const bench_row *r = &rows[i];
            printf("%s{\"test\":\"%s\",\"n_prompt\":%d,\"n_gen\":%d,\"n_depth\":%d,"
                   "\"tok_s\":%.3f,\"tok_s_min\":%.3f,\"tok_s_max\":%.3f",
                   i ? "," : "", r->name, r->n_prompt, r->n_gen, r->n_depth, r->tok_s, r->min_tok_s,
                   r->max_tok_s);
            if (r->n_gen) {
                printf(",\"bytes_per_token\":%.0f,\"gbps\":%.3f", r->bytes_per_token, r->gbps);
                if (bw > 0)
                    printf(",\"pct_of_read_bandwidth\":%.2f", 100.0 * r->gbps / bw);
                else
                    printf(",\"pct_of_read_bandwidth\":null");
            }
            printf("}");
        }
        printf("]}\n");
        free(mj);
        free(nj);
    } else {
        char size[32], params[32];
        human_bytes((double)info.weight_bytes, size, sizeof size);
        human_count((double)info.n_params, params, sizeof params);
        printf("| %-20s | %10s | %9s | %-7s | %7s | %14s | %12s | %10s | %8s | %7s |\n", "model",
               "size", "params", "backend", "threads", "test", "t/s", "MB/token", "GB/s", "% peak");
        printf("| %.20s | %.10s | %.9s | %.7s | %.7s | %.14s | %.12s | %.10s | %.8s | %.7s |\n",
               "------------------------------", "------------------------------",
               "------------------------------", "------------------------------",
               "------------------------------", "------------------------------",
               "------------------------------", "------------------------------",
               "------------------------------", "------------------------------");
        char label[128];
        snprintf(label, sizeof label, "%s %s", info.family, info.weight_dtypes);
        for (int i = 0; i < n_rows; i++) {
            const bench_row *r = &rows[i];
            char tps[32], mb[16] = "-", gbs[16] = "-", pct[16] = "-";
            snprintf(tps, sizeof tps, "%.2f", r->tok_s);
            if (r->n_gen) {
                snprintf(mb, sizeof mb, "%.1f", r->bytes_per_token / 1e6);
                snprintf(gbs, sizeof gbs, "%.2f", r->gbps);
                if (bw > 0) snprintf(pct, sizeof pct, "%.1f", 100.0 * r->gbps / bw);
            }
            printf("| %-20.20s | %10s | %9s | %-7s | %7s | %14s | %12s | %10s | %8s | %7s |\n",
                   label, size, params, info.backend, threads_s, r->name, tps, mb, gbs, pct);
        }
        if (bw > 0 && on_cpu)
            printf("\nread bandwidth (measured): %.2f GB/s with %ld threads; %% peak = GB/s / "
                   "that\n",
                   bw, threads);
        else if (bw > 0)
            printf("\nread bandwidth (measured on the %s device): %.2f GB/s; %% peak = GB/s / "
                   "that\n",
                   info.backend, bw);
        else
            printf("\nread bandwidth: n/a (%s)\n", bw_note ? bw_note : "unknown");
        printf("median of %d runs after a warm-up; load %.2f s; %s compute; prefill batch %d\n",
               repeats, load_s, fr_compute_type_name(c.compute), batch);
    }
    rc = 0;
    goto done;
fail_oom:
    snprintf(err.msg, sizeof err.msg, "out of memory");
fail:
    fprintf(stderr, "ferrum bench: %s\n", err.msg);
done:
    free(depths);
    free(rows);
    free(samples);
    free(ids);
    free(logits);
    fr_session_free(s);
    fr_model_free(model);
    free(pp);
    return rc;
usage_error:
    free(pp);
    free(depths);
    usage(stderr);
    return 2;
}
