#!/usr/bin/env python3
"""Reference data for respawn's tokenizer.json implementation (text/tokenizer*.cpp).

Pinned: tokenizers==0.23.3 (Hugging Face). Run it from a venv of its own, never the project's
torch venv:

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3
    /tmp/tokvenv/bin/python scripts/make_tokenizer_refs.py

It trains three small BPE tokenizers on the multilingual text below (deterministic: the BPE
trainer has no randomness), saves each as tests/data/tokenizers/<name>/tokenizer.json, and
writes tests/data/tokenizers/references.json: for every tokenizer *variant* (a base
tokenizer.json with some top-level keys replaced, which is how one vocabulary covers many
pipelines) and every test string, the ids of encode(text, add_special_tokens=True/False) and
decode(ids, skip_special_tokens=False). The C++ tests apply the same overrides and must agree
id for id.
"""
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

PINNED = "0.23.3"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tokenizers")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

TRAINING_TEXT = """\
The supervisor speaks HTTP and keeps a queue of requests. When the worker crashes, the
supervisor answers the affected client with a clear error, starts a fresh worker and keeps
serving. It's the worker's job to hold the model; we'll restart it if it's gone, and you've
seen that they're fast. I'm sure it'd work. Don't worry: THE SERVER'S FINE, ISN'T IT?
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1234 2026 3.14159 1,000,000 0xFF 1e-9 -273.15 99%.
Prices $5.99, EUR 12,50; phone +91 98765 43210; dates 2026-12-02 and 12/02/2026.
def encode(self, text: str) -> list[int]:
    ids = []
    for word in text.split():
        if word in self.cache:
            ids.extend(self.cache[word])
        else:
            ids.append(self.unk_id)
    return ids
int main(int argc, char** argv) {
  std::vector<std::uint32_t> ids{1, 2, 3};
  for (auto id : ids) std::printf("%u\\n", id);
  return 0;
}
SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;
{"model": "demo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}
<html><body><p class="note">Hello &amp; welcome</p></body></html>
हिन्दी भारत की राजभाषा है। मैं आज बाज़ार जा रहा हूँ और शाम को वापस आऊँगा। नमस्ते, आप कैसे हैं?
বাংলা ভাষা বাংলাদেশের রাষ্ট্রভাষা। আমি ভাত খাই এবং বই পড়ি। আপনি কেমন আছেন?
தமிழ் ஒரு பழமையான மொழி. நான் பள்ளிக்குச் செல்கிறேன். வணக்கம், எப்படி இருக்கிறீர்கள்?
తెలుగు భాష చాలా మధురమైనది. నేను పుస్తకం చదువుతున్నాను. మీరు ఎలా ఉన్నారు?
ગુજરાતી ભાષા ગુજરાતની ભાષા છે. હું શાળાએ જાઉં છું. તમે કેમ છો?
मराठी ही महाराष्ट्राची भाषा आहे. मी पुस्तक वाचतो. तुम्ही कसे आहात?
اردو پاکستان کی قومی زبان ہے۔ میں کتاب پڑھ رہا ہوں۔ آپ کیسے ہیں؟
ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਗੁਰਮੁਖੀ ਲਿਪੀ ਵਿੱਚ ਲਿਖੀ ਜਾਂਦੀ ਹੈ। ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ?
ಕನ್ನಡ ಕರ್ನಾಟಕದ ಭಾಷೆ. ನಾನು ಶಾಲೆಗೆ ಹೋಗುತ್ತೇನೆ. ನೀವು ಹೇಗಿದ್ದೀರಿ?
മലയാളം കേരളത്തിന്റെ ഭാഷയാണ്. ഞാൻ പുസ്തകം വായിക്കുന്നു. സുഖമാണോ?
中文是世界上使用人数最多的语言之一。我今天去市场买菜，晚上回家做饭。你好吗？
日本語も少し：こんにちは、世界。한국어: 안녕하세요.
Emoji: 👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇮🇳 😀😃😄 🧑‍💻 done.
Accents: café naïve résumé Ångström façade coöperate Straße İstanbul ﬁle ½ ² Ⅻ.
"""

