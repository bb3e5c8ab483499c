#!/usr/bin/env python3
"""Fork server benchmark: cold spawns against workers forked from the fork server, side by side.

  scripts/python bench/fork_server.py [--bin build/bin/respawn] [--part all|spawn|smoke|recycle|kill]
                                      [--requests 400] [--logs DIR]

Every part runs each configuration in the same run on the same machine, with the bundled demo
model, and prints a Markdown table (medians, and the ratio fork/cold):
  spawn    worker spawn -> ready (the supervisor's "worker N ready in X ms" log line) over 30
           workers recycled after every request (--max-requests 1)
  smoke    wall time of `respawn smoke --restart-per-test` on smoke/demo.jsonl, on its first 8
           tests (the suite until 2026-12-03) and on its tests five times over, 3 runs each
  recycle  throughput of --requests generates of --tokens tokens at concurrency 8: never
           recycled, recycled every 10 requests (--max-requests 10) with the fork server (with
           and without --prestart-spare), and without it
  kill     60 (and 600) generates of 64 tokens at concurrency 8 while another thread SIGKILLs
           the current worker every 1.5 s: the share that succeeds (default policy: replay_limit 1)
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

from benchlib import ServeProcess, ppid_of, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLD = ["--fork-server", "off"]


def gen_body(tokens: int, text: str = "The supervisor") -> bytes:
    return json.dumps({"text_input": text, "parameters": {"max_tokens": tokens}}).encode()


class Server(ServeProcess):
    """`respawn serve --port 0 FLAGS` with its stderr in a log file; always stopped."""

    def __init__(self, args, flags, label):
        super().__init__([args.bin, "serve", "--port", "0", *flags], label, args.logs)

    def workers(self):
        status, body = self.get("/admin/workers")
        return json.loads(body) if status == 200 else {}

    def generate(self, conn, body):
        conn.request("POST", "/v2/models/demo/generate", body,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status


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
        times = [float(m) for m in re.findall(r"worker \d+ ready in ([\d.]+) ms", log)][1:31]
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
    modes = (("cold (--fork-server off)", COLD), ("forked (default)", []))
    with tempfile.TemporaryDirectory() as tmp:
        # The same tests five times over (renamed): the per-test cost without the server's start.
        with open(suite) as f:
            cases = [json.loads(l) for l in f if l.strip() and not l.startswith("#")]
        longer = os.path.join(tmp, "demo-x5.jsonl")
        with open(longer, "w") as f:
            for i in range(5):
                for c in cases:
                    f.write(json.dumps({**c, "name": f"{c['name']}_{i}"}) + "\n")
        # Its first 8 tests: the whole bundled suite until 2026-12-03 (4 of them use a worker).
        first8 = os.path.join(tmp, "demo-first8.jsonl")
        with open(first8, "w") as f:
            f.writelines(json.dumps(c) + "\n" for c in cases[:8])
        rows, ratios = [], {}
        for label, path, n in (("demo.jsonl first 8", first8, 8),
                               ("demo.jsonl", suite, len(cases)),
                               ("demo.jsonl x5", longer, 5 * len(cases))):
            walls = {mode: [] for mode, _ in modes}
            for _ in range(3):  # interleaved, so a noisy moment hits both
                for mode, flags in modes:
                    cmd = [args.bin, "smoke", "--suite", path, "--restart-per-test",
                           "--report-dir", os.path.join(tmp, "report")]
                    if flags:
                        cmd += ["--", *flags]
                    t = time.monotonic()
                    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL).returncode
                    walls[mode].append(time.monotonic() - t)
                    if rc != 0:
                        print(f"PROBLEM: {' '.join(cmd)} exited {rc}")
            for mode, ws in walls.items():
                rows.append((f"{label} ({n} tests)", mode, " / ".join(f"{w:.2f}" for w in ws),
                             f"{median(ws):.2f}"))
            cold, fork = (median(w) for w in walls.values())
            ratios[label] = cold / fork
    print("### `respawn smoke --restart-per-test` (a fresh worker for every test that uses one)\n")
    table(("suite", "workers", "wall s (3 runs)", "median s"), rows)
    print(f"Summary (smoke): {ratios['demo.jsonl']:.1f}x faster with the fork server on the "
          f"bundled suite, {ratios['demo.jsonl x5']:.1f}x on it five times over, "
          f"{ratios['demo.jsonl first 8']:.1f}x on its first 8 tests (target >= 5x).\n")


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
    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(client, shares))
    return ok, time.monotonic() - t


def part_recycle(args):
    rows, rates = [], {}
    configs = (("never recycled", []), ("every 10, forked", ["--max-requests", "10"]),
               ("every 10, forked, prestart_spare", ["--max-requests", "10", "--prestart-spare"]),
               ("every 10, cold", ["--max-requests", "10", *COLD]))
    for name, flags in configs:
        with Server(args, flags, "recycle-" + re.sub(r"\W+", "-", name)) as srv:
            throughput(srv, 16, tokens=args.tokens)  # warm-up
            ok, wall = throughput(srv, args.requests, tokens=args.tokens)
            starts = srv.get("/metrics")[1].decode()
            m = re.search(r"^respawn_worker_starts_total (\S+)", starts, re.M)
        rates[name] = ok / wall
        rows.append((name, args.requests, ok, f"{wall:.2f}", f"{ok / wall:.1f}",
                     m.group(1) if m else "?"))
    print(f"### Throughput at concurrency 8 ({args.tokens}-token generates)\n")
    table(("workers", "requests", "HTTP 200", "wall s", "req/s", "worker starts"), rows)
    base = rates["never recycled"]
    print(f"Summary (recycle): recycling every 10 keeps {rates['every 10, forked'] / base:.2f} of "
          f"the never-recycled throughput with the fork server "
          f"({rates['every 10, forked, prestart_spare'] / base:.2f} with a spare), "
          f"{rates['every 10, cold'] / base:.2f} cold (target >= 0.90).\n")


def part_kill(args):
    rows, shares = [], {}
    for n in (60, 600):
        for mode, flags in (("cold (--fork-server off)", COLD), ("forked (default)", [])):
            with Server(args, flags, f"kill-{n}-" + mode.split()[0]) as srv:
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
                ok, wall = throughput(srv, n, tokens=64)
                stop.set()
                thread.join()
            shares[(n, mode)] = ok / n
            rows.append((mode, n, ok, kills[0], f"{wall:.1f}"))
    print("### SIGKILL of the worker every 1.5 s (generates of 64 tokens, concurrency 8)\n")
    table(("workers", "requests", "HTTP 200", "kills", "wall s"), rows)
    summary = ", ".join(f"{n} requests: {shares[(n, 'forked (default)')]:.1%} forked, "
                        f"{shares[(n, 'cold (--fork-server off)')]:.1%} cold" for n in (60, 600))
    print(f"Summary (kill): {summary} succeed (target >= 99%).\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "respawn"))
    ap.add_argument("--part", choices=("all", "spawn", "smoke", "recycle", "kill"), default="all")
    ap.add_argument("--requests", type=int, default=400, help="requests per throughput run")
    ap.add_argument("--tokens", type=int, default=64, help="tokens per generate (recycle part)")
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
