#!/usr/bin/env bash
# What the binaries link (docs/gpu.md): the worker needs libtorch, and with its CUDA code
# libtorch_cuda and libc10_cuda (which a linker run with --as-needed would drop), all of them
# found by the loader; the supervisor needs no torch at all; and no binary searches the current
# directory for libraries.
#   check_linkage.sh SUPERVISOR WORKER CUDA_BUILD(0|1)
set -euo pipefail
supervisor="$1" worker="$2" cuda="$3"
fail=0
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

worker_needs="$(needed "$worker")"
want=(libtorch.so libc10.so)
[ "$cuda" = 1 ] && want+=(libtorch_cuda.so libc10_cuda.so)
for lib in "${want[@]}"; do
  if ! grep -qx "$lib" <<<"$worker_needs"; then
    echo "FAIL: $worker does not need $lib; it needs:" $worker_needs >&2
    fail=1
  fi
done
if ldd "$worker" | grep -q "not found"; then
  echo "FAIL: the loader cannot find some of the worker's libraries:" >&2
  ldd "$worker" | grep "not found" >&2
  fail=1
fi
if ldd "$supervisor" | grep -E -q "lib(torch|c10)"; then
  echo "FAIL: $supervisor loads torch:" >&2
  ldd "$supervisor" | grep -E "lib(torch|c10)" >&2
  fail=1
fi
# An empty RUNPATH entry (CMake's padding, a stray ':') is read as the current directory.
for bin in "$supervisor" "$worker"; do
  runpath="$(readelf -d "$bin" | sed -n 's/.*(\(RPATH\|RUNPATH\)).*\[\(.*\)\]/\2/p')"
  if [[ ":$runpath:" == *"::"* && -n "$runpath" ]]; then
    echo "FAIL: $bin has an empty RUNPATH entry (the current directory): '$runpath'" >&2
    fail=1
  fi
done
[ "$fail" = 0 ] && echo "ok: the worker needs ${want[*]}; the supervisor no torch"
exit "$fail"
