#!/usr/bin/env python3
"""Rebuilds the Llama-2 / TinyLlama tokenizer as a Hugging Face tokenizer.json from the npm
package llama-tokenizer-js@1.2.2 (fetched by scripts/fetch_assets.py), so TinyLlama-format
models and tests work offline.

    python3 scripts/build_llama_tokenizer.py [--force]

Reads checkpoints/models/llama2-tokenizer/llama-tokenizer.js: `vocab_base64` (the 32,000 tokens,
one per line, utf-8, id = line number) and `merges_binary` (uint16 little-endian token-id
pairs, in priority order). Writes, atomically, beside it: tokenizer.json (BPE with byte
fallback, "▁" for spaces and a leading "▁", <s> prepended) and tokenizer_config.json
(add_bos_token, TinyLlama's Zephyr chat format). Skips the work when both are newer than the
source. Standard library only.
"""
import base64
import json
import os
import re
import struct
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "checkpoints/models/llama2-tokenizer")
SRC = os.path.join(DIR, "llama-tokenizer.js")
OUTS = ["tokenizer.json", "tokenizer_config.json"]
ZEPHYR = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")


def js_string(text, name):
    m = re.search(name + r'\s*=\s*"([^"]*)"', text)
    if not m:
        sys.exit(f"build_llama_tokenizer: {SRC}: no `{name} = \"...\"` found")
    return base64.b64decode(m.group(1))


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    if not os.path.isfile(SRC):
        sys.exit(f"build_llama_tokenizer: {SRC} is missing (run scripts/fetch_assets.py)")
    outs = [os.path.join(DIR, o) for o in OUTS]
    if "--force" not in sys.argv and all(os.path.isfile(o) and os.path.getmtime(o) >= os.path.getmtime(SRC) for o in outs):
        return
    text = open(SRC, encoding="utf-8").read()
    vocab = js_string(text, "vocab_base64").decode("utf-8").split("\n")
    if len(vocab) != 32000:
        sys.exit(f"build_llama_tokenizer: expected 32,000 tokens, found {len(vocab)}")
    raw = js_string(text, "merges_binary")
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [f"{vocab[ids[i]]} {vocab[ids[i + 1]]}" for i in range(0, len(ids), 2)]
    special = lambda i, t: {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": merges},
    }
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "chat_template": ZEPHYR, "tokenizer_class": "LlamaTokenizer"}
    write_atomic(outs[0], tok)
    write_atomic(outs[1], config)
    print(f"built {outs[0]} ({len(vocab)} tokens, {len(merges)} merges)")


if __name__ == "__main__":
    main()
