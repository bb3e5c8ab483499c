#!/usr/bin/env python3
"""Image benchmark: 224x224 FP32 images to an image network, as KServe JSON and as Triton binary
tensor data, side by side in one run: req/s, latency and what each request costs the supervisor's
CPU.

  scripts/python bench/image.py [--arch resnet18|mobilenet_v3_small|pool_linear|all ...]
                                [--model PATH]
                                [--bin build/bin/respawn] [--device cpu] [--duration 5]
                                [--concurrency 1,8] [--json PATH] [--logs DIR]

The model is a torchvision network with random weights (scripts/make_image_model.py --arch),
made into build/models-generated/ARCH.pt (or $RESPAWN_BUILD_DIR/models-generated/) when missing:
resnet18 (the default; its forward, ~50 ms of CPU, bounds the rows on a small CPU machine) or
mobilenet_v3_small (~5 ms of CPU, light enough that the server's per-request cost shows), or
pool_linear (not a vision network: average pooling and a linear layer, a forward as cheap as an
image network's on a GPU, so its rows show what the server itself carries).
--arch may be given more than once (or `all`): the archs run one after the other, one table and
one set of ratios each. Each arch is served by its own `respawn serve --port 0 --model PATH
--task tensor` that this script starts and stops (SIGTERM, by pid), under the file's stem.
Every request is one image [1,3,224,224] (602112 bytes of FP32), the same image each time, its
body built once before the clock starts:
  json    POST /v2/models/ARCH/infer, KServe v2 JSON: the 150528 values as JSON numbers
          (as tritonclient writes them: Python's float repr of each FP32 value, ~3 MB), and
          the logits back as JSON;
  binary  the same route with Triton's binary tensor data extension: a JSON header of
          Inference-Header-Content-Length bytes, then the raw 602112 bytes; the logits asked
          back as binary data (4000 bytes after the answer's JSON header).
For each mode and concurrency C, C client threads (keep-alive http.client connections, one per
thread) send requests back to back: 2*C untimed requests first, then --duration seconds timed.
"sup CPU ms/req" is the supervisor's utime+stime from /proc/<pid>/stat (clock ticks, all its
threads) over the timed part, divided by the requests answered in it; "worker CPU ms/req" the
same for the worker. "other CPU %" is the share of the machine used meanwhile by processes other
than this script, the server and its worker (/proc/stat): rows with more than a few % ran on a
busy machine. The first answer of each mode is checked against the other mode's (atol 1e-4).
Targets (per arch): binary/JSON req/s at concurrency 8 >= 5x; supervisor CPU per binary request
<= 1 ms.
Loopback only; stdlib and numpy (the model's maker needs torch and torchvision).
"""
import argparse
import http.client
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

import numpy as np

from benchlib import ServeProcess, machine_busy_s, process_cpu_s, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("RESPAWN_BUILD_DIR") or os.path.join(ROOT, "build")
# scripts/make_image_model.py's --arch choices; pool_linear stands in for a GPU's speed
ARCHS = ("resnet18", "mobilenet_v3_small", "pool_linear")
SHAPE = [1, 3, 224, 224]
HEADER = "Inference-Header-Content-Length"


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server(ServeProcess):
    """The image model's server."""

    def __init__(self, cmd, logs, label="image"):
        super().__init__(cmd, label, logs)

    def worker_pid(self) -> int:
        status, body = self.get("/admin/workers")
        try:
            return int(json.loads(body).get("pid") or 0) if status == 200 else 0
        except (ValueError, AttributeError):
            return 0


# --- request bodies and answers -------------------------------------------------------------

