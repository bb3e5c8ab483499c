#!/usr/bin/env python3
"""The GPU check's driver: every check of scripts/gpu-check, one JSON file.

Run it through scripts/gpu-check, which picks the binaries (build/bin or a bundle made by
`scripts/gpu-check --bundle DIR`), a python that has torch and the LD_LIBRARY_PATH; the
sub-commands are:

  gpu_check.py run --out DIR --bin-dir BIN [--device cuda|cpu] [--model-mib N] [--duration S]
                   [--deadline-s S] [--manifest FILE] [--skip suite,big,throughput]
  gpu_check.py make-model --out FILE --mib N      (needs torch; run in a subprocess by `run`)
  gpu_check.py manifest --dir BUNDLE --build-bin BIN --root ROOT   (by `--bundle`, here)

`run` writes DIR/gpu-check.json (rewritten after every check, so a run cut short still leaves
what it found) and prints its log on stdout (scripts/gpu-check tees it to DIR/gpu-check.log).
Checks, in order (each `pass`, `fail` or `skipped: <why>`; on `--device cpu` the ones that only
mean something on a GPU are `skipped: cpu`):

  binaries             every binary's libraries resolve (ldd), and the glibc it needs is there
  big model            a TorchScript `tensor` model of --model-mib MiB of weights (default 1024
                       on cuda, 256 on cpu), made here with this machine's torch, loads on the device;
                       forward(x FP32 [-1,64], n INT64 [1]) also allocates n floats, so `n`
                       sizes a request's memory
  memory               after 20 requests (each with a 256 MiB scratch on cuda), after the OOM
                       below and after POST /admin/recycle, GPU memory is back at the post-load level: the
                       allocator's view (gpu_memory_bytes in GET /admin/workers, and the
                       worker's "memory after load and warm-up" line) and the device's view
                       (nvidia-smi memory.used; torch.cuda.mem_get_info() in a subprocess when
                       there is no nvidia-smi)
  oom                  a request whose n is more than the free memory gets 503 + Retry-After
                       (a real allocator failure, on cpu too), and the next request is served
                       by the same worker (same pid)
  sticky               X-Respawn-Fault: illegal_memory_access (a real kernel on an invalid
                       address), with replay_limit 0 so that one worker dies: 502, the worker
                       is replaced with reason cuda_error (last_recycle_reason and
                       respawn_worker_recycles_total), readiness is false until the new worker
                       has loaded and warmed up (/v2/health/ready polled every ~20 ms), then
                       true, a request succeeds on the new worker, and device memory is back
                       at the post-load level. On cpu the worker answers 400 (skipped: cpu),
                       and the same flow runs with the `cuda_error` fault (the worker only
                       reports a sticky error) as "sticky (simulated ...)" checks
  throughput           demo model generate (--tokens: 64 on cuda, 16 on cpu) at concurrency
                       1, 8, 32, batching on (server default) and off (--max-batch-size 1),
                       with Python threads and keep-alive http.client connections (no wrk),
                       --duration s a row (5 cuda, 3 cpu): req/s, tokens/s, p50, p99
  integration suite    respawn_integration_tests with RESPAWN_TEST_DEVICE=<device> and
                       RESPAWN_TEST_{BIN,MODELS,DATA}_DIR (the bundle's bin/, this checkout's
                       models/ and tests/data/), in parallel GoogleTest shards, with the time
                       that is left (at most --suite-timeout)
  cleanup              every server and worker this run started is gone

Loopback only (servers on 127.0.0.1, port 0), a per-run temp dir, every wait bounded; it stops
only the processes it started, by pid (test shards by the process group it made for each),
also on SIGTERM/SIGINT. Stdlib only, except make-model (torch). Exit status: 0 all passed,
1 a check failed, 2 it could not run.
"""
import argparse
import glob
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from benchlib import is_live, ppid_of  # noqa: E402
import throughput  # noqa: E402  (its Server: start on port 0, wait ready/idle, stop by pid)

MIB = 1 << 20
GIB = 1 << 30
WIDTH = 4096          # the big model's layer width: one layer is WIDTH^2 floats = 64 MiB
IN_FEATURES = 64      # its input x: FP32 [-1, 64]
SCRATCH_CUDA = 64 << 20   # n of the 20 "normal" requests on cuda: 64 Mi floats = 256 MiB
SCRATCH_CPU = 4 << 20     # on cpu: 16 MiB
ALLOC_TOLERANCE = 32 * MIB    # allocator view: allowed drift from the post-load level
DEVICE_TOLERANCE = 128 * MIB  # device view (a whole-card number, MiB steps)
BIG_MODEL = "big"


# --- log and results ------------------------------------------------------------------------

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Report:
    """The JSON file: rewritten (atomically) after every check."""

    def __init__(self, path: str, meta: dict):
        self.path = path
        self.data = {"tool": "scripts/gpu-check", "format": 1, **meta,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None,
                     "elapsed_s": None, "ok": None, "summary": {}, "checks": [],
                     "environment": {}, "big_model": {}, "memory": {}, "sticky": {},
                     "throughput": {}, "integration": {}}
        self.write()

    def check(self, name: str, status: str, detail: str = "", **data) -> bool:
        """status: 'pass', 'fail' or 'skipped: why'. Returns True for pass."""
        entry = {"name": name, "status": status, "detail": detail}
        if data:
            entry["data"] = data
        self.data["checks"].append(entry)
        log(f"CHECK {name}: {status.upper() if status in ('pass', 'fail') else status}"
            + (f" -- {detail}" if detail else ""))
        self.write()
        return status == "pass"

    def expect(self, name: str, ok: bool, detail: str = "", **data) -> bool:
        return self.check(name, "pass" if ok else "fail", detail, **data)

    def skip(self, name: str, why: str, detail: str = "", **data) -> None:
        self.check(name, "skipped: " + why, detail, **data)

    def failed(self) -> int:
        return sum(1 for c in self.data["checks"] if c["status"] == "fail")

    def finish(self) -> None:
        counts = {"pass": 0, "fail": 0, "skipped": 0}
        for c in self.data["checks"]:
            counts["skipped" if c["status"].startswith("skipped") else c["status"]] += 1
        self.data["summary"] = counts
        self.data["ok"] = counts["fail"] == 0 and counts["pass"] > 0
        self.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data["elapsed_s"] = round(time.monotonic() - T0, 1)
        self.write()

    def write(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, default=str)
            f.write("\n")
        os.replace(tmp, self.path)


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# --- HTTP -----------------------------------------------------------------------------------

