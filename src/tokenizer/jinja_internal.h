/* Internals of the Jinja interpreter shared by jinja_*.c: arena, tokens, syntax tree, values,
 * evaluator state. Nothing here is visible outside src/tokenizer/jinja*.c. */
#ifndef FR_TOKENIZER_JINJA_INTERNAL_H
#define FR_TOKENIZER_JINJA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tokenizer/jinja.h"

/* ---------------------------------------------------------------- arena
 * Everything a template or a render allocates lives in one arena freed at once: values are
 * immutable (the sandbox transformers uses forbids list/dict mutation), so nothing needs to be
 * released earlier and no reference counts can go wrong. */

typedef struct fr_jarena_chunk fr_jarena_chunk;
typedef struct fr_jarena {
    fr_jarena_chunk *head;
    size_t total;    /* bytes handed out, checked against FR_JINJA_MAX_MEMORY */
    bool over_limit; /* a request failed on one of the limits below, not on malloc */
} fr_jarena;

/* Limits against hostile templates ("a" * 1000000000, loops that double a string): real chat
 * templates are a few KB and render a few hundred KB, so these are far above any of them, yet
 * bound a render to a fraction of a second and FR_JINJA_MAX_MEMORY bytes. Exceeding one is an
 * FR_ERR_RANGE error naming the limit. docs/architecture.md lists them. */
#define FR_JINJA_MAX_STRING ((size_t)16 << 20)  /* one string value, and the rendered output */
#define FR_JINJA_MAX_ITEMS  ((size_t)1 << 20)   /* one list */
#define FR_JINJA_MAX_MEMORY ((size_t)256 << 20) /* everything one render (or vars) allocates */

void *fr_jarena_alloc(fr_jarena *a, size_t size); /* zeroed, 16-aligned; NULL when exhausted */
char *fr_jarena_strdup(fr_jarena *a, const char *s, size_t len); /* NUL-terminated copy */
void fr_jarena_free(fr_jarena *a);

/* Growable byte buffer on malloc (render output, string building). */
typedef struct fr_jbuf {
    char *data;
    size_t len, cap;
    bool oom;      /* no more is appended: malloc failed or ... */
    bool too_long; /* ... the text would exceed FR_JINJA_MAX_STRING */
} fr_jbuf;

