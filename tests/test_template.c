/* Chat templates and the Jinja interpreter, against references made by Hugging Face / jinja2:
 *  - tests/data/fixtures/tokenizer/qwen3-chat.json (transformers' apply_chat_template output) with
 *    the real Qwen3 template;
 *  - tests/data/template_refs.json: more Qwen3 (tools, tool calls, reasoning) and Llama 3
 *    conversations rendered by jinja2 configured as transformers configures it
 *    (scripts/gen_template_refs.py);
 *  - tests/data/jinja_cases.json: one snippet per construct with jinja2's output, and snippets
 *    jinja2 rejects with the line/column ferrum must report (scripts/gen_jinja_cases.py);
 *  - loading (config forms, malformed files), API errors, hostile templates, and the CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>

#include "common/testutil.h"
#include "ferrum.h"
#include "tokenizer/jinja.h"

static char tmpdir[256];

static cJSON *load_json(const char *path) {
    size_t len;
    char *text = fr_test_read_file(path, &len);
    if (!text) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Shows where two renders first differ. */
static void show_diff(const char *what, const char *got, const char *want) {
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    fprintf(stderr,
            "  %s: first difference at byte %zu\n    got:  \"%.60s\"\n    want: \"%.60s\"\n", what,
            i, got + i, want + i);
}

static void test_qwen3_fixture(void) {
    char p[512];
    cJSON *cases = load_json(fr_test_data_path("fixtures/tokenizer/qwen3-chat.json", p, sizeof p));
    CHECK(cJSON_IsArray(cases), "cannot read %s", p);
    fr_chat_template *t = NULL;
    fr_error err = {0};
    fr_status st = fr_chat_template_load(fr_test_tokenizer_path("qwen3", p, sizeof p), &t, &err);
    CHECK(st == FR_OK, "load qwen3: %s", err.msg);
    if (!cases || !t) goto done;
    int n = 0, ok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        n++;
        char *messages = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "messages"));
        const cJSON *think = cJSON_GetObjectItemCaseSensitive(c, "enable_thinking");
        const cJSON *agp = cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt");
        char extra[64] = "{}";
        if (think)
            snprintf(extra, sizeof extra, "{\"enable_thinking\": %s}",
                     cJSON_IsTrue(think) ? "true" : "false");
        char *out = NULL;
        size_t len = 0;
        st = fr_chat_template_render(t, messages, NULL, !agp || cJSON_IsTrue(agp), extra, &out,
                                     &len, &err);
        const char *want = jstr(c, "rendered");
        CHECK(st == FR_OK, "qwen3-chat case %d: %s", n, err.msg);
        if (st == FR_OK && want) {
            bool same = len == strlen(want) && !memcmp(out, want, len);
            CHECK(same, "qwen3-chat case %d differs", n);
            if (!same) show_diff("qwen3-chat", out, want);
            ok += same;
        }
        free(out);
        free(messages);
    }
    CHECK(n == 8, "expected the 8 fixture conversations, got %d", n);
    printf("qwen3-chat.json: %d/%d byte-exact\n", ok, n);
done:
    fr_chat_template_free(t);
    cJSON_Delete(cases);
}

static void test_generated_refs(void) {
    char p[512];
    cJSON *data = load_json(fr_test_source_path("tests/data/template_refs.json", p, sizeof p));
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(data, "cases");
    CHECK(cJSON_IsArray(cases), "cannot read %s", p);
    fr_chat_template *qwen = NULL, *llama = NULL;
    fr_error err = {0};
    CHECK(fr_chat_template_load(fr_test_tokenizer_path("qwen3", p, sizeof p), &qwen, &err) == FR_OK,
          "%s", err.msg);
    /* the config file path works as well as the folder */
    CHECK(fr_chat_template_load(fr_test_tokenizer_path("llama3/tokenizer_config.json", p, sizeof p),
                                &llama, &err) == FR_OK,
          "%s", err.msg);
    int n = 0, ok = 0, per_model[2] = {0, 0};
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (!qwen || !llama) break;
        n++;
        bool is_qwen = !strcmp(jstr(c, "model"), "qwen3");
        const fr_chat_template *t = is_qwen ? qwen : llama;
        char *out = NULL;
        size_t len = 0;
        fr_status st = fr_chat_template_render(
            t, jstr(c, "messages_json"), jstr(c, "tools_json"),
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
            jstr(c, "extra_json"), &out, &len, &err);
        CHECK(st == FR_OK, "template_refs case %d (%s): %s", n, jstr(c, "model"), err.msg);
        const char *want = jstr(c, "rendered");
        if (st == FR_OK) {
            bool same = len == strlen(want) && !memcmp(out, want, len);
            CHECK(same, "template_refs case %d (%s) differs", n, jstr(c, "model"));
            if (!same) show_diff(jstr(c, "model"), out, want);
            ok += same;
            per_model[is_qwen ? 0 : 1] += same;
        }
        free(out);
    }
    CHECK(n >= 12, "expected at least 12 reference conversations, got %d", n);
    printf("template_refs.json: %d/%d byte-exact (qwen3 %d, llama3 %d)\n", ok, n, per_model[0],
           per_model[1]);
    fr_chat_template_free(qwen);
    fr_chat_template_free(llama);
    cJSON_Delete(data);
}

