#!/usr/bin/env python3
"""Throughput benchmark: req/s and latency under concurrency, batching on and off, the
supervisor's own overhead, and the HTTP front end's capacity.

  scripts/python bench/throughput.py [--bin build/bin/respawn] [--duration 5]
                                       [--part all|generate|infer|overhead|frontend]
                                       [--concurrency 1,8,32] [--tokens 64] [--repeat 1]
                                       [--batch-size N] [--batch-delay-us N]
                                       [--worker-threads N] [--json PATH] [--logs DIR]

Needs wrk (`apt-get install wrk`). Each server below is a `respawn serve --port 0` this script
starts, and stops (SIGTERM, by pid) before the next; wrk runs `-t min(2,c) -c c -d DURATION
--latency` against it with a Lua script (in a temp dir) that POSTs one fixed JSON body:
  generate  demo.pt, `{"text_input", "parameters": {"max_tokens": 64, "temperature": 0}}`
            at each concurrency, batching on and off; tokens/s = req/s * tokens
  infer     classifier.pt, KServe v2 `x` FP32 [1,4], at each concurrency, batching on and off
  overhead  p50 of the infer at concurrency 1, batching on (server defaults), minus the p50 of
            `respawn-bench-inprocess` (the worker's infer path timed in-process, same model
            and --worker-threads) run by this script
  frontend  `--worker-bin respawn-fake-worker` (no model; echoes), 32 keep-alive connections
            (-t2 -c32): a 1-token generate and a [1,4] infer; the HTTP + IPC ceiling
Batching "on" is the server's default batching (or --batch-size / --batch-delay-us, passed as
--max-batch-size / --max-batch-delay-us); "off" is --max-batch-size 1. If the binary has no
--max-batch-size (see `respawn serve --help`), both rows run the same default server and are
marked "(no flag)". Each server gets one untimed wrk run (--warmup s, highest concurrency)
first, and the server is let drain (queue and worker idle) before and after every wrk run.
--repeat N runs each row N times and keeps the median run (shared machines are noisy).
"worker peak MiB" is the worker's VmHWM from /proc after the row (peak since it started, the
warm-up included, so it only grows within one server). "other CPU %" is the share of the
machine's CPU that processes other than this benchmark (its server, worker and wrk) used during
the row, from /proc/stat: rows with more than a few % were measured on a busy machine.
Talks only to 127.0.0.1, stops only the servers it started (and their workers), prints one
Markdown table (and writes --json PATH). About 1.5 minutes with the defaults on 2 cores.
Stdlib only, so any python3 will do.
"""
import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import (is_live, listening_port, machine_busy_s, ppid_of, process_cpu_s,
                      start_serve, table)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
MODELS = os.path.join(ROOT, "models")
INFER_BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                          "data": [0.5, -1.0, 2.0, 0.25]}]}


def gen_body(tokens: int) -> dict:
    return {"text_input": "The supervisor",
            "parameters": {"max_tokens": tokens, "temperature": 0}}


def alive(pid: int) -> bool:
    """True if pid is a live (not zombie) respawn process."""
    return is_live(pid, b'respawn')