void fr_jbuf_put(fr_jbuf *b, const char *s, size_t n);
static inline void fr_jbuf_puts(fr_jbuf *b, const char *s);
void fr_jbuf_putc(fr_jbuf *b, char c);
void fr_jbuf_printf(fr_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fr_jbuf_free(fr_jbuf *b);

#include <string.h>
static inline void fr_jbuf_puts(fr_jbuf *b, const char *s) {
    fr_jbuf_put(b, s, strlen(s));
}

/* ---------------------------------------------------------------- tokens */

typedef enum fr_jtok_kind {
    JT_EOF = 0,
    JT_TEXT,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
    JT_RAW, /* text of a {% raw %} block: emitted verbatim */
} fr_jtok_kind;

typedef enum fr_jop {
    JOP_NONE = 0,
    JOP_ADD,
    JOP_SUB,
    JOP_MUL,
    JOP_DIV,
    JOP_FLOORDIV,
    JOP_MOD,
    JOP_POW,
    JOP_TILDE,
    JOP_LBRACKET,
    JOP_RBRACKET,
    JOP_LPAREN,
    JOP_RPAREN,
    JOP_LBRACE,
    JOP_RBRACE,
    JOP_EQ,
    JOP_NE,
    JOP_GT,
    JOP_GE,
    JOP_LT,
    JOP_LE,
    JOP_ASSIGN,
    JOP_DOT,
    JOP_COLON,
    JOP_PIPE,
    JOP_COMMA,
    JOP_SEMICOLON,
    /* comparison operators that are words */
    JOP_IN,
    JOP_NOTIN,
} fr_jop;

typedef struct fr_jtok {
    fr_jtok_kind kind;
    fr_jop op;
    uint32_t pos;  /* byte offset in the normalised source, for line/column in errors */
    const char *s; /* NAME, STRING (decoded), TEXT, RAW: arena copy, NUL-terminated */
    size_t len;
    int64_t i;
    double f;
} fr_jtok;

typedef struct fr_jtoks {
    fr_jtok *v;
    size_t n, cap;
} fr_jtoks;

/* ---------------------------------------------------------------- syntax tree */

typedef enum fr_jnode_kind {
    /* statements */
    JN_BODY = 1,    /* items: statements */
    JN_TEXT,        /* str */
    JN_OUTPUT,      /* a: expression */
    JN_IF,          /* a: test, b: then-body, c: else-body or nested JN_IF (elif) */
    JN_FOR,         /* a: target, b: iterable, c: body, d: else-body, e: filter test */
    JN_SET,         /* a: target (NAME, TUPLE of NAME, GETATTR of NAME), b: value */
    JN_SETBLOCK,    /* a: target, c: body, items: filters applied to the captured text */
    JN_MACRO,       /* str: name, items: JN_PARAM, c: body */
    JN_PARAM,       /* str: name, a: default or NULL */
    JN_FILTERBLOCK, /* items: JN_FILTER chain with a == NULL, c: body */
    JN_WITH,        /* items: JN_SET assignments, c: body */
    JN_BREAK,
    JN_CONTINUE,
    /* expressions */
    JN_LITERAL, /* lit */
    JN_NAME,    /* str */
    JN_LIST,    /* items */
    JN_TUPLE,   /* items */
    JN_DICT,    /* items: JN_PAIR */
    JN_PAIR,    /* a: key, b: value */
    JN_GETATTR, /* a: object, str: attribute */
    JN_GETITEM, /* a: object, b: key */
    JN_SLICE,   /* a: object, b: start, c: stop, d: step (each may be NULL) */
    JN_CALL,    /* a: callee, items: arguments (JN_KWARG for name=value) */
    JN_KWARG,   /* str: name, a: value */
    JN_FILTER,  /* a: value, str: filter name, items: arguments */
    JN_TEST,    /* a: value, str: test name, items: arguments, op: 1 when negated */
    JN_UNARY,   /* op: JOP_SUB / JOP_ADD, a */
    JN_NOT,     /* a */
    JN_BINARY,  /* op, a, b */
    JN_AND,     /* a, b */
    JN_OR,      /* a, b */
    JN_COMPARE, /* a: first operand, items: JN_CMPOP (op, a: right operand) */
    JN_CMPOP,
    JN_COND, /* a: test, b: value if true, c: value if false or NULL (undefined) */
} fr_jnode_kind;

typedef struct fr_jval fr_jval;
typedef struct fr_jnode fr_jnode;

struct fr_jnode {
    fr_jnode_kind kind;
    int op;
    uint32_t pos;
    const char *str;
    size_t len;
    fr_jnode *a, *b, *c, *d, *e;
    fr_jnode **items;
    size_t nitems;
    fr_jval *lit;
    bool deferred_unknown; /* filter/test name unknown, inside an if: error only when reached */
};

/* ---------------------------------------------------------------- values */

typedef enum fr_jtype {
    JV_UNDEF = 0,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* sub: JL_LIST, JL_TUPLE or JL_ITER (a generator in jinja2: not printable) */
    JV_DICT,
    JV_NS,     /* namespace(): a dict whose attributes can be assigned */
    JV_FUNC,   /* a global function: sub is fr_jfunc */
    JV_MACRO,  /* macro: node, closure scope */
    JV_METHOD, /* bound method: self + name */
    JV_LOOP,   /* the `loop` variable of a for loop */
} fr_jtype;

/* JL_ITER: a generator (map, select, reverse, items filter): iterable once, no len, not
 * printable the same way; JL_VIEW: dict.items()/keys()/values(): iterable with a len. */
enum { JL_LIST = 0, JL_TUPLE = 1, JL_ITER = 2, JL_VIEW = 3 };
static inline bool fr_jv_is_seq(const fr_jval *v);

typedef enum fr_jfunc {
    JF_RANGE = 1,
    JF_NAMESPACE,
    JF_DICT,
    JF_RAISE,
    JF_STRFTIME,
} fr_jfunc;

typedef struct fr_jscope fr_jscope;

typedef struct fr_jloop {
    fr_jval **items; /* the (filtered) sequence being iterated */
    size_t n, index0;
} fr_jloop;

struct fr_jval {
    uint8_t type;
    uint8_t sub;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *s; /* NUL-terminated, valid UTF-8 */
            size_t len;
        } str;
        struct {
            fr_jval **v;
            size_t n;
        } list;
        struct {
            fr_jval **k, **v;
            size_t n, cap;
        } dict;
        struct {
            const fr_jnode *node;
            fr_jscope *closure;
        } macro;
        struct {
            fr_jval *self;
            const char *name;
        } method;
        fr_jloop *loop;
        const char *undef_hint; /* why it is undefined, for the error when it is used */
    } u;
};