# What the tests encode: every script above, plus the awkward cases.
TEST_STRINGS = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    " \t \n ",
    "\r\n",
    "line one\r\nline two\r\n",
    "Hello, world!",
    "Hello world",
    " Hello world",
    "  Hello   world  ",
    "It's the worker's job; we'll see, they're here, I'm done, you've won, I'd go.",
    "IT'S LOUD. WE'LL SEE. THEY'RE HERE.",
    "The supervisor speaks HTTP and keeps a queue of requests.",
    "def encode(self, text):\n    ids = []\n    for word in text.split():\n        ids.append(1)\n    return ids\n",
    "int main() {\n\tint x = 42;\n\treturn x;\n}\n",
    "if (a && b) {\n        x += 1;   // comment\n}\n\n\n    \n",
    "1234567890",
    "3.14159265358979 and 1,000,000 and 2026-12-02 and 0xDEADBEEF",
    "٣٤٥ ١٢ ४२ ১২৩",
    "हिन्दी भारत की राजभाषा है। नमस्ते, आप कैसे हैं?",
    "বাংলা ভাষা বাংলাদেশের রাষ্ট্রভাষা। আপনি কেমন আছেন?",
    "தமிழ் ஒரு பழமையான மொழி. வணக்கம்!",
    "తెలుగు భాష చాలా మధురమైనది.",
    "ગુજરાતી ભાષા ગુજરાતની ભાષા છે.",
    "मराठी ही महाराष्ट्राची भाषा आहे.",
    "اردو پاکستان کی قومی زبان ہے۔",
    "ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਗੁਰਮੁਖੀ ਲਿਪੀ ਵਿੱਚ",
    "ಕನ್ನಡ ಕರ್ನಾಟಕದ ಭಾಷೆ.",
    "മലയാളം കേരളത്തിന്റെ ഭാഷയാണ്.",
    "中文是世界上使用人数最多的语言之一。",
    "我今天去市场买菜，晚上回家做饭。你好吗？龘",
    "日本語とEnglishのmixed文章、한국어도.",
    "👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇮🇳 🧑‍💻",
    "family:👨‍👩‍👧‍👦!",
    "control\x00chars\x01\x07\x1b[0m\x7f\u200b\u200d\ufeff",
    "café naïve résumé Ångström Straße İstanbul",
    "ﬁle ﬁx ½ ² Ⅻ ℌ ｆｕｌｌｗｉｄｔｈ",
    "cafe\u0301 (decomposed) vs café",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "Hello <|endoftext|> world",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|>Hi<|eot_id|>",
    "<s>Hello</s> and <unk> <s> </s>",
    "<|endoftext|><|endoftext|>",
    "<|endoftext",
    "a <mask> b<mask>c   <mask>   d",
    "x [RS]   y [RS]z",
    "say hello world, not hello worlds or xhello world",
    "ﬁx the fix and FIX",
    "   leading and trailing   ",
    "a\u00a0b\u2003c\u3000d",
    "ſ 'S 'ſ K",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the the the the the the the the the",
    "Ω≈ç√∫˜µ≤≥÷ 𝕳𝖊𝖑𝖑𝖔 𐍈",
    "▁already▁has▁meta ▁ ▁▁",
]


def corpus():
    return [line for line in TRAINING_TEXT.splitlines(keepends=True)] * 3


def train_gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.add_tokens([AddedToken("[RS]", rstrip=True, normalized=False),
                    AddedToken("hello world", single_word=True, normalized=True)])
    return tok


def train_splitregex(pattern):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return tok


