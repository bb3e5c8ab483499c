#!/usr/bin/env python3
"""Builds respawn's bundled models, deterministically, with the project's pinned PyTorch.

  scripts/python scripts/make_models.py [--only NAME ...] [--tests-data DIR] [OUT_DIR]
                                                       (default OUT_DIR: models/)

scripts/python runs the venv with torch==2.11.0 from PyPI that scripts/common.sh installs, the
same torch the worker links. --only makes just the named models (demo, classifier,
embedding_bag, classifier_pt2, datatypes, schema_only), the same bytes as a full run makes of
them, and leaves the others as they are. Writes:
  demo.pt                  task `generate`: a tiny byte-level causal LM,
                           forward(input_ids int64 [B,T]) -> logits float32 [B,T,256].
  classifier.pt            task `tensor`: a fixed-weight classifier,
                           forward(x float32 [B,4]) -> (logits float32 [B,3], label int64 [B]).
  classifier_reference.json  an input and the outputs this script computed for it: under
                           "outputs" classifier.pt's, under "pt2_outputs" what classifier.pt2
                           itself computes; the integration tests compare respawn's answers to these.
  embedding_bag.pt         task `tensor`: a weighted bag of embeddings with a fixed 16-row table,
                           forward(ids int64 [B,T], weights float32 [B,T]) -> pooled float32 [B,4];
                           ids outside 0..15, or weights of another shape than ids, fail inside
                           forward (the input spec cannot say so), which the tests of model
                           input errors use.
  datatypes.pt             task `tensor`: one input per datatype beyond the first eight, returned
                           trivially transformed: forward(half float16 [B], bfloat bfloat16 [B],
                           u16 uint16 [B], u32 uint32 [B], u64 uint64 [B], text List[str] [B])
                           -> (half + 1, bfloat * 2, u16, u32, u64 (copies), each of text
                           upper-cased (ASCII letters only: TorchScript's str.upper)).
  schema_only.pt           task `tensor` with NO respawn.json: the worker takes its metadata and
                           input order from forward's schema, forward(a Tensor, b Tensor,
                           scale float, tags List[str]) -> ((a - b) * scale, tags each + "!").
  classifier.pt2           the same classifier, same weights, as an AOTInductor package compiled
                           for cpu (torch.export, then torch._inductor.aoti_compile_and_package),
                           batch dimension 1..1024, built to run on any CPU of the build
                           machine's architecture (on x86-64: no AVX).
and, with classifier_pt2, into --tests-data (default: tests/data/):
  classifier_cuda_device.pt2  classifier.pt2 with its metadata saying it was compiled for cuda:
                           a stand-in (compiling for cuda needs a GPU) for the test that the worker
                           refuses a cuda package at load on a machine without one.

Each .pt but schema_only.pt carries `respawn.json` as a TorchScript extra file, and each .pt2 the same JSON as the
package metadata key "respawn.json": the task, and the inputs and outputs (name, datatype,
shape with -1 for a free dimension) that the worker validates. Training runs on 1 thread with
fixed seeds, so two runs on one machine write the same bytes. Elsewhere the demo's weights may
differ in their last bits (torch picks its kernels by CPU), and every .pt records where the
venv's torch sources are; classifier.pt2 is the same bytes from any CPU and venv path given
the same torch and g++.
"""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import platform
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
import zipfile
from typing import Callable, Dict, List, Tuple

# TorchScript writes a module's constants in set order, which follows Python's string hashing:
# without a fixed seed two runs write different (equivalent) files. Before torch is imported.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})

# respawn's worker loads TorchScript on purpose (and AOTInductor packages, see classifier.pt2);
# torch 2.11 deprecates torch.jit (script, save, load, ...), and says so on every call when
# warnings are on. These and the messages below are known and not actionable here.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.[a-z_]+` is deprecated",
                        category=DeprecationWarning)
