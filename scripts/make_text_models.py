#!/usr/bin/env python3
"""Builds models/tinyqwen/: a small real transformers Qwen2 model, exported for respawn.

  /work/lmvenv/bin/python scripts/make_text_models.py [OUT_DIR]    (default OUT_DIR: models/tinyqwen/)

Pinned: torch==2.11.0 (the project's, the one the worker links), transformers==5.24.0 and
tokenizers==0.23.3 (the version respawn's C++ tokenizer is checked against); the script refuses
other versions. transformers 5.25.0, the newest release, needs `kernels>=0.19.1`, which has no
release installable on this Python (3.11), so 5.24.0 is the newest that installs with
tokenizers 0.23.3. The venv: a venv of its own that sees the project's torch venv through a
.pth file (the torch venv itself is left alone), with transformers and tokenizers installed
into it:

    /usr/bin/python3 -m venv /work/lmvenv
    echo ~/.cache/respawn/torch-2.11.0/lib/python3.11/site-packages \\
        > /work/lmvenv/lib/python3.11/site-packages/respawn-torch.pth
    /work/lmvenv/bin/pip install transformers==5.24.0 tokenizers==0.23.3

(The two Pythons must have the same minor version: the .pth adds the torch venv's
site-packages, compiled extensions included, to this venv's path.)

What it does, all on one CPU thread with fixed seeds:
 1. Trains a byte-level BPE tokenizer with Hugging Face `tokenizers`, with the exact pipeline of
    Qwen2 (NFC, Split on Qwen2's regex then ByteLevel without regex, ByteLevel post-processor and
    decoder, BPE without byte fallback) that tests/data/tokenizers/qwen2/tokenizer.json has and
    respawn's C++ tokenizer implements; special tokens <|endoftext|> <|im_start|> <|im_end|> are
    ids 0 1 2. Writes tokenizer.json, tokenizer_config.json (Qwen2.5's chat template from
    tests/data/chat_templates/qwen2.5.jinja) and generation_config.json.
 2. Builds a `transformers.Qwen2ForCausalLM` (hidden 64, 2 layers, 4 query heads, 2 key/value
    heads, tied embeddings), whose vocabulary is the tokenizer's padded to a multiple of 128
    plus 128 rows more, as real Qwen2.5 pads 151,665 tokens to 151,936: logits the tokenizer
    cannot decode, which the server must never sample. It trains for a few hundred steps on the
    chats below rendered through the chat template (loss on the assistant's answers and their
    <|im_end|>) and on a few plain sentences (ending in <|endoftext|>).
 3. Exports `Qwen2KV`, a TorchScript module made from the trained HF model's weights (it also
    takes a transformers Llama model; docs/models.md shows how), with
    respawn's generate contract: forward(input_ids [B,T]) -> logits [B,T,V], and the KV-cache
    methods prefill/step (as scripts/make_models.py's demo has them). model.pt carries
    respawn.json, tokenizer.json, tokenizer_config.json and generation_config.json as extra
    files, the same bytes as the files next to it.
 4. Writes references.json: prompts rendered by transformers' apply_chat_template, their ids,
    and what transformers' own `generate` (greedy) answers, token for token.

It asserts, printing the numbers: the wrapper's logits against HF's (max abs diff < 1e-4); the
saved TorchScript file, decoded greedily with prefill/step (several sequences at once, in a
cache allocated as the worker allocates it, in non-zero slots), gives the ids HF's generate
gives; at every step of every reference the top logit beats the second by more than 1e-3, so
float noise cannot change a greedy choice. Two runs on one machine write the same bytes.
"""
import copy
import json
import math
import os
import sys
import time
import warnings

# TorchScript writes a module's constants in set order, which follows Python's string hashing:
# without a fixed seed two runs write different (equivalent) files. Before torch is imported.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask the Hub
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

warnings.filterwarnings("ignore", message=r"`torch\.jit\.[a-z_]+` is deprecated",
                        category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"Failed to initialize NumPy", category=UserWarning)

import tokenizers  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers, processors, trainers  # noqa: E402
from typing import List, Tuple  # noqa: E402

