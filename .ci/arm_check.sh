#!/usr/bin/env bash
# The C kernels on ARM: cross-compile tests/c/check_kernels.c (the row
# primitives and an elementwise kernel against scalar double references) for
# aarch64 with Debian's gcc-aarch64-linux-gnu and run it under qemu-user.
# Also builds and runs it natively, where it checks every level of this CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAGS=(-O3 -fno-math-errno -fno-trapping-math -fopenmp-simd -Wall -Wno-unused-function
       -Isrc/xentfast tests/c/check_kernels.c -lm)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== C kernels, native ($(uname -m))"
gcc "${FLAGS[@]}" -o "$out/native" && "$out/native"

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if command -v apt-get >/dev/null && { [ -z "$sudo" ] || command -v sudo >/dev/null; }; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user >/dev/null
    else
        echo "SKIPPED: ARM check: no apt-get (or no root) to install gcc-aarch64-linux-gnu and qemu-user"
        exit 0
    fi
fi
echo "== C kernels, aarch64 (cross-compiled, run under qemu-aarch64)"
aarch64-linux-gnu-gcc -static "${FLAGS[@]}" -o "$out/arm"
qemu-aarch64 "$out/arm"
