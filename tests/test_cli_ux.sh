#!/usr/bin/env bash
# What a llama.cpp user expects of the command line (issue 16, section 5):
#  - llama.cpp's aliases (-c/--ctx-size, -s, -sys/--system-prompt, -r/--reverse-prompt,
#    --n-predict) and the --flag=value form give the same output as the plain flags, in every
#    command; a value that looks like --x=y after a flag taking a value stays whole;
#  - -n 0 generates nothing, -n -1 runs to the end of the context;
#  - --seed reproduces a run, the default seed is random (printed by --verbose, and that seed
#    reproduces the run);
#  - --version names the version, a commit of this repository, the build type, the backends and
#    the CPU kernels;
#  - a GGUF file is known by its magic, not its name (an ollama-style blob without extension);
#  - detokenize reads standard input as tokenize does; run -f refuses a prompt with a NUL byte;
#  - chat: /help is not sent to the model, a non-UTF-8 line is reported and skipped, a trailing
#    backslash joins lines; under a pseudo-terminal (libedit) the same, and Ctrl-C stops a reply
#    and returns to the prompt, Ctrl-C at an empty prompt exits with status 0.
set -euo pipefail
: "${FR_SOURCE_DIR:?FR_SOURCE_DIR must name the repository root (CTest sets it)}"
source "$(dirname "$0")/common/testlib.sh"
same_files() { # name a b
    if cmp -s "$2" "$3"; then pass "$1"; else fail "$1: $2 and $3 differ"; fi
}
Q3="$FIX/models/qwen3-tiny"
P="$(ref qwen3-tiny prompt_ids)"

# A text model: the qwen3-tiny weights with a byte-level tokenizer (its 256 tokens are the bytes,
# so every id the prompt gets is in the 512-id vocabulary), a plain chat template, and a
# max_position_embeddings large enough for a reply that lasts until Ctrl-C.
T="$tmp/textmodel"
mkdir -p "$T"
ln -s "$Q3/model.safetensors" "$T/"
python3 - "$T" "$Q3" <<'PY'
import json, sys
d, q3 = sys.argv[1], sys.argv[2]
cfg = json.load(open(q3 + "/config.json"))
cfg["max_position_embeddings"] = 65536
json.dump(cfg, open(d + "/config.json", "w"))
PY
python3 "$(dirname "$0")/common/byte_tokenizer.py" "$T"

# ---------------------------------------------------------------- aliases and --flag=value
run_ids() { "$FERRUM" run --ids "$P" --print-ids -q "$@"; }
want="$(run_ids -m "$Q3" -n 8 --temp 0)"
[ -n "$want" ] || fail "run -n 8 printed nothing"
expect_eq "--n-predict = -n" "$(run_ids -m "$Q3" --n-predict 8 --temp 0)" "$want"
expect_eq "--n-predict=8 --temp=0 --model=PATH" "$(run_ids --model="$Q3" --n-predict=8 --temp=0)" \
    "$want"
expect_eq "--max-tokens=8 --ids=LIST" \
    "$("$FERRUM" run -m "$Q3" --ids="$P" --max-tokens=8 --temp 0 --print-ids -q)" "$want"
want="$(run_ids -m "$Q3" --ctx 30 --temp 0)"
expect_eq "-c = --ctx" "$(run_ids -m "$Q3" -c 30 --temp 0)" "$want"
expect_eq "--ctx-size=30 = --ctx 30" "$(run_ids -m "$Q3" --ctx-size=30 --temp 0)" "$want"
expect_eq "--ctx=30 = --ctx 30" "$(run_ids -m "$Q3" --ctx=30 --temp 0)" "$want"
want="$(run_ids -m "$Q3" -n 12 --seed 42 --temp 1.5 --top-k 0)"
expect_eq "-s = --seed" "$(run_ids -m "$Q3" -n 12 -s 42 --temp 1.5 --top-k 0)" "$want"
expect_eq "--seed=42 --temp=1.5 --top-k=0 --threads=1" \
    "$(run_ids -m "$Q3" -n 12 --seed=42 --temp=1.5 --top-k=0 --threads=1)" "$want"
