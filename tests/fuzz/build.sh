#!/usr/bin/env bash
# tests/fuzz/build.sh — the libFuzzer targets of tests/fuzz/, built with
# clang-19 -fsanitize=fuzzer,address,undefined from the compiler's sources
# (the normal build uses gcc and never links clang's fuzzer runtime; the
# normal test suite replays the corpora through tests/fuzz/replay.c instead).
#
#   bash tests/fuzz/build.sh [OUTDIR]      default OUTDIR: build-fuzz/
#
# Writes OUTDIR/fuzz-front, OUTDIR/fuzz-json, OUTDIR/fuzz-diff.  Needs
# clang-19, its libFuzzer runtime (libclang-rt-19-dev), flex, bison and the
# libraries of the normal build.  Objects are rebuilt only when a source or
# a header is newer.  docs/testing.md says how to run the targets.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/build-fuzz}" && cd "${1:-$root/build-fuzz}" && pwd)
cc=${CC:-clang-19}
llvm_config=/usr/lib/llvm-19/bin/llvm-config
mkdir -p "$out/gen" "$out/obj"
cd "$root"

# newer FILE DEP...: true when FILE is missing or older than any DEP
newer() {
  local f=$1; shift
  [ -e "$f" ] || return 0
  for d in "$@"; do [ "$d" -nt "$f" ] && return 0; done
  return 1
}

if newer "$out/gen/lexer.c" grammar/lexer.l; then
  flex --outfile="$out/gen/lexer.c" --header-file="$out/gen/lexer.h" grammar/lexer.l
fi
if newer "$out/gen/parser.c" grammar/parser.y; then
  bison -Wall --defines="$out/gen/parser.h" --output="$out/gen/parser.c" grammar/parser.y
fi

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# emit.c's library paths (for compile --shared; meson passes the install's)
cflags=(-std=c11 -g -O1 -D_GNU_SOURCE -DGRADC_FUZZING -fno-omit-frame-pointer $sanitize
        -DGRADC_LIBDIR=\"/usr/local/lib\" -DGRADC_BIN_TO_LIBDIR=\"../lib\"
        -DGRADC_VERSION=\"fuzz\"
        -Isrc -Iruntime -Igrammar -I"$out/gen"
        $("$llvm_config" --cflags) $(pkg-config --cflags openblas lapacke nettle jansson)
        -Wno-unused-function -Wno-sign-compare -Wno-psabi   # passes.c: 64-byte vectors in always-inline helpers
        -ffp-contract=off)   # as src/meson.build: the interpreter must round as the JIT (clang contracts by default)
libs=($("$llvm_config" --ldflags --libs core orcjit native passes x86 aarch64 target analysis)
      $(pkg-config --libs openblas lapacke nettle jansson) -lm -lstdc++)

# The compiler's stages (everything but main.c) and the runtime, with
# coverage instrumentation for the fuzzer but no fuzzer main.
sources=($(ls src/*.c | grep -v '^src/main\.c$') runtime/*.c "$out/gen/lexer.c" "$out/gen/parser.c")
headers=(src/*.h runtime/gradc/*.h grammar/parse.h "$out/gen/parser.h")
objs=()
for s in "${sources[@]}"; do
  o="$out/obj/$(basename "${s%.c}").o"
  objs+=("$o")
  if newer "$o" "$s" "${headers[@]}"; then
    echo "CC $s"
    rm -f "$o"      # a failed compile must not leave the old object to link
    "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$s" -o "$o" &
    # at most two compilers at once: the machine is shared
    [ "$(jobs -rp | wc -l)" -lt 2 ] || wait -n
  fi
done
# runtime/passes.c a second time, as runtime/meson.build builds it: the
# kernels -O0 code calls, never fused (-DNOFMA: gradc_pass_n_nofma …)
o="$out/obj/passes_nofma.o"
objs+=("$o")
if newer "$o" runtime/passes.c "${headers[@]}"; then
  echo "CC runtime/passes.c -DNOFMA"
  rm -f "$o"
  "$cc" "${cflags[@]}" -DNOFMA -fsanitize=fuzzer-no-link -c runtime/passes.c -o "$o"
fi
wait

for t in front json diff; do
  echo "LINK fuzz-$t"
  "$cc" "${cflags[@]}" -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "${objs[@]}" "${libs[@]}" \
    -o "$out/fuzz-$t"
done
