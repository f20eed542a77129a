#!/bin/sh
# tests/install/run.sh BUILD_DIR — what a user with only the installed files
# (no checkout) does, each path run against the installed tree:
#   1. `meson install --destdir` the build into a temporary directory;
#   2. the reference is there: share/doc/gradc/language.md and man1/gradc.1;
#   3. compile tiny.expr with the INSTALLED gradc, then
#      cc prog.c tiny.o $(pkg-config --cflags --libs gradc) against the
#      installed header, library and gradc.pc, and run the program;
#   4. CMake: cmake/CMakeLists.txt finds the installed gradcConfig.cmake and
#      gradc_add_expr compiles tiny.expr at build time; build and run it;
#   5. Python: the installed gradc compiles libtiny.so (--shared) and prog.py
#      calls it through the installed gradc.py ($PYTHON: a python3 with NumPy).
# The staged tree is not at its prefix, so pkg-config gets PKG_CONFIG_SYSROOT_DIR
# (which prefixes the staged root to gradc.pc's -I and -L), and the programs run
# with LD_LIBRARY_PATH at the staged libdir (after a real install to /usr/local
# that is ldconfig's job).  $CFLAGS: extra compiler flags (the sanitizer build
# passes its -fsanitize=..., which its instrumented libgradc needs; CMake reads
# CFLAGS too, and the uninstrumented python gets libasan preloaded).
# The temporary directory is removed on every exit.
set -eu
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
root=$tmp/root

meson install -C "$build" --destdir "$root" --no-rebuild --quiet
pcdir=$(dirname "$(find "$root" -name gradc.pc)")
libdir=$(dirname "$pcdir")
gradc=$(find "$root" -path '*/bin/gradc')
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cd "$tmp"
cp "$here/prog.c" .
"$gradc" compile "$here/tiny.expr" --name tiny -o tiny.o --header tiny.h
flags=$(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$root" pkg-config --cflags --libs gradc)
echo "cc prog.c tiny.o $flags"
# shellcheck disable=SC2086  # $flags and $CFLAGS are word lists
cc ${CFLAGS:-} prog.c tiny.o $flags -o prog
./prog

echo "== pkg-config: ok"

# 2. the reference, without a checkout
doc=$(find "$root" -path '*/share/doc/gradc/language.md')
man=$(find "$root" -path '*/man1/gradc.1')
grep -q '^## ' "$doc"
grep -q '^\.SH SYNOPSIS' "$man"
grep -q 'gradc_describe' "$man"
grep -q 'gradc_add_expr' "$doc"
echo "== reference: $doc, $man"

# 4. CMake against the staged prefix
prefix=$(dirname "$(dirname "$gradc")")
mkdir cmake-src cmake-build
cp "$here/cmake/CMakeLists.txt" "$here/prog.c" "$here/tiny.expr" cmake-src/
cmake -S cmake-src -B cmake-build -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build cmake-build
./cmake-build/app
echo "== cmake: ok"

# 5. Python against the staged gradc.py
python=${PYTHON:-python3}
pydir=$(dirname "$(find "$root" -name gradc.py)")
# where a real install puts gradc.py must be on that python's sys.path
"$python" -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "${pydir#"$root"}" || {
  echo "install: gradc.py is installed in ${pydir#"$root"}, which is not on $python's sys.path" >&2
  exit 1
}
"$gradc" compile "$here/tiny.expr" --shared --name tiny -o libtiny.so
preload=
case "${CFLAGS:-}" in
  *sanitize=*address*) preload=$(cc -print-file-name=libasan.so) ;;
esac
LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$pydir" "$python" "$here/prog.py" ./libtiny.so
echo "== python: ok"