"$FERRUM" run -m "$T" --chat --system "Be brief." -p "Hi there" -n 24 --temp 0 -q >"$tmp/sys_a"
"$FERRUM" run -m "$T" --chat -sys "Be brief." -p "Hi there" -n 24 --temp 0 -q >"$tmp/sys_b"
"$FERRUM" run -m "$T" --chat --system-prompt="Be brief." --prompt="Hi there" -n 24 --temp 0 -q \
    >"$tmp/sys_c"
same_files "-sys = --system" "$tmp/sys_a" "$tmp/sys_b"
same_files "--system-prompt=TEXT --prompt=TEXT = --system TEXT -p TEXT" "$tmp/sys_a" "$tmp/sys_c"
"$FERRUM" run -m "$T" --chat -sys "x" -p "y" -n 24 --temp 0 -q >"$tmp/sys_d"
cmp -s "$tmp/sys_a" "$tmp/sys_d" && fail "the system message changes nothing (the checks above are void)"
# a stop string from the middle of the text (3 bytes at a character boundary, no line break):
# -r and --reverse-prompt= cut where --stop does
"$FERRUM" run -m "$T" -p "Once upon a time" -n 40 --temp 0 -q >"$tmp/story"
python3 - "$tmp/story" "$tmp/stop" <<'PY'
import sys
t = open(sys.argv[1], "rb").read()
for start in range(4, len(t) - 3):
    if (t[start] & 0xC0) == 0x80:
        continue
    end = start + 3
    while end < len(t) and (t[end] & 0xC0) == 0x80:
        end += 1
    if b"\n" not in t[start:end] and end < len(t):
        open(sys.argv[2], "wb").write(t[start:end])
        break
PY
stop="$(cat "$tmp/stop")"
"$FERRUM" run -m "$T" -p "Once upon a time" -n 40 --temp 0 -q --stop "$stop" >"$tmp/stop_a"
"$FERRUM" run -m "$T" -p "Once upon a time" -n 40 --temp 0 -q -r "$stop" >"$tmp/stop_b"
"$FERRUM" run -m "$T" -p "Once upon a time" -n 40 --temp 0 -q --reverse-prompt="$stop" \
    >"$tmp/stop_c"
same_files "-r = --stop" "$tmp/stop_a" "$tmp/stop_b"
same_files "--reverse-prompt=STR = --stop STR" "$tmp/stop_a" "$tmp/stop_c"
[ -s "$tmp/stop" ] && [ "$(wc -c <"$tmp/stop_a")" -lt "$(wc -c <"$tmp/story")" ] &&
    pass "--stop cut the text" || fail "--stop '$stop' did not cut the text"
# a prompt that looks like an option stays whole after -p
printf -- '--top-k=1' >"$tmp/dashes.txt"
"$FERRUM" run -m "$T" -p "--top-k=1" -n 16 --temp 0 -q >"$tmp/dash_a"
"$FERRUM" run -m "$T" -f "$tmp/dashes.txt" -n 16 --temp 0 -q >"$tmp/dash_b"
same_files "-p --top-k=1 is a prompt, not split" "$tmp/dash_a" "$tmp/dash_b"
# the other commands
"$FERRUM" info -m "$Q3" --ctx 100 >"$tmp/info_a"
"$FERRUM" info --model="$Q3" -c 100 >"$tmp/info_b"
"$FERRUM" info -m "$Q3" --ctx-size=100 >"$tmp/info_c"
sed -i 's/^model: .*//' "$tmp/info_a" "$tmp/info_b" "$tmp/info_c"
same_files "info -c = --ctx" "$tmp/info_a" "$tmp/info_b"
same_files "info --ctx-size=N = --ctx N" "$tmp/info_a" "$tmp/info_c"
grep -q "for 100 tokens" "$tmp/info_a" && pass "info sized the cache for 100 tokens" ||
    fail "info --ctx 100: $(cat "$tmp/info_a")"