# Raised inside torch.export when it copies its own pytree specs.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning)
# `import torch` says this when numpy is not installed (torch does not require it); nothing here
# needs numpy.
warnings.filterwarnings("ignore", message=r"Failed to initialize NumPy", category=UserWarning)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class _NoCudaRuntimeNotice(logging.Filter):
    """torch.utils.cpp_extension logs "No CUDA runtime is found, using CUDA_HOME=..." when an
    AOTInductor build for cpu runs on a machine with the CUDA toolkit but no GPU."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaRuntimeNotice())

# What the demo model learns. Greedy decoding from a prefix of any of these lines
# reproduces the rest of it, so the default server answers with readable text.
CORPUS = """\
respawn is a small inference server for one model on one GPU.
The supervisor speaks HTTP and keeps a queue of requests.
The worker holds the model and answers over a local socket.
When the worker crashes, the supervisor starts a fresh one.
When the worker hangs, the supervisor kills it and replays the request.
The model stays loaded, so most requests are fast.
Hello, world! This is the demo model of respawn.
Once upon a time there was a tiny model that could only say a few things.
It said them again and again, and everyone was happy.
The quick brown fox jumps over the lazy dog.
A request goes in, a worker does the work, and an answer comes out.
Ask for more tokens and you get more text.
"""

CONTEXT = 128
VOCAB = 256


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_kv(x, mask)[0]

    def forward_kv(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's output, and its keys and values [B,H,T,hd] for a KV cache."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        hd = d // self.heads
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / (hd ** 0.5))
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)))), k, v

    def step(self, x: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
             k_cache: torch.Tensor, v_cache: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """One new token per sequence, x [B,d], attending over its cache slot ([S,H,C,hd],
        written in place at `positions`); `masked` [B,n] hides the positions after each, up to
        the longest (n), so the work follows the lengths rather than the cache's size."""
        b, d = x.shape
        hd = d // self.heads
        n = masked.size(1)
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=1)
        k_cache[slots, :, positions] = k.view(b, self.heads, hd)
        v_cache[slots, :, positions] = v.view(b, self.heads, hd)
        keys = k_cache[:, :, :n][slots]
        att = (q.view(b, self.heads, 1, hd) @ keys.transpose(-2, -1)) * (1.0 / (hd ** 0.5))
        att = att.masked_fill(masked.view(b, 1, 1, -1), float("-inf")).softmax(dim=-1)
        y = (att @ v_cache[:, :, :n][slots]).reshape(b, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, d: int = 128, heads: int = 4, layers: int = 2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(CONTEXT, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer(
            "mask", torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), diagonal=1)
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.size(1)
        pos = torch.arange(t, device=input_ids.device)
        x = self.tok(input_ids) + self.pos(pos)
        for block in self.blocks:
            x = block(x, self.mask)
        return self.head(self.ln(x))

    # The KV-cache methods the worker uses when the model offers them (respawn.json "kv_cache"):
    # the cache is [layers, slots, heads, CONTEXT, head_dim] for keys and the same for values,
    # allocated by the worker; each running sequence owns a slot.

    @torch.jit.export
    def prefill(self, input_ids: torch.Tensor, slot: int, k_cache: torch.Tensor,
                v_cache: torch.Tensor) -> torch.Tensor:
        """Logits [V] of the token after input_ids [1,T] (T <= CONTEXT); fills `slot` with the
        keys and values of positions 0..T-1."""
        t = input_ids.size(1)
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        i = 0
        for block in self.blocks:
            x, k, v = block.forward_kv(x, self.mask)
            k_cache[i, slot, :, :t] = k[0]
            v_cache[i, slot, :, :t] = v[0]
            i += 1
        return self.head(self.ln(x))[0, -1]

    @torch.jit.export
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
             k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        """One decode step for B sequences: token [B] at position [B] (< CONTEXT) of cache slot
        [B]; returns the next-token logits [B,V] and stores the tokens' keys and values."""
        x = self.tok(tokens) + self.pos(positions)
        n = int(positions.max()) + 1
        masked = torch.arange(n, device=tokens.device).unsqueeze(0) > positions.unsqueeze(1)
        i = 0
        for block in self.blocks:
            x = block.step(x, positions, slots, k_cache[i], v_cache[i], masked)
            i += 1
        return self.head(self.ln(x))


def train_demo(steps: int) -> TinyLM:
    # Windows of the full context (positions past the window were never trained before, so
    # text fell apart after 64 tokens), half of them starting at a line, as prompts do: a prompt
    # sits at position 0 with nothing before it. The corpus is repeated so that a window from
    # any line runs on, past the end, into the first line again.
    text = CORPUS.encode("utf-8")
    data = torch.tensor(list(text * 2), dtype=torch.long)
    line_starts = torch.tensor([0] + [i + 1 for i, b in enumerate(text[:-1]) if b == ord("\n")])
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    seq, batch, at_line_start = CONTEXT, 16, 8
    for step in range(steps):
        starts = torch.randint(0, len(text), (batch,), generator=gen)
        starts[:at_line_start] = line_starts[
            torch.randint(0, len(line_starts), (at_line_start,), generator=gen)]
        x = torch.stack([data[s : s + seq] for s in starts])
        y = torch.stack([data[s + 1 : s + seq + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"  step {step:4d} loss {loss.item():.3f}", flush=True)
    return model.eval()


def greedy(model: nn.Module, prompt: str, n: int) -> str:
    ids = list(prompt.encode("utf-8"))
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids[-CONTEXT:]]))
            ids.append(int(logits[0, -1].argmax()))
    return bytes(ids).decode("utf-8", errors="replace")


