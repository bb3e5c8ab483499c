#!/usr/bin/env python3
"""Builds the two tiny generate models over real-size vocabularies, models/gpt2-vocab/model.pt
(50,257 logits, GPT-2's tokenizer) and models/qwen2.5-vocab/model.pt (151,936 logits: Qwen2.5's
151,665 tokens padded as Qwen2.5 pads them), with the project's pinned PyTorch:

  scripts/python scripts/make_big_vocab_models.py [OUT_DIR]      (default OUT_DIR: models/)

The tokenizers next to them (tokenizer.json, tokenizer_config.json, generation_config.json) are
the real GPT-2 and Qwen2.5 vocabularies, written by scripts/make_big_vocab_tokenizers.py from a
venv of its own with tokenizers==0.23.3 (see its docstring); this script only reads their sizes
(the tokenizer.json of OUT_DIR/<model>/ must exist) and needs nothing beyond torch.

The point of these models is the vocabulary's size, not what they say: their weights are random
(fixed seeds), never trained, and every vocabulary-sized table is computed instead of stored, so
each file stays far below 1 MB. The embedding of id i is a fixed function of i,
  e(i)[j] = sqrt(2) * sin(2 pi ((i * a_j + b_j) mod 1,000,003) / 1,000,003)
with small stored integer vectors a, b (exact in int64, so any device computes the same table),
for the input tokens and, with other a and b, for the output head: the logits are
hidden @ E_out^T over all V rows. E_out [V,64] and a bias [V] are built on the first call on a
device and kept in the module (`table`, `bias`: saved empty). The bias makes the served text
predictable to test:
  - the tokenizer's added tokens (GPT-2 <|endoftext|>; Qwen2.5 151643..151664) get -100, so a
    reply is never empty and runs to max_tokens;
  - Qwen2.5's padded rows (151665..151935, ids no tokenizer token has) get +50: a server that did
    not mask them would pick one at every step, at any temperature.
Otherwise the layout is the bundled demo's (scripts/make_models.py TinyLM): 2 pre-LN transformer
blocks of width 64 with 4 heads, positions embedded the same computed way, and the worker's
contract: forward(input_ids [B,T]) -> logits [B,T,V]; prefill(input_ids [1,T], slot, k_cache,
v_cache) -> [V]; step(tokens [B], positions [B], slots [B], k_cache, v_cache) -> [B,V]; caches
[layers, slots, heads, max_context, head_dim] float32; respawn.json (task generate, max_context
256, kv_cache) as a TorchScript extra file. Before writing, the script checks that the saved file
gives the same logits through forward and through prefill/step (two sequences in slots 1 and 3).
"""
import json
import math
import os
import sys
import warnings
from typing import Tuple

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})

warnings.filterwarnings("ignore", message=r"`torch\.jit\.[a-z_]+` is deprecated",
                        category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"Failed to initialize NumPy", category=UserWarning)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTEXT = 256
WIDTH = 64
HEADS = 4
LAYERS = 2
MODULUS = 1_000_003  # a prime above every id and position


