#!/usr/bin/env python3
"""The Python side of scripts/gpu_check.sh (torch + transformers, as the GPU machine has them).

    gpu_check.py model OUT [--tiny]        random-weight TinyLlama-1.1B-shaped model (bf16
                                           safetensors) with the Llama-2 tokenizer; --tiny:
                                           2 layers of width 64 (the CPU dry run)
    gpu_check.py minilm OUT                random-weight all-MiniLM-L6-v2 (the reward's encoder;
                                           its 87 MB of weights are not carried to a GPU
                                           machine): config.json and tokenizer.json copied
    gpu_check.py prompts MODEL OUT.json    4 chat prompts as token ids
    gpu_check.py logits MODEL PROMPTS.json RECRL.safetensors DEVICE
                                           transformers' f32 logits vs recrl's: JSON summary
    gpu_check.py generate MODEL PROMPTS.json DEVICE NEW BATCHES [--bf16]
                                           transformers generate (greedy, KV cache): JSON timing
    gpu_check.py table OUT_DIR             the markdown table of issue 19 from the JSON files
"""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "checkpoints/models/llama2-tokenizer")
# TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json (the architecture only)
TINYLLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                 rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                 bos_token_id=1, eos_token_id=2, hidden_act="silu")
TINY = dict(TINYLLAMA, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2)
QUESTIONS = ["Why might I enjoy Star Wars (1977)?",
             "I liked Heat (1995) and Casino (1995). What should I watch next, and why?",
             "Explain in two sentences why Toy Story (1995) is a classic.",
             "I watched Babe (1995), Jumanji (1995) and Balto (1995); suggest a family movie."]


def model(out, tiny):
    import shutil
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(**(TINY if tiny else TINYLLAMA))
    m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(out)
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TOKENIZER, f), out)
    n = sum(p.numel() for p in m.parameters())
    print(json.dumps({"parameters": n, "weight_bytes_bf16": 2 * n, "config": cfg.to_dict()["hidden_size"]}))


def minilm(out):
    import shutil
    import torch
    from transformers import BertConfig, BertModel
    src = os.path.join(ROOT, "checkpoints/models/all-MiniLM-L6-v2")
    torch.manual_seed(0)
    # all-MiniLM-L6-v2's config.json (the architecture), when the folder does not have it
    cfg = (BertConfig.from_pretrained(src) if os.path.exists(os.path.join(src, "config.json")) else
           BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                      intermediate_size=1536, max_position_embeddings=512, layer_norm_eps=1e-12))
    m = BertModel(cfg, add_pooling_layer=False)
    m.save_pretrained(out)
    shutil.copy(os.path.join(src, "tokenizer.json"), out)


def prompts(model_dir, out):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)
            for q in QUESTIONS]
    # transformers 5 returns a BatchEncoding (a mapping), 4.x a list of ids
    rows = [list(r["input_ids"]) if hasattr(r, "keys") else list(r) for r in rows]
    json.dump(rows, open(out, "w"))


def load(model_dir, device, dtype):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    assert m.dtype == dtype, f"loaded as {m.dtype}, asked for {dtype}: transformers >= 4.56 needed"
    return m, torch


def logits(model_dir, prompts_file, theirs, device):
    import torch
    from safetensors.torch import load_file
    m, _ = load(model_dir, device, torch.float32)
    ours = load_file(theirs)
    worst, rel, agree, total = 0.0, 0.0, 0, 0
    for i, row in enumerate(json.load(open(prompts_file))):
        with torch.no_grad():
            ref = m(torch.tensor([row], device=device)).logits[0].float().cpu()
        got = ours[f"logits.{i}"]
        assert got.shape == ref.shape, (got.shape, ref.shape)
        d = (got - ref).abs().max().item()
        worst, rel = max(worst, d), max(rel, d / ref.abs().max().item())
        agree += (got.argmax(-1) == ref.argmax(-1)).sum().item()
        total += ref.shape[0]
    print(json.dumps({"max_abs_diff": worst, "max_rel_diff": rel, "argmax_agreement": agree / total,
                      "positions": total}))


