#!/usr/bin/env python3
"""Writes tests/data/jinja_cases.json: Jinja snippets with the output jinja2 renders for them in
the environment transformers uses for chat templates (ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and loopcontrols, plus its tojson / raise_exception / strftime_now).
tests/test_template.c renders every snippet with ferrum's interpreter and compares bytes.

Error cases are snippets jinja2 rejects; for them the file keeps a hand-written fragment the
ferrum message must contain (the line and column it points at).

    python3 scripts/gen_jinja_cases.py            # regenerate (needs jinja2 >= 3.1)
    python3 scripts/gen_jinja_cases.py --check    # only verify the committed file
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_env():
    # Mirrors transformers.utils.chat_template_utils._compile_jinja_template.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    class Generation(jinja2.ext.Extension):
        # transformers' AssistantTracker: {% generation %} renders its body unchanged
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


V = {"xs": [1, 2, 3], "d": {"a": 1, "b": None, "c": "x"}, "s": "Hello World", "n": None,
     "msgs": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
              {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}],
     "u": "h\u00e9llo \u4e16\u754c", "f": 2.5, "t": True, "e": "", "nested": {"k": [1, {"z": "q"}]}}

# (name, template[, vars]) -- vars default to V
CASES = [
    # text and whitespace
    ("text", "plain text"),
    ("trailing_newline_dropped", "a\n"),
    ("only_one_trailing_newline_dropped", "a\n\n"),
    ("crlf_normalised", "a\r\nb\rc"),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\ndone"),
    ("trim_blocks_not_after_var", "{{ 1 }}\n{{ 2 }}"),
    ("lstrip_blocks", "a\n    {% if true %}\n    b\n    {% endif %}\nc"),
    ("lstrip_not_var", "a\n    {{ 'x' }}\nb"),
    ("lstrip_only_blank_prefix", "a {% if true %}b{% endif %}"),
    ("lstrip_tabs", "x\n\t \t{% if true %}y{% endif %}"),
    ("lstrip_at_start", "   {% if true %}z{% endif %}"),
    ("lstrip_disabled_plus", "a\n  {%+ if true %}b{% endif %}"),
    ("trim_disabled_plus", "{% if true +%}\nb{% endif %}"),
    ("dash_both", "a   {%- if true -%}   \n  b  {%- endif -%}  \n c"),
    ("dash_var", "x  \n {{- 'y' -}} \n z"),
    ("dash_var_keeps_other_side", "x  {{- 'y' }}  z"),
    ("comment", "a{# hidden #}b"),
    ("comment_trim", "a\n  {# c #}\nb"),
    ("comment_dash", "a  {#- c -#}  b"),
    ("raw", "{% raw %}{{ not evaluated }}{% endraw %}"),
    ("raw_whitespace", "a\n  {% raw %}\n{{ x }}\n  {% endraw %}\nb"),
    ("set_block", "{% set x %}\n  hi {{ 1 + 1 }}\n{% endset %}[{{ x }}]"),
    ("newline_in_string_literal", "{{ 'a\nb' }}"),
    # literals and printing
    ("ints", "{{ 1 }} {{ -5 }} {{ 1_000 }}"),
    ("floats", "{{ 1.5 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 2.5e3 }} {{ 1e16 }} {{ 123456789012345.6 }}"),
    ("bools_none", "{{ true }} {{ False }} {{ none }} {{ None }} {{ n }}"),
    ("strings_escapes", "{{ 'a\\tb\\\\c\\'d' }}|{{ \"q\\\"\\n\" }}|{{ '\\x41\\u00e9\\101' }}|{{ '\\d' }}"),
    ("adjacent_strings", "{{ 'ab' \"cd\" }}"),
    ("list_repr", "{{ [1, 'a', none, true, 1.5, [2]] }}"),
    ("dict_repr", "{{ {'a': 1, 'b': [1, 2], 'c': {'d': none}} }}"),
    ("tuple_repr", "{{ (1, 2) }} {{ (1,) }} {{ () }}"),
    ("repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n'] }}"),
    ("repr_unicode", "{{ [u] }}"),
    ("print_tuple_expr", "{{ 1, 2 }}"),
    ("undefined_prints_empty", "[{{ nope }}]"),
    ("var_repr", "{{ d }} {{ xs }} {{ msgs[2] }}"),
    # operators
    ("arith", "{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}"),
    ("float_arith", "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1.5 * 2 }} {{ f + 1 }} {{ 3.0 // 2 }}"),
    ("pow_left_assoc", "{{ 2 ** 3 ** 2 }}"),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }}"),
    ("concat", "{{ 'a' ~ 1 ~ none ~ nope ~ [1] }}"),
    ("str_plus", "{{ 'a' + 'b' }} {{ [1] + [2, 3] }}"),
    ("str_times", "{{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [0] * 3 }} {{ 'z' * 0 }}"),
    ("bool_arith", "{{ true + 1 }} {{ true + true }} {{ false * 5 }}"),
    ("compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ [1, 2] < [1, 3] }} {{ true == 1 }}"),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1 < 2 }}"),
    ("and_or_values", "{{ 0 and 1 }}|{{ 2 and 3 }}|{{ '' or 'x' }}|{{ 'y' or 'x' }}|{{ none or nope }}|{{ not 0 }}|{{ not 'a' }}"),
    ("in_ops", "{{ 'ell' in s }} {{ 2 in xs }} {{ 'a' in d }} {{ 'z' not in d }} {{ 5 not in xs }} {{ 'q' in nope }} {{ '' in 'abc' }}"),
    ("cond_expr", "{{ 'y' if t else 'n' }} {{ 'y' if e else 'n' }} [{{ 'y' if false }}] {{ 1 if false else 2 if true else 3 }}"),
    ("unary", "{{ -f }} {{ +3 }} {{ - -1 }} {{ -xs[0] }}"),
    ("filter_binds_tighter", "{{ xs|length - 1 }} {{ -1|abs }} {{ 'ab'|upper ~ 'c' }}"),
    # subscripts, attributes, slices
    ("subscripts", "{{ xs[0] }} {{ xs[-1] }} {{ d['a'] }} {{ d.a }} {{ msgs[1].role }} {{ msgs[1]['content'] }} {{ nested.k[1].z }} {{ xs.1 }}"),
    ("missing_items_undefined", "[{{ xs[10] }}][{{ d.zz }}][{{ d['zz'] }}][{{ s.nothing }}][{{ n.attr }}][{{ s[100] }}]"),
    ("string_index_unicode", "{{ u[1] }} {{ u[-1] }} {{ u|length }}"),
    ("slices", "{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[-2:] }} {{ xs[5:] }} {{ xs[1:-1] }}"),
    ("string_slices", "{{ s[::-1] }}|{{ s[:5] }}|{{ s[6:] }}|{{ u[::-1] }}|{{ u[1:3] }}|{{ s[-5:-1] }}|{{ s[::3] }}"),
    ("dict_methods_vs_keys", "{{ {'items': 1}.items()|list }} {{ {'items': 1}['items'] }}"),
    ("dict_get", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 7) }} {{ d.get('b', 7) }}"),
    ("dict_iter", "{% for k in d %}{{ k }},{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{{ d.keys()|list }}|{{ d.values()|list }}"),
    # string methods
    ("startswith_endswith", "{{ s.startswith('Hell') }} {{ s.endswith('World') }} {{ s.startswith(('x', 'He')) }} {{ s.endswith('x') }}"),
    ("split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b \\n c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ ''.split() }} {{ ''.split(',') }}"),
    ("split_index", "{{ '<think>x</think>\\n\\nA'.split('</think>')[-1].lstrip('\\n') }}|{{ 'q'.split('</think>')[0] }}"),
    ("strip", "[{{ '  a b \\n'.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '\\n\\na\\n'.lstrip('\\n') }}][{{ '\\n\\na\\n'.rstrip('\\n') }}][{{ '  a  '.lstrip() }}][{{ '  a  '.rstrip() }}][{{ 'abcba'.strip('ab') }}]"),
    ("replace_case", "{{ s.replace('o', '0') }} {{ s.replace('o', '', 1) }} {{ 'ab'.replace('', '-') }} {{ s.upper() }} {{ s.lower() }} {{ 'hello wORLD'.title() }} {{ 'aBC dEF'.capitalize() }}"),
    ("find_count_join", "{{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('z') }} {{ s.count('l') }} {{ '-'.join(['a', 'b']) }} {{ u.find('\u4e16') }}"),
    ("str_format", "{{ '{} and {}'.format(1, 'b') }} {{ '{0}{0}{1}'.format('x', 'y') }} {{ '{a}-{b}'.format(a=1, b=none) }} {{ '{{}}'.format() }}"),
    ("str_predicates", "{{ '123'.isdigit() }} {{ '12a'.isdigit() }} {{ ' \\t'.isspace() }} {{ 'ab'.isalpha() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }} {{ ''.isdigit() }}"),
    ("removeprefix", "{{ 'prefix-body'.removeprefix('prefix-') }} {{ 'a.txt'.removesuffix('.txt') }} {{ 'a'.removeprefix('b') }}"),
    # filters
    ("length", "{{ xs|length }} {{ d|length }} {{ s|length }} {{ u|count }} {{ nope|length }} {{ ''|length }}"),
    ("tojson", "{{ d|tojson }} {{ xs|tojson }} {{ s|tojson }} {{ n|tojson }} {{ t|tojson }} {{ f|tojson }} {{ u|tojson }} {{ 'q\"\\\\\\n\\t\\x01\\x7f'|tojson }}"),
    ("tojson_indent", "{{ nested|tojson(indent=2) }}|{{ {'a': [], 'b': {}}|tojson(indent=4) }}|{{ [1, [2, 3]]|tojson(indent=0) }}"),
    ("tojson_options", "{{ d|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ u|tojson(ensure_ascii=true) }} {{ {1: 'x', none: 2, true: 3}|tojson }}"),
    ("tojson_floats", "{{ [1.0, 0.5, 1e100, 1e-7, -0.0, 3.14159]|tojson }}"),
    ("trim", "[{{ '  x  '|trim }}][{{ 'xxaxx'|trim('x') }}][{{ 5|trim }}]"),
    ("default", "{{ nope|default('d') }} {{ n|default('d') }} {{ n|default('d', true) }} {{ e|d('empty', true) }} {{ s|d('x') }} [{{ nope|default }}]"),
    ("join", "{{ xs|join }} {{ xs|join(', ') }} {{ ['a', none, 1]|join('-') }} {{ 'abc'|join('.') }}"),
    ("string_int_float", "{{ 3|string }} {{ none|string }} {{ '42'|int }} {{ ' 42 '|int }} {{ '4.7'|int }} {{ 3.9|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ true|int }} {{ '1.5'|float }} {{ 2|float }} {{ 'x'|float }}"),
    ("list_first_last", "{{ 'abc'|list }} {{ d|list }} {{ xs|first }} {{ xs|last }} {{ 'abc'|first }} {{ u|last }} [{{ []|first }}]"),
    ("reverse", "{{ 'abc'|reverse }} {{ xs|reverse|list }} {{ u|reverse }} {% for x in xs|reverse %}{{ x }}{% endfor %}"),
    ("case_filters", "{{ 'hello world'|upper }} {{ 'HeLLo'|lower }} {{ 'hello wORLD'|capitalize }} {{ 'hello-world foo(bar)'|title }} {{ \"they're\"|title }}"),
    ("items_filter", "{{ d|items|list }} {% for k, v in {'x': 1}|items %}{{ k }}{{ v }}{% endfor %}"),
    ("map_select", "{{ msgs|map(attribute='role')|list }} {{ msgs|selectattr('role', 'equalto', 'user')|list|length }} {{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|join(',') }} {{ xs|select('odd')|list }} {{ xs|reject('odd')|list }} {{ ['a', 'b']|map('upper')|list }} {{ msgs|selectattr('tool_calls')|list|length }} {{ msgs|selectattr('tool_calls')|map(attribute='tool_calls.0.function.name')|list }}"),
    ("abs_replace_safe", "{{ -3|abs }} {{ -2.5|abs }} {{ s|replace('l', 'L') }} {{ s|replace('l', 'L', 1) }} {{ s|safe }}"),
    ("indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x\\n'|indent('>') }}"),
    ("escape", "{{ '<a href=\"x\">&\\'</a>'|e }}"),
    # tests
    ("tests_defined", "{{ s is defined }} {{ nope is defined }} {{ nope is undefined }} {{ d.zz is defined }} {{ d.b is none }} {{ d.b is not none }} {{ n is none }}"),
    ("tests_types", "{{ s is string }} {{ 1 is string }} {{ d is mapping }} {{ xs is mapping }} {{ xs is sequence }} {{ s is sequence }} {{ d is sequence }} {{ 1 is number }} {{ f is number }} {{ t is number }} {{ 1 is integer }} {{ t is integer }} {{ f is float }} {{ xs is iterable }} {{ 1 is iterable }}"),
    ("tests_bool", "{{ t is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ t is boolean }} {{ 1 is boolean }}"),
    ("tests_misc", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 2 is in xs }} {{ 1 is eq 1 }} {{ 1 is ne 1 }} {{ 2 is gt 1 }} {{ 2 is lessthan 1 }} {{ n is sameas none }} {{ 'tojson' is filter }} {{ 'defined' is test }} {{ range is callable }}"),
    ("test_not_and", "{{ s is not none and s is string }} {{ nope is not defined or false }}"),
    # statements
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}many{% endif %} {% endfor %}"),
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}"),
    ("for_prev_next_cycle", "{% for x in xs %}[{{ loop.previtem }}/{{ x }}/{{ loop.nextitem }}/{{ loop.cycle('o', 'e') }}]{% endfor %}"),
    ("for_unpack", "{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }} {% endfor %}{% for (k, v) in d.items() %}{{ k }}{% endfor %}"),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in xs %}{{ x }}{% else %}no{% endfor %}"),
    ("for_filter", "{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{{ loop.last }} {% endfor %}"),
    ("for_string_dict_undef", "{% for c in 'h\u00e9' %}[{{ c }}]{% endfor %}{% for k in {'z': 1} %}{{ k }}{% endfor %}{% for x in nope %}never{% endfor %}"),
    ("nested_loops", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ i }}{{ j }}{{ loop.index }}{% endfor %};{{ loop.index }} {% endfor %}"),
    ("break_continue", "{% for x in range(10) %}{% if x is odd %}{% continue %}{% endif %}{% if x > 6 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("range", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }} {{ range(0)|list }} {% for i in range(2) %}{{ i }}{% endfor %}"),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i * 10 %}({{ x }}){% endfor %}{{ x }}"),
    ("set_in_if_leaks", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}"),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 3, 4 %}{{ c }}"),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for x in xs %}{% set ns.count = ns.count + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.missing is defined }}"),
    ("namespace_from_dict", "{% set ns = namespace(d) %}{{ ns.a }}{{ ns.c }}"),
    ("dict_global", "{{ dict(a=1, b='x') }}"),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}"),
    ("macro_sees_globals", "{% set g = 1 %}{% macro m() %}{{ g }}{{ s }}{% endmacro %}{% set g = 2 %}{{ m() }}"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}]{% endmacro %}{{ m(1) }}"),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}"),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"),
    ("generation_block", "A{% generation %}B{{ 1 }}{% endgeneration %}C"),
    ("unknown_filter_in_untaken_if", "{% if false %}{{ x|no_such_filter }}{% endif %}ok"),
    ("unknown_test_in_untaken_branch", "{{ 1 if true else (x is no_such_test) }}"),
    ("loop_object_in_nested_if", "{% for m in msgs %}{% if loop.first and m.role == 'system' %}S{% elif not loop.last %}{{ loop.index0 }}{% else %}L{% endif %}{% endfor %}"),
    # realistic chat-template idioms
    ("reverse_scan", "{% set ns = namespace(last=-1) %}{% for m in msgs[::-1] %}{% set idx = (msgs|length - 1) - loop.index0 %}{% if ns.last == -1 and m.role == 'user' %}{% set ns.last = idx %}{% endif %}{% endfor %}{{ ns.last }}"),
    ("tool_call_json", "{% for m in msgs %}{% if m.tool_calls %}{% for tc in m.tool_calls %}{% if tc.function %}{% set tc = tc.function %}{% endif %}{\"name\": \"{{ tc.name }}\", \"arguments\": {{ tc.arguments|tojson }}}{% endfor %}{% endif %}{% endfor %}"),
    ("content_is_string", "{% for m in msgs %}{% if m.content is string %}{{ m.content }}{% endif %}{% endfor %}"),
    ("strftime_static", "{{ strftime_now('%%') }}"),
    ("alternation_check", "{% for m in msgs[1:] %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}{{ m.role }};{% endfor %}"),
    ("filter_inside_concat", "{% for m in msgs %}{% if m.role == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = m.role %}{% endif %}{{ '<turn>' + role + '\n' + ('  ' ~ m.content ~ ' ')|trim + '<end>\n' }}{% endfor %}"),
    ("defaults_and_items", "{%- set date_string = \"26 Jul 2024\" %}\n{%- if not tools_in_user_message is defined %}\n    {%- set tools_in_user_message = true %}\n{%- endif %}\n{{- \"Date: \" + date_string + \"\\n\" }}\n{%- for k, v in msgs[2].tool_calls[0].function.arguments|items %}\n    {{- k }}={{ v|tojson }}{% if not loop.last %},{% endif %}\n{%- endfor %}\n{{- tools_in_user_message }}"),
]

ERRORS = [
    # (name, template, fragment the ferrum message must contain)
    ("unknown_filter", "{{ 'a' }}\n  {{ x | nofilter }}", "line 2 column 10"),
    ("unknown_filter_in_loop", "{% for a in xs %}{{ a|nofilter }}{% endfor %}", "line 1 column 23"),
    ("unknown_test", "{{ x is notatest }}", "line 1 column 9"),
    ("unclosed_if", "ab\n{% if true %}x", "line 2 column 1"),
    ("unclosed_for", "{% for x in xs %}{{ x }}", "line 1 column 1"),
    ("unclosed_var", "x {{ 1 + ", "line 1 column 3"),
    ("unclosed_comment", "a {# b", "line 1 column 3"),
    ("unclosed_string", "{{ 'abc }}", "line 1 column 4"),
    ("bad_syntax", "{{ 1 + }}", "line 1 column 8"),
    ("bad_char", "{{ 1 @ 2 }}", "line 1 column 6"),
    ("stray_endif", "a\n{% endif %}", "line 2 column 4"),
    ("unknown_tag", "{% include 'x.j2' %}", "line 1 column 4"),
    ("bad_bracket", "{{ [1, 2) }}", "line 1 column 9"),
    ("break_outside_loop", "{% break %}", "line 1 column 4"),
    ("raise_exception", "{{ raise_exception('Bad role: ' ~ 'x') }}", "Bad role: x"),
    ("undefined_attr_of_undefined", "{{ nope.attr }}", "line 1 column 9: 'nope' is undefined"),
    ("undefined_plus", "{{ nope + 'a' }}", "'nope' is undefined"),
    ("type_error_add", "{{ 1 + 'a' }}", "line 1 column 6"),
    ("not_in_string_non_str", "{{ 1 in 'abc' }}", "line 1 column 6"),
    ("list_append_unsafe", "{{ xs.append(4) }}", "unsafe"),
    ("division_by_zero", "{{ 1 / 0 }}", "division"),
    ("range_too_big", "{{ range(1000000)|length }}", "range"),
    ("unknown_filter_runtime", "{% if true %}{{ 1|nofilter }}{% endif %}", "line 1 column 19"),
    ("none_not_iterable", "{% for x in n %}{% endfor %}", "not iterable"),
    ("unpack_mismatch", "{% set a, b = [1, 2, 3] %}", "too many values"),
    ("set_attr_non_namespace", "{% set d.a = 1 %}", "namespace"),
    ("call_non_callable", "{{ s() }}", "not callable"),
    ("cond_without_else_used", "{{ (1 if false) + 1 }}", "line 1 column"),
]


def render(env, src, variables):
    return env.from_string(src).render(**variables)


def build():
    env = make_env()
    out = {"generator": "scripts/gen_jinja_cases.py", "jinja2": jinja2.__version__,
           "vars_json": json.dumps(V, ensure_ascii=False),
           "cases": [], "errors": []}
    for c in CASES:
        name, src = c[0], c[1]
        out["cases"].append({"name": name, "template": src, "expected": render(env, src, V)})
    for name, src, frag in ERRORS:
        try:
            render(env, src, V)
        except Exception as exc:  # jinja2 must reject every error case
            out["errors"].append({"name": name, "template": src, "jinja2_error": type(exc).__name__,
                                  "must_contain": frag})
            continue
        raise SystemExit(f"error case {name!r} renders in jinja2")
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "data", "jinja_cases.json")
    data = build()
    if "--check" in sys.argv:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        same = old["cases"] == data["cases"] and old["errors"] == data["errors"]
        print("jinja_cases.json", "matches jinja2" if same else "DIFFERS from jinja2")
        sys.exit(0 if same else 1)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(data['cases'])} cases and {len(data['errors'])} error cases to {path}")


if __name__ == "__main__":
    main()