def call(port, method, path, body=None, headers=None, timeout=60.0):
    """(status, headers {lower-case: value}, parsed JSON body or raw text); status 0 when no
    answer came (connection refused, reset, timeout)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    data = body if body is None or isinstance(body, (bytes, str)) else json.dumps(body)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        res = conn.getresponse()
        raw = res.read()
        hs = {k.lower(): v for k, v in res.getheaders()}
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return res.status, hs, parsed
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, f"no answer: {e}"
    finally:
        conn.close()


def metric(port, series: str) -> float:
    """The value of an exact Prometheus series (name{labels}); 0 if absent."""
    status, _, text = call(port, "GET", "/metrics", timeout=10)
    if status != 200 or not isinstance(text, str):
        return -1.0
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def workers(port) -> dict:
    status, _, body = call(port, "GET", "/admin/workers", timeout=10)
    return body if status == 200 and isinstance(body, dict) else {}


def wait_for(cond, timeout: float, step: float = 0.05):
    """Polls cond() until it returns something truthy (returned) or timeout passes (None)."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(step)


class Server(throughput.Server):
    """bench/throughput.py's Server (port 0, ready wait, stop by pid, workers reaped), with a
    longer ready timeout for a large model and a record of every worker pid it reported."""

    started = []  # every Server ever entered, for the cleanup check

    def __init__(self, bin_path, flags, label, logs, ready_timeout=60.0):
        super().__init__(argparse.Namespace(bin=bin_path, logs=logs), flags, label)
        self.ready_timeout = ready_timeout
        self.log_path = os.path.join(logs, label + ".log")
        self.worker_pids = set()

    def __enter__(self):
        Server.started.append(self)
        return super().__enter__()

    def wait_ready(self, timeout=None) -> None:
        super().wait_ready(timeout or self.ready_timeout)

    def workers(self) -> dict:
        w = workers(self.port)
        if w.get("pid"):
            self.worker_pids.add(int(w["pid"]))
        return w

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def post_load_memory(self, pid: int):
        """The worker's 'memory after load and warm-up' report (a dict), or None."""
        pattern = re.compile(r"\[worker " + str(pid) + r"\] \w+: memory after load and warm-up: "
                             r"(\{.*\})")
        for line in self.log_text().splitlines():
            m = pattern.search(line)
            if m:
                try:
                    return json.loads(m.group(1))
                except ValueError:
                    return None
        return None


# --- device memory (the device's view) ------------------------------------------------------

class DeviceMemory:
    """Memory used on GPU 0 as the device sees it (every process, contexts included)."""

    def __init__(self, python: str):
        self.python = python
        self.method = None
        if shutil.which("nvidia-smi"):
            self.method = "nvidia-smi --query-gpu=memory.used,memory.free,memory.total"
        elif python:
            self.method = "torch.cuda.mem_get_info() in a subprocess (adds its own context)"

    def read(self):
        """{'used': bytes, 'free': bytes, 'total': bytes} or None."""
        try:
            if self.method and self.method.startswith("nvidia-smi"):
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used,memory.free,memory.total",
                     "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True, text=True, timeout=20).stdout
                used, free, total = (int(v) * MIB for v in out.strip().split(","))
                return {"used": used, "free": free, "total": total}
            if self.method:
                out = subprocess.run(
                    [self.python, "-c", "import torch; f, t = torch.cuda.mem_get_info(0); "
                     "print(t - f, f, t)"], capture_output=True, text=True, timeout=60).stdout
                used, free, total = (int(v) for v in out.split())
                return {"used": used, "free": free, "total": total}
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        return None

    def per_process(self) -> list:
        if not shutil.which("nvidia-smi"):
            return []
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                  "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=20).stdout
            return [{"pid": int(p), "used_mib": int(m)} for p, m in
                    (line.split(",") for line in out.strip().splitlines() if "," in line)]
        except (OSError, ValueError, subprocess.SubprocessError):
            return []


def mib(v):
    return None if v is None else round(v / MIB, 1)


# --- the big model --------------------------------------------------------------------------

def make_model(out: str, size_mib: int) -> dict:
    """A TorchScript `tensor` model with >= size_mib MiB of weights and respawn.json."""
    import torch
    import torch.nn as nn

    layers = max(1, -(-size_mib * MIB // (WIDTH * WIDTH * 4)))

    class Big(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.register_buffer("proj", torch.randn(IN_FEATURES, WIDTH, generator=g)
                                 / IN_FEATURES ** 0.5)
            self.register_buffer("w", torch.randn(layers, WIDTH, WIDTH, generator=g)
                                 / WIDTH ** 0.5)

        def forward(self, x: torch.Tensor, n: torch.Tensor):
            h = x @ self.proj
            for i in range(self.w.size(0)):
                h = torch.tanh(h @ self.w[i])
            # The request's own memory: n floats on the model's device. An n larger than the
            # free memory makes the allocator fail: a real out-of-memory.
            scratch = torch.ones([int(n[0])], dtype=torch.float32, device=x.device)
            return h[:, :4], scratch.sum().reshape([1])

    started = time.monotonic()
    module = Big().eval()
    weight_bytes = sum(b.numel() * b.element_size() for b in module.buffers())
    scripted = torch.jit.script(module)
    meta = {"task": "tensor",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, IN_FEATURES]},
                       {"name": "n", "datatype": "INT64", "shape": [1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]},
                        {"name": "scratch_sum", "datatype": "FP32", "shape": [1]}]}
    # As scripts/make_models.py's save() does: respawn.json as a TorchScript extra file.
    torch.jit.save(scripted, out, _extra_files={"respawn.json": json.dumps(meta)})
    return {"path": out, "layers": layers, "width": WIDTH, "weight_bytes": weight_bytes,
            "file_bytes": os.path.getsize(out), "make_s": round(time.monotonic() - started, 1),
            "torch": torch.__version__}


def infer_body(n: int) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, IN_FEATURES],
                        "data": [((i % 7) - 3) / 4 for i in range(IN_FEATURES)]},
                       {"name": "n", "datatype": "INT64", "shape": [1], "data": [n]}]}


# --- checks: binaries -----------------------------------------------------------------------

def glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""


def check_binaries(rep: Report, bin_dir: str, manifest: dict) -> bool:
    env = rep.data["environment"]
    problems, ldd = [], {}
    for name in ("respawn", "respawn-worker", "respawn_integration_tests", "respawn-fake-worker"):
        path = os.path.join(bin_dir, name)
        if not os.access(path, os.X_OK):
            problems.append(f"{name}: missing")
            continue
        try:
            res = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30)
            out = res.stdout + res.stderr
        except (OSError, subprocess.SubprocessError) as e:
            out = f"ldd failed: {e}"
        bad = [line.strip() for line in out.splitlines() if "not found" in line]
        ldd[name] = {"not_found": bad,
                     "torch_libs": sorted({m for m in re.findall(r"=> (\S+)", out)
                                           if "/torch/lib/" in m or "/nvidia/" in m})[:40]}
        problems += [f"{name}: {b}" for b in bad]
    env["ldd"] = ldd
    need = manifest.get("glibc_needed")
    have = glibc_version()
    env["glibc_needed"], env["glibc_here"] = need, have
    if need and have:
        def ver(s):
            return tuple(int(x) for x in re.findall(r"\d+", s))
        if ver(have) < ver(need):
            problems.append(f"glibc {have} here, the binaries need {need}")
    return rep.expect("binaries", not problems, "; ".join(problems) or
                      f"libraries resolve; glibc here {have}, needed "
                      f"{need or '? (no bundle manifest)'}",
                      bin_dir=bin_dir)