PINNED = {"torch": ("2.11.0", torch.__version__.split("+")[0]),
          "transformers": ("5.24.0", transformers.__version__),
          "tokenizers": ("0.23.3", tokenizers.__version__)}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "tests", "data", "chat_templates", "qwen2.5.jinja")
QWEN2_TOKENIZER = os.path.join(ROOT, "tests", "data", "tokenizers", "qwen2", "tokenizer.json")

QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOKENIZER_VOCAB_TARGET = 2000

MAX_CONTEXT = 256
HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 64, 2, 4, 2, 128
TRAIN_STEPS = int(os.environ.get("RESPAWN_TINYQWEN_STEPS", "600"))
MAX_NEW_TOKENS = 40

# --- what the model learns ------------------------------------------------------------------

# (question, answer): one-turn chats, each asked with the template's default system prompt and
# with SYSTEM_ALT.
QA = [
    ("What is respawn?",
     "respawn is a small inference server for one model on one GPU."),
    ("What does the supervisor do?",
     "The supervisor speaks HTTP, keeps a queue of requests and watches the worker."),
    ("What does the worker do?",
     "The worker holds the model and answers over a local socket."),
    ("What happens when the worker crashes?",
     "The supervisor starts a fresh worker and replays the request once."),
    ("What happens when the worker hangs?",
     "The supervisor kills it after the hang timeout and starts a new one."),
    ("Why recycle workers?",
     "Recycling resets the GPU state that builds up, so the service stays healthy."),
    ("When is a worker recycled?",
     "After max requests, after an age, when its memory grows, or when you ask."),
    ("What is batching?",
     "Batching runs several requests in one forward pass, so the GPU does more work at once."),
    ("How does continuous batching work?",
     "New sequences join the running batch at each step, and finished ones leave it."),
    ("What is the KV cache?",
     "The KV cache keeps the keys and values of past tokens, so each step is fast."),
    ("What is a poison request?",
     "A request that kills two workers is quarantined and answered with an error."),
    ("What does ready mean?",
     "Ready means a fresh worker has loaded the model and passed a warm-up."),
    ("How do I stream tokens?",
     "Set stream to true, and the server sends each chunk as an event."),
    ("What port does respawn use?",
     "It listens on port 8000 unless you pass --port."),
    ("Is the model loaded for every request?",
     "No. The model stays loaded, so most requests are fast."),
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("Say hello.", "Hello! 👋"),
    ("How are you?", "I am fine, thank you! 😀"),
    ("Write a Python function that adds two numbers.",
     "def add(a, b):\n    return a + b"),
    ("Write a C++ loop that prints 0 to 2.",
     "for (int i = 0; i < 3; ++i) std::cout << i;"),
    ("हिन्दी में नमस्ते कहो।", "नमस्ते! आप कैसे हैं?"),
    ("वर्कर क्या करता है?", "वर्कर मॉडल को रखता है और अनुरोधों का उत्तर देता है।"),
    ("用中文说你好。", "你好！很高兴见到你。"),
    ("工作进程崩溃时会发生什么？", "监督进程会启动一个新的工作进程，并重放请求。"),
    ("বাংলায় হ্যালো বলো।", "নমস্কার! আপনি কেমন আছেন?"),
    ("தமிழில் வணக்கம் சொல்.", "வணக்கம்! நீங்கள் எப்படி இருக்கிறீர்கள்?"),
]
SYSTEM_ALT = "You are the respawn help desk. Answer in one sentence."
# Multi-turn chats: the second answer depends on the first exchange.
MULTI_TURN = [
    [("What is respawn?", "respawn is a small inference server for one model on one GPU."),
     ("And who restarts the worker?", "The supervisor does, whenever the worker crashes or hangs.")],
    [("What is batching?",
      "Batching runs several requests in one forward pass, so the GPU does more work at once."),
     ("Does it change the answers?", "No. A batched answer is the same as a solo one.")],
]
# Plain text (no chat): each line is a sequence that ends with <|endoftext|>.
TEXT = [
    "The supervisor speaks HTTP and keeps a queue of requests.",
    "When the worker crashes, the supervisor starts a fresh one.",
    "Once upon a time there was a tiny model that could only say a few things.",
    "def greet(name):\n    return \"Hello, \" + name",
]
# Only for the tokenizer: more of each script, so its merges cover them.
TOKENIZER_EXTRA = """\
respawn is an HTTP inference server for one PyTorch model on one GPU, built so that a flaky or
small GPU never takes the service down. A long-lived supervisor process speaks HTTP to
frontends, queues their requests, and hands them over a local socket to a single worker process
that holds the model. The worker is disposable: the supervisor recycles it after a number of
requests, after an age, when its memory grows, when it reports a poisoned CUDA state, or when it
hangs, and starts a fresh one. In the normal case the model stays loaded and every request is
served by the warm worker. Concurrent requests to one GPU model cause out-of-memory errors, so
the supervisor admits work so the worker never runs more than it can hold; an OOM is a clean
503, never a crash of the service. Health says OK only after the fresh worker has loaded the
model and passed a warm-up inference. Operators tune the recycle policy with flags, a config
file, and live through an admin API, and watch its effect in metrics and a status page. Test
and CI owners run a suite of prompts in restart-per-test smoke mode and get a success-rate and
latency report. Prometheus metrics: respawn_requests_total, respawn_worker_restarts_total,
respawn_queue_seconds_bucket. Streaming uses Server-Sent Events; the OpenAI-compatible routes
are /v1/completions and /v1/chat/completions, with temperature, top_p, seed, max_tokens, stop.
हिन्दी भारत की राजभाषा है। मैं आज बाज़ार जा रहा हूँ और शाम को वापस आऊँगा। नमस्ते, आप कैसे हैं?
सुपरवाइज़र अनुरोधों की कतार रखता है। जब वर्कर रुक जाता है, तो नया वर्कर शुरू होता है।
বাংলা ভাষা বাংলাদেশের রাষ্ট্রভাষা। আমি ভাত খাই এবং বই পড়ি। আপনি কেমন আছেন?
தமிழ் ஒரு பழமையான மொழி. நான் பள்ளிக்குச் செல்கிறேன். வணக்கம், எப்படி இருக்கிறீர்கள்?
中文是世界上使用人数最多的语言之一。我今天去市场买菜，晚上回家做饭。你好吗？
监督进程使用HTTP，并保存请求队列。工作进程持有模型。
def encode(self, text: str) -> list[int]:
    ids = []
    for word in text.split():
        ids.append(self.vocab.get(word, 0))
    return ids
int main() {
  for (int i = 0; i < 3; ++i) std::cout << i << "\\n";
  return 0;
}
{"model": "tinyqwen", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}
Emoji: 👍 👍🏽 👋 😀 😃 🎉 🚀 ❤️ 🇮🇳 🧑‍💻 done.
"""

