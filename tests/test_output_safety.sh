#!/usr/bin/env bash
# `ferrum quantize` and `ferrum logits` never destroy a file (issue 16, section 2; rules in
# src/core/outfile.h):
#  - /dev/full: a failed write exits 1 and /dev/full stays a character device;
#  - "-" and /dev/stdout write the bytes to standard output (a file and a pipe), create no file
#    named "-" and leave /dev/stdout a symlink;
#  - a FIFO is written in place (read by a background cat) and stays a FIFO;
#  - a symlink (also a dangling one) stays a link and its target gets the output;
#  - an output that is an input (the same path, another spelling, a symlink, a hard link, any
#    model file of an HF folder) is refused and the input stays byte-identical (sha256);
#  - a replaced file keeps its mode (0640); a new one gets 0666 less the umask (022 -> 0644,
#    027 -> 0640);
#  - no temporary file is left after success or failure (or a kill mid-write, where the file
#    system has O_TMPFILE), and a failed write (model load failure, file size limit hit
#    mid-write) leaves an existing output as it was.
set -euo pipefail
source "$(dirname "$0")/common/testlib.sh"
check() { # name cmd... : passes when cmd succeeds
    local name="$1"
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
expect_rc() { # name want_rc cmd... (stdout to $tmp/out, stderr to $tmp/err)
    local name="$1" want="$2"
    shift 2
    local rc=0
    "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if [ "$rc" == "$want" ]; then pass "$name (exit $rc)"; else
        fail "$name: exit $rc, want $want: $(head -c 300 "$tmp/err")"
    fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
mode() { stat -c %a "$1"; }
same() { cmp -s "$1" "$2"; }
no_temps() { # folder: no temporary file (NAME.tmp.XXXXXX) left in it
    [ -z "$(find "$1" -name '*.tmp.*' -print -quit)" ]
}

reap() { # pid of the FIFO's reader: after a failed writer it may still wait for one, so end it
    [ "$fails" == "$fails_before_fifo" ] || kill "$1" 2>/dev/null || true
    wait "$1" || true
}

# The model is a copy, so a failure here cannot damage the committed fixture.
hf="$tmp/hf"
cp -r "$FIX/models/qwen3-tiny" "$hf"
ids=1,2,3
umask 022
"$FERRUM" quantize --quiet "$hf" "$tmp/m.gguf" Q8_0 2>/dev/null
"$FERRUM" logits -m "$hf" --ids $ids -o "$tmp/ref.f32"
[ -s "$tmp/ref.f32" ] && [ -s "$tmp/m.gguf" ] || {
    echo "FAIL setup: no reference logits or GGUF" >&2
    exit 1
}
d="$tmp/d" # the folder outputs go to; checked for leftovers throughout
mkdir "$d"

# ---------------------------------------------------------------- device node
expect_rc "quantize to /dev/full fails" 1 "$FERRUM" quantize --quiet "$hf" /dev/full Q8_0
check "/dev/full is still a character device after quantize" test -c /dev/full
grep -q "No space left" "$tmp/err" || fail "quantize /dev/full: no ENOSPC message: $(cat "$tmp/err")"
expect_rc "logits to /dev/full fails" 1 "$FERRUM" logits -m "$hf" --ids $ids -o /dev/full
check "/dev/full is still a character device after logits" test -c /dev/full
expect_rc "logits to /dev/null" 0 "$FERRUM" logits -m "$hf" --ids $ids -o /dev/null
check "/dev/null is still a character device" test -c /dev/null

# ---------------------------------------------------------------- standard output
stdout_was_link=0
[ -L /dev/stdout ] && stdout_was_link=1
(cd "$d" && "$FERRUM" logits -m "$hf" --ids $ids -o - >"$tmp/dash.f32")
check "logits -o - writes the logits to stdout (a file)" same "$tmp/dash.f32" "$tmp/ref.f32"
(cd "$d" && "$FERRUM" logits -m "$hf" --ids $ids -o - | cat >"$tmp/dash-pipe.f32")
check "logits -o - writes the logits to stdout (a pipe)" same "$tmp/dash-pipe.f32" "$tmp/ref.f32"
check "logits -o - creates no file named '-'" test ! -e "$d/-"
"$FERRUM" logits -m "$hf" --ids $ids -o /dev/stdout >"$tmp/devout.f32"
check "logits -o /dev/stdout writes to stdout (a file)" same "$tmp/devout.f32" "$tmp/ref.f32"
"$FERRUM" logits -m "$hf" --ids $ids -o /dev/stdout | cat >"$tmp/devout-pipe.f32"
check "logits -o /dev/stdout writes to stdout (a pipe)" same "$tmp/devout-pipe.f32" "$tmp/ref.f32"
if [ $stdout_was_link == 1 ]; then
    check "/dev/stdout is still a symlink" test -L /dev/stdout
else
    check "/dev/stdout is still not a regular file" test ! -f /dev/stdout -o -c /dev/stdout
fi
(cd "$d" && "$FERRUM" quantize --quiet "$hf" - Q8_0 2>/dev/null | cat >"$tmp/dash.gguf")
check "quantize to - streams the same GGUF" same "$tmp/dash.gguf" "$tmp/m.gguf"
check "quantize to - creates no file named '-'" test ! -e "$d/-"

# ---------------------------------------------------------------- FIFO
mkfifo "$d/fifo"
fails_before_fifo=$fails
cat "$d/fifo" >"$tmp/fifo.f32" &
reader=$!
expect_rc "logits into a FIFO" 0 "$FERRUM" logits -m "$hf" --ids $ids -o "$d/fifo"
reap "$reader"
check "the FIFO reader got the logits" same "$tmp/fifo.f32" "$tmp/ref.f32"
check "the FIFO is still a FIFO after logits" test -p "$d/fifo"
fails_before_fifo=$fails
cat "$d/fifo" >"$tmp/fifo.gguf" &
reader=$!
expect_rc "quantize into a FIFO" 0 "$FERRUM" quantize --quiet "$hf" "$d/fifo" Q8_0
reap "$reader"
check "the FIFO reader got the GGUF" same "$tmp/fifo.gguf" "$tmp/m.gguf"
check "the FIFO is still a FIFO after quantize" test -p "$d/fifo"
rm "$d/fifo"

# ---------------------------------------------------------------- symlinks
mkdir "$d/real"
echo old >"$d/real/target.f32"
ln -s real/target.f32 "$d/link.f32"
expect_rc "logits through a symlink" 0 "$FERRUM" logits -m "$hf" --ids $ids -o "$d/link.f32"
check "the symlink is still a symlink" test -L "$d/link.f32"
check "the symlink still names its target" test "$(readlink "$d/link.f32")" == real/target.f32
check "the symlink's target holds the logits" same "$d/real/target.f32" "$tmp/ref.f32"
ln -s link.f32 "$d/link2.f32" # a chain of two
expect_rc "quantize through two symlinks" 0 "$FERRUM" quantize --quiet "$hf" "$d/link2.f32" Q8_0
check "both links are still links" test -L "$d/link2.f32" -a -L "$d/link.f32"
check "the chain's target holds the GGUF" same "$d/real/target.f32" "$tmp/m.gguf"
ln -s real/new.f32 "$d/dangling.f32"
expect_rc "logits through a dangling symlink" 0 "$FERRUM" logits -m "$hf" --ids $ids \
    -o "$d/dangling.f32"
check "the dangling symlink is still a symlink" test -L "$d/dangling.f32"
check "the dangling symlink's target was created with the logits" \
    same "$d/real/new.f32" "$tmp/ref.f32"
check "no temporary file left in the target's folder" no_temps "$d"
rm -r "$d/real" "$d/link.f32" "$d/link2.f32" "$d/dangling.f32"

# ---------------------------------------------------------------- inputs refused
st_sha=$(sha "$hf/model.safetensors")
cfg_sha=$(sha "$hf/config.json")
gguf_sha=$(sha "$tmp/m.gguf")
expect_rc "quantize into the input safetensors is refused" 1 \
    "$FERRUM" quantize --quiet "$hf" "$hf/model.safetensors" Q8_0
grep -q "input" "$tmp/err" || fail "refusal does not name the input: $(cat "$tmp/err")"
expect_rc "quantize into the input config.json is refused" 1 \
    "$FERRUM" quantize --quiet "$hf" "$hf/config.json" Q8_0
expect_rc "quantize into the input safetensors spelled differently is refused" 1 \
    "$FERRUM" quantize --quiet "$hf" "$hf/../hf/./model.safetensors" Q8_0
ln -s "$hf/model.safetensors" "$d/st-link"
expect_rc "quantize into a symlink to the input is refused" 1 \
    "$FERRUM" quantize --quiet "$hf" "$d/st-link" Q8_0
check "the symlink to the input is still a symlink" test -L "$d/st-link"
expect_rc "logits into a folder model's safetensors is refused" 1 \
    "$FERRUM" logits -m "$hf" --ids $ids -o "$hf/model.safetensors"
expect_rc "logits into the safetensors of a .safetensors model is refused" 1 \
    "$FERRUM" logits -m "$hf/model.safetensors" --ids $ids -o "$hf/model.safetensors"
expect_rc "logits into the config.json of a .safetensors model is refused" 1 \
    "$FERRUM" logits -m "$hf/model.safetensors" --ids $ids -o "$hf/config.json"
expect_rc "logits onto the input GGUF is refused" 1 \
    "$FERRUM" logits -m "$tmp/m.gguf" --ids $ids -o "$tmp/m.gguf"
ln "$tmp/m.gguf" "$d/hard.gguf"
expect_rc "logits onto a hard link of the input GGUF is refused" 1 \
    "$FERRUM" logits -m "$tmp/m.gguf" --ids $ids -o "$d/hard.gguf"
expect_rc "quantize a GGUF onto itself is refused" 1 \
    "$FERRUM" quantize --quiet "$tmp/m.gguf" "$tmp/m.gguf" Q4_0
rc=0
"$FERRUM" logits -m "$tmp/m.gguf" --ids $ids -o - >>"$tmp/m.gguf" 2>"$tmp/err" || rc=$?
check "logits -o - with stdout appending to the input GGUF is refused (exit $rc)" test $rc == 1
rc=0
"$FERRUM" logits -m "$tmp/m.gguf" --ids $ids -o /dev/stdout >>"$tmp/m.gguf" 2>"$tmp/err" || rc=$?
check "logits -o /dev/stdout appending to the input GGUF is refused (exit $rc)" test $rc == 1
check "the input safetensors is byte-identical" test "$(sha "$hf/model.safetensors")" == "$st_sha"
check "the input config.json is byte-identical" test "$(sha "$hf/config.json")" == "$cfg_sha"
check "the input GGUF is byte-identical" test "$(sha "$tmp/m.gguf")" == "$gguf_sha"
check "no temporary file left beside the inputs" no_temps "$tmp"
rm "$d/st-link" "$d/hard.gguf"
# an unrelated file in the model folder is not an input
expect_rc "logits into a new file in the model folder" 0 \
    "$FERRUM" logits -m "$hf" --ids $ids -o "$hf/logits.f32"
check "the new file in the model folder holds the logits" same "$hf/logits.f32" "$tmp/ref.f32"
rm "$hf/logits.f32"

# ---------------------------------------------------------------- modes
echo old >"$d/kept.f32"
chmod 0640 "$d/kept.f32"
expect_rc "logits over a 0640 file" 0 "$FERRUM" logits -m "$hf" --ids $ids -o "$d/kept.f32"
check "the replaced file holds the logits" same "$d/kept.f32" "$tmp/ref.f32"
check "the replaced file keeps mode 0640 (got $(mode "$d/kept.f32"))" \
    test "$(mode "$d/kept.f32")" == 640
echo old >"$d/kept.gguf"
chmod 0604 "$d/kept.gguf"
expect_rc "quantize over a 0604 file" 0 "$FERRUM" quantize --quiet "$hf" "$d/kept.gguf" Q8_0
check "the replaced GGUF is the new one" same "$d/kept.gguf" "$tmp/m.gguf"
check "the replaced GGUF keeps mode 0604 (got $(mode "$d/kept.gguf"))" \
    test "$(mode "$d/kept.gguf")" == 604
expect_rc "logits to a new file" 0 "$FERRUM" logits -m "$hf" --ids $ids -o "$d/new.f32"
check "a new file gets 0644 under umask 022 (got $(mode "$d/new.f32"))" \
    test "$(mode "$d/new.f32")" == 644
(umask 027 && "$FERRUM" quantize --quiet "$hf" "$d/new.gguf" Q8_0 2>/dev/null)
check "a new GGUF gets 0640 under umask 027 (got $(mode "$d/new.gguf"))" \
    test "$(mode "$d/new.gguf")" == 640
check "no temporary file left after the successful writes" no_temps "$d"

# ---------------------------------------------------------------- failures leave the old output
echo old >"$d/keep.f32"
old_sha=$(sha "$d/keep.f32")
expect_rc "logits with a missing model fails" 1 \
    "$FERRUM" logits -m "$tmp/no-such-model" --ids $ids -o "$d/keep.f32"
check "the existing output is intact after a failed logits" test "$(sha "$d/keep.f32")" == "$old_sha"
expect_rc "logits with a missing model to a new path fails" 1 \
    "$FERRUM" logits -m "$tmp/no-such-model" --ids $ids -o "$d/never.f32"
check "no output created by a failed logits" test ! -e "$d/never.f32"
mkdir "$tmp/broken"
cp "$hf/config.json" "$tmp/broken/"
head -c 1000 "$hf/model.safetensors" >"$tmp/broken/model.safetensors"
cp "$d/keep.f32" "$d/keep.gguf"
expect_rc "quantize of a broken model fails" 1 \
    "$FERRUM" quantize --quiet "$tmp/broken" "$d/keep.gguf" Q8_0
check "the existing output is intact after a failed quantize" \
    test "$(sha "$d/keep.gguf")" == "$old_sha"
# A write that fails part way (file size limit: EFBIG once ignored SIGXFSZ lets write fail).
expect_rc "quantize hitting the file size limit fails" 1 \
    bash -c 'trap "" XFSZ; ulimit -f 16; exec "$@"' _ "$FERRUM" quantize --quiet "$hf" \
    "$d/keep.gguf" Q8_0
check "the existing output is intact after a failed write" test "$(sha "$d/keep.gguf")" == "$old_sha"
expect_rc "logits hitting the file size limit fails" 1 \
    bash -c 'trap "" XFSZ; ulimit -f 4; exec "$@"' _ "$FERRUM" logits -m "$hf" --ids $ids \
    -o "$d/keep.f32"
check "the existing logits are intact after a failed write" \
    test "$(sha "$d/keep.f32")" == "$old_sha"
# Killed mid-write (SIGXFSZ's default action, as Ctrl-C or kill -9 would): where the file system
# offers O_TMPFILE the temporary file has no name yet, so nothing is left; the target is intact.
rc=0
bash -c 'ulimit -f 16; exec "$@"' _ "$FERRUM" quantize --quiet "$hf" "$d/keep.gguf" Q8_0 \
    2>/dev/null || rc=$?
check "quantize killed mid-write by SIGXFSZ (exit $rc)" test $rc -gt 128
check "the existing output is intact after the kill" test "$(sha "$d/keep.gguf")" == "$old_sha"
if python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_WRONLY))' "$d" \
    2>/dev/null; then
    check "no temporary file left after the failures and the kill" no_temps "$d"