# qwen3-tiny: 2 layers x 2 kv heads x head_dim 32 x (K, V) = 256 elements a token
grep -q "1024 bytes/token, 100.00 KiB for 100 tokens (f32)" \
    <("$FERRUM" info -m "$Q3" -c 100 --kv-type f32) && pass "info --kv-type f32: 4 bytes an element" ||
    fail "info --kv-type f32: $("$FERRUM" info -m "$Q3" -c 100 --kv-type f32 | grep kv)"
grep -q "512 bytes/token, 50.00 KiB for 100 tokens (bf16)" \
    <("$FERRUM" info -m "$Q3" --ctx-size=100 --kv-type=bf16) && pass "info --kv-type=bf16: 2 bytes" ||
    fail "info --kv-type bf16: $("$FERRUM" info -m "$Q3" -c 100 --kv-type bf16 | grep kv)"
expect_eq "tokenize --model=PATH" "$("$FERRUM" tokenize --model="$T" "Hello")" \
    "$("$FERRUM" tokenize -m "$T" "Hello")"
printf '[{"role":"user","content":"Hi"}]' >"$tmp/msgs.json"
"$FERRUM" template -m "$T" --messages "$tmp/msgs.json" >"$tmp/tmpl_a"
"$FERRUM" template --model="$T" --messages="$tmp/msgs.json" >"$tmp/tmpl_b"
same_files "template --messages=FILE" "$tmp/tmpl_a" "$tmp/tmpl_b"
"$FERRUM" logits -m "$Q3" --ids 1,2,3 -o "$tmp/l_a"
"$FERRUM" logits --model="$Q3" --ids=1,2,3 --output="$tmp/l_b"
same_files "logits --ids=LIST --output=FILE" "$tmp/l_a" "$tmp/l_b"
"$FERRUM" bench -m "$Q3" --n-prompt=4 --n-gen=2 --repeats=1 --json --no-bandwidth >"$tmp/bench.json"
python3 -c 'import json,sys; b = json.load(open(sys.argv[1])); t = [r["test"] for r in b["results"]]; sys.exit(0 if t == ["pp4", "tg2"] else 1)' \
    "$tmp/bench.json" && pass "bench --n-prompt=4 --n-gen=2" || fail "bench --flag=value: $(cat "$tmp/bench.json")"
# -d (llama-bench's depth): every test again after D untimed tokens; a decode step at depth 8
# reads 8 more cache rows: 2 layers x K,V x 2 kv heads x 32 dims x 4 bytes (f32 cache) each
"$FERRUM" bench -m "$Q3" -p 4 -n 2 -d 0,8 -r 1 --kv-type f32 --json --no-bandwidth >"$tmp/bench_d.json"
python3 - "$tmp/bench_d.json" <<'PY' && pass "bench -d 0,8: tests at both depths, 8 more cache rows read" ||
import json, sys
r = json.load(open(sys.argv[1]))["results"]
names = [x["test"] for x in r]
depths = [x["n_depth"] for x in r]
tg = {x["n_depth"]: x["bytes_per_token"] for x in r if x["n_gen"]}
sys.exit(0 if names == ["pp4", "tg2", "pp4 @ d8", "tg2 @ d8"] and depths == [0, 0, 8, 8]
         and tg[8] - tg[0] == 8 * 2 * 2 * 2 * 32 * 4 else 1)
PY
    fail "bench -d: $(cat "$tmp/bench_d.json")"
rc=0
"$FERRUM" run -m "$Q3" --ids "$P" --temp=hot >/dev/null 2>"$tmp/err" || rc=$?
expect_eq "--temp=hot is a usage error" "$rc" 2
grep -q "'hot'" "$tmp/err" || fail "--temp=hot: the message does not quote the value: $(cat "$tmp/err")"