static fr_status render_snippet(const char *src, const char *vars_json, char **out, fr_error *err) {
    fr_jinja_template *t = NULL;
    *out = NULL;
    fr_status st = fr_jinja_compile(src, strlen(src), "snippet", &t, err);
    if (st) return st;
    fr_jinja_vars *v = fr_jinja_vars_new();
    st = fr_jinja_vars_merge_json(v, vars_json, strlen(vars_json), err);
    if (!st) st = fr_jinja_render(t, v, out, NULL, err);
    fr_jinja_vars_free(v);
    fr_jinja_template_free(t);
    return st;
}

static void test_jinja_cases(void) {
    char p[512];
    cJSON *data = load_json(fr_test_source_path("tests/data/jinja_cases.json", p, sizeof p));
    const char *vars = jstr(data, "vars_json");
    CHECK(vars != NULL, "cannot read %s", p);
    if (!vars) return;
    int n = 0, ok = 0, ne = 0, eok = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(data, "cases")) {
        n++;
        char *out = NULL;
        fr_error err = {0};
        fr_status st = render_snippet(jstr(c, "template"), vars, &out, &err);
        const char *want = jstr(c, "expected");
        bool same = st == FR_OK && !strcmp(out, want);
        CHECK(same, "jinja case '%s': %s\n    got:  \"%s\"\n    want: \"%s\"", jstr(c, "name"),
              st ? err.msg : "wrong output", out ? out : "", want);
        ok += same;
        free(out);
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(data, "errors")) {
        ne++;
        char *out = NULL;
        fr_error err = {0};
        fr_status st = render_snippet(jstr(c, "template"), vars, &out, &err);
        const char *frag = jstr(c, "must_contain");
        bool good = st != FR_OK && strstr(err.msg, frag) && strstr(err.msg, "snippet line ");
        CHECK(good, "error case '%s': status %d, message \"%s\", expected it to contain \"%s\"",
              jstr(c, "name"), (int)st, err.msg, frag);
        eok += good;
        free(out);
    }
    CHECK(n >= 100 && ne >= 20, "too few cases (%d, %d)", n, ne);
    printf("jinja_cases.json: %d/%d renders match jinja2, %d/%d errors reported with position\n",
           ok, n, eok, ne);
    cJSON_Delete(data);
}

/* ---------------------------------------------------------------- loading and errors */