# --- checks: big model, memory, OOM, sticky error -------------------------------------------

def allocator_bytes(srv: Server):
    w = srv.workers()
    return w.get("gpu_memory_bytes"), w.get("pid")


def settle_device(dev: DeviceMemory, target: int, timeout: float = 8.0):
    """Reads the device's used memory until it is within DEVICE_TOLERANCE of target (the
    worker hands its cache back once idle) or timeout passes; the last reading."""
    reading = None
    end = time.monotonic() + timeout
    while True:
        reading = dev.read()
        if reading is None or abs(reading["used"] - target) <= DEVICE_TOLERANCE \
                or time.monotonic() >= end:
            return reading
        time.sleep(0.25)


def memory_checks(rep, label, srv, dev, cuda, post_alloc, post_device, note):
    """The allocator's and the device's view against the post-load level."""
    mem = rep.data["memory"].setdefault(label, {})
    alloc, pid = allocator_bytes(srv)
    mem.update(allocator_bytes=alloc, worker_pid=pid, note=note)
    if not cuda:
        mem["rss_bytes"] = srv.workers().get("rss_bytes")
        rep.skip(f"memory {label}: allocator", "cpu", f"gpu_memory_bytes={alloc}")
        rep.skip(f"memory {label}: device", "cpu")
        return
    ok = alloc is not None and post_alloc is not None and \
        abs(alloc - post_alloc) <= ALLOC_TOLERANCE
    rep.expect(f"memory {label}: allocator", ok,
               f"gpu_memory_bytes {mib(alloc)} MiB vs post-load allocated {mib(post_alloc)} MiB "
               f"(tolerance {mib(ALLOC_TOLERANCE)} MiB)",
               allocator_bytes=alloc, post_load_allocated_bytes=post_alloc)
    if post_device is None:
        rep.check(f"memory {label}: device", "fail", "no device reading (" +
                  str(dev.method) + ")")
        return
    reading = settle_device(dev, post_device["used"])
    mem["device_used_bytes"] = reading and reading["used"]
    mem["per_process"] = dev.per_process()
    ok = reading is not None and abs(reading["used"] - post_device["used"]) <= DEVICE_TOLERANCE
    rep.expect(f"memory {label}: device", ok,
               f"device used {mib(reading and reading['used'])} MiB vs post-load "
               f"{mib(post_device['used'])} MiB (tolerance {mib(DEVICE_TOLERANCE)} MiB; "
               f"{dev.method})",
               device_used_bytes=reading and reading["used"],
               post_load_device_used_bytes=post_device["used"])


def nvidia_fds(pid: int) -> list:
    """The /dev/nvidia* files pid has open (a CUDA context holds /dev/nvidiactl and others)."""
    out = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/dev/nvidia"):
                out.append(target)
    except OSError:
        pass
    return sorted(set(out))


def compute_app_pids() -> set:
    """The pids nvidia-smi lists as holding GPU memory; empty when it cannot say."""
    try:
        res = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return set()
    return {int(x) for x in res.stdout.split() if x.strip().isdigit()}


def fork_server_checks(rep, w: dict, cuda: bool) -> None:
    """The worker was forked by the fork server, which never touched the GPU."""
    fs = w.get("fork_server") or {}
    pid = int(fs.get("pid") or 0)
    rep.expect("fork server: the worker was forked", w.get("forked") is True and pid > 0,
               f"forked={w.get('forked')!r}, fork_server={fs}")
    if not pid:
        return
    fds = nvidia_fds(pid)
    apps = compute_app_pids() if cuda else set()
    rep.expect("fork server: holds no CUDA context", not fds and pid not in apps,
               f"fork server {pid} holds {fs.get('holds')!r}, rss {mib(fs.get('rss_bytes'))} MiB; "
               f"/dev/nvidia* open: {fds or 'none'}; in nvidia-smi's compute apps: "
               f"{pid in apps} (apps: {sorted(apps)}); worker {w.get('pid')} open: "
               f"{nvidia_fds(int(w.get('pid') or 0)) or 'none'}")