def check_corpus_lines(model: nn.Module) -> None:
    """Prints, for each corpus line, what greedy decoding makes of its shortest whole-word
    prefix that no other line starts with, and says when that is not the rest of the line."""
    lines = CORPUS.splitlines()
    reproduced = 0
    for line in lines:
        words = line.split(" ")
        prefix = next(p for p in (" ".join(words[:k]) for k in range(1, len(words) + 1))
                      if sum(other.startswith(p) for other in lines) == 1)
        text = greedy(model, prefix, len(line) - len(prefix) + 1)
        ok = text == line + "\n"
        reproduced += ok
        print(f"  {'ok  ' if ok else 'DIFF'} {prefix!r} -> {text[len(prefix):]!r}")
    print(f"greedy: {reproduced}/{len(lines)} corpus lines continue as written" +
          ("" if reproduced == len(lines) else
           " (warning: the demo model learned its corpus less well than it should)"))


class Classifier(nn.Module):
    """Two inputs would do as well; one keeps the example short. Fixed weights, no training."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor):
        logits = self.fc2(torch.relu(self.fc1(x)))
        return logits, logits.argmax(dim=1)


class EmbeddingBag(nn.Module):
    """pooled[b] = sum over t of weights[b, t] * table[ids[b, t]]; table row i is (4i .. 4i+3) / 8."""

    def __init__(self, rows: int = 16, dim: int = 4):
        super().__init__()
        self.emb = nn.Embedding(rows, dim)
        with torch.no_grad():
            self.emb.weight.copy_(torch.arange(rows * dim, dtype=torch.float32).view(rows, dim) / 8)

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (self.emb(ids) * weights.unsqueeze(-1)).sum(1)


class Datatypes(nn.Module):
    """The datatypes the worker maps beyond the first eight, one input each. uint16/32/64 have
    few kernels in torch 2.11 (no add on cpu), so those come back as copies."""

    def forward(self, half: torch.Tensor, bfloat: torch.Tensor, u16: torch.Tensor,
                u32: torch.Tensor, u64: torch.Tensor, text: List[str]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                           List[str]]:
        return half + 1, bfloat * 2, u16.clone(), u32.clone(), u64.clone(), [s.upper() for s in text]


class SchemaOnly(nn.Module):
    """Saved without respawn.json: forward's schema is all the worker knows about it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, scale: float, tags: List[str]
                ) -> Tuple[torch.Tensor, List[str]]:
        return (a - b) * scale, [t + "!" for t in tags]


def spec(task: str, inputs, outputs, **extra) -> dict:
    def io(items):
        return [{"name": n, "datatype": d, "shape": s} for n, d, s in items]

    return {"task": task, "inputs": io(inputs), "outputs": io(outputs), **extra}


