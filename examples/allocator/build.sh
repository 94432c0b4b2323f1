#!/bin/sh
# Build the allocator examples: ./build.sh [OUTDIR] (default: this directory).
# Needs an AArch64 cross gcc (gcc-aarch64-linux-gnu).
set -e
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
CC=${CC:-aarch64-linux-gnu-gcc}
for prog in use_after_free overflow; do
    "$CC" -O1 -g -ffreestanding -nostdlib -nostartfiles -static -mgeneral-regs-only \
        -march=armv8.5-a+memtag -fno-stack-protector -Wl,--build-id=none \
        -Wl,--no-warn-rwx-segments -T "$here/link.ld" "$here/start.S" "$here/boot.c" \
        "$here/alloc.c" "$here/$prog.c" -o "$out/$prog.elf"
done