def big_model_phase(rep, args, tmp, device, dev, deadline):
    cuda = device == "cuda"
    # 1. Make the model with this machine's torch (a subprocess: its memory goes back).
    model_path = os.path.join(tmp, "big.pt")
    size = args.model_mib
    log(f"making a {size} MiB TorchScript model with {args.python}")
    try:
        res = subprocess.run([args.python, os.path.abspath(__file__), "make-model", "--out",
                              model_path, "--mib", str(size)], capture_output=True, text=True,
                             timeout=max(30.0, min(240.0, deadline.left() - 60)))
        info = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        res, info = None, None
        log(f"make-model failed: {e}")
    if not info:
        rep.check("big model: made", "fail",
                  (res.stderr[-1500:] if res is not None else "timed out or unreadable"))
        return
    rep.data["big_model"] = info
    rep.expect("big model: made", info["weight_bytes"] >= size * MIB,
               f"{mib(info['weight_bytes'])} MiB of weights in {info['layers']} layers of "
               f"{WIDTH}x{WIDTH}, file {mib(info['file_bytes'])} MiB, {info['make_s']} s, "
               f"torch {info['torch']}")
    if info["weight_bytes"] < GIB and cuda:
        rep.check("big model: at least 1 GiB", "fail", f"--model-mib {size} is under 1024")

    baseline_device = dev.read() if cuda else None
    flags = ["--model", model_path, "--model-name", BIG_MODEL, "--device", device,
             "--enable-fault-injection", "--max-body-bytes", str(16 * MIB),
             "--hang-timeout-ms", "60000", "--load-timeout-ms", "240000"]
    path = f"/v2/models/{BIG_MODEL}/infer"
    scratch = SCRATCH_CUDA if cuda else SCRATCH_CPU
    with Server(args.bin, flags, "big", args.logs, ready_timeout=min(240.0, deadline.left())) \
            as srv:
        port = srv.port
        w = srv.workers()
        pid = w.get("pid")
        rep.data["big_model"].update(device=w.get("device"), worker_pid=pid,
                                     rss_bytes=w.get("rss_bytes"))
        report = srv.post_load_memory(pid) or {}
        rep.data["big_model"]["post_load_report"] = report
        post_alloc = report.get("allocated_bytes")
        post_device = dev.read() if cuda else None
        rep.data["memory"]["baseline_device_before_server"] = baseline_device
        rep.data["memory"]["post_load_device"] = post_device
        rep.data["memory"]["device_method"] = dev.method if cuda else None
        rep.data["memory"]["post_load_allocated_bytes"] = post_alloc
        want = "cuda:0" if cuda else "cpu"
        built = {k: w.get(k) for k in ("libtorch_version", "cuda_build", "cuda_version",
                                       "model_format", "device_fallback") if k in w}
        rep.data["big_model"]["worker_build"] = built
        # cuda_build: the worker has the CUDA memory code (RESPAWN_WITH_CUDA); without it a
        # cuda worker reports host RSS and cannot empty the allocator's cache.
        rep.expect("big model: worker on device",
                   w.get("device") == want and (not cuda or built.get("cuda_build", True)),
                   f"/admin/workers device={w.get('device')!r} (expected {want!r}), {built}")
        fork_server_checks(rep, w, cuda)
        if cuda:
            rep.expect("big model: loaded on the GPU",
                       post_alloc is not None and post_alloc >= info["weight_bytes"],
                       f"allocated after load and warm-up {mib(post_alloc)} MiB for "
                       f"{mib(info['weight_bytes'])} MiB of weights; device used "
                       f"{mib(post_device and post_device['used'])} MiB "
                       f"(before the server: {mib(baseline_device and baseline_device['used'])})")
        else:
            rep.skip("big model: loaded on the GPU", "cpu",
                     f"worker RSS {mib(w.get('rss_bytes'))} MiB for "
                     f"{mib(info['weight_bytes'])} MiB of weights")

        # 2. 20 requests, each allocating `scratch` floats; same worker throughout.
        statuses, pids, times, trail = [], set(), [], []
        for _ in range(20):
            t = time.monotonic()
            status, hs, body = call(port, "POST", path, infer_body(scratch), timeout=120)
            times.append(time.monotonic() - t)
            statuses.append(status)
            pids.add(hs.get("x-respawn-worker-pid"))
            trail.append(srv.workers().get("gpu_memory_bytes"))  # after each request
        srv.wait_idle(timeout=60)
        ok = all(s == 200 for s in statuses) and pids == {str(pid)}
        rep.data["memory"]["requests_20"] = {"statuses": statuses, "pids": sorted(map(str, pids)),
                                             "scratch_floats": scratch,
                                             "gpu_memory_bytes_after_each": trail,
                                             "p50_ms": round(statistics.median(times) * 1e3, 2)}
        rep.expect("memory: 20 requests served by one worker", ok,
                   f"statuses {sorted(set(statuses))}, worker pids {sorted(map(str, pids))}, "
                   f"each with a {mib(scratch * 4)} MiB scratch, p50 "
                   f"{statistics.median(times) * 1e3:.1f} ms")
        memory_checks(rep, "after 20 requests", srv, dev, cuda, post_alloc, post_device,
                      "gpu_memory_bytes is the allocator's allocated bytes after the last request")

        # 3. A real out-of-memory: n floats more than the free memory.
        if cuda:
            reading = dev.read() or {}
            free = reading.get("free") or 200 * GIB
            n = (free + 8 * GIB) // 4
            why = f"{mib(n * 4)} MiB = the device's free {mib(free)} MiB + 8 GiB"
        else:
            n = 1 << 46  # 256 TiB: past any address space, so it fails with any overcommit
            why = "256 TiB (past the address space)"
        status, hs, body = call(port, "POST", path, infer_body(n), timeout=120)
        err = body.get("error") if isinstance(body, dict) else str(body)
        rep.data["memory"]["oom"] = {"n": n, "bytes": n * 4, "status": status,
                                     "retry_after": hs.get("retry-after"), "error": err}
        rep.expect("oom: 503 for a request too large for the free memory",
                   status == 503 and hs.get("retry-after") is not None
                   and "out of memory" in str(err),
                   f"status {status}, Retry-After {hs.get('retry-after')!r}, {why}: {err!r:.300}")
        status, hs, body = call(port, "POST", path, infer_body(scratch), timeout=120)
        after = srv.workers()
        same = hs.get("x-respawn-worker-pid") == str(pid) and after.get("pid") == pid
        rep.expect("oom: the next request succeeds on the same worker",
                   status == 200 and same,
                   f"status {status}, worker pid {hs.get('x-respawn-worker-pid')} (before {pid}), "
                   f"/admin/workers pid {after.get('pid')}, last_recycle_reason "
                   f"{after.get('last_recycle_reason')!r}")
        srv.wait_idle(timeout=60)
        memory_checks(rep, "after the OOM", srv, dev, cuda, post_alloc, post_device,
                      "after the 503 and one normal request")

        # 4. A graceful recycle: a new worker, memory back at the post-load level.
        status, _, body = call(port, "POST", "/admin/recycle", timeout=30)
        new = wait_for(lambda: (lambda w: w if w.get("state") == "ready" and w.get("pid")
                                not in (0, pid) else None)(srv.workers()),
                       timeout=min(240.0, max(30.0, deadline.left() - 30)), step=0.1)
        old_gone = wait_for(lambda: not is_live(pid, b"respawn"), timeout=30)
        new_pid = new.get("pid") if new else None
        rep.expect("recycle: a new worker is ready", status == 202 and new is not None
                   and bool(old_gone),
                   f"POST /admin/recycle {status} {body!r:.120}; new worker {new_pid}, "
                   f"old worker {pid} {'gone' if old_gone else 'STILL ALIVE'}")
        if new_pid:
            post_new = (srv.post_load_memory(new_pid) or {}).get("allocated_bytes")
            rep.data["memory"]["post_load_allocated_bytes_after_recycle"] = post_new
            status, _, _ = call(port, "POST", path, infer_body(scratch), timeout=120)
            srv.wait_idle(timeout=60)
            memory_checks(rep, "after the recycle", srv, dev, cuda, post_alloc, post_device,
                          f"new worker {new_pid}, after one request (status {status}); its own "
                          f"post-load allocated: {post_new}")
            pid = new_pid
        else:
            rep.skip("memory after the recycle", "no new worker")

        if deadline.left() < 60:
            rep.skip("sticky", "out of time")
            return
        sticky_phase(rep, srv, cuda, pid, path, scratch, dev, post_device, deadline)


STICKY_FAULT = "illegal_memory_access"   # a real kernel write to an invalid device address
SIMULATED_FAULT = "cuda_error"           # the worker reports a sticky CUDA error (any device)