static void write_file(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void remove_file(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    unlink(p);
}

static char *render_simple(const fr_chat_template *t, const char *messages, const char *tools,
                           fr_error *err, fr_status *st) {
    char *out = NULL;
    *st = fr_chat_template_render(t, messages, tools, true, NULL, &out, NULL, err);
    return out;
}

static void test_loading(void) {
    fr_chat_template *t = NULL;
    fr_error err = {0};
    fr_status st;
    const char *msgs = "[{\"role\": \"user\", \"content\": \"hi\"}]";

    /* list form: "default" is used, "tool_use" when tools are given; token objects */
    write_file("tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
               " \"pad_token\": null, \"chat_template\": [{\"name\": \"tool_use\", \"template\":"
               " \"T{{ tools|length }}{{ bos_token }}\"}, {\"name\": \"default\", \"template\":"
               " \"D{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ pad_token is defined "
               "}}\"}]}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_OK, "list-form config: %s", err.msg);
    if (t) {
        char *o = render_simple(t, msgs, NULL, &err, &st);
        CHECK(st == FR_OK && !strcmp(o, "D<s>hi</s>False"), "default template: %s",
              o ? o : err.msg);
        free(o);
        o = render_simple(t, msgs, "[{\"a\": 1}, {}]", &err, &st);
        CHECK(st == FR_OK && !strcmp(o, "T2<s>"), "tool_use template: %s", o ? o : err.msg);
        free(o);
        CHECK(fr_chat_template_source(t) && !strncmp(fr_chat_template_source(t), "D{{", 3),
              "source of default");
        fr_chat_template_free(t);
        t = NULL;
    }

    /* chat_template.jinja beside the config wins, as in recent transformers */
    write_file("chat_template.jinja", "J{{ bos_token }}\n");
    st = fr_chat_template_load(tmpdir, &t, &err);
    if (st == FR_OK) {
        char *o = render_simple(t, msgs, NULL, &err, &st);
        CHECK(st == FR_OK && !strcmp(o, "J<s>"), "chat_template.jinja: %s", o ? o : err.msg);
        free(o);
    }
    CHECK(st == FR_OK, "chat_template.jinja: %s", err.msg);
    fr_chat_template_free(t);
    t = NULL;
    remove_file("chat_template.jinja");

    /* no template at all */
    write_file("tokenizer_config.json", "{\"eos_token\": \"</s>\"}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_NOT_FOUND && t == NULL && strstr(err.msg, "no chat template"),
          "missing template: %d %s", (int)st, err.msg);

    /* malformed files */
    write_file("tokenizer_config.json", "{\"chat_template\": \"{{ x }\"");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_FORMAT && strstr(err.msg, "tokenizer_config.json"), "truncated JSON: %d %s",
          (int)st, err.msg);
    write_file("tokenizer_config.json", "{\"chat_template\": 42}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_FORMAT && strstr(err.msg, "chat_template"), "non-string template: %d %s",
          (int)st, err.msg);
    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"other\", \"template\": \"x\"}]}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_NOT_FOUND && strstr(err.msg, "default"), "no default: %d %s", (int)st,
          err.msg);
    write_file("tokenizer_config.json", "{\"chat_template\": \"{% for m in messages %}{{ m }\"}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_FORMAT && strstr(err.msg, "line 1 column"), "bad template syntax: %d %s",
          (int)st, err.msg);
    write_file("tokenizer_config.json", "{\"bos_token\": 7, \"chat_template\": \"x\"}");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_FORMAT && strstr(err.msg, "bos_token"), "bad bos_token: %d %s", (int)st,
          err.msg);
    remove_file("tokenizer_config.json");
    st = fr_chat_template_load(tmpdir, &t, &err);
    CHECK(st == FR_ERR_NOT_FOUND && t == NULL, "empty folder: %d %s", (int)st, err.msg);
    st = fr_chat_template_load("/nonexistent/ferrum/model", &t, &err);
    CHECK(st == FR_ERR_NOT_FOUND, "missing path: %d %s", (int)st, err.msg);
}

