#!/usr/bin/env python3
"""Recycle-policy benchmark: hang detection, planned-recycle gaps, restart-per-test overhead,
lost requests under random worker kills.

  scripts/python bench/recycle.py [--bin build/bin/respawn] [--part all|hang|gap|overhead|lost]
                                    [--requests 2000] [--hangs 5] [--seed 1] [--logs DIR]

Each part starts its own `respawn serve --port 0` (bundled demo model) with the policy it
measures, and stops it (by pid) before the next:
  hang      --hang-timeout-ms H --enable-fault-injection --replay-limit 0, H in 250/500/1000:
            time from sending a generate with `X-Respawn-Fault: hang` to its 502; median of
            --hangs per H and the overhead over H
  gap       --max-requests 10, without and with --prestart-spare: ~60 sequential 8-token
            generates on one keep-alive connection, --gap-pause-ms apart; a recycle shows as a new
            X-Respawn-Worker-Pid, and its gap is that request's latency minus the median
  overhead  8-token generate latency for --max-requests 1 (with and without --prestart-spare)
            against the default cached worker
  lost      default policy (replay_limit 1, poison_threshold 2): --requests sequential
            4-token generates while another thread SIGKILLs the server's current worker
            (its pid from GET /admin/workers) after every random 30-70 completed requests;
            counts answers other than 200, kills, and the replay/crash counters in /metrics
Talks only to 127.0.0.1, bounds every wait, only ever signals the server it started and
worker pids that server reported (and whose parent it is), and prints one Markdown table and
a one-line summary per part. Stdlib only, so any python3 will do.
"""
import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

from benchlib import is_live, listening_port, ppid_of, start_serve, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATE = "/v2/models/demo/generate"
JSON_HEADERS = {"Content-Type": "application/json"}


def gen_body(tokens: int) -> bytes:
    return json.dumps({"text_input": "The supervisor",
                       "parameters": {"max_tokens": tokens}}).encode()


def ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def is_running_worker(pid: int) -> bool:
    """True if pid is a live (not zombie) respawn-worker process."""
    return is_live(pid, b'respawn-worker')


def children_of(pid: int) -> list:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and ppid_of(int(name)) == pid:
            out.append(int(name))
    return out


