/* Fuzz target: a chat template's source text (Jinja), parsed and rendered with a fixed
 * conversation (system, user, assistant with a tool call, tool result, user), a tool list and the
 * variables of tests/data/jinja_cases.json, with and without tools. A render must be
 * deterministic: the same call twice gives the same bytes or the same error.
 * Seeds: the real chat templates and every snippet of tests/data/jinja_cases.json. */
#include "fuzz_util.h"

static const char MESSAGES[] =
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris? caf\\u00e9 \\u4e16\"},"
    "{\"role\":\"assistant\",\"content\":\"\",\"reasoning_content\":\"look it up\","
    "\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"weather\","
    "\"arguments\":{\"city\":\"Paris\",\"days\":2}}}]},"
    "{\"role\":\"tool\",\"content\":\"{\\\"temp\\\": 21}\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"thanks\"}]}]";

static const char TOOLS[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"weather\",\"description\":\"forecast\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
    "\"required\":[\"city\"]}}}]";

/* tests/data/jinja_cases.json's vars_json, so that its snippets render as they do there */
static const char VARS[] =
    "{\"xs\": [1, 2, 3], \"d\": {\"a\": 1, \"b\": null, \"c\": \"x\"}, \"s\": \"Hello World\", "
    "\"n\": null, \"msgs\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", "
    "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\", \"tool_calls\": "
    "[{\"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1}}}]}], \"u\": \"h\\u00e9llo "
    "\\u4e16\\u754c\", \"f\": 2.5, \"t\": true, \"e\": \"\", \"nested\": {\"k\": [1, {\"z\": "
    "\"q\"}]}, \"enable_thinking\": false}";

/* clock: strftime_now() may tick between two renders */
static void render_twice(const fr_chat_template *t, const char *tools, bool agp, bool clock) {
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    fr_error ea = {0}, eb = {0};
    fr_status sa = fr_chat_template_render(t, MESSAGES, tools, agp, VARS, &a, &alen, &ea);
    fr_status sb = fr_chat_template_render(t, MESSAGES, tools, agp, VARS, &b, &blen, &eb);
    FR_FUZZ_CHECK(clock || sa == sb, "two renders: status %d then %d", (int)sa, (int)sb);
    if (sa == FR_OK) {
        FR_FUZZ_CHECK(a && a[alen] == 0, "render not NUL-terminated");
        FR_FUZZ_CHECK(clock || (alen == blen && !memcmp(a, b, alen)), "two renders differ");
    } else if (sa == sb) {
        FR_FUZZ_CHECK(a == NULL && ea.msg[0], "failed render: output %p, message '%s'", (void *)a,
                      ea.msg);
        FR_FUZZ_CHECK(!strcmp(ea.msg, eb.msg), "two renders fail differently: '%s' / '%s'", ea.msg,
                      eb.msg);
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fr_chat_template *t = NULL;
    fr_error err = {0};
    if (fr_chat_template_from_source((const char *)data, size, "<s>", "</s>", &t, &err) != FR_OK) {
        FR_FUZZ_CHECK(t == NULL && err.msg[0], "failed parse: handle %p, message '%s'", (void *)t,
                      err.msg);
        return 0;
    }
    const char *src = fr_chat_template_source(t);
    FR_FUZZ_CHECK(src != NULL, "no source kept");
    /* a name is the only way to reach strftime_now (templates cannot list the globals) */
    const bool clock = memmem(data, size, "strftime_now", 12) != NULL;
    render_twice(t, TOOLS, true, clock);
    render_twice(t, NULL, false, clock);
    fr_chat_template_free(t);
    return 0;
}
