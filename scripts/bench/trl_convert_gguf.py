#!/usr/bin/env python3
"""Dequantises the SmolLM2-135M-Instruct Q4_1 GGUF (the project's asset) into a float32
Hugging Face folder that TRL can train: python trl_convert_gguf.py GGUF OUT_DIR (from ../shared/bench/trl-grpo/convert_gguf.py)"""
import sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = sys.argv[1], sys.argv[2]
d, f = gguf.rsplit("/", 1)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
model.config.quantization_config = None
if hasattr(model, "hf_quantizer"):
    model.hf_quantizer = None
model.save_pretrained(out)
tok.save_pretrained(out)
print("saved", out)