def train_sentencepiece():
    """Llama-2 / Mistral style: Metaspace words, byte fallback for what the vocab lacks."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=1500, limit_alphabet=150,
                                  special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    data = json.loads(tok.to_str())
    # Llama's layout: <unk> <s> </s>, then the 256 byte tokens <0x00>..<0xFF>, then the rest.
    old = data["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    data["model"]["vocab"] = vocab
    for added in data["added_tokens"]:
        added["id"] = vocab[added["content"]]
    data["normalizer"] = None
    data["pre_tokenizer"] = None
    data["post_processor"] = None
    data["decoder"] = None
    return Tokenizer.from_str(json.dumps(data))


def template(single, specials):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": s, "type_id": 0}} if s != "$A" else
                       {"Sequence": {"id": "A", "type_id": 0}} for s in single],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {s: {"id": s, "ids": [specials[s]], "tokens": [s]} for s in specials}}


def split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern},
            "behavior": behavior, "invert": invert}


BYTELEVEL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
BYTELEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
SP_LEGACY_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def variants(ids):
    """name -> (base, overrides of top-level keys). ids: base -> {token: id} for specials."""
    g, q, s = ids["gpt2"], ids["qwen2"], ids["sentencepiece"]
    return {
        "gpt2": ("gpt2", {}),
        "gpt2_prefix_space": ("gpt2", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True,
                                                         "trim_offsets": True, "use_regex": True}}),
        "gpt2_lowercase_nfkc": ("gpt2", {"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"}]}}),
        "gpt2_nfd_strip": ("gpt2", {"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Strip", "strip_left": True, "strip_right": True}]}}),
        "gpt2_digits": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}}),
        "gpt2_digit_runs": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False}, BYTELEVEL_NOREGEX]}}),
        "gpt2_split_removed": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\s+", "Removed"), BYTELEVEL_NOREGEX]}}),
        "gpt2_split_merged_previous": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(" ", "MergedWithPrevious", regex=False), BYTELEVEL_NOREGEX]}}),
        "gpt2_split_merged_next": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"[ \n]", "MergedWithNext"), BYTELEVEL_NOREGEX]}}),
        "gpt2_split_contiguous": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\p{P}", "Contiguous"), BYTELEVEL_NOREGEX]}}),
        "gpt2_split_inverted": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\p{L}+", "Isolated", invert=True), BYTELEVEL_NOREGEX]}}),
        "gpt2_split_inverted_removed": ("gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(r"\p{L}+|\p{N}+", "Removed", invert=True), BYTELEVEL_NOREGEX]}}),
        "gpt2_bos_eos": ("gpt2", {"post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            template(["<|endoftext|>", "$A", "<|endoftext|>"], {"<|endoftext|>": g["<|endoftext|>"]})]}}),
        "qwen2": ("qwen2", {}),
        "llama3": ("llama3", {"post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            template(["<|begin_of_text|>", "$A"], {"<|begin_of_text|>": ids["llama3"]["<|begin_of_text|>"]})]}}),
        "llama3_ignore_merges": ("llama3", {"model": "ignore_merges"}),
        "qwen2_no_normalizer": ("qwen2", {"normalizer": None}),
        "sp_legacy": ("sentencepiece", {
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            "post_processor": template(["<s>", "$A"], {"<s>": s["<s>"]}),
            "decoder": SP_LEGACY_DECODER}),
        "sp_metaspace_first": ("sentencepiece", {
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
            "post_processor": template(["<s>", "$A", "</s>"], {"<s>": s["<s>"], "</s>": s["</s>"]}),
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}}),
        "sp_metaspace_always_split": ("sentencepiece", {
            "normalizer": {"type": "NFKC"},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
            "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}}),
        "sp_metaspace_never": ("sentencepiece", {
            "normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
                {"type": "ByteFallback"}, {"type": "Fuse"}]}}),
    }


def apply(base_json, overrides):
    data = json.loads(base_json)
    for key, value in overrides.items():
        if key == "model" and value == "ignore_merges":
            data["model"]["ignore_merges"] = True
        else:
            data[key] = value
    return data


def main():
    if tokenizers.__version__ != PINNED:
        sys.exit(f"tokenizers=={PINNED} expected, found {tokenizers.__version__}")
    bases = {"gpt2": train_gpt2(), "qwen2": train_splitregex(QWEN2_PATTERN),
             "llama3": train_splitregex(LLAMA3_PATTERN), "sentencepiece": train_sentencepiece()}
    base_json = {}
    ids = {}
    for name, tok in bases.items():
        os.makedirs(os.path.join(ROOT, name), exist_ok=True)
        text = tok.to_str(pretty=False)
        with open(os.path.join(ROOT, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
        base_json[name] = text
        ids[name] = {t.content: tok.token_to_id(t.content) for t in tok.get_added_tokens_decoder().values()}
    out = {"tokenizers_version": tokenizers.__version__, "strings": TEST_STRINGS, "variants": {}}
    for name, (base, overrides) in variants(ids).items():
        data = apply(base_json[base], overrides)
        tok = Tokenizer.from_str(json.dumps(data))
        cases = []
        for text in TEST_STRINGS:
            case = {}
            for special in (False, True):
                enc = tok.encode(text, add_special_tokens=special)
                key = "with_special" if special else "plain"
                case[key] = {"ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)}
            case["decoded_skip_special"] = tok.decode(case["with_special"]["ids"], skip_special_tokens=True)
            cases.append(case)
        out["variants"][name] = {"base": base, "overrides": overrides, "cases": cases}
    with open(os.path.join(ROOT, "references.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