static inline bool fr_jv_is_seq(const fr_jval *v) {
    return v->type == JV_LIST && (v->sub == JL_LIST || v->sub == JL_TUPLE);
}

/* Shared immutable singletons. */
extern fr_jval fr_jv_undef, fr_jv_none, fr_jv_true, fr_jv_false;

fr_jval *fr_jv_new(fr_jarena *a, fr_jtype type);
fr_jval *fr_jv_int(fr_jarena *a, int64_t i);
fr_jval *fr_jv_float(fr_jarena *a, double f);
static inline fr_jval *fr_jv_bool(bool b) {
    return b ? &fr_jv_true : &fr_jv_false;
}
fr_jval *fr_jv_str(fr_jarena *a, const char *s, size_t len);       /* copies */
fr_jval *fr_jv_str_owned(fr_jarena *a, const char *s, size_t len); /* s already in the arena */
fr_jval *fr_jv_list(fr_jarena *a, size_t n, int sub); /* n slots, filled by the caller */
fr_jval *fr_jv_dict(fr_jarena *a, fr_jtype type);
fr_jval *fr_jv_undef_hint(fr_jarena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets key (string keys compare by bytes, others by Python equality); false on out of memory. */
bool fr_jv_dict_set(fr_jarena *a, fr_jval *d, fr_jval *key, fr_jval *val);
fr_jval *fr_jv_dict_get(const fr_jval *d, const fr_jval *key);
fr_jval *fr_jv_dict_gets(const fr_jval *d, const char *key, size_t len);

const char *fr_jv_type_name(const fr_jval *v); /* Python's name: 'str', 'int', 'dict', ... */
bool fr_jv_truthy(const fr_jval *v);
bool fr_jv_equal(const fr_jval *x, const fr_jval *y);
bool fr_jv_is_number(const fr_jval *v); /* int, float or bool (bool is an int in Python) */
double fr_jv_as_double(const fr_jval *v);

/* Python str(v) / repr(v) appended to b; false with a message in `why` for values jinja2 cannot
 * print the same way (generators, functions). */
bool fr_jv_str_append(fr_jbuf *b, const fr_jval *v, const char **why);
bool fr_jv_repr_append(fr_jbuf *b, const fr_jval *v, const char **why);
void fr_jv_float_repr(fr_jbuf *b, double f); /* Python float.__repr__ */

/* json.dumps(v, ensure_ascii, indent (<0: None), separators (NULL: defaults), sort_keys). */
typedef struct fr_jjson_opts {
    bool ensure_ascii;
    int indent; /* -1: None */
    const char *item_sep, *key_sep;
    bool sort_keys;
} fr_jjson_opts;
bool fr_jv_to_json(fr_jbuf *b, const fr_jval *v, const fr_jjson_opts *o, int depth,
                   const char **why);

/* Parses JSON text (Python json.loads semantics: ints stay ints, floats floats, NaN/Infinity
 * accepted) into arena values. NULL with err set on malformed input. */
fr_jval *fr_jv_from_json(fr_jarena *a, const char *text, size_t len, fr_error *err);

/* UTF-8 helpers. */
size_t fr_jutf8_len(const char *s, size_t n);            /* code points */
size_t fr_jutf8_next(const char *s, size_t n, size_t i); /* byte index of the next code point */
bool fr_jutf8_valid(const char *s, size_t n);

/* ---------------------------------------------------------------- templates and errors */

struct fr_jinja_template {
    fr_jarena arena;
    char *src; /* newline-normalised source */
    size_t len;
    fr_jnode *root;
    char name[64];
};

/* Formats "NAME line L column C: message" from a byte offset into t->src. */
fr_status fr_jinja_error_at(fr_error *err, fr_status code, const fr_jinja_template *t, uint32_t pos,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

fr_status fr_jinja_lex(fr_jinja_template *t, fr_jtoks *out, fr_error *err);
fr_status fr_jinja_parse(fr_jinja_template *t, const fr_jtoks *toks, fr_error *err);

/* ---------------------------------------------------------------- evaluation */

struct fr_jinja_vars {
    fr_jarena arena;
    const char **names;
    fr_jval **vals;
    size_t n, cap;
};

struct fr_jscope {
    fr_jscope *parent;
    const char **names;
    fr_jval **vals;
    size_t n, cap;
};

typedef struct fr_jeval {
    const fr_jinja_template *t;
    fr_jarena *a; /* the render's arena */
    fr_error *err;
    fr_jscope *globals;
    int depth;   /* nested macro calls / expressions, bounded against stack overflow */
    int loopctl; /* 1 after {% break %}, 2 after {% continue %} until the loop sees it */
    bool failed;
    fr_status code; /* of the first failure, also when the caller passed no fr_error */
} fr_jeval;

/* Call arguments: positional then keyword. */
typedef struct fr_jargs {
    fr_jval **pos;
    size_t npos;
    const char **kwn;
    fr_jval **kwv;
    size_t nkw;
} fr_jargs;

/* Sets an error at node n and returns NULL, so callers can `return fr_jeval_fail(...)`. */
fr_jval *fr_jeval_fail(fr_jeval *e, const fr_jnode *n, fr_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The error for a failed allocation: FR_ERR_RANGE naming the limits when the arena refused the
 * request for one of them, FR_ERR_NOMEM otherwise. Returns NULL. */
fr_jval *fr_jeval_nomem(fr_jeval *e, const fr_jnode *n);
/* The text of b as a string value (b is freed); an error when b ran out of memory or past
 * FR_JINJA_MAX_STRING. */
fr_jval *fr_jeval_buf_str(fr_jeval *e, const fr_jnode *n, fr_jbuf *b);
/* The error jinja2 raises when an undefined value is used. */
fr_jval *fr_jeval_undef_error(fr_jeval *e, const fr_jnode *n, const fr_jval *v);

/* Builtins (jinja_filters.c, jinja_methods.c). */
bool fr_jinja_filter_known(const char *name);
bool fr_jinja_test_known(const char *name);
fr_jval *fr_jinja_filter(fr_jeval *e, const fr_jnode *n, const char *name, fr_jval *v,
                         fr_jargs *args);
/* Returns 0/1, or -1 on error. */
int fr_jinja_test(fr_jeval *e, const fr_jnode *n, const char *name, fr_jval *v, fr_jargs *args);
/* Attribute lookup on a value: methods of str/dict/list and keys of dicts; NULL when absent
 * (never an error). */
fr_jval *fr_jinja_attr(fr_jeval *e, fr_jval *obj, const char *name, size_t len);
fr_jval *fr_jinja_call_method(fr_jeval *e, const fr_jnode *n, fr_jval *m, fr_jargs *args);
fr_jval *fr_jinja_call_func(fr_jeval *e, const fr_jnode *n, fr_jval *f, fr_jargs *args);

/* Argument access for builtins: positional index `i` or keyword `name`, else dflt. */
fr_jval *fr_jargs_get(const fr_jargs *a, size_t i, const char *name, fr_jval *dflt);
/* Fails unless at most max_pos positionals and only the listed keywords (NULL-terminated). */
bool fr_jargs_check(fr_jeval *e, const fr_jnode *n, const char *what, const fr_jargs *a,
                    size_t max_pos, const char *const *kw);

/* String helpers (jinja_methods.c). mode: 0 strip, 1 lstrip, 2 rstrip; chars NULL strips
 * Python whitespace. case_mode: 0 upper, 1 lower, 2 capitalize, 3 str.title. */
fr_jval *fr_jstr_strip(fr_jeval *e, const fr_jnode *n, const fr_jval *s, const fr_jval *chars,
                       int mode);
fr_jval *fr_jstr_case(fr_jeval *e, const fr_jnode *n, const fr_jval *s, int case_mode);
fr_jval *fr_jstr_replace(fr_jeval *e, const fr_jnode *n, const fr_jval *s, const fr_jval *old,
                         const fr_jval *new_, int64_t count);
bool fr_py_isspace(uint32_t cp);
uint32_t fr_jutf8_decode(const char *s, size_t n, size_t i); /* code point at byte i */

/* Shared evaluation helpers used by builtins. */
fr_jval *fr_jeval_to_str(fr_jeval *e, const fr_jnode *n, fr_jval *v); /* Python str() */
/* Iterates like Python's iter(): lists, tuples, dict keys, string characters; undefined is
 * empty. Returns a list value or NULL with an error. */
fr_jval *fr_jeval_iterate(fr_jeval *e, const fr_jnode *n, fr_jval *v);
fr_jval *fr_jeval_getitem(fr_jeval *e, const fr_jnode *n, fr_jval *obj, fr_jval *key);
/* Python's < on two values: 1 if x < y, 0 if not, -1 error. */
int fr_jeval_less(fr_jeval *e, const fr_jnode *n, const fr_jval *x, const fr_jval *y);

#endif