def generate(model_dir, prompts_file, device, new, batches, bf16):
    import torch
    m, _ = load(model_dir, device, torch.bfloat16 if bf16 else torch.float32)
    rows = json.load(open(prompts_file))
    out = {"dtype": "bf16" if bf16 else "f32", "decode": []}
    for b in batches:
        chosen = [rows[i % len(rows)] for i in range(b)]
        width = max(map(len, chosen))
        ids = torch.tensor([[0] * (width - len(r)) + r for r in chosen], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chosen], device=device)
        times, tokens = [], None
        for k in range(4):  # a warm-up, then 3 timed
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                g = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                               do_sample=False, pad_token_id=0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if k:
                times.append(time.perf_counter() - t0)
            tokens = g[:, width:].tolist()
        out["decode"].append({"batch": b, "new_tokens": new, "seconds": times,
                              "tokens_per_s": b * new / statistics.median(times), "tokens": tokens})
    print(json.dumps(out))


def table(d):
    j = lambda f: json.load(open(os.path.join(d, f))) if os.path.exists(os.path.join(d, f)) else None
    info, lg, ours, hf = j("model.json"), j("logits.json"), j("decode_recrl.json"), j("decode_hf.json")
    bw = float(os.environ.get("GPU_BANDWIDTH_TBS", "0") or 0)
    lines = ["| what | measured |", "|---|---|", f"| device | {j('device.json')['name'] if j('device.json') else 'n/a'} |"]
    if lg:
        lines.append(f"| logits vs transformers, f32, {len(json.load(open(os.path.join(d, 'prompts.json'))))} prompts |"
                     f" max abs diff {lg['max_abs_diff']:.2e} (rel {lg['max_rel_diff']:.1e}), argmax {100 * lg['argmax_agreement']:.1f} % |")
    if ours and hf:
        for a, b in zip(ours["decode"], hf["decode"]):
            same = sum(x == y for r, s in zip(a["tokens"], b["tokens"]) for x, y in zip(r, s))
            n = sum(len(r) for r in a["tokens"])
            lines.append(f"| greedy decode {ours['kind']}, {a['new_tokens']} new tokens, batch {a['batch']} |"
                         f" recrl {a['tokens_per_s']:.0f} tok/s, transformers {b['tokens_per_s']:.0f} tok/s"
                         f" ({a['tokens_per_s'] / b['tokens_per_s']:.2f}×); same tokens {same}/{n} |")
        if bw and info:
            limit = bw * 1e12 / info["weight_bytes_bf16"]
            one = ours["decode"][0]
            lines.append(f"| decode limit at batch 1 ({bw} TB/s ÷ {info['weight_bytes_bf16'] / 1e9:.2f} GB) |"
                         f" ≈ {limit:.0f} tok/s: recrl at {100 * one['tokens_per_s'] / limit:.1f} % |")
    for f in sorted(os.listdir(d)):
        if f.startswith("ppo_") and f.endswith(".json"):
            p = j(f)
            if "failed" in p:
                lines.append(f"| PPO {p['name']} | failed: {p['failed']} |")
                continue
            which = "the only step" if p.get("first_step_timed") else f"{p['steps']} steps after the first"
            lines.append(f"| PPO {p['name']} ({which}) |"
                         f" {p['seconds_per_step']:.1f} s a step ({60 / p['seconds_per_step']:.1f} steps/min),"
                         f" GPU utilisation {p['util']}, peak {p['peak_mem']} |")
    print("\n".join(lines))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "model":
        model(a[1], "--tiny" in a)
    elif a[0] == "minilm":
        minilm(a[1])
    elif a[0] == "prompts":
        prompts(a[1], a[2])
    elif a[0] == "logits":
        logits(a[1], a[2], a[3], a[4])
    elif a[0] == "generate":
        generate(a[1], a[2], a[3], int(a[4]), [int(x) for x in a[5].split(",")], "--bf16" in a)
    elif a[0] == "table":
        table(a[1])
    else:
        sys.exit(__doc__)
