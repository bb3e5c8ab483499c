#!/usr/bin/env python3
"""Fork server benchmark: cold spawns against workers forked from the fork server, side by side.

  scripts/python bench/fork_server.py [--bin build/bin/respawn] [--part all|spawn|smoke|recycle|kill]
                                      [--requests 400] [--logs DIR]

Every part runs each configuration in the same run on the same machine, with the bundled demo
model, and prints a Markdown table (medians, and the ratio fork/cold):
  spawn    worker spawn -> ready (the supervisor's "worker N ready in X ms" log line) over 30
           workers recycled after every request (--max-requests 1)
  smoke    wall time of `respawn smoke --suite smoke/demo.jsonl --restart-per-test`, 3 runs each
  recycle  throughput of --requests 8-token generates at concurrency 8: never recycled, recycled
           every 10 requests (--max-requests 10) with the fork server, and without it
  kill     60 generates of 64 tokens at concurrency 8 while another thread SIGKILLs the current
           worker every 1.5 s: the share that succeeds (default policy: replay_limit 1)
Talks only to 127.0.0.1, stops every server it started (by pid). Stdlib only.
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchlib import listening_port, ppid_of, start_serve, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLD = ["--fork-server", "off"]


def gen_body(tokens: int, text: str = "The supervisor") -> bytes:
    return json.dumps({"text_input": text, "parameters": {"max_tokens": tokens}}).encode()


class Server:
    """`respawn serve --port 0 FLAGS` with its stderr in a log file; always stopped."""

    def __init__(self, args, flags, label):
        self.cmd = [args.bin, "serve", "--port", "0", *flags]
        self.label = label
        self.logs = args.logs
        self.proc = None

    def __enter__(self):
        self.proc = start_serve(self.cmd, self.label, self.logs)
        try:
            self.port = listening_port(self.proc, self.label, self.cmd)
            deadline = time.monotonic() + 120
            while self.get("/v2/health/ready")[0] != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.label}: no ready worker within 120 s")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def conn(self, timeout=120.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        c = self.conn(10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            c.close()

    def workers(self):
        status, body = self.get("/admin/workers")
        return json.loads(body) if status == 200 else {}

    def generate(self, conn, body):
        conn.request("POST", "/v2/models/demo/generate", body,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status

    def log(self):
        if not self.logs:
            return ""
        with open(os.path.join(self.logs, self.label + ".log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def part_spawn(args):
    rows, medians = [], {}
    for mode, flags in (("cold (--fork-server off)", COLD), ("forked (default)", [])):
        with Server(args, ["--max-requests", "1", *flags], "spawn-" + mode.split()[0]) as srv:
            conn = srv.conn()
            for i in range(31):
                srv.generate(conn, gen_body(4))
            conn.close()
            time.sleep(0.5)
            log = srv.log()
        times = [float(m) for m in re.findall(r"worker \d+ ready in ([\d.]+) ms", log)][1:]
        medians[mode] = median(times)
        rows.append((mode, len(times), f"{median(times):.1f}", f"{min(times):.1f}",
                     f"{max(times):.1f}"))
    print("### Worker spawn -> ready (`--max-requests 1`, 30 recycles)\n")
    table(("start", "workers", "median ms", "min ms", "max ms"), rows)
    cold, fork = medians.values()
    print(f"Summary (spawn): forked {fork:.1f} ms vs cold {cold:.1f} ms median: "
          f"{fork / cold:.3f} of a cold spawn (target <= 0.1).\n")


def part_smoke(args):
    suite = os.path.join(ROOT, "smoke", "demo.jsonl")
    walls = {"cold (--fork-server off)": [], "forked (default)": []}
    for _ in range(3):  # interleaved, so a noisy moment hits both
        for mode, flags in (("cold (--fork-server off)", COLD), ("forked (default)", [])):
            with tempfile.TemporaryDirectory() as reports:
                cmd = [args.bin, "smoke", "--suite", suite, "--restart-per-test",
                       "--report-dir", reports]
                if flags:
                    cmd += ["--", *flags]
                t = time.monotonic()
                rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
                walls[mode].append(time.monotonic() - t)
                if rc != 0:
                    print(f"PROBLEM: {' '.join(cmd)} exited {rc}")
    rows = [(mode, " / ".join(f"{w:.2f}" for w in ws), f"{median(ws):.2f}")
            for mode, ws in walls.items()]
    print("### `respawn smoke --suite smoke/demo.jsonl --restart-per-test` (11 tests)\n")
    table(("workers", "wall s (3 runs)", "median s"), rows)
    cold, fork = (median(w) for w in walls.values())
    print(f"Summary (smoke): {cold / fork:.1f}x faster with the fork server (target >= 5x).\n")


def throughput(srv, requests, concurrency=8, tokens=8):
    def client(n):
        conn, ok = srv.conn(), 0
        for _ in range(n):
            try:
                ok += srv.generate(conn, gen_body(tokens)) == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = srv.conn()
        conn.close()
        return ok

    t = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(client, [requests // concurrency] * concurrency))
    return ok, time.monotonic() - t


def part_recycle(args):
    rows, rates = [], {}
    configs = (("never recycled", []), ("every 10, forked", ["--max-requests", "10"]),
               ("every 10, cold", ["--max-requests", "10", *COLD]))
    for name, flags in configs:
        with Server(args, flags, "recycle-" + name.replace(" ", "").replace(",", "-")) as srv:
            throughput(srv, 64)  # warm-up
            ok, wall = throughput(srv, args.requests)
            starts = srv.get("/metrics")[1].decode()
            m = re.search(r"^respawn_worker_starts_total (\S+)", starts, re.M)
        rates[name] = ok / wall
        rows.append((name, args.requests, ok, f"{wall:.2f}", f"{ok / wall:.1f}",
                     m.group(1) if m else "?"))
    print("### Throughput at concurrency 8 (8-token generates)\n")
    table(("workers", "requests", "HTTP 200", "wall s", "req/s", "worker starts"), rows)
    base = rates["never recycled"]
    print(f"Summary (recycle): recycling every 10 keeps {rates['every 10, forked'] / base:.2f} of "
          f"the never-recycled throughput with the fork server, "
          f"{rates['every 10, cold'] / base:.2f} cold (target >= 0.90).\n")


def part_kill(args):
    rows, shares = [], {}
    for mode, flags in (("cold (--fork-server off)", COLD), ("forked (default)", [])):
        with Server(args, flags, "kill-" + mode.split()[0]) as srv:
            stop = threading.Event()
            kills = [0]

            def killer():
                while not stop.wait(1.5):
                    pid = int(srv.workers().get("pid") or 0)
                    if pid and ppid_of(pid) == srv.proc.pid:  # only our server's own worker
                        try:
                            os.kill(pid, signal.SIGKILL)
                            kills[0] += 1
                        except ProcessLookupError:
                            pass

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            t = time.monotonic()
            ok, _ = throughput(srv, 60, tokens=64)
            wall = time.monotonic() - t
            stop.set()
            thread.join()
        shares[mode] = ok / 60
        rows.append((mode, 60, ok, kills[0], f"{wall:.1f}"))
    print("### SIGKILL of the worker every 1.5 s (60 generates of 64 tokens, concurrency 8)\n")
    table(("workers", "requests", "HTTP 200", "kills", "wall s"), rows)
    cold, fork = shares.values()
    print(f"Summary (kill): {fork:.1%} succeed with the fork server, {cold:.1%} cold "
          f"(target >= 99%).\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "respawn"))
    ap.add_argument("--part", choices=("all", "spawn", "smoke", "recycle", "kill"), default="all")
    ap.add_argument("--requests", type=int, default=400, help="requests per throughput run")
    ap.add_argument("--logs", help="keep each server's stderr in DIR (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.logs = args.logs or tmp
        for part in ("spawn", "smoke", "recycle", "kill"):
            if args.part in ("all", part):
                globals()["part_" + part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