# ---------------------------------------------------------------- -n 0 and -n -1
rc=0
"$FERRUM" run -m "$Q3" --ids "$P" -n 0 --print-ids >"$tmp/n0" 2>"$tmp/err" || rc=$?
expect_eq "-n 0 exits 0" "$rc" 0
[ ! -s "$tmp/n0" ] && pass "-n 0 --print-ids prints nothing" || fail "-n 0 printed '$(cat "$tmp/n0")'"
grep -q "generation: 0 tokens" "$tmp/err" && grep -q "prompt:     24 tokens" "$tmp/err" &&
    pass "-n 0 evaluates the prompt and generates 0 tokens" || fail "-n 0 stats: $(cat "$tmp/err")"
"$FERRUM" run -m "$T" -p "Once upon a time" -n 0 -q >"$tmp/n0_text"
[ ! -s "$tmp/n0_text" ] && pass "-n 0 prints no text" || fail "-n 0 printed text"
printf 'Hello\n' | "$FERRUM" chat -m "$T" -n 0 --stats >"$tmp/n0_chat" 2>"$tmp/err"
[ ! -s "$tmp/n0_chat" ] && ! grep -q "stop:" "$tmp/err" && pass "chat -n 0 generates nothing" ||
    fail "chat -n 0: '$(cat "$tmp/n0_chat")' $(cat "$tmp/err")"
want="$(run_ids -m "$Q3" --ctx 30 --temp 0)"
got="$("$FERRUM" run -m "$Q3" --ids "$P" --ctx 30 --temp 0 -n -1 --print-ids 2>"$tmp/err")"
expect_eq "-n -1 = no limit" "$got" "$want"
expect_eq "-n -1 runs to the end of the context (24 + 6 evaluated + 1)" \
    "$(echo "$got" | tr ',' '\n' | wc -l)" 7
grep -q "stop: context" "$tmp/err" || fail "-n -1: the stop is not the context: $(cat "$tmp/err")"
rc=0
"$FERRUM" run -m "$Q3" --ids "$P" -n -2 >/dev/null 2>&1 || rc=$?
expect_eq "-n -2 is a usage error" "$rc" 2

# ---------------------------------------------------------------- seeds
sampled() { run_ids -m "$Q3" -n 12 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 "$@"; }
expect_eq "--seed 7 twice, same ids" "$(sampled --seed 7)" "$(sampled --seed 7)"
a="$(sampled)"
distinct=no
for k in 1 2 3; do
    [ "$(sampled)" != "$a" ] && distinct=yes && break
done
[ "$distinct" == yes ] && pass "the default seed differs between runs" ||
    fail "4 runs without --seed gave the same ids: the default seed is not random"
got="$("$FERRUM" run -m "$Q3" --ids "$P" -n 12 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 \
    --print-ids -q --verbose 2>"$tmp/err")"
seed="$(sed -n 's/^ferrum run: seed \([0-9]*\) (random.*/\1/p' "$tmp/err")"
if [ -n "$seed" ]; then
    pass "--verbose prints the random seed ($seed)"
    expect_eq "--seed of the printed seed repeats the run" "$(sampled --seed "$seed")" "$got"
else
    fail "--verbose printed no seed: $(cat "$tmp/err")"
fi

# ---------------------------------------------------------------- --version
"$FERRUM" --version >"$tmp/version"
for field in "^ferrum [0-9]" "^commit: " "^build type: " "^backends: *cpu" "^cpu kernels: "; do
    grep -q "$field" "$tmp/version" && pass "--version has '$field'" ||
        fail "--version lacks '$field': $(cat "$tmp/version")"
done
commit="$(sed -n 's/^commit: *//p' "$tmp/version")"
if command -v git >/dev/null && git -C "$FR_SOURCE_DIR" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$FR_SOURCE_DIR" cat-file -e "${commit}^{commit}" 2>/dev/null &&
        pass "--version's commit $commit is in this repository" ||
        fail "--version's commit '$commit' is not a commit of $FR_SOURCE_DIR"
fi