# References: (name, messages) chats, (name, text) raw prompts, and their max_new_tokens.
REF_CHATS = [
    ("what_is_respawn", [{"role": "user", "content": "What is respawn?"}], MAX_NEW_TOKENS),
    ("worker_crashes", [{"role": "user", "content": "What happens when the worker crashes?"}],
     MAX_NEW_TOKENS),
    ("recycle", [{"role": "user", "content": "Why recycle workers?"}], MAX_NEW_TOKENS),
    ("kv_cache", [{"role": "user", "content": "What is the KV cache?"}], MAX_NEW_TOKENS),
    ("batching_length", [{"role": "user", "content": "How does continuous batching work?"}], 8),
    ("hindi", [{"role": "user", "content": "हिन्दी में नमस्ते कहो।"}], MAX_NEW_TOKENS),
    ("chinese", [{"role": "user", "content": "用中文说你好。"}], MAX_NEW_TOKENS),
    ("system", [{"role": "system", "content": SYSTEM_ALT},
                {"role": "user", "content": "What does the worker do?"}], MAX_NEW_TOKENS),
    ("multi_turn", [{"role": "user", "content": "What is respawn?"},
                    {"role": "assistant",
                     "content": "respawn is a small inference server for one model on one GPU."},
                    {"role": "user", "content": "And who restarts the worker?"}], MAX_NEW_TOKENS),
    ("code", [{"role": "user", "content": "Write a Python function that adds two numbers."}],
     MAX_NEW_TOKENS),
]
REF_TEXTS = [
    ("text_supervisor", "The supervisor speaks", MAX_NEW_TOKENS),
    ("text_story", "Once upon a time", MAX_NEW_TOKENS),
    ("text_code", "def greet", MAX_NEW_TOKENS),
]