class Server:
    """One `respawn serve --port 0` with extra flags; a context manager that always stops it."""

    def __init__(self, args, flags, label):
        self.bin = args.bin
        self.flags = list(flags)
        self.label = label
        self.logs = args.logs
        self.proc = None
        self.port = None
        self.worker_pids = set()  # every worker pid this server reported
        self.leftovers = []

    def __enter__(self):
        cmd = [self.bin, "serve", "--port", "0", *self.flags]
        self.proc = start_serve(cmd, self.label, self.logs)
        try:
            self.port = listening_port(self.proc, self.label, cmd)
            self.wait_worker_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def conn(self, timeout=60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get_json(self, conn, path):
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, json.loads(res.read() or b"null")

    def workers(self, conn=None) -> dict:
        conn = conn or self.conn(10)
        status, body = self.get_json(conn, "/admin/workers")
        if status != 200:
            raise RuntimeError(f"GET /admin/workers: {status} {body}")
        for w in [body, body.get("spare")] + list(body.get("retiring") or []):
            if isinstance(w, dict) and w.get("pid"):
                self.worker_pids.add(int(w["pid"]))
        return body

    def metrics(self) -> dict:
        conn = self.conn(10)
        conn.request("GET", "/metrics")
        out = {}
        for line in conn.getresponse().read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        conn.close()
        return out

    def wait_worker_ready(self, exclude=(), timeout=60.0) -> int:
        """Waits until the current worker is ready (and not one of `exclude`); its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                w = self.workers()
                if w.get("state") == "ready" and w.get("pid") and w["pid"] not in exclude:
                    return int(w["pid"])
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: server exited ({self.proc.returncode})")
            time.sleep(0.005)
        raise RuntimeError(f"{self.label}: no ready worker after {timeout:.0f} s")

    def generate(self, conn, body: bytes, headers=None):
        """One generate on `conn`: (status, seconds, worker pid or 0, body bytes)."""
        t = time.perf_counter()
        conn.request("POST", GENERATE, body=body, headers={**JSON_HEADERS, **(headers or {})})
        res = conn.getresponse()
        data = res.read()
        elapsed = time.perf_counter() - t
        pid = int(res.getheader("X-Respawn-Worker-Pid") or 0)
        if pid:
            self.worker_pids.add(pid)
        return res.status, elapsed, pid, data

    def kill_worker(self, pid: int) -> bool:
        """SIGKILLs pid only if this server reported it and is its parent."""
        if pid not in self.worker_pids or ppid_of(pid) != self.proc.pid:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
            return True
        except ProcessLookupError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None and not self.worker_pids:
            return
        if self.proc.poll() is None:
            self.worker_pids.update(p for p in children_of(self.proc.pid) if is_running_worker(p))
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.leftovers.append(f"server {self.proc.pid} ignored SIGTERM for 20 s")
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        # Workers exit with their supervisor; give them a moment, then make sure.
        deadline = time.monotonic() + 5
        alive = [p for p in self.worker_pids if is_running_worker(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [p for p in alive if is_running_worker(p)]
        for p in alive:
            self.leftovers.append(f"worker {p} outlived its server; SIGKILLed")
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.worker_pids = set()
        for msg in self.leftovers:
            print(f"WARNING ({self.label}): {msg}", file=sys.stderr)


class Budget:
    def __init__(self, seconds: float, what: str):
        self.end = time.monotonic() + seconds
        self.what = what

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise TimeoutError(f"{self.what}: over its time budget")


# --- part 1 ---------------------------------------------------------------------------------

def part_hang(args) -> None:
    budget = Budget(300, "hang")
    rows, overheads, problems = [], [], []
    for h in (250, 500, 1000):
        flags = ["--hang-timeout-ms", str(h), "--enable-fault-injection", "--replay-limit", "0"]
        with Server(args, flags, f"hang-{h}") as srv:
            times, statuses = [], {}
            for _ in range(args.hangs):
                budget.check()
                srv.wait_worker_ready(timeout=min(60, max(1, budget.left())))
                conn = srv.conn(timeout=h / 1000 + 30)
                try:
                    status, elapsed, _, data = srv.generate(conn, gen_body(8),
                                                            {"X-Respawn-Fault": "hang"})
                except (OSError, http.client.HTTPException) as e:
                    status, elapsed, data = f"no answer ({type(e).__name__})", float("nan"), b""
                conn.close()
                statuses[status] = statuses.get(status, 0) + 1
                if status == 502:
                    times.append(elapsed)
                else:
                    problems.append(f"H={h}: expected 502, got {status} {data[:200]!r}")
            detected = srv.metrics().get('respawn_worker_recycles_total{reason="hang"}', 0)
        if times:
            med = statistics.median(times)
            overheads.append(med * 1000 - h)
            rows.append((h, len(times), ms(med), ms(min(times)), ms(max(times)),
                         f"{med * 1000 - h:+.0f}", int(detected),
                         ", ".join(f"{k}: {v}" for k, v in statuses.items())))
        else:
            rows.append((h, 0, "-", "-", "-", "-", int(detected),
                         ", ".join(f"{k}: {v}" for k, v in statuses.items())))
    print("### Hang detection latency (`X-Respawn-Fault: hang`, replay off)\n")
    table(("hang_timeout_ms", "n", "median send -> 502 (ms)", "min (ms)", "max (ms)",
           "overhead: median - H (ms)", "recycles{reason=hang}", "statuses"), rows)
    for p in problems:
        print(f"PROBLEM: {p}")
    summary = (f"overhead over hang_timeout_ms {min(overheads):+.0f} to {max(overheads):+.0f} ms"
               if overheads else "no hang was answered")
    print(f"Summary (hang): {summary}; {len(problems)} unexpected answers.\n")


# --- part 2 ---------------------------------------------------------------------------------

def sequential(srv, n, tokens, budget, pause=0.0):
    """n sequential generates on one keep-alive connection, `pause` seconds apart:
    [(status, seconds, pid)]."""
    conn = srv.conn(timeout=60)
    body = gen_body(tokens)
    out = []
    for _ in range(n):
        budget.check()
        try:
            status, elapsed, pid, _ = srv.generate(conn, body)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            conn = srv.conn(timeout=60)
            status, elapsed, pid = f"no answer ({type(e).__name__})", float("nan"), 0
        out.append((status, elapsed, pid))
        time.sleep(pause)
    conn.close()
    return out


def part_gap(args) -> None:
    budget = Budget(240, "gap")
    rows, problems, maxima = [], [], {}
    for mode, extra in (("max_requests 10", []), ("max_requests 10 + prestart_spare",
                                                  ["--prestart-spare"])):
        with Server(args, ["--max-requests", "10", *extra], "gap-" + ("spare" if extra else
                                                                       "plain")) as srv:
            results = sequential(srv, 60, 8, budget, args.gap_pause_ms / 1000)
            planned = srv.metrics().get('respawn_worker_recycles_total{reason="max_requests"}', 0)
        ok = [r for r in results if r[0] == 200]
        for i, r in enumerate(results):
            if r[0] != 200:
                problems.append(f"{mode}: request {i + 1} got {r[0]}")
        if not ok:
            rows.append((mode, len(results), 0, "-", "-", "-", "-", "-", int(planned)))
            continue
        med = statistics.median(r[1] for r in ok)
        switches = [(prev, cur) for prev, cur in zip(ok, ok[1:]) if cur[2] != prev[2]]
        gaps = [cur[1] - med for _, cur in switches]
        # With a spare, the last request on the old worker shares the CPU with its load.
        before = [prev[1] - med for prev, _ in switches]
        maxima[mode] = max(gaps) if gaps else float("nan")
        rows.append((mode, len(results), len(gaps), f"{med * 1000:.1f}",
                     ms(max(gaps)) if gaps else "-", ms(statistics.median(gaps)) if gaps else "-",
                     ms(min(gaps)) if gaps else "-",
                     ms(statistics.median(before)) if before else "-", int(planned)))
    print("### Recycle gap (`--max-requests 10`, 60 sequential 8-token generates, keep-alive, "
          f"{args.gap_pause_ms} ms apart)\n")
    table(("mode", "requests", "recycles seen (new pid)", "median latency (ms)", "max gap (ms)",
           "median gap (ms)", "min gap (ms)", "median extra on the last request before (ms)",
           "recycles{reason=max_requests}"), rows)
    for p in problems:
        print(f"PROBLEM: {p}")
    print("Summary (gap): " + "; ".join(f"{m}: longest wait caused by a recycle {ms(g)} ms"
                                         for m, g in maxima.items())
          + f"; {len(problems)} non-200 answers.\n")


# --- part 3 ---------------------------------------------------------------------------------

def part_overhead(args) -> None:
    budget = Budget(300, "overhead")
    rows, problems, medians = [], [], {}
    n = 20
    for mode, flags in (("cached (default)", []), ("max_requests 1", ["--max-requests", "1"]),
                        ("max_requests 1 + prestart_spare",
                         ["--max-requests", "1", "--prestart-spare"])):
        with Server(args, flags, "overhead-" + str(len(flags))) as srv:
            results = sequential(srv, n, 8, budget)
        ok = [r[1] for r in results if r[0] == 200]
        problems += [f"{mode}: request {i + 1} got {r[0]}" for i, r in enumerate(results)
                     if r[0] != 200]
        pids = len({r[2] for r in results if r[2]})
        if not ok:
            rows.append((mode, n, 0, pids, "-", "-", "-"))
            continue
        medians[mode] = statistics.median(ok)
        ok.sort()
        rows.append((mode, n, len(ok), pids, f"{medians[mode] * 1000:.1f}",
                     f"{ok[int(len(ok) * 0.9)] * 1000:.1f}",
                     f"{medians[mode] / medians['cached (default)']:.1f}x"
                     if "cached (default)" in medians else "-"))
    print("### Per-request overhead of restart-per-test (sequential 8-token generates)\n")
    table(("mode", "requests", "200s", "distinct worker pids", "median (ms)", "p90 (ms)",
           "median / cached"), rows)
    for p in problems:
        print(f"PROBLEM: {p}")
    base = medians.get("cached (default)")
    print("Summary (overhead): " + ("; ".join(
        f"{m}: {v * 1000:.0f} ms, {v / base:.0f}x cached" for m, v in medians.items()
        if m != "cached (default)") if base else "no cached baseline")
        + f"; {len(problems)} non-200 answers.\n")


# --- part 4 ---------------------------------------------------------------------------------

def part_lost(args) -> None:
    budget = Budget(600, "lost")
    rng = random.Random(args.seed)
    with Server(args, [], "lost") as srv:
        completed = [0]
        stop = threading.Event()
        kills = []  # (after n completed, pid, state reported just before the kill)
        killer_errors = []

        def killer():
            conn = srv.conn(timeout=10)
            mark = 0
            while not stop.is_set():
                target = mark + rng.randint(30, 70)
                while completed[0] < target and not stop.is_set():
                    time.sleep(0.001)
                if stop.is_set():
                    break
                time.sleep(rng.uniform(0, 0.01))  # land mid-request some of the time
                try:
                    w = srv.workers(conn)
                except (OSError, http.client.HTTPException) as e:
                    killer_errors.append(repr(e))
                    conn.close()
                    conn = srv.conn(timeout=10)
                    continue
                pid = int(w.get("pid") or 0)
                if pid and srv.kill_worker(pid):
                    kills.append((completed[0], pid, w.get("state")))
                mark = completed[0]
            conn.close()

        thread = threading.Thread(target=killer, daemon=True)
        body = gen_body(4)
        conn = srv.conn(timeout=60)
        lost, latencies = [], []
        thread.start()
        sent = 0
        try:
            for i in range(args.requests):
                if budget.left() <= 0:
                    break
                sent += 1
                try:
                    status, elapsed, _, data = srv.generate(conn, body)
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = srv.conn(timeout=60)
                    status, elapsed, data = f"no answer ({type(e).__name__})", float("nan"), b""
                if status == 200:
                    latencies.append(elapsed)
                else:
                    lost.append((i + 1, status, data[:200]))
                completed[0] += 1
        finally:
            stop.set()
            thread.join(timeout=15)
            conn.close()
        m = srv.metrics()
    replayed = int(m.get("respawn_requests_replayed_total", 0))
    crashes = int(m.get('respawn_worker_recycles_total{reason="crash"}', 0))
    quarantined = int(m.get("respawn_requests_quarantined_total", 0))
    starts = int(m.get("respawn_worker_starts_total", 0))
    busy_kills = sum(1 for k in kills if k[2] == "busy")
    latencies.sort()
    print(f"### Lost requests under random SIGKILLs (default policy, 4-token generates)\n")
    table(("requests sent", "HTTP 200", "lost (not 200)", "kills (busy when read)",
           "replayed_total", "recycles{reason=crash}", "quarantined_total", "worker starts",
           "p50 / max latency (ms)"),
          [(sent, len(latencies), len(lost), f"{len(kills)} ({busy_kills})", replayed, crashes,
            quarantined, starts,
            f"{latencies[len(latencies) // 2] * 1000:.1f} / {latencies[-1] * 1000:.0f}"
            if latencies else "-")])
    for i, status, data in lost[:20]:
        print(f"PROBLEM: request {i} got {status} {data!r}")
    for e in killer_errors[:5]:
        print(f"note: killer could not read /admin/workers: {e}")
    if sent < args.requests:
        print(f"note: stopped at the 600 s budget after {sent} of {args.requests} requests")
    print(f"Summary (lost): {len(lost)} of {sent} requests lost across {len(kills)} worker "
          f"kills (target 0); {replayed} replayed, {crashes} crash recycles.\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "respawn"))
    ap.add_argument("--part", choices=("all", "hang", "gap", "overhead", "lost"), default="all")
    ap.add_argument("--requests", type=int, default=2000, help="requests in the 'lost' part")
    ap.add_argument("--hangs", type=int, default=5, help="hang samples per hang_timeout_ms")
    ap.add_argument("--gap-pause-ms", type=int, default=0,
                    help="pause between requests in the 'gap' part (a paced client gives a "
                         "spare time to load; back-to-back requests outrun any load)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the killer's randomness")
    ap.add_argument("--logs", help="write each server's stderr to DIR/<part>.log")
    args = ap.parse_args()
    parts = {"hang": part_hang, "gap": part_gap, "overhead": part_overhead, "lost": part_lost}
    for name, fn in parts.items():
        if args.part in ("all", name):
            fn(args)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
