# Shared preamble of the tests/test_*.sh scripts: source it after `set -euo pipefail`.
# Checks the variables CTest sets, makes a temporary folder removed on exit, and gives the
# counting helpers; a script ends with `finish NAME`.
: "${FERRUM:?FERRUM must name the built ferrum binary (CTest sets it)}"
: "${FR_TEST_DATA:?FR_TEST_DATA must name tests/data (CTest sets it)}"
FIX="$FR_TEST_DATA/fixtures"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $*"; }
fail() {
    echo "FAIL $*" >&2
    fails=$((fails + 1))
}
expect_eq() { # name got want
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}
ref() { # NAME FIELD -> the comma-separated ids of a fixture reference's field
    python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))[sys.argv[2]])))' \
        "$FIX/refs/$1.json" "$2"
}
finish() { # NAME: the exit status of the script
    if [ "$fails" != 0 ]; then
        echo "$1: $fails failure(s)" >&2
        exit 1
    fi
    echo "$1: all checks passed"
}