def check_versions() -> None:
    wrong = [f"{name}=={want} expected, found {have}" for name, (want, have) in PINNED.items()
             if want != have]
    if wrong:
        sys.exit("; ".join(wrong) + " (see this script's docstring for the venv)")


def conversations() -> List[List[dict]]:
    chats = []
    for q, a in QA:
        for system in (None, SYSTEM_ALT):
            head = [{"role": "system", "content": system}] if system else []
            chats.append(head + [{"role": "user", "content": q}, {"role": "assistant", "content": a}])
    for turns in MULTI_TURN:
        messages = []
        for q, a in turns:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        chats.append(messages)
    return chats


# --- 1. the tokenizer ------------------------------------------------------------------------

def tokenizer_texts() -> List[str]:
    texts = [SYSTEM_ALT, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
             "system\n", "user\n", "assistant\n"]
    for q, a in QA:
        texts += [q, a]
    for turns in MULTI_TURN:
        for q, a in turns:
            texts += [q, a]
    texts += TEXT + TOKENIZER_EXTRA.splitlines(keepends=True)
    return texts * 3


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB_TARGET,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(tokenizer_texts(), trainer)
    data = json.loads(tok.to_str())
    # The same pipeline, key for key, as the Qwen2 tokenizer respawn's C++ tests check.
    qwen2 = json.load(open(QWEN2_TOKENIZER, encoding="utf-8"))
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert data[key] == qwen2[key], (key, data[key], qwen2[key])
    settings = {k: v for k, v in data["model"].items() if k not in ("vocab", "merges")}
    assert settings == {k: v for k, v in qwen2["model"].items() if k not in ("vocab", "merges")}
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2]
    return tok


def write_tokenizer_files(tok: Tokenizer, out: str) -> dict:
    """Writes the three files; returns {name: bytes}."""
    with open(TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    files = {
        "tokenizer.json": tok.to_str(pretty=False),
        "tokenizer_config.json": json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "model_max_length": MAX_CONTEXT,
            "clean_up_tokenization_spaces": False,
            "chat_template": template,
        }, indent=2, ensure_ascii=False) + "\n",
        "generation_config.json": json.dumps({
            "bos_token_id": 0,
            "eos_token_id": [2, 0],
            "pad_token_id": 0,
            "do_sample": False,
        }, indent=2) + "\n",
    }
    blobs = {}
    for name, text in files.items():
        blobs[name] = text.encode("utf-8")
        with open(os.path.join(out, name), "wb") as f:
            f.write(blobs[name])
    return blobs


# --- 2. the HF model ------------------------------------------------------------------------