def save(module: nn.Module, path: str, meta: dict) -> None:
    scripted = torch.jit.script(module)
    torch.jit.save(scripted, path, _extra_files={"respawn.json": json.dumps(meta)})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def make_demo(out: str, tests_data: str) -> None:
    torch.manual_seed(0)
    started = time.time()
    demo = train_demo(int(os.environ.get("RESPAWN_DEMO_STEPS", "800")))
    print(f"trained demo in {time.time() - started:.1f}s")
    path = os.path.join(out, "demo.pt")
    save(
        demo,
        path,
        spec("generate", [("input_ids", "INT64", [-1, -1])], [("logits", "FP32", [-1, -1, VOCAB])],
             max_context=CONTEXT, vocab="bytes",
             kv_cache={"layers": len(demo.blocks), "heads": demo.blocks[0].heads,
                       "head_dim": demo.head.in_features // demo.blocks[0].heads}),
    )
    saved = torch.jit.load(path)  # what the worker will run
    print("greedy sample:", repr(greedy(saved, "The supervisor", 60)))
    check_corpus_lines(saved)


CLASSIFIER_SPEC = spec("tensor", [("x", "FP32", [-1, 4])],
                       [("logits", "FP32", [-1, 3]), ("label", "INT64", [-1])])
# The reference input: three rows of x.
CLASSIFIER_X = [[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [-2.0, 1.0, 0.0, -1.0]]


def classifier() -> Classifier:
    torch.manual_seed(0)  # the fixed weights, the same for classifier.pt and classifier.pt2
    return Classifier().eval()


def write_reference(path: str, key: str, x: torch.Tensor, logits: torch.Tensor, label: torch.Tensor) -> None:
    """Records the reference input and one model's outputs for it under `key` ("outputs":
    classifier.pt, "pt2_outputs": classifier.pt2), keeping the other model's in the file."""
    reference = {}
    if os.path.exists(path):
        with open(path) as f:
            reference = json.load(f)
    reference["input"] = {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()}
    reference[key] = {
        "logits": {"datatype": "FP32", "shape": list(logits.shape), "data": logits.flatten().tolist()},
        "label": {"datatype": "INT64", "shape": list(label.shape), "data": label.tolist()},
    }
    order = ["input", "outputs", "pt2_outputs"]
    reference = {k: reference[k] for k in sorted(reference, key=lambda k: (order + [k]).index(k))}
    with open(path, "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    print(f"wrote {key} in {path}")


def make_classifier(out: str, tests_data: str) -> None:
    clf = classifier()
    save(clf, os.path.join(out, "classifier.pt"), CLASSIFIER_SPEC)
    x = torch.tensor(CLASSIFIER_X)
    with torch.no_grad():
        logits, label = clf(x)
    write_reference(os.path.join(out, "classifier_reference.json"), "outputs", x, logits, label)


# --- classifier.pt2: an AOTInductor package --------------------------------------------------

# The batch dimension the package accepts (the worker batches requests along dim 0). The
# generated code checks it only when AOTI_RUNTIME_CHECK_INPUTS=1 is set where it runs.
PT2_MAX_BATCH = 1024


@contextlib.contextmanager
def aoti_build():
    """A fresh directory for Inductor's cache and output, whose path stays out of the package
    (the binary has it mapped out, the sources have it replaced, see make_classifier_pt2), and a
    build for any CPU of this architecture: Inductor compiles for the build machine's
    (-march=native), and an AVX-512 package dies of SIGILL elsewhere."""
    import torch._inductor.cpp_builder as cpp_builder

    portable = {"x86_64": "march=x86-64", "aarch64": "march=armv8-a"}.get(platform.machine())
    original = cpp_builder._get_optimization_cflags
    replaced = []
    with tempfile.TemporaryDirectory(prefix="respawn-aoti-") as build_dir:
        prefix_maps = [f"ffile-prefix-map={build_dir}=build",
                       f"ffile-prefix-map={os.path.dirname(torch.__file__)}=torch"]

        def optimization_cflags(*args, **kwargs):
            cflags, ldflags = original(*args, **kwargs)
            if portable and "march=native" in cflags:
                cflags = [portable if f == "march=native" else f for f in cflags]
                replaced.append(portable)
            return cflags + prefix_maps, ldflags

        saved_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = build_dir
        cpp_builder._get_optimization_cflags = optimization_cflags
        try:
            yield build_dir
        finally:
            cpp_builder._get_optimization_cflags = original
            if saved_cache is None:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved_cache
    if portable and not replaced:
        raise RuntimeError("Inductor no longer compiles with -march=native; check that "
                           "aoti_build() still makes a package for any " + platform.machine())


def rewrite_pt2(src: str, dst: str, edit: Callable[[str, bytes], bytes] = lambda name, data: data) -> None:
    """Copies the .pt2 (a zip archive, entries stored under a folder named after the file) to
    `dst`, renaming that folder after `dst` and passing each entry through `edit(name, data)`;
    `.data/serialization_id` becomes a hash of the entries as written. Entries stay
    uncompressed, in their order, and 64-byte aligned, as torch writes them."""
    with zipfile.ZipFile(src) as zin:
        entries = [(info.filename.split("/", 1)[1], info.date_time, zin.read(info))
                   for info in zin.infolist()]
    entries = [(name, when, edit(name, data)) for name, when, data in entries]
    digest = hashlib.sha256()
    for name, _, data in entries:
        if name != ".data/serialization_id":
            digest.update(name.encode() + b"\0" + struct.pack("<Q", len(data)) + data)
    serialization_id = str(int.from_bytes(digest.digest()[:16], "big") % 10**40).zfill(40).encode()
    folder = os.path.splitext(os.path.basename(dst))[0]
    tmp = dst + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zout:
        for name, when, data in entries:
            if name == ".data/serialization_id":
                data = serialization_id
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=when)
            header = 30 + len(info.filename.encode()) + 4  # local header, name, extra's own header
            pad = -(zout.fp.tell() + header) % 64
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zout.writestr(info, data)
    os.replace(tmp, dst)


def pt2_metadata(path: str) -> Dict[str, str]:
    """What the C++ AOTIModelPackageLoader::load_metadata_from_package(path, "model") returns:
    the JSON of the package's data/aotinductor/model/*wrapper_metadata.json."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist()
                    if "/data/aotinductor/model/" in n and n.endswith("wrapper_metadata.json"))
        return json.loads(z.read(name))


def make_classifier_pt2(out: str, tests_data: str) -> None:
    clf = classifier()
    batch = torch.export.Dim("batch", min=1, max=PT2_MAX_BATCH)
    exported = torch.export.export(clf, (torch.zeros(2, 4),), dynamic_shapes={"x": {0: batch}})
    path = os.path.join(out, "classifier.pt2")
    started = time.time()
    with aoti_build() as build:
        built = torch._inductor.aoti_compile_and_package(
            exported, package_path=os.path.join(build, "classifier.pt2"),
            inductor_configs={
                "aot_inductor.metadata": {"respawn.json": json.dumps(CLASSIFIER_SPEC)},
                "cpp.simdlen": 0,  # plain C++ kernels, not AVX2 or AVX-512 ones
                "aot_inductor.precompile_headers": False,  # they would live outside `build`
                # Files named classifier.*, not after a hash of their compile command, which
                # names the venv.
                "aot_inductor.model_name_for_generated_files": "classifier",
            })
        # The generated sources keep their compile commands as comments, with this machine's
        # paths: placeholders instead, so that another venv or build directory makes the same
        # bytes (aoti_build() keeps them out of the binary).
        paths = {build: "$BUILD", os.path.dirname(torch.__file__): "$TORCH",
                 sysconfig.get_paths()["include"]: "$PYTHON_INCLUDE",
                 sysconfig.get_config_var("LIBDIR") or "$PYTHON_LIBDIR": "$PYTHON_LIBDIR"}

        def unpath(name: str, data: bytes) -> bytes:
            if not name.endswith(".cpp"):
                return data
            text = data.decode("utf-8")
            for where, mark in sorted(paths.items(), key=lambda p: -len(p[0])):
                text = text.replace(where, mark)
            return text.encode("utf-8")

        rewrite_pt2(built, path, unpath)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, compiled in {time.time() - started:.1f}s)")

    # Load it back as the worker will, and check it against the eager model. (Python's loader
    # warns when the package's AOTI_CPU_ISA is not the one it would pick here; it runs anyway.)
    with torch._inductor.config.patch({"cpp.simdlen": 0}):
        package = torch._inductor.aoti_load_package(path)
    metadata = package.get_metadata()
    assert metadata.get("AOTI_DEVICE_KEY") == "cpu", metadata
    assert json.loads(metadata["respawn.json"]) == CLASSIFIER_SPEC, metadata
    assert pt2_metadata(path) == metadata, (pt2_metadata(path), metadata)
    x = torch.tensor(CLASSIFIER_X)
    with torch.no_grad():
        logits, label = package(x)
        want_logits, want_label = clf(x)
        for rows in (1, PT2_MAX_BATCH):
            many = torch.randn(rows, 4, generator=torch.Generator().manual_seed(rows))
            got, want = package(many), clf(many)
            assert torch.allclose(got[0], want[0], atol=1e-6) and torch.equal(got[1], want[1])
    assert torch.allclose(logits, want_logits, atol=1e-6) and torch.equal(label, want_label)
    assert logits.dtype == torch.float32 and label.dtype == torch.int64
    write_reference(os.path.join(out, "classifier_reference.json"), "pt2_outputs", x, logits, label)

    # The stand-in for a package compiled for cuda: this one, relabelled.
    def as_cuda(name: str, data: bytes) -> bytes:
        if not name.endswith("_metadata.json"):  # the wrapper's, and the kernel's copy of it
            return data
        meta = json.loads(data)
        meta["AOTI_DEVICE_KEY"] = "cuda"
        meta["respawn.stand_in"] = ("classifier.pt2, compiled for cpu, relabelled as compiled "
                                    "for cuda by scripts/make_models.py: not a real cuda package")
        return json.dumps(meta).encode()

    os.makedirs(tests_data, exist_ok=True)
    stand_in = os.path.join(tests_data, "classifier_cuda_device.pt2")
    rewrite_pt2(path, stand_in, as_cuda)
    assert pt2_metadata(stand_in)["AOTI_DEVICE_KEY"] == "cuda"
    print(f"wrote {stand_in} ({os.path.getsize(stand_in)} bytes)")


def make_embedding_bag(out: str, tests_data: str) -> None:
    # Both inputs are [-1, -1], so the worker's spec check lets any ids and any weights' shape
    # through: an id past the table, or weights that do not match ids, fail inside forward.
    save(
        EmbeddingBag().eval(),
        os.path.join(out, "embedding_bag.pt"),
        spec("tensor", [("ids", "INT64", [-1, -1]), ("weights", "FP32", [-1, -1])],
             [("pooled", "FP32", [-1, 4])]),
    )


DATATYPES_SPEC = spec(
    "tensor",
    [("half", "FP16", [-1]), ("bfloat", "BF16", [-1]), ("u16", "UINT16", [-1]),
     ("u32", "UINT32", [-1]), ("u64", "UINT64", [-1]), ("text", "BYTES", [-1])],
    [("half_plus_one", "FP16", [-1]), ("bfloat_times_two", "BF16", [-1]), ("u16", "UINT16", [-1]),
     ("u32", "UINT32", [-1]), ("u64", "UINT64", [-1]), ("text_upper", "BYTES", [-1])])


def make_datatypes(out: str, tests_data: str) -> None:
    path = os.path.join(out, "datatypes.pt")
    save(Datatypes().eval(), path, DATATYPES_SPEC)
    got = torch.jit.load(path)(
        torch.tensor([2048.0, 0.5], dtype=torch.float16), torch.tensor([1 / 3], dtype=torch.bfloat16),
        torch.tensor([65535], dtype=torch.uint16), torch.tensor([2**32 - 1], dtype=torch.uint32),
        torch.tensor([2**64 - 1], dtype=torch.uint64), ["h\u00e9llo", ""])
    assert got[0].tolist() == [2048.0, 1.5], got  # 2049 is no float16: it rounds to even
    assert got[4].dtype == torch.uint64 and got[5] == ["H\u00e9LLO", ""], got


def make_schema_only(out: str, tests_data: str) -> None:
    path = os.path.join(out, "schema_only.pt")
    scripted = torch.jit.script(SchemaOnly().eval())
    torch.jit.save(scripted, path)  # no _extra_files: no respawn.json
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    got = torch.jit.load(path)(torch.tensor([3.0]), torch.tensor([1.0]), 0.5, ["x"])
    assert got[0].tolist() == [1.0] and got[1] == ["x!"], got


MODELS = {"demo": make_demo, "classifier": make_classifier, "embedding_bag": make_embedding_bag,
          "classifier_pt2": make_classifier_pt2, "datatypes": make_datatypes,
          "schema_only": make_schema_only}


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description="Builds respawn's bundled models.")
    parser.add_argument("--only", action="append", choices=list(MODELS),
                        help="make only this model (repeatable); default: all")
    parser.add_argument("--tests-data", default=os.path.join(root, "tests", "data"),
                        help="where classifier_pt2 writes its test stand-in (default: tests/data/)")
    parser.add_argument("out", nargs="?", default=os.path.join(root, "models"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    names = args.only or list(MODELS)
    if len(names) > 1:
        # One process per model: TorchScript renames a module class it has compiled before in
        # the same process (linear.___torch_mangle_5), so a model's bytes would depend on which
        # models came before it, and `--only NAME` would not make the same file.
        started = time.time()
        for name in names:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--only", name,
                            "--tests-data", args.tests_data, args.out], check=True)
        print(f"made {', '.join(names)} in {time.time() - started:.1f}s")
        return
    torch.set_num_threads(1)
    MODELS[names[0]](args.out, args.tests_data)


if __name__ == "__main__":
    main()