def sticky_phase(rep, srv, cuda, pid, path, scratch, dev, post_device, deadline):
    """X-Respawn-Fault: illegal_memory_access, with replays off so that exactly one worker dies.
    On cpu the worker answers it with 400 (skipped: cpu); the same recovery flow then runs with
    the injected `cuda_error` fault (the worker only reports the error), so that the dry run
    exercises every step."""
    port = srv.port
    status, _, body = call(port, "PATCH", "/admin/policy", {"replay_limit": 0}, timeout=10)
    rep.data["sticky"]["replay_limit_0"] = status
    if status != 200:
        log(f"PATCH replay_limit=0: {status} {body!r:.200}")
    names = ("sticky: worker recycled with reason cuda_error",
             "sticky: readiness false until the new worker warmed up",
             "sticky: a request succeeds afterwards")
    if cuda:
        sticky_flow(rep, srv, pid, path, scratch, dev, post_device, deadline, STICKY_FAULT,
                    names, rep.data["sticky"])
        return
    status, _, body = call(port, "POST", path, infer_body(scratch),
                           headers={"X-Respawn-Fault": STICKY_FAULT}, timeout=120)
    err = body.get("error") if isinstance(body, dict) else str(body)
    rep.data["sticky"].update(fault=STICKY_FAULT, status=status, error=err)
    if status == 400:
        rep.skip(names[0], "cpu", f"the cpu worker answered 400 {err!r:.200} (expected on cpu)")
    else:
        rep.check(names[0], "fail", f"on cpu expected 400, got {status} {err!r:.300}")
    for name in names[1:]:
        rep.skip(name, "cpu")
    sim = rep.data["sticky"].setdefault("simulated", {})
    sticky_flow(rep, srv, pid, path, scratch, dev, None, deadline, SIMULATED_FAULT,
                tuple(n.replace("sticky:", f"sticky (simulated, fault {SIMULATED_FAULT}):")
                      for n in names), sim)


def sticky_flow(rep, srv, pid, path, scratch, dev, post_device, deadline, fault, names, info):
    port = srv.port
    before = metric(port, 'respawn_worker_recycles_total{reason="cuda_error"}')
    samples, stop = [], threading.Event()
    t_fault = time.monotonic()

    def poll():
        while not stop.is_set():
            t = time.monotonic()
            s, _, b = call(port, "GET", "/v2/health/ready", timeout=5)
            w = workers(port)
            samples.append({"t": round(t - t_fault, 3), "ready": s,
                            "state": b.get("state") if isinstance(b, dict) else None,
                            "pid": w.get("pid"), "worker_state": w.get("state")})
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    status, hs, body = call(port, "POST", path, infer_body(scratch),
                            headers={"X-Respawn-Fault": fault}, timeout=120)
    answered = time.monotonic() - t_fault
    err = body.get("error") if isinstance(body, dict) else str(body)
    info.update(fault=fault, status=status, error=err, answered_s=round(answered, 3),
                worker_before=pid)
    # The new worker: ready, another pid.
    new = wait_for(lambda: (lambda w: w if w.get("state") in ("ready", "busy")
                            and w.get("pid") not in (0, pid) else None)(workers(port)),
                   timeout=min(240.0, max(30.0, deadline.left() - 20)), step=0.1)
    ready_again = wait_for(lambda: call(port, "GET", "/v2/health/ready", timeout=5)[0] == 200,
                           timeout=30)
    time.sleep(0.2)
    stop.set()
    poller.join(timeout=10)
    w = srv.workers()
    after = metric(port, 'respawn_worker_recycles_total{reason="cuda_error"}')
    new_pid = new.get("pid") if new else None
    info.update(worker_after=new_pid, last_recycle_reason=w.get("last_recycle_reason"),
                cuda_error_recycles_before=before, cuda_error_recycles_after=after,
                old_worker_gone=not is_live(pid, b"respawn"), samples=samples[:300])
    rep.expect(names[0],
               status == 502 and new_pid is not None and after == before + 1
               and w.get("last_recycle_reason") == "cuda_error" and info["old_worker_gone"],
               f"answer {status} {err!r:.200} after {answered:.2f} s; last_recycle_reason "
               f"{w.get('last_recycle_reason')!r}; respawn_worker_recycles_total"
               f"{{reason=\"cuda_error\"}} {before} -> {after}; worker {pid} -> {new_pid} (old "
               f"{'gone' if info['old_worker_gone'] else 'STILL ALIVE'})")
    # Readiness: false from the fault until the new worker has loaded and warmed up, then true.
    not_ready = [s for s in samples if s["ready"] == 503]
    first_ready_after = next((s for s in samples if s["ready"] == 200 and not_ready
                              and s["t"] > not_ready[0]["t"]), None)
    ready_while_loading = [s for s in samples if s["ready"] == 200
                           and s["worker_state"] in ("spawning", "starting")]
    warm_line = new_pid is not None and srv.post_load_memory(new_pid) is not None
    gap = (first_ready_after["t"] - not_ready[0]["t"]) if first_ready_after else None
    info.update(not_ready_samples=len(not_ready), not_ready_states=sorted(
        {str(s["state"]) for s in not_ready}), readiness_gap_s=gap and round(gap, 3),
        ready_while_loading=len(ready_while_loading))
    rep.expect(names[1],
               bool(not_ready) and first_ready_after is not None and not ready_while_loading
               and first_ready_after["pid"] == new_pid and bool(ready_again) and warm_line,
               f"{len(not_ready)} not-ready samples (states {info['not_ready_states']}), ready "
               f"again after {gap if gap is None else round(gap, 2)} s with worker "
               f"{first_ready_after and first_ready_after['pid']}; ready while a worker was "
               f"loading: {len(ready_while_loading)} samples; new worker's 'memory after load "
               f"and warm-up' line: {'yes' if warm_line else 'NO'}")
    status, hs, body = call(port, "POST", path, infer_body(scratch), timeout=120)
    rep.expect(names[2],
               status == 200 and hs.get("x-respawn-worker-pid") == str(new_pid),
               f"status {status} from worker {hs.get('x-respawn-worker-pid')} (new: {new_pid})")
    srv.wait_idle(timeout=60)
    if post_device:
        # The dead worker's context and memory are gone, the new worker holds what the first
        # one held after its load.
        reading = settle_device(dev, post_device["used"])
        info["device_used_after"] = reading and reading["used"]
        info["post_load_device_used"] = post_device["used"]
        rep.expect(names[0].split(":")[0] + ": device memory back at the post-load level",
                   reading is not None
                   and abs(reading["used"] - post_device["used"]) <= DEVICE_TOLERANCE,
                   f"device used {mib(reading and reading['used'])} MiB vs post-load "
                   f"{mib(post_device['used'])} MiB (tolerance {mib(DEVICE_TOLERANCE)} MiB)")
    rep.write()


# --- throughput (no wrk: Python threads, keep-alive http.client) ---------------------------