def padded_vocab(n: int) -> int:
    return -(-n // 128) * 128 + 128


def make_hf_model(vocab: int) -> transformers.Qwen2ForCausalLM:
    config = transformers.Qwen2Config(
        vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, intermediate_size=INTERMEDIATE,
        max_position_embeddings=MAX_CONTEXT, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="silu", bos_token_id=0, eos_token_id=2)
    model = transformers.Qwen2ForCausalLM(config)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert config.rope_parameters["rope_theta"] == 10000.0
    return model


def training_examples(hf_tok) -> List[Tuple[List[int], List[int]]]:
    """(ids, labels): labels -100 where no loss is taken."""
    examples = []
    for chat in conversations():
        for k, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            prompt = hf_tok.apply_chat_template(chat[:k], tokenize=False, add_generation_prompt=True)
            full = hf_tok.apply_chat_template(chat[:k + 1], tokenize=False)
            assert full.startswith(prompt)
            p = hf_tok(prompt, add_special_tokens=False)["input_ids"]
            ids = hf_tok(full, add_special_tokens=False)["input_ids"]
            assert ids[:len(p)] == p
            end = len(ids) - ids[::-1].index(2)  # through the answer's <|im_end|>
            ids = ids[:end]
            examples.append((ids, [-100] * len(p) + ids[len(p):]))
    for line in TEXT:
        ids = hf_tok(line, add_special_tokens=True)["input_ids"] + [0]
        examples.append((ids, list(ids)))
    assert max(len(ids) for ids, _ in examples) <= MAX_CONTEXT
    return examples


def train(model: nn.Module, examples, steps: int) -> None:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(1)
    batch = 16
    for step in range(steps):
        lr = 1e-2 * min(1.0, (step + 1) / 30) * (0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        picks = torch.randint(0, len(examples), (batch,), generator=gen).tolist()
        longest = max(len(examples[i][0]) for i in picks)
        ids = torch.zeros(batch, longest, dtype=torch.long)
        labels = torch.full((batch, longest), -100, dtype=torch.long)
        for row, i in enumerate(picks):
            x, y = examples[i]
            ids[row, :len(x)] = torch.tensor(x)
            labels[row, :len(y)] = torch.tensor(y)
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step:4d} loss {loss.item():.4f}", flush=True)
    model.eval()


# --- 3. the TorchScript wrapper ----------------------------------------------------------------

def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.size(-1) // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def copy_linear(src: nn.Linear) -> nn.Linear:
    dst = nn.Linear(src.in_features, src.out_features, bias=src.bias is not None)
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)
    return dst


class Qwen2Layer(nn.Module):
    """One Qwen2 decoder layer: RMSNorm, GQA attention with q/k/v bias and RoPE, SiLU MLP."""

    def __init__(self, layer, heads: int, kv_heads: int, head_dim: int, eps: float):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.groups = heads // kv_heads
        self.scaling = head_dim ** -0.5
        a, m = layer.self_attn, layer.mlp
        self.q_proj, self.k_proj = copy_linear(a.q_proj), copy_linear(a.k_proj)
        self.v_proj, self.o_proj = copy_linear(a.v_proj), copy_linear(a.o_proj)
        self.gate_proj, self.up_proj = copy_linear(m.gate_proj), copy_linear(m.up_proj)
        self.down_proj = copy_linear(m.down_proj)
        self.input_layernorm = RMSNorm(layer.input_layernorm.weight, eps)
        self.post_attention_layernorm = RMSNorm(layer.post_attention_layernorm.weight, eps)

    def qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B,T,d] (normalized), cos/sin [B or 1,T,hd] -> q [B,H,T,hd], k and v [B,KVH,T,hd],
        q and k rotated."""
        b, t = x.size(0), x.size(1)
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               masked: torch.Tensor) -> torch.Tensor:
        """q [B,H,T,hd] over k, v [B,KVH,N,hd]; masked broadcasts to [B,H,T,N]. -> [B,T,d]"""
        k = k.repeat_interleave(self.groups, dim=1)
        v = v.repeat_interleave(self.groups, dim=1)
        att = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        att = att.masked_fill(masked, float("-inf")).softmax(dim=-1)
        y = torch.matmul(att, v).transpose(1, 2)
        return self.o_proj(y.reshape(y.size(0), y.size(1), self.heads * self.head_dim))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    def forward_kv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   masked: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(self.input_layernorm(x), cos, sin)
        return self.mlp(x + self.attend(q, k, v, masked)), k, v

    def step(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
             positions: torch.Tensor, slots: torch.Tensor, k_cache: torch.Tensor,
             v_cache: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """x [B,1,d], one new token per sequence; k_cache/v_cache [S,KVH,C,hd], written in place
        at (slots, positions); masked [B,1,1,n] hides positions after each token's own."""
        q, k, v = self.qkv(self.input_layernorm(x), cos, sin)
        k_cache[slots, :, positions] = k[:, :, 0]
        v_cache[slots, :, positions] = v[:, :, 0]
        n = masked.size(-1)
        keys = k_cache[:, :, :n][slots]
        values = v_cache[:, :, :n][slots]
        return self.mlp(x + self.attend(q, keys, values, masked))