static void test_api_errors(void) {
    fr_chat_template *t = NULL;
    fr_error err = {0};
    const char *src = "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
                      "{{ raise_exception('Unknown role: ' ~ m.role) }}{% endif %}{{ bos_token "
                      "}}[{{ m.content }}]"
                      "{% endfor %}{{ eos_token }}";
    fr_status st = fr_chat_template_from_source(src, strlen(src), "<s>", NULL, &t, &err);
    CHECK(st == FR_OK, "from_source: %s", err.msg);
    if (!t) return;
    char *o =
        render_simple(t, "[{\"role\": \"user\", \"content\": \"a\\u00e9\"}]", NULL, &err, &st);
    CHECK(st == FR_OK && o && !strcmp(o, "<s>[a\xc3\xa9]"),
          "from_source render (eos undefined): %s", o ? o : err.msg);
    free(o);
    o = render_simple(t, "[{\"role\": \"robot\", \"content\": \"x\"}]", NULL, &err, &st);
    CHECK(st == FR_ERR_INVALID && !o && strstr(err.msg, "Unknown role: robot") &&
              strstr(err.msg, "line 1 column"),
          "raise_exception: %d %s", (int)st, err.msg);
    o = render_simple(t, "{\"role\": \"user\"}", NULL, &err, &st);
    CHECK(st == FR_ERR_INVALID && !o, "messages not an array: %d %s", (int)st, err.msg);
    o = render_simple(t, "[{\"role\": \"user\", \"content\": \"x\"", NULL, &err, &st);
    CHECK(st == FR_ERR_FORMAT && !o && strstr(err.msg, "JSON"), "truncated messages: %d %s",
          (int)st, err.msg);
    o = render_simple(t, "[{\"role\": \"user\", \"content\": \"\xff\"}]", NULL, &err, &st);
    CHECK(st == FR_ERR_FORMAT && !o && strstr(err.msg, "UTF-8"), "invalid UTF-8 messages: %d %s",
          (int)st, err.msg);
    char *out = NULL;
    st = fr_chat_template_render(t, "[]", NULL, true, "[1]", &out, NULL, &err);
    CHECK(st == FR_ERR_INVALID && !out, "extra vars not an object: %d %s", (int)st, err.msg);
    st = fr_chat_template_render(t, "[]", NULL, true, "{\"messages\": 1}", &out, NULL, &err);
    CHECK(st == FR_ERR_INVALID && !out && strstr(err.msg, "messages"),
          "extra repeats messages: %d %s", (int)st, err.msg);
    st = fr_chat_template_render(t, "[]", NULL, true, "{\"eos_token\": \"E\"}", &out, NULL, &err);
    CHECK(st == FR_OK && out && !strcmp(out, "E"), "extra vars override tokens: %s",
          out ? out : err.msg);
    free(out);
    fr_chat_template_free(t);

    /* hostile templates fail cleanly */
    static const char *const BAD[] = {
        "{{ "
        "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
        "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
        "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1 }}",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
        "{{ 'x' * 100000000000 }}",
        "{{ range(200000)|length }}",
        "{{ 9223372036854775807 + 1 }}",
        "{% if %}",
        "{{",
        "{% for %}",
        "{{ 'unterminated }}",
        "{% set = 1 %}",
        "\xc3",
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        fr_chat_template *b = NULL;
        st = fr_chat_template_from_source(BAD[i], strlen(BAD[i]), NULL, NULL, &b, &err);
        if (st == FR_OK) {
            char *r = render_simple(b, "[]", NULL, &err, &st);
            free(r);
            fr_chat_template_free(b);
        }
        CHECK(st != FR_OK && err.msg[0], "hostile template %zu was accepted", i);
    }
}

/* ---------------------------------------------------------------- issue 16 regressions */

/* Compiles and renders src with vars_json; the status, with the message in err. */
static fr_status render_status(const char *src, const char *vars_json, char **out, fr_error *err) {
    *out = NULL;
    err->code = FR_OK;
    err->msg[0] = 0;
    return render_snippet(src, vars_json, out, err);
}

