#!/usr/bin/env python3
"""What a large JSON body costs everyone else (issue 9, defect 5): one client sends large
generate bodies (many small JSON values, the worst case for a parser and the heap) while
another polls /v2/health/live every 10 ms. Prints the liveness latency during the bodies and
the supervisor's peak and final RSS, for each build given, side by side in one run.

  scripts/python bench/large_body.py --bin new=build/bin --bin old=/tmp/old/bin
  scripts/python bench/large_body.py --mib 7 --bodies 5

Each server runs the fake worker (respawn-fake-worker next to respawn), so only the
supervisor's own work is measured, and gets --max-body-bytes large enough for the body.
"""

import argparse
import http.client
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import listening_port, start_serve, table  # noqa: E402


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


ITEMS = {"objects": b'{"a":[1,2,3]},', "numbers": b'0.1234567,'}


def make_body(mib: float, shape: str) -> bytes:
    parts = [b'{"text_input":"x","pad":[']
    size = len(parts[0])
    item = ITEMS[shape]
    while size < mib * (1 << 20):
        parts.append(item)
        size += len(item)
    parts.append(b'0]}')
    return b"".join(parts)


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v2/models/demo/generate", body,
                 {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def measure(label: str, bin_dir: str, body: bytes, bodies: int) -> list:
    cmd = [os.path.join(bin_dir, "respawn"), "serve", "--port", "0",
           "--worker-bin", os.path.join(bin_dir, "respawn-fake-worker"),
           "--model", os.path.join(os.path.dirname(__file__), "..", "models", "demo.pt"),
           "--max-body-bytes", str(len(body) + 1024)]
    proc = start_serve(cmd, label)
    try:
        port = listening_port(proc, label, cmd)
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(600):  # until a worker is ready
            health.request("GET", "/v2/health/ready")
            response = health.getresponse()
            response.read()
            if response.status == 200:
                break
            time.sleep(0.05)
        rss_before = status_kib(proc.pid, "VmRSS")
        latencies = []
        done = threading.Event()

        def poll():
            while not done.is_set():
                start = time.perf_counter()
                health.request("GET", "/v2/health/live")
                health.getresponse().read()
                latencies.append((time.perf_counter() - start) * 1000)
                time.sleep(0.01)

        poller = threading.Thread(target=poll)
        poller.start()
        started = time.perf_counter()
        statuses = [post(port, body) for _ in range(bodies)]
        elapsed = time.perf_counter() - started
        done.set()
        poller.join()
        time.sleep(0.5)
        return [label, ",".join(sorted(set(map(str, statuses)))),
                f"{elapsed / bodies * 1000:.0f}",
                f"{statistics.median(latencies):.1f}",
                f"{sorted(latencies)[int(len(latencies) * 0.99) - 1]:.1f}",
                f"{max(latencies):.1f}",
                f"{rss_before / 1024:.1f}",
                f"{status_kib(proc.pid, 'VmHWM') / 1024:.1f}",
                f"{status_kib(proc.pid, 'VmRSS') / 1024:.1f}"]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except Exception:  # noqa: BLE001 - stop it whatever went wrong
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", action="append", default=[],
                        help="LABEL=DIR with respawn and respawn-fake-worker (repeatable)")
    parser.add_argument("--mib", type=float, default=7.0, help="body size in MiB (default 7)")
    parser.add_argument("--bodies", type=int, default=5, help="bodies per server (default 5)")
    parser.add_argument("--shape", choices=sorted(ITEMS), default="objects",
                        help="objects: small objects, the worst case (default); numbers: a "
                             "flat array of floats, like a tensor")
    args = parser.parse_args()
    bins = args.bin or ["build=" + os.path.join(os.path.dirname(__file__), "..", "build", "bin")]
    body = make_body(args.mib, args.shape)
    rows = [measure(*b.split("=", 1), body, args.bodies) for b in bins]
    print(f"{args.bodies} bodies of {len(body) / (1 << 20):.1f} MiB ({args.shape}), one after another; "
          f"/v2/health/live polled every 10 ms meanwhile\n")
    table(["build", "status", "ms per body", "live p50 ms", "live p99 ms", "live max ms",
           "RSS before MiB", "peak RSS MiB", "RSS after MiB"], rows)


if __name__ == "__main__":
    main()
