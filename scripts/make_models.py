#!/usr/bin/python3
"""Builds respawn's bundled models, deterministically, with Debian's python3-torch.

  /usr/bin/python3 scripts/make_models.py [--only NAME ...] [OUT_DIR]   (default: models/)

--only makes just the named models (demo, classifier, embedding_bag), the same bytes as a full
run makes of them, and leaves the others as they are. Writes:
  demo.pt                  task `generate`: a tiny byte-level causal LM,
                           forward(input_ids int64 [B,T]) -> logits float32 [B,T,256].
  classifier.pt            task `tensor`: a fixed-weight classifier,
                           forward(x float32 [B,4]) -> (logits float32 [B,3], label int64 [B]).
  classifier_reference.json  inputs and the outputs this script computed for them; the
                           integration tests compare respawn's answers to these.
  embedding_bag.pt         task `tensor`: a weighted bag of embeddings with a fixed 16-row table,
                           forward(ids int64 [B,T], weights float32 [B,T]) -> pooled float32 [B,4];
                           ids outside 0..15, or weights of another shape than ids, fail inside
                           forward (the input spec cannot say so), which the tests of model
                           input errors use.

Each .pt carries `respawn.json` as a TorchScript extra file: the task, and the inputs and
outputs (name, datatype, shape with -1 for a free dimension) that the worker validates.
Training runs on 1 thread with fixed seeds, so two runs write the same weights.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from typing import Tuple

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
    data = torch.tensor(list(CORPUS.encode("utf-8")), dtype=torch.long)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1)
    seq, batch = 64, 32
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
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


def spec(task: str, inputs, outputs, **extra) -> dict:
    def io(items):
        return [{"name": n, "datatype": d, "shape": s} for n, d, s in items]

    return {"task": task, "inputs": io(inputs), "outputs": io(outputs), **extra}


def save(module: nn.Module, path: str, meta: dict) -> None:
    scripted = torch.jit.script(module)
    torch.jit.save(scripted, path, _extra_files={"respawn.json": json.dumps(meta)})
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def make_demo(out: str) -> None:
    torch.manual_seed(0)
    started = time.time()
    demo = train_demo(int(os.environ.get("RESPAWN_DEMO_STEPS", "800")))
    print(f"trained demo in {time.time() - started:.1f}s")
    print("greedy sample:", repr(greedy(demo, "The supervisor", 60)))
    save(
        demo,
        os.path.join(out, "demo.pt"),
        spec("generate", [("input_ids", "INT64", [-1, -1])], [("logits", "FP32", [-1, -1, VOCAB])],
             max_context=CONTEXT, vocab="bytes",
             kv_cache={"layers": len(demo.blocks), "heads": demo.blocks[0].heads,
                       "head_dim": demo.head.in_features // demo.blocks[0].heads}),
    )


def make_classifier(out: str) -> None:
    torch.manual_seed(0)
    clf = Classifier().eval()
    save(
        clf,
        os.path.join(out, "classifier.pt"),
        spec("tensor", [("x", "FP32", [-1, 4])], [("logits", "FP32", [-1, 3]), ("label", "INT64", [-1])]),
    )
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [-2.0, 1.0, 0.0, -1.0]])
    with torch.no_grad():
        logits, label = clf(x)
    reference = {
        "input": {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.flatten().tolist()},
        "outputs": {
            "logits": {"datatype": "FP32", "shape": list(logits.shape), "data": logits.flatten().tolist()},
            "label": {"datatype": "INT64", "shape": list(label.shape), "data": label.tolist()},
        },
    }
    with open(os.path.join(out, "classifier_reference.json"), "w") as f:
        json.dump(reference, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.join(out, 'classifier_reference.json')}")


def make_embedding_bag(out: str) -> None:
    # Both inputs are [-1, -1], so the worker's spec check lets any ids and any weights' shape
    # through: an id past the table, or weights that do not match ids, fail inside forward.
    save(
        EmbeddingBag().eval(),
        os.path.join(out, "embedding_bag.pt"),
        spec("tensor", [("ids", "INT64", [-1, -1]), ("weights", "FP32", [-1, -1])],
             [("pooled", "FP32", [-1, 4])]),
    )


MODELS = {"demo": make_demo, "classifier": make_classifier, "embedding_bag": make_embedding_bag}


def main() -> None:
    # TorchScript writes a module's constants in set order, which follows Python's string
    # hashing: without a fixed seed two runs write different (equivalent) files.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description="Builds respawn's bundled models.")
    parser.add_argument("--only", action="append", choices=sorted(MODELS),
                        help="make only this model (repeatable); default: all")
    parser.add_argument("out", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "models"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.only is None:
        # One process per model: TorchScript renames a module class it has compiled before in
        # the same process (linear.___torch_mangle_5), so a model's bytes would depend on which
        # models came before it, and `--only NAME` would not make the same file.
        for name in MODELS:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--only", name, args.out], check=True)
        return
    torch.set_num_threads(1)
    for name in args.only:
        MODELS[name](args.out)


if __name__ == "__main__":
    main()