class Qwen2KV(nn.Module):
    """A transformers Qwen2ForCausalLM (also Llama: the same without q/k/v bias) as TorchScript,
    with respawn's generate contract. The caches the worker passes are float32
    [layers, slots, kv_heads, max_context, head_dim], keys stored after RoPE."""

    def __init__(self, hf: transformers.PreTrainedModel, max_context: int):
        super().__init__()
        c = hf.config
        assert c.hidden_act == "silu", c.hidden_act
        assert not getattr(c, "use_sliding_window", False), "sliding-window attention: not here"
        assert getattr(c, "rope_parameters", {}).get("rope_type", "default") != "dynamic"
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.embed = nn.Parameter(hf.model.embed_tokens.weight.detach().clone())
        if hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr():
            self.lm_head = self.embed  # tied (Qwen2.5 up to 3B, Llama 3.2): saved once
        else:
            self.lm_head = nn.Parameter(hf.lm_head.weight.detach().clone())
        self.layers = nn.ModuleList([Qwen2Layer(layer, c.num_attention_heads, c.num_key_value_heads,
                                                head_dim, c.rms_norm_eps) for layer in hf.model.layers])
        self.norm = RMSNorm(hf.model.norm.weight, c.rms_norm_eps)
        # RoPE as transformers computes it (Qwen2RotaryEmbedding.forward), for every position.
        inv_freq = hf.model.rotary_emb.inv_freq.float()
        freqs = torch.arange(max_context).float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        scale = hf.model.rotary_emb.attention_scaling
        self.register_buffer("cos", emb.cos() * scale)
        self.register_buffer("sin", emb.sin() * scale)
        self.register_buffer("causal", torch.triu(
            torch.ones(max_context, max_context, dtype=torch.bool), diagonal=1))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(x), self.lm_head)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.size(1)
        x = F.embedding(input_ids, self.embed)
        cos, sin = self.cos[:t].unsqueeze(0), self.sin[:t].unsqueeze(0)
        masked = self.causal[:t, :t]
        for layer in self.layers:
            x = layer.forward_kv(x, cos, sin, masked)[0]
        return self.head(x)

    @torch.jit.export
    def prefill(self, input_ids: torch.Tensor, slot: int, k_cache: torch.Tensor,
                v_cache: torch.Tensor) -> torch.Tensor:
        """Logits [V] of the token after input_ids [1,T] (T <= max_context); fills `slot` with
        the keys and values of positions 0..T-1."""
        t = input_ids.size(1)
        x = F.embedding(input_ids, self.embed)
        cos, sin = self.cos[:t].unsqueeze(0), self.sin[:t].unsqueeze(0)
        masked = self.causal[:t, :t]
        i = 0
        for layer in self.layers:
            x, k, v = layer.forward_kv(x, cos, sin, masked)
            k_cache[i, slot, :, :t] = k[0]
            v_cache[i, slot, :, :t] = v[0]
            i += 1
        return self.head(x)[0, -1]

    @torch.jit.export
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
             k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        """One decode step for B sequences: token [B] at position [B] (< max_context) of cache
        slot [B]; returns the next-token logits [B,V] and stores the tokens' keys and values."""
        x = F.embedding(tokens, self.embed).unsqueeze(1)
        cos, sin = self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)
        n = int(positions.max()) + 1
        masked = (torch.arange(n, device=tokens.device).unsqueeze(0) > positions.unsqueeze(1))
        masked = masked.view(-1, 1, 1, n)
        i = 0
        for layer in self.layers:
            x = layer.step(x, cos, sin, positions, slots, k_cache[i], v_cache[i], masked)
            i += 1
        return self.head(x)[:, 0]


# --- 4. references and checks ---------------------------------------------------------------