# ---------------------------------------------------------------- GGUF by magic
"$FERRUM" quantize --quiet "$Q3" "$tmp/q8.gguf" Q8_0 2>/dev/null
cp "$tmp/q8.gguf" "$tmp/sha256-0123abcd"
want="$(run_ids -m "$tmp/q8.gguf" -n 8 --temp 0)"
got="$(run_ids -m "$tmp/sha256-0123abcd" -n 8 --temp 0)"
[ -n "$want" ] && expect_eq "a GGUF without extension loads and runs" "$got" "$want" ||
    fail "the GGUF did not run"
"$FERRUM" info -m "$tmp/sha256-0123abcd" >"$tmp/info_blob" && grep -q "q8_0" "$tmp/info_blob" &&
    pass "info reads the GGUF blob" || fail "info on the GGUF blob: $(cat "$tmp/info_blob")"
printf 'not a model at all' >"$tmp/junk"
rc=0
"$FERRUM" info -m "$tmp/junk" >/dev/null 2>"$tmp/err" || rc=$?
expect_eq "a file that is neither GGUF nor safetensors fails" "$rc" 1
grep -q "no GGUF magic" "$tmp/err" && pass "... saying it has no GGUF magic" ||
    fail "junk file message: $(cat "$tmp/err")"

# ---------------------------------------------------------------- detokenize / run -f
ids="$("$FERRUM" tokenize -m "$T" "Hello, world")"
"$FERRUM" detokenize -m "$T" "$ids" >"$tmp/detok_arg"
printf '%s\n' "$ids" | "$FERRUM" detokenize -m "$T" >"$tmp/detok_stdin"
printf '%s' "$ids" | "$FERRUM" detokenize -m "$T" - >"$tmp/detok_dash"
expect_eq "detokenize gives the text back" "$(cat "$tmp/detok_arg")" "Hello, world"
same_files "detokenize from stdin = from the argument" "$tmp/detok_arg" "$tmp/detok_stdin"
same_files "detokenize - = from the argument" "$tmp/detok_arg" "$tmp/detok_dash"
"$FERRUM" tokenize -m "$T" "Hello, world" | "$FERRUM" detokenize -m "$T" >"$tmp/detok_pipe"
same_files "tokenize | detokenize" "$tmp/detok_arg" "$tmp/detok_pipe"
printf 'Once upon\0 a time' >"$tmp/nul.txt"
rc=0
"$FERRUM" run -m "$T" -f "$tmp/nul.txt" -n 4 >"$tmp/out" 2>"$tmp/err" || rc=$?
expect_eq "run -f with a NUL byte fails" "$rc" 1
grep -q "NUL byte (offset 9)" "$tmp/err" && pass "... naming the NUL byte and its offset" ||
    fail "run -f NUL: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] && pass "... and generates nothing" || fail "run -f NUL generated text"

# ---------------------------------------------------------------- chat, piped
printf 'Hello\n/help\n\xff\xfe bad\nfirst \\\nsecond\n' |
    "$FERRUM" chat -m "$T" --temp 0 -n 8 --stats >"$tmp/chat" 2>"$tmp/err"
[ "$(grep -c 'stop:' "$tmp/err")" == 2 ] && pass "chat: 2 turns answered of 5 lines" ||
    fail "chat turn count: $(cat "$tmp/err")"
grep -q "/reset" "$tmp/err" && grep -q "/exit" "$tmp/err" && pass "/help lists the commands" ||
    fail "/help: $(cat "$tmp/err")"
grep -q "not valid UTF-8" "$tmp/err" && pass "a non-UTF-8 line is reported" ||
    fail "non-UTF-8 line not reported: $(cat "$tmp/err")"
# the joined turn, alone, gets run --chat's reply to the two lines with a line break between
printf 'first \\\nsecond\n' | "$FERRUM" chat -m "$T" --temp 0 -n 16 >"$tmp/joined"
{
    "$FERRUM" run -m "$T" --chat -p $'first \nsecond' -n 16 --temp 0 -q
    echo
} >"$tmp/joined_want"
same_files "a trailing backslash joins lines with a line break" "$tmp/joined" "$tmp/joined_want"
printf 'first second\n' | "$FERRUM" chat -m "$T" --temp 0 -n 16 >"$tmp/unjoined"
cmp -s "$tmp/joined" "$tmp/unjoined" && fail "the joined turn equals 'first second' (check is void)"
# /help and the bad line change nothing: the replies equal those of a chat without them
printf 'Hello\nfirst \\\nsecond\n' | "$FERRUM" chat -m "$T" --temp 0 -n 8 >"$tmp/chat_plain"
same_files "/help and the bad line are not sent to the model" "$tmp/chat" "$tmp/chat_plain"