static void test_hostile_regressions(void) {
    fr_error err = {0};
    char *out = NULL;
    fr_status st;

    /* a tuple target with a non-name item crashed the parser (it read n->nitems after n = NULL);
     * the error points at the offending item */
    static const struct {
        const char *src, *where;
    } TARGETS[] = {
        {"{% for 5, v in x %}{% endfor %}", "snippet line 1 column 8:"},
        {"{% for a, 'b' in x %}{% endfor %}", "snippet line 1 column 11:"},
        {"{% set a, 1 = [1, 2] %}", "snippet line 1 column 11:"},
        {"x\n{% for a, b, 3 in x %}{% endfor %}", "snippet line 2 column 14:"},
    };
    for (size_t i = 0; i < sizeof TARGETS / sizeof TARGETS[0]; i++) {
        st = render_status(TARGETS[i].src, "{\"x\": []}", &out, &err);
        CHECK(st == FR_ERR_FORMAT && !out && strstr(err.msg, "cannot assign") &&
                  strstr(err.msg, TARGETS[i].where),
              "tuple target %zu: status %d, \"%s\" (want \"%s ... cannot assign\")", i, (int)st,
              err.msg, TARGETS[i].where);
        free(out);
        /* and without an error object the failure is still a failure */
        fr_jinja_template *t = NULL;
        st = fr_jinja_compile(TARGETS[i].src, strlen(TARGETS[i].src), "snippet", &t, NULL);
        CHECK(st == FR_ERR_FORMAT && !t, "tuple target %zu without fr_error: status %d", i,
              (int)st);
        fr_jinja_template_free(t);
    }
    st = render_status("{% for a, b in x %}{{ a }}{{ b }}{% endfor %}", "{\"x\": [[1, 2]]}", &out,
                       &err);
    CHECK(st == FR_OK && out && !strcmp(out, "12"), "a tuple of names still works: %s",
          out ? out : err.msg);
    free(out);

    /* empty sequences repeated (arithmetic on the NULL item array of the empty list) */
    st =
        render_status("{{ [] * 3 }}|{{ 3 * [] }}|{{ ([] * 1000000000)|length }}|{{ '' * 1000000000 "
                      "}}|{{ () * 2 }}|{{ [1, 2] * 0 }}|{{ [1] * -1 }}|{{ 'ab' * 2 }}",
                      "{}", &out, &err);
    CHECK(st == FR_OK && out && !strcmp(out, "[]|[]|0||()|[]|[]|abab"), "empty repeats: %s",
          out ? out : err.msg);
    free(out);

    /* growth is capped (jinja_internal.h: 16 MiB per string and output, 1M items per list) with
     * an FR_ERR_RANGE error naming the limit, instead of gigabytes and seconds */
    static const char *const GROWTH[] = {
        "{{ 'a' * 1000000000 }}",                    /* string repeat */
        "{{ ('ab' * 5000000) ~ ('ab' * 5000000) }}", /* concatenation by ~ */
        "{{ ('ab' * 5000000) + ('ab' * 5000000) }}", /* concatenation by + */
        ("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
         "{% endfor %}{{ ns.s|length }}"),                          /* doubling in a loop */
        "{{ ['a'] * 2000000 }}",                                    /* list repeat */
        "{{ (['a'] * 1000000 + ['b'] * 1000000)|length }}",         /* list concatenation */
        "{{ (['abcdefghij'] * 1000000)|join('abcdefghij') }}",      /* join */
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", /* output of a loop */
        "{{ ('x' * 9000000 + '.')|replace('.', 'y' * 9000000) }}",  /* a filter's result */
        "{{ range(1000000000)|length }}",                           /* range() */
    };
    for (size_t i = 0; i < sizeof GROWTH / sizeof GROWTH[0]; i++) {
        st = render_status(GROWTH[i], "{}", &out, &err);
        CHECK(st == FR_ERR_RANGE && !out && strstr(err.msg, "snippet line 1") &&
                  (strstr(err.msg, "limit") || strstr(err.msg, "range")),
              "growth %zu (%s): status %d, \"%s\"", i, GROWTH[i], (int)st, err.msg);
        free(out);
    }
    /* ... which leaves room for anything a chat template renders */
    st = render_status("{{ ('ab' * 4000000)|length }}{% for i in range(1000) %}{{ 'x' * 1000 }}"
                       "{% endfor %}",
                       "{}", &out, &err);
    CHECK(st == FR_OK && out && strlen(out) == 7 + 1000000 && !strncmp(out, "8000000x", 8),
          "below the limits: %s", out ? "wrong output" : err.msg);
    free(out);

    /* failures reported through fr_error_prefix stay failures without an error object */
    fr_jinja_vars *v = fr_jinja_vars_new();
    CHECK(v != NULL, "vars");
    if (v) {
        st = fr_jinja_vars_set_json(v, "x", "[1, ", 4, NULL);
        CHECK(st == FR_ERR_FORMAT, "set_json of bad JSON without fr_error: status %d", (int)st);
        st = fr_jinja_vars_merge_json(v, "{\"a\": ", 6, NULL);
        CHECK(st == FR_ERR_FORMAT, "merge_json of bad JSON without fr_error: status %d", (int)st);
        st = fr_jinja_vars_set_json(v, "x", "[1, ", 4, &err);
        CHECK(st == FR_ERR_FORMAT && err.code == FR_ERR_FORMAT && strstr(err.msg, "'x'"),
              "set_json of bad JSON: %d \"%s\"", (int)st, err.msg);
        fr_jinja_vars_free(v);
    }
    fr_chat_template *ct = NULL;
    write_file("tokenizer_config.json", "{\"chat_template\": \"{% for 1, a in x %}\"}");
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tmpdir);
    st = fr_chat_template_load(p, &ct, NULL);
    CHECK(st == FR_ERR_FORMAT && !ct, "bad template in a config without fr_error: status %d",
          (int)st);
    fr_chat_template_free(ct);
    ct = NULL;
    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"default\", \"template\": \"{% set a, 1 = b "
               "%}\"}]}");
    st = fr_chat_template_load(p, &ct, NULL);
    CHECK(st == FR_ERR_FORMAT && !ct, "bad named template without fr_error: status %d", (int)st);
    st = fr_chat_template_load(p, &ct, &err);
    CHECK(st == FR_ERR_FORMAT && !ct && strstr(err.msg, "tokenizer_config.json") &&
              strstr(err.msg, "cannot assign"),
          "bad named template: %d \"%s\"", (int)st, err.msg);
    fr_chat_template_free(ct);
    remove_file("tokenizer_config.json");
}