def load_run(port, path, body, conns, seconds):
    """conns threads, each a keep-alive connection sending `body` until `seconds` pass."""
    data = json.dumps(body)
    lock = threading.Lock()
    lat, tokens, errors, statuses, late = [], [0], [0], {}, []
    start = time.monotonic()
    end = start + seconds

    def client():
        conn = None
        while time.monotonic() < end:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            t = time.monotonic()
            try:
                conn.request("POST", path, body=data,
                             headers={"Content-Type": "application/json"})
                res = conn.getresponse()
                raw = res.read()
                status = res.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                status, raw = 0, b""
            done = time.monotonic()
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200 and done <= end:
                    lat.append(done - t)
                    try:
                        tokens[0] += json.loads(raw)["usage"]["completion_tokens"]
                    except (ValueError, KeyError, TypeError):
                        errors[0] += 1
                elif status == 200:
                    late.append(done)  # started in the window, answered after it
                else:
                    errors[0] += 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 90)
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 2) if lat else None
    return {"concurrency": conns, "seconds": seconds, "requests": len(lat),
            "rps": round(len(lat) / seconds, 2), "tokens_per_s": round(tokens[0] / seconds, 1),
            "p50_ms": round(statistics.median(lat) * 1e3, 2) if lat else None,
            "p99_ms": pct(0.99), "errors": errors[0], "statuses": statuses,
            "answered_after_window": len(late),
            "last_answer_s": round(max(late) - start, 3) if late else None,
            "stuck_threads": sum(t.is_alive() for t in threads)}


def throughput_phase(rep, args, device, deadline):
    tokens = args.tokens
    body = {"text_input": "The supervisor", "parameters": {"max_tokens": tokens,
                                                           "temperature": 0}}
    path = "/v2/models/demo/generate"
    conc = [int(c) for c in args.concurrency.split(",")]
    rows = []
    out = rep.data["throughput"]
    out.update(model="models/demo.pt", tokens=tokens, duration_s=args.duration,
               client="python threads, one keep-alive http.client connection each",
               rows=rows)
    for batching in ("on", "off"):
        need = 15 + len(conc) * (args.duration + 2)
        if deadline.left() < need:
            rep.skip(f"throughput: batching {batching}", "out of time")
            continue
        flags = ["--model", os.path.join(ROOT, "models", "demo.pt"), "--device", device]
        if batching == "off":
            flags += ["--max-batch-size", "1"]
        with Server(args.bin, flags, f"demo-batching-{batching}", args.logs,
                    ready_timeout=120) as srv:
            status, _, answer = call(srv.port, "POST", path, body, timeout=60)
            got = (answer or {}).get("usage", {}).get("completion_tokens") \
                if isinstance(answer, dict) else None
            policy = srv.policy()
            if status != 200 or got != tokens:
                rep.check(f"throughput: batching {batching}", "fail",
                          f"first request: {status}, {got} tokens: {answer!r:.200}")
                continue
            load_run(srv.port, path, body, max(conc), 1.0)  # warm-up, untimed
            srv.wait_idle(timeout=60)
            row_ok = True
            for c in conc:
                r = load_run(srv.port, path, body, c, args.duration)
                srv.wait_idle(timeout=60)
                r.update(batching=batching, max_batch_size=policy.get("max_batch_size"),
                         worker_device=srv.workers().get("device"))
                rows.append(r)
                log(f"throughput batching {batching} c={c}: {r['rps']} req/s, "
                    f"{r['tokens_per_s']} tokens/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                    f"errors {r['errors']}")
                # Works: every answer a 200 with its tokens, none lost. (A row whose requests
                # all outlast --duration, as on a loaded cpu, has 0 req/s in the window.)
                row_ok &= r["errors"] == 0 and set(r["statuses"]) == {200} \
                    and r["stuck_threads"] == 0
            rep.write()
            rep.expect(f"throughput: batching {batching}", row_ok,
                       "; ".join(f"c={r['concurrency']}: {r['rps']} req/s, {r['tokens_per_s']} "
                                 f"tok/s, p50 {r['p50_ms']} ms"
                                 for r in rows if r["batching"] == batching))


# --- integration suite ----------------------------------------------------------------------

TEST_DIRS = (  # (key, harness variable, compiled-in macro's folder suffix, source here, probe)
    ("bin_dir", "RESPAWN_TEST_BIN_DIR", b"/bin", None, "respawn"),
    ("models_dir", "RESPAWN_TEST_MODELS_DIR", b"/models", "models", "demo.pt"),
    ("data_dir", "RESPAWN_TEST_DATA_DIR", b"/tests/data", os.path.join("tests", "data"), None),
)


def test_binary_facts(test_bin: str, manifest: dict) -> dict:
    """The folders compiled into the integration tests (RESPAWN_BIN_DIR, RESPAWN_MODELS_DIR,
    RESPAWN_TEST_DATA_DIR) and which RESPAWN_TEST_*_DIR variables its harness reads."""
    try:
        with open(test_bin, "rb") as f:
            blob = f.read()
    except OSError:
        return {"compiled_in": {}, "env_overrides": []}
    found = dict(manifest.get("compiled_in") or {})
    for key, _, suffix, _, _ in TEST_DIRS:
        if key in found:
            continue
        cands = re.findall(rb"\x00(/[\x21-\x7e]{1,400}" + re.escape(suffix) + rb")\x00", blob)
        cands = [c.decode() for c in cands if not c.startswith((b"/usr/", b"/bin", b"/sbin"))]
        if cands:
            found[key] = cands[0]
    overrides = [var for _, var, _, _, _ in TEST_DIRS if var.encode() + b"\x00" in blob]
    return {"compiled_in": found, "env_overrides": overrides}


def ensure_layout(test_bin, bin_dir, manifest):
    """(environment, layout): the integration tests find their binaries, models and data
    through RESPAWN_TEST_{BIN,MODELS,DATA}_DIR where their harness reads them (it does since
    f2951dc); for a test binary that does not, each compiled-in folder that does not exist here
    (a carried bundle) is made a symlink to the bundle's bin/ or this checkout's folder. An
    existing path is never touched."""
    facts = test_binary_facts(test_bin, manifest)
    layout = {**facts, "made": [], "problems": []}
    env = {}
    for key, var, _, rel, probe in TEST_DIRS:
        source = bin_dir if rel is None else os.path.join(ROOT, rel)
        env[var] = source
        if var in facts["env_overrides"]:
            continue
        target = facts["compiled_in"].get(key)
        if not target:
            if key != "data_dir":  # older builds have no data folder
                layout["problems"].append(f"cannot find the compiled-in {key}")
            continue
        if os.path.exists(os.path.join(target, probe) if probe else target):
            continue
        if os.path.lexists(target):
            layout["problems"].append(f"{target} exists but has no {probe}")
            continue
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.path.abspath(source), target)
            layout["made"].append(f"{target} -> {os.path.abspath(source)}")
        except OSError as e:
            layout["problems"].append(f"cannot link {target}: {e}")
    return env, layout