class HashEmbedding(nn.Module):
    """e(i)[j] = sqrt(2) sin(2 pi ((i a_j + b_j) mod MODULUS) / MODULUS): a fixed, nearly
    orthogonal embedding of any id below MODULUS, with only a and b stored."""

    def __init__(self, d: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("a", torch.randint(1, MODULUS, (d,), generator=g))
        self.register_buffer("b", torch.randint(0, MODULUS, (d,), generator=g))
        self.modulus = MODULUS

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        phase = (ids.unsqueeze(-1) * self.a + self.b) % self.modulus
        return torch.sin(phase.to(torch.float32) * (2.0 * math.pi / self.modulus)) * math.sqrt(2.0)


class Block(nn.Module):
    """The demo's block (scripts/make_models.py), unchanged."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward_kv(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
        b, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=1)
        k_cache[slots, :, positions] = k.view(b, self.heads, hd)
        v_cache[slots, :, positions] = v.view(b, self.heads, hd)
        n = masked.size(1)
        keys = k_cache[:, :, :n][slots]
        att = (q.view(b, self.heads, 1, hd) @ keys.transpose(-2, -1)) * (1.0 / (hd ** 0.5))
        att = att.masked_fill(masked.view(b, 1, 1, -1), float("-inf")).softmax(dim=-1)
        y = (att @ v_cache[:, :, :n][slots]).reshape(b, d)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class BigVocabLM(nn.Module):
    def __init__(self, vocab: int, tokens: int, first_added: int, seed: int):
        """vocab: the logits' width; tokens: the tokenizer's size (ids from there on are
        padding); first_added: the first added (special) token's id."""
        super().__init__()
        torch.manual_seed(seed)
        self.vocab = vocab
        self.tokens = tokens
        self.first_added = first_added
        self.scale = 3.0 / math.sqrt(WIDTH)
        self.tok = HashEmbedding(WIDTH, seed + 1)
        self.pos = HashEmbedding(WIDTH, seed + 2)
        self.out = HashEmbedding(WIDTH, seed + 3)
        self.blocks = nn.ModuleList([Block(WIDTH, HEADS) for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(WIDTH)
        self.register_buffer(
            "mask", torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), diagonal=1))
        # Built on first use (see head); saved empty.
        self.table = torch.empty(0)
        self.bias = torch.empty(0)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over all `vocab` rows of the final hidden states h [..., WIDTH]."""
        if self.table.size(0) != self.vocab or self.table.device != h.device:
            ids = torch.arange(self.vocab, device=h.device)
            self.table = self.out(ids)
            bias = torch.zeros(self.vocab, device=h.device)
            bias = torch.where(ids >= self.first_added, torch.full_like(bias, -100.0), bias)
            self.bias = torch.where(ids >= self.tokens, torch.full_like(bias, 50.0), bias)
        return (self.ln(h) @ self.table.t()) * self.scale + self.bias

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.size(1)
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        for block in self.blocks:
            x = block.forward_kv(x, self.mask)[0]
        return self.head(x)

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
        return self.head(x[0, -1])

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
        return self.head(x)


def tokenizer_size(folder: str) -> Tuple[int, int]:
    """(tokens, first added id) of folder/tokenizer.json, counted as the tokenizers library does:
    the model's vocab plus the added tokens not in it."""
    with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    ids = set(vocab.values()) | {a["id"] for a in tok["added_tokens"]}
    assert ids == set(range(len(ids))), "ids are not 0..n-1"
    return len(ids), min(a["id"] for a in tok["added_tokens"])


def check(path: str, model: BigVocabLM) -> None:
    """The saved model's prefill/step logits equal its forward's, for two prompts decoded at
    once in slots 1 and 3 (greedy, 6 steps); prints the greedy ids."""
    saved = torch.jit.load(path)
    k = torch.zeros(LAYERS, 4, HEADS, CONTEXT, WIDTH // HEADS)
    v = torch.zeros_like(k)
    prompts = [[15, 2, 900, 31], [7, 7, 7, 7, 7, 7, 1000]]
    slots = [1, 3]
    seqs = [list(p) for p in prompts]
    with torch.no_grad():
        for s, p in zip(slots, seqs):
            logits = saved.prefill(torch.tensor([p]), s, k, v)
            full = saved(torch.tensor([p]))[0, -1]
            assert torch.allclose(logits, full, atol=1e-4), (logits - full).abs().max()
            p.append(int(logits[: model.tokens].argmax()))
        for _ in range(6):
            tokens = torch.tensor([p[-1] for p in seqs])
            positions = torch.tensor([len(p) - 1 for p in seqs])
            logits = saved.step(tokens, positions, torch.tensor(slots), k, v)
            for i, p in enumerate(seqs):
                full = saved(torch.tensor([p]))[0, -1]
                assert torch.allclose(logits[i], full, atol=1e-4), (logits[i] - full).abs().max()
                assert int(logits[i].argmax()) >= model.tokens or model.tokens == model.vocab
                p.append(int(logits[i, : model.tokens].argmax()))
    print(f"  prefill/step agree with forward; greedy: {[p[len(q):] for p, q in zip(seqs, prompts)]}")


def make(out: str, name: str, vocab: int, seed: int) -> None:
    folder = os.path.join(out, name)
    tokens, first_added = tokenizer_size(folder)
    assert tokens <= vocab
    model = BigVocabLM(vocab, tokens, first_added, seed).eval()
    spec = {"task": "generate",
            "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, -1, vocab]}],
            "max_context": CONTEXT, "vocab": "tokenizer",
            "kv_cache": {"layers": LAYERS, "heads": HEADS, "head_dim": WIDTH // HEADS}}
    path = os.path.join(folder, "model.pt")
    torch.jit.save(torch.jit.script(model), path, _extra_files={"respawn.json": json.dumps(spec)})
    size = os.path.getsize(path)
    print(f"{name}: {tokens} tokens (added from {first_added}), {vocab} logits; "
          f"wrote {os.path.relpath(path, ROOT)} ({size:,} bytes)")
    assert size < 1_000_000
    check(path, model)


def main() -> None:
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models")
    make(out, "gpt2-vocab", 50257, 10)
    make(out, "qwen2.5-vocab", 151936, 20)


if __name__ == "__main__":
    main()
