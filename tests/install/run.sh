#!/bin/sh
# tests/install/run.sh BUILD_DIR — spec §7's last line, as a user would do it:
#   1. `meson install --destdir` the build into a temporary directory;
#   2. compile tiny.expr with the INSTALLED gradc;
#   3. cc prog.c tiny.o $(pkg-config --cflags --libs gradc) against the
#      installed header, library and gradc.pc, and run the program.
# The staged tree is not at its prefix, so pkg-config gets PKG_CONFIG_SYSROOT_DIR
# (which prefixes the staged root to gradc.pc's -I and -L), and the programs run
# with LD_LIBRARY_PATH at the staged libdir (after a real install to /usr/local
# that is ldconfig's job).  $CFLAGS: extra compiler flags (the sanitizer build
# passes its -fsanitize=..., which its instrumented libgradc needs).
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