def peak_rss_mib(pid: int):
    """VmHWM (peak resident memory since start) of pid in MiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Server:
    """One `respawn serve --port 0 FLAGS`; a context manager that always stops it by pid."""

    def __init__(self, args, flags, label):
        self.cmd = [args.bin, "serve", "--port", "0", *flags]
        self.label = label
        self.logs = args.logs
        self.proc = None
        self.port = None

    def __enter__(self):
        self.proc = start_serve(self.cmd, self.label, self.logs)
        try:
            self.port = listening_port(self.proc, self.label, self.cmd)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, body=None, timeout=30.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    def get_json(self, path):
        status, data = self.request("GET", path)
        return status, json.loads(data or b"null")

    def wait_ready(self, timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/v2/health/ready", timeout=5)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: server exited ({self.proc.returncode})")
            time.sleep(0.01)
        raise RuntimeError(f"{self.label}: not ready after {timeout:.0f} s")

    def wait_idle(self, timeout=120.0) -> float:
        """Waits until nothing is queued or running (wrk leaves its last requests behind when
        it closes its connections, and the worker still runs them); the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                status, data = self.request("GET", "/metrics", timeout=10)
                values = dict(line.rsplit(" ", 1) for line in data.decode().splitlines()
                              if line.startswith(("respawn_queue_depth ",
                                                  "respawn_requests_inflight ")))
                if status == 200 and all(float(v) == 0 for v in values.values()):
                    return time.monotonic() - started
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.label}: still busy {timeout:.0f} s after a wrk run")

    def worker_pid(self) -> int:
        try:
            return int(self.get_json("/admin/workers")[1].get("pid") or 0)
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            return 0

    def policy(self) -> dict:
        try:
            status, body = self.get_json("/admin/policy")
            return body if status == 200 and isinstance(body, dict) else {}
        except (OSError, http.client.HTTPException, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = [int(n) for n in os.listdir("/proc")
                   if n.isdigit() and ppid_of(int(n)) == self.proc.pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"WARNING ({self.label}): server ignored SIGTERM for 20 s; SIGKILL",
                  file=sys.stderr)
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()
        # Workers exit with their supervisor (PR_SET_PDEATHSIG); make sure of it.
        deadline = time.monotonic() + 5
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in workers:
            if alive(p):
                print(f"WARNING ({self.label}): worker {p} outlived its server; SIGKILL",
                      file=sys.stderr)
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# --- wrk ------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"cannot read wrk time {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """Requests/sec, 50%/99% latency (ms), request count and errors from `wrk --latency`."""
    res = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    res["rps"] = float(m.group(1)) if m else float("nan")
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = round(to_ms(m.group(1)), 4) if m else float("nan")
    m = re.search(r"^\s+(\d+) requests in", out, re.M)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    return res


def lua_script(tmpdir: str, name: str, body: dict) -> str:
    text = json.dumps(body)
    assert "]==]" not in text
    path = os.path.join(tmpdir, name + ".lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [==[{text}]==]\n")
    return path


def own_cpu_s(pids) -> float:
    """CPU seconds of this script, its reaped children (wrk) and the given live pids."""
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return own + sum(process_cpu_s(p) for p in pids)


def run_wrk(args, srv: Server, path: str, script: str, conns: int, seconds: int) -> dict:
    """One wrk run, plus how much of the machine other processes used meanwhile."""
    # wrk takes whole seconds only.
    cmd = [args.wrk, "-t", str(min(2, conns)), "-c", str(conns), "-d", f"{seconds}s",
           "--latency", "--timeout", "30s", "-s", script, srv.url(path)]
    pids = [srv.proc.pid, srv.worker_pid()]
    busy0, own0, t0 = machine_busy_s(), own_cpu_s(pids), time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    busy1, own1, t1 = machine_busy_s(), own_cpu_s(pids), time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(proc.stderr + proc.stdout)[-500:]}")
    res = parse_wrk(proc.stdout)
    # CPU used by anything but this benchmark (other builds, tests, the hypervisor's steal),
    # as a share of the machine: a row with much of it is not to be trusted.
    other = (busy1 - busy0) - (own1 - own0)
    res["other_cpu_pct"] = round(max(0.0, other) / ((t1 - t0) * os.cpu_count()) * 100, 1)
    return res


# --- parts ----------------------------------------------------------------------------------

def server_flags(args, batching: str) -> list:
    """Flags for batching 'on' / 'off' / 'default' (what the server does unasked)."""
    if not args.has_batching or batching == "default":
        return []
    if batching == "off":
        return ["--max-batch-size", "1"]
    flags = []
    if args.batch_size is not None:
        flags += ["--max-batch-size", str(args.batch_size)]
    if args.batch_delay_us is not None:
        flags += ["--max-batch-delay-us", str(args.batch_delay_us)]
    return flags