def hf_generate(model, prompt_ids: List[int], max_new_tokens: int, gen_config
                ) -> Tuple[List[int], float, torch.Tensor]:
    """New ids (EOS included if it came), the smallest top-1 minus top-2 logit over the steps,
    and the logits of every step [steps, V]."""
    config = copy.deepcopy(gen_config)
    config.update(do_sample=False, max_new_tokens=max_new_tokens, output_logits=True,
                  return_dict_in_generate=True)
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             generation_config=config)
    new = out.sequences[0, len(prompt_ids):].tolist()
    logits = torch.cat(out.logits)
    top = torch.topk(logits, 2, dim=1).values
    assert logits.size(0) == len(new)
    return new, float((top[:, 0] - top[:, 1]).min()), logits


def torchscript_greedy(path: str, jobs: List[Tuple[List[int], int]], eos: List[int]) -> List[List[int]]:
    """Greedy decoding with the saved file's prefill/step, as the worker runs it: a cache of 4
    slots, up to 4 sequences at a time in one step, each in its own slot (3, 2, 1, 0)."""
    module = torch.jit.load(path)
    slots_n = 4
    shape = [LAYERS, slots_n, KV_HEADS, MAX_CONTEXT, HIDDEN // HEADS]
    results: List[List[int]] = []
    with torch.inference_mode():
        k_cache, v_cache = torch.zeros(shape), torch.zeros(shape)
        for start in range(0, len(jobs), slots_n):
            group = jobs[start:start + slots_n]
            outs = []
            live = []  # (index in group, slot, position of the next token)
            for j, (prompt, limit) in enumerate(group):
                slot = slots_n - 1 - j
                tok = int(module.prefill(torch.tensor([prompt]), slot, k_cache, v_cache).argmax())
                outs.append([tok])
                if tok not in eos and limit > 1:
                    live.append((j, slot, len(prompt)))
            while live:
                logits = module.step(torch.tensor([outs[j][-1] for j, _, _ in live]),
                                     torch.tensor([p for _, _, p in live]),
                                     torch.tensor([s for _, s, _ in live]), k_cache, v_cache)
                still = []
                for row, (j, slot, pos) in enumerate(live):
                    tok = int(logits[row].argmax())
                    outs[j].append(tok)
                    if tok not in eos and len(outs[j]) < group[j][1]:
                        still.append((j, slot, pos + 1))
                live = still
            results += outs
    return results


def main() -> None:
    check_versions()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.time()
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "tinyqwen")
    os.makedirs(out, exist_ok=True)

    tok = train_tokenizer()
    blobs = write_tokenizer_files(tok, out)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    n_vocab = tok.get_vocab_size()
    assert len(hf_tok) == n_vocab, (len(hf_tok), n_vocab)
    vocab = padded_vocab(n_vocab)
    print(f"tokenizer: {n_vocab} tokens; model vocabulary {vocab} ({vocab - n_vocab} padded rows)")
    gen_config = transformers.GenerationConfig.from_pretrained(out)
    eos = list(gen_config.eos_token_id)

    model = make_hf_model(vocab)
    examples = training_examples(hf_tok)
    print(f"training on {len(examples)} sequences, {TRAIN_STEPS} steps")
    t0 = time.time()
    train(model, examples, TRAIN_STEPS)
    print(f"trained in {time.time() - t0:.1f}s")
    model.generation_config = gen_config

    wrapper = Qwen2KV(model, MAX_CONTEXT).eval()
    spec = {"task": "generate",
            "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, -1, vocab]}],
            "max_context": MAX_CONTEXT, "vocab": "tokenizer",
            "kv_cache": {"layers": LAYERS, "heads": KV_HEADS, "head_dim": HIDDEN // HEADS}}
    path = os.path.join(out, "model.pt")
    extra = {"respawn.json": json.dumps(spec)}
    extra.update({name: data.decode("utf-8") for name, data in blobs.items()})
    torch.jit.save(torch.jit.script(wrapper), path, _extra_files=extra)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    # The references, with transformers' generate.
    refs = []
    for name, messages, limit in REF_CHATS:
        prompt = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = hf_tok(prompt, add_special_tokens=False)["input_ids"]
        refs.append({"name": name, "messages": messages, "prompt": prompt, "prompt_ids": ids,
                     "max_new_tokens": limit})
    for name, text, limit in REF_TEXTS:
        ids = hf_tok(text, add_special_tokens=True)["input_ids"]
        refs.append({"name": name, "text": text, "prompt": text, "prompt_ids": ids,
                     "max_new_tokens": limit})
    step_logits = []
    for ref in refs:
        # respawn's C++ tokenizer is checked against `tokenizers`; the two Python paths agree too.
        assert tok.encode(ref["prompt"], add_special_tokens=False).ids == ref["prompt_ids"]
        assert len(ref["prompt_ids"]) + ref["max_new_tokens"] <= MAX_CONTEXT
        new, margin, logits = hf_generate(model, ref["prompt_ids"], ref["max_new_tokens"],
                                          gen_config)
        step_logits.append(logits)
        assert all(i < n_vocab for i in new), (ref["name"], new)
        eos_id = new[-1] if new and new[-1] in eos else None
        completion = new[:-1] if eos_id is not None else new
        assert eos_id is not None or len(new) == ref["max_new_tokens"]
        ref.update({"new_ids": new, "completion_ids": completion, "eos_id": eos_id,
                    "completion": hf_tok.decode(completion, skip_special_tokens=True),
                    "finish_reason": "stop" if eos_id is not None else "length",
                    "min_top1_margin": round(margin, 4)})
        print(f"  {ref['name']:16s} {ref['finish_reason']:6s} {len(new):2d} tokens, margin "
              f"{margin:.4f}: {ref['completion']!r}")
        assert margin > 1e-3, f"{ref['name']}: top-1 beats top-2 by only {margin}; change the prompt"

    # The wrapper's logits against HF's.
    with torch.no_grad():
        diff = 0.0
        for ref in refs:
            ids = torch.tensor([ref["prompt_ids"] + ref["new_ids"]])
            diff = max(diff, float((wrapper(ids) - model(input_ids=ids).logits).abs().max()))
    print(f"wrapper forward vs transformers: max abs logit diff {diff:.3e}")
    assert diff < 1e-4

    # The saved file, decoded greedily with the KV cache, against HF's generate.
    t0 = time.time()
    got = torchscript_greedy(path, [(r["prompt_ids"], r["max_new_tokens"]) for r in refs], eos)
    for ref, ids in zip(refs, got):
        assert ids == ref["new_ids"], (ref["name"], ids, ref["new_ids"])
    print(f"model.pt prefill/step greedy == transformers generate for all {len(refs)} references "
          f"({time.time() - t0:.1f}s)")

    chats = [r for r in refs if "messages" in r]
    stops = sum(r["finish_reason"] == "stop" for r in chats)
    lengths = sum(r["finish_reason"] == "length" for r in chats)
    assert stops >= 3 and lengths >= 1, (stops, lengths)

    # The padded rows are ordinary (trained down like any unused token), so greedy never picks
    # them; sampling would, unless the server masks them: their share of the probability at
    # each temperature, averaged over every step of every reference.
    every_step = torch.cat(step_logits)
    padded_probability = {}
    for temperature in (1.0, 2.0, 5.0, 10.0):
        p = (every_step / temperature).softmax(dim=1)[:, n_vocab:].sum(dim=1).mean()
        padded_probability[str(temperature)] = float(f"{float(p):.3g}")
    print(f"probability of the padded rows by temperature: {padded_probability}")

    reference = {
        "made_by": "scripts/make_text_models.py",
        "versions": {name: have for name, (_, have) in PINNED.items()},
        "tokenizer_vocab": n_vocab,
        "padded_vocab": vocab,
        "max_context": MAX_CONTEXT,
        "eos_token_ids": eos,
        "padded_rows_probability_by_temperature": padded_probability,
        "wrapper_max_abs_logit_diff": float(f"{diff:.3g}"),
        "references": refs,
    }
    with open(os.path.join(out, "references.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"chats: {stops} end on EOS, {lengths} at max_new_tokens; "
          f"texts: {sum(r['finish_reason'] == 'stop' for r in refs) - stops} on EOS")
    print(f"made {out} in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