else # the named fallback: the one file a kill can leave is keep.gguf's temporary
    left=$(find "$d" -name '*.tmp.*')
    check "only the killed write's named temporary file is left ($left)" \
        test "$(echo "$left" | grep -c '/keep\.gguf\.tmp\.[a-z0-9]\{6\}$')" == 1
    rm -f $left
fi
expect_rc "an output in a missing folder fails" 1 \
    "$FERRUM" logits -m "$hf" --ids $ids -o "$d/no-such-folder/x.f32"
grep -q "no-such-folder/x.f32" "$tmp/err" || fail "missing folder: message names no path"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/sock"
expect_rc "a socket as the output is refused" 1 "$FERRUM" logits -m "$hf" --ids $ids -o "$d/sock"
check "the socket is still a socket" test -S "$d/sock"
rm "$d/sock"
echo old >"$d/ro.f32"
chmod 0444 "$d/ro.f32"
if [ "$(id -u)" != 0 ]; then # root may write any file, as with `>`
    expect_rc "a read-only file is refused, not replaced" 1 \
        "$FERRUM" logits -m "$hf" --ids $ids -o "$d/ro.f32"
    check "the read-only file is intact" test "$(cat "$d/ro.f32")" == old
else # and a file of another owner keeps its owner and group when root replaces it
    chown 12345:23456 "$d/ro.f32"
    expect_rc "root replaces another user's read-only file" 0 \
        "$FERRUM" logits -m "$hf" --ids $ids -o "$d/ro.f32"
    check "the replaced file keeps owner and group (got $(stat -c %u:%g "$d/ro.f32"))" \
        test "$(stat -c %u:%g "$d/ro.f32")" == 12345:23456
    check "the replaced file keeps mode 0444 (got $(mode "$d/ro.f32"))" \
        test "$(mode "$d/ro.f32")" == 444
fi
rm -f "$d/ro.f32"
expect_rc "a folder as the output is refused" 1 \
    "$FERRUM" logits -m "$hf" --ids $ids -o "$d"
check "the folder is still a folder" test -d "$d"

finish test_output_safety