# ---------------------------------------------------------------- chat under a terminal
# python's pty runs chat on a pseudo-terminal: stdin is a tty, so libedit reads the lines and
# Ctrl-C (\x03) is turned into SIGINT by the terminal, as for a user.
python3 - "$FERRUM" "$T" <<'PY' || fail "chat under a pseudo-terminal (see above)"
import os, pty, select, sys, time

ferrum, model = sys.argv[1], sys.argv[2]
ok = True


def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + "pty: " + what, file=sys.stdout if cond else sys.stderr)
    ok = ok and cond


class Chat:
    def __init__(self, *args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "dumb"
            os.execv(ferrum, [ferrum, "chat", "-m", model, "--stats"] + list(args))
        self.out = b""
        self.pos = 0  # what expect() has consumed

    def read(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                self.out += data
        return True

    def expect(self, pattern, what, limit=120):
        """Waits (at most limit s: a hang, not a speed check) for pattern after the last match."""
        end = time.time() + limit
        while True:
            i = self.out.find(pattern, self.pos)
            if i >= 0:
                got = self.out[self.pos:i]
                self.pos = i + len(pattern)
                return got
            if time.time() > end or not self.read(0.2):
                check(False, "%s: no %r in %r" % (what, pattern, self.out[self.pos:][-400:]))
                raise SystemExit(1)

    def send(self, data):
        os.write(self.fd, data)

    def exit_status(self, limit=60):
        end = time.time() + limit
        while time.time() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return st
            self.read(0.1)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        return None


# session 1: /help, a non-UTF-8 line, a continued line, Ctrl-C at the prompt
c = Chat("--temp", "0", "-n", "8")
c.expect(b"> ", "first prompt")
c.send(b"/help\r")
got = c.expect(b"> ", "prompt after /help")
check(b"/reset" in got and b"/exit" in got, "/help lists the commands")
check(b"stop:" not in got, "/help is not sent to the model")
c.send(b"caf\xff\xfe\r")
got = c.expect(b"> ", "prompt after a non-UTF-8 line")
check(b"not valid UTF-8" in got and b"stop:" not in got, "a non-UTF-8 line is reported, not sent")
c.send(b"first \\\r")
c.expect(b"... ", "continuation prompt after a trailing backslash")
c.send(b"second\r")
got = c.expect(b"stop: ", "reply to the joined lines")
check(got.count(b"[prompt") == 1, "two lines joined by a backslash make one turn")
c.expect(b"> ", "prompt after the reply")
c.send(b"\x03")
st = c.exit_status()
check(st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0,
      "Ctrl-C at an empty prompt exits with status 0 (status %r)" % (st,))

# session 2: a reply that would run to the end of a 65536-token context, stopped by Ctrl-C
c = Chat("--temp", "0", "-n", "-1", "--ctx", "65536")
c.expect(b"> ", "first prompt")
c.send(b"Tell me a long story\r")
c.expect(b"long story\r\n", "the line echoed and read")  # libedit has returned the line
c.read(1.0)
c.send(b"\x03")
got = c.expect(b"stop: ", "the interrupted reply's stats")
check(b"(reply interrupted)" in got, "Ctrl-C during a reply says it stopped it")
c.expect(b"callback]", "the stop reason")
c.expect(b"> ", "prompt after the interrupted reply")
check(True, "Ctrl-C during a reply returns to the prompt")
c.send(b"\x03")
st = c.exit_status()
check(st is not None and os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0,
      "a second Ctrl-C at the empty prompt exits with status 0 (status %r)" % (st,))
sys.exit(0 if ok else 1)
PY

finish test_cli_ux
