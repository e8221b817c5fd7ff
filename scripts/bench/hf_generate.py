"""Peer of `cargo bench --bench explainer`: transformers' generate on SmolLM2-135M (the same
GGUF, dequantised to float32), greedy, exactly NEW tokens per prompt, KV cache on.

    python scripts/bench/hf_generate.py PROMPTS.json NEW REPEATS > result.json
PROMPTS.json: {"1": [[ids...]], "8": [[ids...], ...]} (token ids, batch size -> prompts).
Prints {"threads", "batches": {"1": {"seconds": [...], "tokens_per_s": median}, ...}}.
"""
import json
import os
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
GGUF_DIR = os.path.join(ROOT, "checkpoints/models/SmolLM2-135M-Instruct")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main():
    prompts, new, repeats = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.float32).eval()
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "batches": {}}
    for bsz, rows in prompts.items():
        width = max(map(len, rows))
        ids = torch.tensor([[2] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        times = []
        for k in range(repeats + 1):
            t0 = time.perf_counter()
            with torch.inference_mode():
                g = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                   do_sample=False, pad_token_id=2)
            dt = time.perf_counter() - t0
            assert g.shape[1] - width == new
            if k > 0:  # the first run warms up
                times.append(dt)
        med = statistics.median(times)
        out["batches"][bsz] = {"seconds": times, "tokens_per_s": len(rows) * new / med}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