def integration_phase(rep, args, device, deadline):
    info = rep.data["integration"]
    test_bin = os.path.join(args.bin_dir, "respawn_integration_tests")
    dirs_env, layout = ensure_layout(test_bin, args.bin_dir, args.manifest_data)
    info["layout"] = layout
    if layout["problems"]:
        rep.check("integration suite", "fail", "layout: " + "; ".join(layout["problems"]))
        return
    budget = min(args.suite_timeout, deadline.left() - 10)
    if budget < 60:
        rep.skip("integration suite", "out of time", f"{deadline.left():.0f} s left")
        return
    shards = max(1, min(args.shards, os.cpu_count() or 1))
    work = os.path.join(args.tmp, "suite")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, RESPAWN_TEST_DEVICE=device, GTEST_TOTAL_SHARDS=str(shards),
               **dirs_env)
    info["env"] = {k: env[k] for k in ("RESPAWN_TEST_DEVICE", *dirs_env)}
    log(f"integration suite: {shards} shards, RESPAWN_TEST_DEVICE={device}, "
        f"{budget:.0f} s at most")
    procs = []
    started = time.monotonic()
    for i in range(shards):
        out = open(os.path.join(work, f"shard-{i}.out"), "wb")
        p = subprocess.Popen([test_bin, f"--gtest_output=xml:{work}/shard-{i}.xml",
                              "--gtest_color=no"], stdout=out, stderr=subprocess.STDOUT,
                             env=dict(env, GTEST_SHARD_INDEX=str(i)), cwd=work,
                             start_new_session=True)  # its own group: a timeout ends it all
        out.close()
        procs.append(p)
    timed_out = []

    def end_shard(p):
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group this run made for the shard
        except ProcessLookupError:
            pass
        p.wait(timeout=30)

    try:
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=max(1.0, budget - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                timed_out.append(i)
                end_shard(p)
    finally:  # interrupted (SIGTERM, Ctrl-C): no shard outlives the run
        for p in procs:
            if p.poll() is None:
                end_shard(p)
    elapsed = time.monotonic() - started
    tests, failures, skipped = 0, [], 0
    passed_names, ran = set(), set()
    for i in range(shards):
        xml = os.path.join(work, f"shard-{i}.xml")
        text = open(os.path.join(work, f"shard-{i}.out"), errors="replace").read()
        if os.path.exists(xml) and i not in timed_out:
            root = ET.parse(xml).getroot()
            for case in root.iter("testcase"):
                name = f"{case.get('classname')}.{case.get('name')}"
                if case.get("result") == "skipped" or case.find("skipped") is not None:
                    skipped += 1
                    continue
                tests += 1
                fail = case.find("failure")
                if fail is not None:
                    failures.append({"test": name, "message": (fail.get("message") or "")[:1500]})
                else:
                    passed_names.add(name)
        else:  # salvage from the console output
            for m in re.finditer(r"^\[\s+OK \] (\S+)", text, re.M):
                passed_names.add(m.group(1))
                tests += 1
            for m in re.finditer(r"^\[ RUN      \] (\S+)", text, re.M):
                ran.add(m.group(1))
            for name in sorted(ran - passed_names):
                failures.append({"test": name, "message": "did not finish (shard timed out)"})
                tests += 1
        if procs[i].returncode not in (0, 1) and i not in timed_out:
            failures.append({"test": f"shard {i}", "message": f"exit {procs[i].returncode}: "
                             + text[-1500:]})
        if procs[i].returncode != 0 or i in timed_out:
            log(f"--- integration shard {i} output (last 150 lines) ---")
            print("\n".join(text.splitlines()[-150:]), flush=True)
    info.update(shards=shards, device=device, elapsed_s=round(elapsed, 1), tests=tests,
                passed=len(passed_names), failed=len(failures), skipped=skipped,
                failures=failures, timed_out_shards=timed_out)
    rep.expect("integration suite", not failures and not timed_out and tests > 0,
               f"{len(passed_names)} of {tests} passed, {len(failures)} failed, {skipped} "
               f"skipped, in {elapsed:.0f} s on {shards} shards (RESPAWN_TEST_DEVICE={device})"
               + (f"; failed: {', '.join(f['test'] for f in failures[:12])}" if failures else "")
               + (f"; shards {timed_out} timed out" if timed_out else ""))


# --- run ------------------------------------------------------------------------------------

def stray_processes():
    """Servers this run started that still run, their workers, and any other live child."""
    left = []
    for name in os.listdir("/proc"):
        if name.isdigit() and ppid_of(int(name)) == os.getpid() and is_live(int(name), b""):
            left.append(f"child {name}")
    for srv in Server.started:
        if srv.proc is not None and srv.proc.poll() is None:
            left.append(f"server {srv.proc.pid} ({srv.label})")
        for p in srv.worker_pids:
            if is_live(p, b"respawn"):
                left.append(f"worker {p} ({srv.label}, parent {ppid_of(p)})")
    return left


def environment(rep, args, device):
    env = rep.data["environment"]
    env.update(device=device, host=platform.node(), machine=platform.platform(),
               cpus=os.cpu_count(), python=args.python, bin_dir=args.bin_dir,
               ld_library_path=os.environ.get("LD_LIBRARY_PATH", ""),
               manifest=args.manifest_data)
    try:
        out = subprocess.run([args.python, "-c", "import torch, json; print(json.dumps("
                              "{'torch': torch.__version__, 'cuda': torch.version.cuda, "
                              "'lib': torch.__file__}))"], capture_output=True, text=True,
                             timeout=120)
        env["torch"] = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        env["torch"] = None
    if shutil.which("nvidia-smi"):
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
                 "--format=csv,noheader"], capture_output=True, text=True,
                timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            env["nvidia_smi"] = f"failed: {e}"


def dump_server_logs(limit=400_000):
    for srv in Server.started:
        text = srv.log_text()
        log(f"--- server log {srv.label} ({len(text)} bytes"
            + (f", last {limit}" if len(text) > limit else "") + ") ---")
        print(text[-limit:], flush=True)