/* ---------------------------------------------------------------- CLI */

static char *run_capture(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[n] = '\0';
    int rc = pclose(f);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return buf;
}

static void test_cli(void) {
    const char *exe = getenv("FERRUM");
    CHECK(exe && *exe, "FERRUM is not set (run through ctest)");
    if (!exe) return;
    char p[512], cmd[2048];
    write_file("m.json", "[{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", "
                         "\"content\": \"4\"},"
                         " {\"role\": \"user\", \"content\": \"and 3+3?\"}]");
    const char *qwen = fr_test_tokenizer_path("qwen3", p, sizeof p);
    const char *want_think =
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nand 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
    int rc;
    snprintf(cmd, sizeof cmd,
             "'%s' template -m '%s' --messages '%s/m.json' --var enable_thinking=false", exe, qwen,
             tmpdir);
    char *o = run_capture(cmd, &rc);
    CHECK(rc == 0 && o && !strcmp(o, want_think),
          "CLI with --var enable_thinking=false (rc %d): \"%s\"", rc, o ? o : "");
    free(o);
    /* the fixture's reference, with the string value "x" for an unparsable JSON value */
    snprintf(cmd, sizeof cmd,
             "'%s' template -m '%s' --messages '%s/m.json' --no-generation-prompt --var other=x "
             "--var enable_thinking=true",
             exe, qwen, tmpdir);
    o = run_capture(cmd, &rc);
    const char *want_plain =
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nand 3+3?<|im_end|>\n";
    CHECK(rc == 0 && o && !strcmp(o, want_plain), "CLI --no-generation-prompt (rc %d): \"%s\"", rc,
          o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' template -m '%s' 2>/dev/null", exe, qwen);
    o = run_capture(cmd, &rc);
    CHECK(rc == 2, "CLI without --messages should be a usage error, rc %d", rc);
    free(o);
    snprintf(cmd, sizeof cmd,
             "'%s' template -m '%s' --messages '%s/m.json' --var novalue 2>/dev/null", exe, qwen,
             tmpdir);
    o = run_capture(cmd, &rc);
    CHECK(rc == 2, "CLI --var without '=' should be a usage error, rc %d", rc);
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' template -m '%s/nothing' --messages '%s/m.json' 2>&1", exe,
             tmpdir, tmpdir);
    o = run_capture(cmd, &rc);
    CHECK(rc == 1 && o && strstr(o, "nothing"), "CLI with a missing model: rc %d \"%s\"", rc,
          o ? o : "");
    free(o);
    snprintf(cmd, sizeof cmd, "'%s' template --help", exe);
    o = run_capture(cmd, &rc);
    CHECK(rc == 0 && o && strstr(o, "--messages"), "CLI --help: rc %d", rc);
    free(o);
    remove_file("m.json");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fr_test_template_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_qwen3_fixture();
    test_generated_refs();
    test_jinja_cases();
    test_loading();
    test_api_errors();
    test_hostile_regressions();
    test_cli();
    rmdir(tmpdir);
    return fr_test_finish("test_template");
}
