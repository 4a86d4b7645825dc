/* A Jinja interpreter for chat templates, rendering byte-exactly as transformers does: jinja2
 * 3.x in an ImmutableSandboxedEnvironment with trim_blocks=True, lstrip_blocks=True, the
 * loopcontrols extension ({% break %}, {% continue %}), a tojson filter that is
 * json.dumps(ensure_ascii=False) and the globals raise_exception and strftime_now.
 *
 * Anything the interpreter does not implement fails with an error that names the line and
 * column, never a render that could differ from jinja2's. */
#ifndef FR_TOKENIZER_JINJA_H
#define FR_TOKENIZER_JINJA_H

#include <stdbool.h>
#include <stddef.h>

#include "ferrum.h"

typedef struct fr_jinja_template fr_jinja_template;
typedef struct fr_jinja_vars fr_jinja_vars;

/* Compiles template source text. `name` (e.g. "chat template") prefixes error messages. */
fr_status fr_jinja_compile(const char *src, size_t len, const char *name, fr_jinja_template **out,
                           fr_error *err);
void fr_jinja_template_free(fr_jinja_template *t);

/* The variables a render sees. Values are copied; later calls with the same name replace. */
fr_jinja_vars *fr_jinja_vars_new(void);
void fr_jinja_vars_free(fr_jinja_vars *v);
/* Parses `json` (any JSON value) as the variable's value, with Python json.loads semantics. */
fr_status fr_jinja_vars_set_json(fr_jinja_vars *v, const char *name, const char *json, size_t len,
                                 fr_error *err);
/* Every key of a JSON object becomes a variable. */
fr_status fr_jinja_vars_merge_json(fr_jinja_vars *v, const char *json, size_t len, fr_error *err);
fr_status fr_jinja_vars_set_str(fr_jinja_vars *v, const char *name, const char *s, fr_error *err);
fr_status fr_jinja_vars_set_bool(fr_jinja_vars *v, const char *name, bool b, fr_error *err);
fr_status fr_jinja_vars_set_none(fr_jinja_vars *v, const char *name, fr_error *err);

/* Renders into a malloc'd NUL-terminated string (*out_len excludes the NUL; may be NULL). */
fr_status fr_jinja_render(const fr_jinja_template *t, const fr_jinja_vars *vars, char **out,
                          size_t *out_len, fr_error *err);

#endif