def json_request(image: np.ndarray):
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": SHAPE,
                        "data": image.flatten().tolist()}],
            "outputs": [{"name": "logits"}]}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def binary_request(image: np.ndarray):
    raw = image.astype("<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": "image", "datatype": "FP32", "shape": SHAPE,
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    return header + raw, {"Content-Type": "application/octet-stream", HEADER: str(len(header))}


def logits_of(status: int, headers, body: bytes) -> np.ndarray:
    if status != 200:
        raise RuntimeError(f"answer {status}: {body[:300]!r}")
    size = headers.get(HEADER)
    meta = json.loads(body[:int(size)] if size is not None else body)
    (out,) = [o for o in meta["outputs"] if o["name"] == "logits"]
    if size is None:
        return np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    start = int(size)
    length = out["parameters"]["binary_data_size"]
    return np.frombuffer(body[start:start + length], dtype="<f4").reshape(out["shape"])


# --- load -----------------------------------------------------------------------------------

def post(conn, path, body, headers):
    conn.request("POST", path, body=body, headers=headers)
    res = conn.getresponse()
    return res.status, res.headers, res.read()


def run_row(srv: Server, model_name: str, mode: str, request, concurrency: int,
            duration: float) -> dict:
    body, headers = request
    path = f"/v2/models/{model_name}/infer"
    conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
             for _ in range(concurrency)]
    latencies, errors = [], []
    lock = threading.Lock()
    timed = threading.Event()
    stop_at = [float("inf")]

    def client(conn, warmup):
        done = 0
        while True:
            if done >= warmup and time.monotonic() >= stop_at[0]:
                return
            t0 = time.monotonic()
            try:
                status, res_headers, data = post(conn, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
                return
            t1 = time.monotonic()
            done += 1
            if status != 200:
                with lock:
                    errors.append(f"{status} {data[:200]!r}")
            elif done > warmup and timed.is_set():
                with lock:
                    latencies.append((t0, t1))

    # Warm-up: 2 requests per thread, then the clock starts once all are through.
    warm = [threading.Thread(target=client, args=(c, 2)) for c in conns]
    stop_at[0] = 0.0
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    if errors:
        raise RuntimeError(f"{mode}: {errors[0]}")
    worker = srv.worker_pid()
    sup0, work0 = process_cpu_s(srv.proc.pid), process_cpu_s(worker)
    busy0, own0, start = machine_busy_s(), own_cpu_s(), time.monotonic()
    timed.set()
    stop_at[0] = start + duration
    threads = [threading.Thread(target=client, args=(c, 0)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.monotonic()
    sup1, work1 = process_cpu_s(srv.proc.pid), process_cpu_s(worker)
    busy1, own1 = machine_busy_s(), own_cpu_s()
    for c in conns:
        c.close()
    n = len(latencies)
    other = (busy1 - busy0) - (own1 - own0) - (sup1 - sup0) - (work1 - work0)
    lat_ms = sorted((t1 - t0) * 1000 for t0, t1 in latencies)
    return {
        "mode": mode, "concurrency": concurrency, "requests": n, "errors": len(errors),
        "seconds": round(end - start, 3), "body_bytes": len(body),
        "rps": n / (end - start) if n else 0.0,
        "p50_ms": lat_ms[n // 2] if n else None,
        "p99_ms": lat_ms[min(n - 1, int(n * 0.99))] if n else None,
        "supervisor_cpu_ms_per_req": (sup1 - sup0) * 1000 / n if n else None,
        "worker_cpu_ms_per_req": (work1 - work0) * 1000 / n if n and worker else None,
        "other_cpu_pct": round(max(0.0, other) / ((end - start) * os.cpu_count()) * 100, 1),
    }


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def run_arch(arch: str, model: str, args, requests, concurrencies) -> dict:
    """Serves model, checks JSON against binary, runs every row; prints the table and ratios."""
    if not os.path.exists(model):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_image_model.py"),
                        "--arch", arch, "--if-missing", model], check=True)
    model_name = os.path.splitext(os.path.basename(model))[0]  # served under the file's stem
    path = f"/v2/models/{model_name}/infer"
    # The JSON body is ~3 MB: leave the server's body limit out of the way.
    cmd = [args.bin, "serve", "--port", "0", "--model", model, "--task", "tensor",
           "--device", args.device, "--max-body-bytes", str(64 << 20)]
    rows = []
    load_before = os.getloadavg()[0]
    with Server(cmd, args.logs, f"image-{arch}") as srv:
        answers = {}
        for mode, (body, headers) in requests.items():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
            try:
                answers[mode] = logits_of(*post(conn, path, body, headers))
            finally:
                conn.close()
        if len(answers) == 2 and not np.allclose(answers["json"], answers["binary"], rtol=0,
                                                 atol=1e-4):
            raise RuntimeError(f"{arch}: the JSON and the binary answers differ: max |diff| "
                               f"{np.abs(answers['json'] - answers['binary']).max()}")
        for mode in requests:
            for c in concurrencies:
                rows.append(run_row(srv, model_name, mode, requests[mode], c, args.duration))
                print(f"  {arch} {mode} c={c}: {rows[-1]['rps']:.1f} req/s", file=sys.stderr)

    print(f"### Image infer, {arch} [1,3,224,224] FP32, JSON vs binary ({args.duration:g} s "
          f"per row, {os.cpu_count()} CPUs, --device {args.device}, 1-min load average "
          f"{load_before:.2f} before the run)\n")
    table(("mode", "concurrency", "body bytes", "req/s", "p50 ms", "p99 ms", "sup CPU ms/req",
           "worker CPU ms/req", "errors", "other CPU %"),
          [(r["mode"], r["concurrency"], r["body_bytes"], fmt(r["rps"]), fmt(r["p50_ms"]),
            fmt(r["p99_ms"]), fmt(r["supervisor_cpu_ms_per_req"], 2),
            fmt(r["worker_cpu_ms_per_req"]), r["errors"], fmt(r["other_cpu_pct"], 0))
           for r in rows])
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    ratios = {}
    top = max(concurrencies)
    if ("json", top) in by and ("binary", top) in by and by[("json", top)]["rps"]:
        ratios["binary_over_json_rps"] = by[("binary", top)]["rps"] / by[("json", top)]["rps"]
        print(f"{arch}: binary/JSON req/s at concurrency {top}: "
              f"{ratios['binary_over_json_rps']:.2f}x (target >= 5x)")
    sup = [r["supervisor_cpu_ms_per_req"] for r in rows
           if r["mode"] == "binary" and r["supervisor_cpu_ms_per_req"] is not None]
    sup_json = [r["supervisor_cpu_ms_per_req"] for r in rows
                if r["mode"] == "json" and r["supervisor_cpu_ms_per_req"] is not None]
    if sup:
        ratios["binary_supervisor_cpu_ms_per_req"] = max(sup)
        print(f"{arch}: supervisor CPU per binary request (602112-byte input): {max(sup):.3f} ms, "
              "the worse row (target <= 1 ms)")
    if sup and sup_json and max(sup) > 0:
        ratios["json_over_binary_supervisor_cpu"] = min(sup_json) / max(sup)
        print(f"{arch}: supervisor CPU per request, JSON/binary: "
              f"{ratios['json_over_binary_supervisor_cpu']:.1f}x")
    print()
    return {"model": model, "load_average_before": load_before, "rows": rows, "ratios": ratios}


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--arch", action="append", choices=ARCHS + ("all",),
                    help="network to serve (scripts/make_image_model.py --arch); repeat it or "
                         "say `all` to run several, one after the other (default resnet18)")
    ap.add_argument("--bin", default=os.path.join(BUILD, "bin", "respawn"))
    ap.add_argument("--model",
                    help="TorchScript file for the one --arch (default "
                         "models-generated/ARCH.pt); made by scripts/make_image_model.py if "
                         "missing")
    ap.add_argument("--device", default="cpu", help="--device for the server (cpu, cuda, auto)")
    ap.add_argument("--duration", type=float, default=5.0, help="timed seconds per row")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated client threads")
    ap.add_argument("--modes", default="json,binary", help="comma-separated: json, binary")
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--logs", help="write each server's stderr to DIR/image-ARCH.log")
    args = ap.parse_args()
    archs = []
    for arch in args.arch or ["resnet18"]:
        for a in (ARCHS if arch == "all" else (arch,)):
            if a not in archs:
                archs.append(a)
    if args.model and len(archs) > 1:
        ap.error("--model takes one --arch")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    if not concurrencies:
        ap.error("--concurrency needs at least one value")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in ("json", "binary") for m in modes):
        ap.error("--modes takes json and/or binary")

    image = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    build = {"json": json_request, "binary": binary_request}
    requests = {mode: build[mode](image) for mode in modes}
    results = {}
    for arch in archs:
        model = os.path.abspath(args.model or os.path.join(BUILD, "models-generated", arch + ".pt"))
        results[arch] = run_arch(arch, model, args, requests, concurrencies)
    if len(archs) > 1:
        top = max(concurrencies)
        print("### Ratios per arch\n")
        table(("arch", f"binary/JSON req/s at c={top} (target >= 5x)",
               "sup CPU ms per binary request (target <= 1)", "worker CPU ms/req (binary, c=1)"),
              [(arch, fmt(res["ratios"].get("binary_over_json_rps"), 2),
                fmt(res["ratios"].get("binary_supervisor_cpu_ms_per_req"), 3),
                fmt(next((r["worker_cpu_ms_per_req"] for r in res["rows"]
                          if r["mode"] == "binary" and r["concurrency"] == min(concurrencies)),
                         None)))
               for arch, res in results.items()])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.node(), "cpus": os.cpu_count(), "device": args.device,
                       "duration_s": args.duration, "archs": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