def batching_label(args, batching: str, policy: dict) -> str:
    """'on (size 8, delay 1000 us)', from the server's own policy; 'on (no flag)' without one."""
    if not args.has_batching:
        return "default" if batching == "default" else batching + " (no flag)"
    size, delay = policy.get("max_batch_size"), policy.get("max_batch_delay_us")
    if size is None:
        return batching
    if batching == "off" or size == 1:
        return f"{batching} (size {size})"
    return f"{batching} (size {size}, delay {delay} us)"


def check_once(srv: Server, path: str, body: dict, workload: str) -> dict:
    """One request by hand, so a wrk run of errors cannot pass for a fast one; its answer."""
    status, data = srv.request("POST", path, json.dumps(body).encode(), timeout=60)
    if status != 200:
        raise RuntimeError(f"{workload}: {path} answered {status}: {data[:300]!r}")
    return json.loads(data)


def measure(args, tmpdir, workload, model, path, body, concurrencies, batchings, extra_flags=(),
            tokens=None) -> list:
    """For each batching mode: start a server, warm it, run wrk at each concurrency."""
    script = lua_script(tmpdir, re.sub(r"\W+", "-", workload), body)
    rows = []
    for batching in batchings:
        flags = ["--model", model, *extra_flags, *server_flags(args, batching)]
        if args.worker_threads is not None:
            flags += ["--worker-threads", str(args.worker_threads)]
        label = re.sub(r"\W+", "-", f"{workload}-{batching}").strip("-")
        with Server(args, flags, label) as srv:
            answer = check_once(srv, path, body, workload)
            if tokens:  # the demo model never stops early without stop strings; make sure
                got = answer.get("usage", {}).get("completion_tokens")
                if got != tokens:
                    raise RuntimeError(f"{workload}: asked for {tokens} tokens, got {got}")
            policy = srv.policy()
            if args.warmup > 0:
                run_wrk(args, srv, path, script, max(concurrencies), args.warmup)
            for c in concurrencies:
                runs = []
                for _ in range(args.repeat):
                    srv.wait_idle()
                    runs.append(run_wrk(args, srv, path, script, c, args.duration))
                    runs[-1]["drain_s"] = srv.wait_idle()  # requests wrk left behind
                runs.sort(key=lambda x: x["rps"])
                r = runs[len(runs) // 2]  # the median run by req/s, all its numbers together
                r["rps_all"] = [x["rps"] for x in runs]
                pid = srv.worker_pid()
                r["supervisor_peak_rss_mib"] = peak_rss_mib(srv.proc.pid)
                r.update(workload=workload, concurrency=c, batching=batching,
                         batching_label=batching_label(args, batching, policy),
                         batching_flags=server_flags(args, batching),
                         worker_peak_rss_mib=peak_rss_mib(pid) if pid else None,
                         tokens_per_s=r["rps"] * tokens if tokens else None)
                rows.append(r)
                print(f"  {workload}, c={c}, batching {r['batching_label']}: "
                      f"{r['rps']:.1f} req/s, p50 {r['p50_ms']:.2f} ms", file=sys.stderr)
    return rows


def reset_peak_rss(pid: int) -> None:
    """Resets pid's VmHWM to its current RSS (Linux >= 4.0; we own the process)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def memory_budget(args, tmpdir) -> list:
    """Generate at the highest concurrency, first without a memory budget, then with
    max_worker_rss_mb set a little above what the worker uses after a warm-up: the worker's
    peak RSS during each run (VmHWM, reset before it) against the budget."""
    conns = max(int(c) for c in args.concurrency.split(","))
    body = gen_body(args.tokens)
    script = lua_script(tmpdir, "memory-generate", body)
    path = "/v2/models/demo/generate"
    rows = []
    with Server(args, ["--model", os.path.join(MODELS, "demo.pt")], "memory") as srv:
        check_once(srv, path, body, "generate")
        run_wrk(args, srv, path, script, conns, max(args.warmup, 1))
        srv.wait_idle()
        pid = srv.worker_pid()
        base_mib = srv.get_json("/admin/workers")[1]["rss_bytes"] / 2**20
        headrooms = [int(h) for h in args.budget_headroom_mb.split(",")]
        for budget in [0] + [int(base_mib) + h for h in headrooms]:
            status, answer = srv.request("PATCH", "/admin/policy",
                                         json.dumps({"max_worker_rss_mb": budget}))
            if status != 200:
                raise RuntimeError(f"PATCH max_worker_rss_mb={budget}: {status} {answer!r}")
            srv.wait_idle()
            reset_peak_rss(pid)
            r = run_wrk(args, srv, path, script, conns, args.duration)
            srv.wait_idle()
            r.update(workload="generate", concurrency=conns, budget_mib=budget,
                     base_mib=base_mib, worker_peak_rss_mib=peak_rss_mib(pid),
                     same_worker=srv.worker_pid() == pid,
                     budget_state=srv.get_json("/admin/workers")[1].get("memory_budget"),
                     tokens_per_s=r["rps"] * args.tokens)
            rows.append(r)
    return rows


def inprocess(args) -> dict:
    cmd = [args.inprocess_bin, "--model", os.path.join(MODELS, "classifier.pt"),
           "--iterations", str(args.iterations)]
    if args.worker_threads is not None:
        cmd += ["--threads", str(args.worker_threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:500]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def short_run(args, row) -> bool:
    """True when the run was too short for its latency to give a steady-state req/s."""
    return row["p99_ms"] > args.duration * 1000 / 5


def fmt(v, digits=1) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(BIN, "respawn"))
    ap.add_argument("--inprocess-bin", default=os.path.join(BIN, "respawn-bench-inprocess"))
    ap.add_argument("--fake-worker-bin", default=os.path.join(BIN, "respawn-fake-worker"))
    ap.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    ap.add_argument("--part",
                    choices=("all", "generate", "infer", "overhead", "frontend", "memory"),
                    default="all")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (whole)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="wrk runs per row; the row is the median one by req/s")
    ap.add_argument("--warmup", type=int, default=1,
                    help="whole seconds of untimed wrk per server before its rows; 0 = none")
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated connection counts")
    ap.add_argument("--tokens", type=int, default=64, help="max_tokens of the generate rows")
    ap.add_argument("--batch-size", type=int, help="--max-batch-size for 'on' (default: server's)")
    ap.add_argument("--batch-delay-us", type=int,
                    help="--max-batch-delay-us for 'on' (default: server's)")
    ap.add_argument("--worker-threads", type=int,
                    help="--worker-threads for every server and --threads for the in-process "
                         "run (default: neither passed, so libtorch's default in both)")
    ap.add_argument("--iterations", type=int, default=2000, help="in-process infers")
    ap.add_argument("--budget-headroom-mb", default="16,5",
                    help="memory part: runs with max_worker_rss_mb = the worker's RSS after "
                         "warm-up + each of these (comma-separated MiB)")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--logs", help="write each server's stderr to DIR/<label>.log")
    args = ap.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    if not shutil.which(args.wrk):
        print("wrk not found: apt-get install wrk (or --wrk PATH)", file=sys.stderr)
        return 2
    usage = subprocess.run([args.bin, "serve", "--help"], capture_output=True, text=True,
                           timeout=30)
    help_text = usage.stdout + usage.stderr
    args.has_batching = "--max-batch-size" in help_text
    if not args.has_batching:
        print("note: this respawn has no --max-batch-size; batching rows run the default server",
              file=sys.stderr)

    rows, memory_rows, inproc = [], [], None
    started, load_before = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="respawn-throughput-") as tmpdir:
        if args.part in ("all", "generate"):
            rows += measure(args, tmpdir, "generate", os.path.join(MODELS, "demo.pt"),
                            "/v2/models/demo/generate", gen_body(args.tokens), concurrencies,
                            ("on", "off"), tokens=args.tokens)
        if args.part in ("all", "infer"):
            rows += measure(args, tmpdir, "infer", os.path.join(MODELS, "classifier.pt"),
                            "/v2/models/classifier/infer", INFER_BODY, concurrencies,
                            ("on", "off"))
        elif args.part == "overhead":
            rows += measure(args, tmpdir, "infer", os.path.join(MODELS, "classifier.pt"),
                            "/v2/models/classifier/infer", INFER_BODY, [1], ("on",))
        if args.part in ("all", "overhead"):
            inproc = inprocess(args)
        if args.part in ("all", "frontend"):
            fake = ["--worker-bin", args.fake_worker_bin]
            rows += measure(args, tmpdir, "frontend generate (fake worker)",
                            os.path.join(MODELS, "demo.pt"), "/v2/models/demo/generate",
                            {"text_input": "hi", "parameters": {"max_tokens": 1}}, [32],
                            ("default",), extra_flags=fake)
            rows += measure(args, tmpdir, "frontend infer (fake worker)",
                            os.path.join(MODELS, "demo.pt"), "/v2/models/demo/infer",
                            INFER_BODY, [32], ("default",), extra_flags=fake)
        if args.part in ("all", "memory"):
            memory_rows = memory_budget(args, tmpdir)

    print(f"### Throughput ({args.duration} s per wrk run, median of {args.repeat}, "
          f"wrk -t min(2,c) -c c, {os.cpu_count()} CPUs, 1-min load average "
          f"{load_before:.2f} before the run)\n")
    table(("workload", "concurrency", "batching", "req/s", "p50 ms", "p99 ms", "tokens/s",
           "errors", "worker peak MiB", "other CPU %"),
          [(r["workload"], r["concurrency"], r["batching_label"],
            fmt(r["rps"]) + ("~" if short_run(args, r) else ""),
            fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["tokens_per_s"], 0),
            r["non_2xx"] + r["socket_errors"], fmt(r["worker_peak_rss_mib"], 0),
            fmt(r["other_cpu_pct"], 0))
           for r in rows])
    if any(short_run(args, r) for r in rows):
        print(f"~: p99 latency is over a fifth of the {args.duration} s run, so wrk (which counts "
              "only completed requests) undercounts req/s; use a longer --duration\n")
    if not args.has_batching and any(r["batching"] != "default" for r in rows):
        print("(no flag): this respawn has no --max-batch-size, so the 'on' and 'off' rows "
              "ran the same default server\n")

    if memory_rows:
        print("### Memory budget (generate, worker RSS; peak = VmHWM during the run)\n")
        table(("concurrency", "max_worker_rss_mb", "RSS after warm-up MiB", "peak MiB",
               "learned bytes/token", "req/s", "p50 ms", "p99 ms", "errors", "same worker"),
              [(r["concurrency"], r["budget_mib"] or "0 (off)", fmt(r["base_mib"], 0),
                fmt(r["worker_peak_rss_mib"], 1),
                fmt((r["budget_state"] or {}).get("cost_per_weight"), 0), fmt(r["rps"]),
                fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), r["non_2xx"] + r["socket_errors"],
                "yes" if r["same_worker"] else "no") for r in memory_rows])
    overhead = None
    through = next((r for r in rows if r["workload"] == "infer" and r["concurrency"] == 1
                    and r["batching"] == "on"), None)
    if inproc:
        print(f"In-process ({os.path.basename(args.inprocess_bin)}, {inproc['model']} "
              f"{inproc['input_shapes']}, {inproc['threads']} thread(s), "
              f"{inproc['iterations']} iterations): p50 {inproc['p50_us']:.1f} us, "
              f"p99 {inproc['p99_us']:.1f} us, mean {inproc['mean_us']:.1f} us")
    if inproc and through:
        overhead = through["p50_ms"] * 1000 - inproc["p50_us"]
        print(f"Supervisor overhead (infer, c=1, batching {through['batching_label']}): "
              f"p50 through respawn {through['p50_ms'] * 1000:.1f} us - in-process "
              f"{inproc['p50_us']:.1f} us = {overhead:.1f} us")
    elapsed = time.monotonic() - started
    print(f"\n(total {elapsed:.0f} s)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"binary": args.bin, "has_batching_flags": args.has_batching,
                       "duration_s": args.duration, "repeat": args.repeat,
                       "cpus": os.cpu_count(), "loadavg_before": load_before,
                       "machine": platform.platform(), "rows": rows, "inprocess": inproc,
                       "memory_rows": memory_rows,
                       "overhead_us": overhead, "elapsed_s": elapsed}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