def cmd_run(args) -> int:
    device = args.device
    cuda = device == "cuda"
    os.makedirs(args.out, exist_ok=True)
    args.manifest_data = {}
    if args.manifest and os.path.exists(args.manifest):
        with open(args.manifest) as f:
            args.manifest_data = json.load(f)
    args.bin = os.path.join(args.bin_dir, "respawn")
    if args.model_mib is None:
        args.model_mib = 1024 if cuda else 256
    if args.duration is None:
        args.duration = 5 if cuda else 3
    if args.tokens is None:
        args.tokens = 64 if cuda else 16
    skip = set(filter(None, args.skip.split(",")))
    rep = Report(os.path.join(args.out, "gpu-check.json"),
                 {"device": device, "argv": sys.argv[1:]})
    deadline = Deadline(args.deadline_s)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    with tempfile.TemporaryDirectory(prefix="respawn-gpu-check-") as tmp:
        args.tmp = tmp
        args.logs = os.path.join(tmp, "logs")
        os.makedirs(args.logs)
        dev = DeviceMemory(args.python)
        try:
            log(f"gpu-check: device {device}, binaries {args.bin_dir}, deadline "
                f"{args.deadline_s:.0f} s, out {args.out}")
            environment(rep, args, device)
            log("environment: " + json.dumps({k: rep.data['environment'].get(k) for k in
                                              ("torch", "nvidia_smi", "cpus")}))
            if not check_binaries(rep, args.bin_dir, args.manifest_data):
                log("binaries do not resolve; the server checks would fail the same way")
            for phase, fn in (("big", lambda: big_model_phase(rep, args, tmp, device, dev,
                                                               deadline)),
                              ("throughput", lambda: throughput_phase(rep, args, device,
                                                                      deadline)),
                              ("suite", lambda: integration_phase(rep, args, device, deadline))):
                if phase in skip:
                    rep.skip(phase, "--skip")
                    continue
                if deadline.left() < 30:
                    rep.skip(phase, "out of time")
                    continue
                log(f"=== {phase} ({deadline.left():.0f} s left)")
                try:
                    fn()
                except (RuntimeError, OSError, subprocess.SubprocessError, ValueError,
                        KeyError, TypeError, AttributeError) as e:
                    rep.check(f"{phase}: ran to the end", "fail", f"{type(e).__name__}: {e}")
        except KeyboardInterrupt as e:
            rep.check("run: not interrupted", "fail", f"stopped by {e}")
        finally:
            for srv in Server.started:
                try:
                    srv.stop()
                except Exception as e:  # noqa: BLE001  (keep stopping the others)
                    log(f"stopping {srv.label}: {e}")
            left = stray_processes()
            rep.expect("cleanup: every process this run started is gone", not left,
                       "; ".join(left) or f"{len(Server.started)} servers stopped")
            dump_server_logs()
            rep.finish()
    s = rep.data["summary"]
    log(f"gpu-check: {s['pass']} passed, {s['fail']} failed, {s['skipped']} skipped "
        f"in {rep.data['elapsed_s']} s -> {rep.path}")
    for c in rep.data["checks"]:
        print(f"  {c['status']:<14} {c['name']}", flush=True)
    return 0 if rep.data["ok"] else 1


# --- manifest (bundle) ----------------------------------------------------------------------

def cmd_manifest(args) -> int:
    """Facts about a bundle, taken here where the build is: what the binaries need."""
    bins = sorted(glob.glob(os.path.join(args.dir, "bin", "*")))
    libs = sorted(glob.glob(os.path.join(args.dir, "lib", "*")))
    glibc, glibcxx = set(), set()
    for path in bins + libs:
        out = subprocess.run(["objdump", "-T", path], capture_output=True, text=True,
                             timeout=120).stdout
        glibc.update(re.findall(r"\bGLIBC_(\d+(?:\.\d+)+)", out))
        glibcxx.update(re.findall(r"\bGLIBCXX_(\d+(?:\.\d+)+)", out))

    def top(vs):
        return max(vs, key=lambda v: tuple(int(x) for x in v.split(".")), default=None)
    dynamic = subprocess.run(["readelf", "-d", os.path.join(args.build_bin, "respawn-worker")],
                             capture_output=True, text=True, timeout=60).stdout
    paths = re.findall(r"\((RPATH|RUNPATH)\)\s+Library \w+: \[(.*)\]", dynamic)
    test_bin = os.path.join(args.build_bin, "respawn_integration_tests")
    with open(test_bin, "rb") as f:
        blob = f.read()
    compiled = {}
    for key, path in (("bin_dir", os.path.realpath(args.build_bin)),
                      ("models_dir", os.path.join(args.root, "models")),
                      ("data_dir", os.path.join(args.root, "tests", "data"))):
        if b"\x00" + path.encode() + b"\x00" in blob:
            compiled[key] = path
    overrides = [var for _, var, _, _, _ in TEST_DIRS if var.encode() + b"\x00" in blob]
    commit = subprocess.run(["git", "-C", args.root, "rev-parse", "HEAD"], capture_output=True,
                            text=True, timeout=30).stdout.strip()
    dirty = subprocess.run(["git", "-C", args.root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=30).stdout.strip()
    manifest = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "made_on": platform.platform(),
        "glibc_here": glibc_version(), "commit": commit, "worktree_dirty": bool(dirty),
        "bins": [os.path.basename(b) for b in bins], "libs": [os.path.basename(x) for x in libs],
        "glibc_needed": "GLIBC_" + top(glibc) if glibc else None,
        "glibcxx_needed": "GLIBCXX_" + top(glibcxx) if glibcxx else None,
        "worker_dynamic_paths": [{"kind": k, "value": v} for k, v in paths],
        "compiled_in": compiled, "test_env_overrides": overrides,
        "bytes": sum(os.path.getsize(p) for p in bins + libs),
    }
    with open(os.path.join(args.dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(json.dumps(manifest, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--bin-dir", required=True)
    r.add_argument("--device", choices=("cuda", "cpu"), required=True)
    r.add_argument("--python", default=sys.executable, help="a python with torch (make-model)")
    r.add_argument("--manifest", help="the bundle's manifest.json")
    r.add_argument("--model-mib", type=int, help="big model size (default 1024 cuda, 256 cpu)")
    r.add_argument("--duration", type=int, help="seconds per throughput row (5 cuda, 3 cpu)")
    r.add_argument("--concurrency", default="1,8,32")
    r.add_argument("--tokens", type=int, help="max_tokens of a throughput generate (64 cuda, "
                   "16 cpu: the dry run exercises the flow, its numbers mean little)")
    r.add_argument("--deadline-s", type=float, default=420.0,
                   help="the whole run; later phases are skipped when it is near")
    r.add_argument("--suite-timeout", type=float, default=300.0)
    r.add_argument("--shards", type=int, default=8, help="integration test shards (<= CPUs)")
    r.add_argument("--skip", default="", help="comma-separated: big,throughput,suite")
    m = sub.add_parser("make-model")
    m.add_argument("--out", required=True)
    m.add_argument("--mib", type=int, required=True)
    b = sub.add_parser("manifest")
    b.add_argument("--dir", required=True)
    b.add_argument("--build-bin", required=True)
    b.add_argument("--root", required=True)
    args = ap.parse_args()
    if args.cmd == "make-model":
        print(json.dumps(make_model(args.out, args.mib)))
        return 0
    if args.cmd == "manifest":
        return cmd_manifest(args)
    return cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
