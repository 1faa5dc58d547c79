#!/usr/bin/env bash
# The C SDK's native tests: golden.c (the record contract's golden vectors
# against src/out.c) and dispatch.c (the dispatcher's chains against plain C
# computations), compiled for this machine with the sanitizers and run from
# the repository root.
#
#     sdk/c/tests/run.sh          (CC picks the compiler: cc by default)
#
# dispatch.c needs the WIT bindings that `cargo xtask guests` generates into
# target/sdk-tools/c/bindings.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
cc="${CC:-cc}"
sdk=sdk/c
bindings=target/sdk-tools/c/bindings

if [[ ! -f "$bindings/job.h" ]]; then
    echo "sdk/c/tests: no WIT bindings in $bindings; run \`cargo xtask guests\` first" >&2
    exit 2
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/weft-c-tests.XXXXXX")"
trap 'rm -rf "$out"' EXIT

flags=(-std=gnu11 -O1 -g -Wall -Wextra -I "$sdk/include" -I "$sdk/src")
# The sanitizers where the compiler has them; a finding fails the run.
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
if echo 'int main(void) { return 0; }' | "$cc" "${sanitize[@]}" -x c - -o "$out/probe" 2>/dev/null &&
    "$out/probe"; then
    flags+=("${sanitize[@]}")
else
    echo "sdk/c/tests: $cc cannot build with -fsanitize=address,undefined here; running without" >&2
fi

"$cc" "${flags[@]}" "$sdk/tests/golden.c" "$sdk/src/out.c" -o "$out/golden"
# The bindings' job.c is not compiled: its import adapters are wasm-only, so
# dispatch.c defines the imports and the few helpers the dispatcher uses.
"$cc" "${flags[@]}" -I "$bindings" "$sdk/tests/dispatch.c" "$sdk/src/dispatch.c" "$sdk/src/out.c" -o "$out/dispatch"

# A sanitizer's finding ends its program with a report: say where it came from.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
status=0
run() {
    local name="$1" rc=0
    shift
    "$@" || rc=$?
    if ((rc != 0)); then
        echo "sdk/c/tests: $name failed (exit status $rc)" >&2
        status=1
    fi
}
run golden "$out/golden" codec/golden/records.json
run dispatch "$out/dispatch"
exit "$status"
