#!/usr/bin/env python3
"""Walking-skeleton benchmark: cold start, worker spawn-to-ready, generate latency, RSS.

  scripts/python bench/startup_latency.py [--bin build/bin/respawn] [--requests 50]
                                          [--restarts 5] [--tokens 32] [--serve-arg=ARG ...]

Starts `respawn serve --port 0` with the bundled demo model, then measures:
  cold start      exec of the supervisor -> /v2/health/ready answers 200
  spawn-to-ready  worker spawn -> ready frame, over several SIGKILLed-and-replaced workers
                  (respawn_worker_time_to_ready_seconds from /metrics)
  generate p50    sequential greedy generates of --tokens tokens on one keep-alive connection
  RSS             the supervisor's and the worker's resident memory after the run
Talks only to 127.0.0.1, stops the server it started (by pid), and prints a Markdown table.
Stdlib only, so any python3 will do.
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metric(conn: http.client.HTTPConnection, name: str) -> float:
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def get_json(conn: http.client.HTTPConnection, path: str):
    conn.request("GET", path)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if get_json(conn, "/v2/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit("server did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "respawn"))
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="one more argument for `respawn serve` (repeat), e.g. --serve-arg=--worker-threads=1")
    args = ap.parse_args()

    started = time.monotonic()
    proc = subprocess.Popen([args.bin, "serve", "--port", "0", *args.serve_arg], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        listening = time.monotonic() - started
        port = int(line.rsplit(":", 1)[1])
        wait_ready(port)
        cold = time.monotonic() - started

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(args.restarts):
            pid = get_json(conn, "/admin/workers")[1]["pid"]
            os.kill(pid, signal.SIGKILL)
            while get_json(conn, "/admin/workers")[1].get("pid") in (pid, 0) or \
                    get_json(conn, "/v2/health/ready")[0] != 200:
                time.sleep(0.005)
        ready_sum = metric(conn, "respawn_worker_time_to_ready_seconds_sum")
        ready_count = metric(conn, "respawn_worker_time_to_ready_seconds_count")

        body = json.dumps({"text_input": "The supervisor",
                           "parameters": {"max_tokens": args.tokens}})
        latencies = []
        for _ in range(args.requests):
            t = time.perf_counter()
            conn.request("POST", "/v2/models/demo/generate", body=body,
                         headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            latencies.append(time.perf_counter() - t)
            assert res.status == 200, res.status
        worker_pid = get_json(conn, "/admin/workers")[1]["pid"]
        sup_rss, worker_rss = rss_mb(proc.pid), rss_mb(worker_pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)

    latencies.sort()
    rows = [
        ("cold start: exec -> listening", f"{listening * 1000:.1f} ms"),
        ("cold start: exec -> ready", f"{cold * 1000:.0f} ms"),
        (f"worker spawn -> ready (mean of {int(ready_count)})",
         f"{ready_sum / ready_count * 1000:.0f} ms"),
        (f"generate {args.tokens} tokens, p50 of {args.requests}",
         f"{statistics.median(latencies) * 1000:.1f} ms"),
        (f"generate {args.tokens} tokens, p90", f"{latencies[int(len(latencies) * 0.9)] * 1000:.1f} ms"),
        ("supervisor RSS", f"{sup_rss:.1f} MiB"),
        ("worker RSS (demo model, cpu)", f"{worker_rss:.0f} MiB"),
    ]
    print("| measurement | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    sys.exit(main())
