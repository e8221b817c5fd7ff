#!/usr/bin/env python3
"""TRL GRPOTrainer step-time benchmark on SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32, CPU).

The peer of `cargo bench --bench rl_step` (issue 29): ../shared/bench/trl-grpo/trl_grpo_bench.py
with `--generations G` (2 as there; 4 = the project's default group, 8 / G prompts a round) and
the model folder from `--model` (scripts/bench/trl-venv.sh converts it).

One "RL step" (= one recrl PPO step) here is one TRL generation round:
  8 / G prompts x num_generations=G = 8 completions of max 32 new tokens,
  then num_iterations=4 passes over them in micro-batches of 4 completions,
  one optimizer step per micro-batch (gradient_accumulation_steps=1).
TRL mapping (trl 1.16.0, GRPOTrainer._prepare_inputs): generation happens every
  steps_per_generation * num_iterations = 2 * 4 = 8 trainer global steps;
  generation_batch_size = per_device_train_batch_size * steps_per_generation = 4 * 2 = 8.
So max_steps = 8 * rounds, and a round ends at on_step_end with global_step % 8 == 0.
"""
import argparse, importlib.metadata, json, os, random, statistics, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=4, help="generation rounds (first is warm-up)")
ap.add_argument("--min_new_tokens", type=int, default=32, help="0: allow EOS before 32 tokens")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--out", default=os.path.join(os.environ.get("PEER_DIR", "."), "out", "trl_run.json"))
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--generations", type=int, default=2, help="completions per prompt (GRPO's group)")
ap.add_argument("--model", default=os.path.join(os.environ.get("PEER_DIR", "."), "smollm2-135m-f32"))
ap.add_argument("--ml100k", action="store_true",
                help="length-matched variant: prompts built like recrl's (ml-100k last-5 train items, years, "
                     "one 1-token placeholder ' *' where recrl puts each soft item token)")
args = ap.parse_args()

import torch
torch.set_num_threads(args.threads)
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

# float32 folder dequantised once from the GGUF by convert_gguf.py (Trainer refuses a model that
# still carries QuantizationMethod.GGUF, even though its weights are already float32)
MODEL_DIR = args.model
SYSTEM = ("You are a friendly recommender. In one or two sentences, tell the user why they may enjoy "
          "the recommended item, based on what they watched or read before.")
FILMS = [
    ("Toy Story", 1995, "Animation, Children's, Comedy"), ("Heat", 1995, "Action, Crime, Thriller"),
    ("Braveheart", 1995, "Action, Drama, War"), ("Se7en", 1995, "Crime, Thriller"),
    ("The Usual Suspects", 1995, "Crime, Thriller"), ("Apollo 13", 1995, "Action, Drama, Thriller"),
    ("Casino", 1995, "Drama, Thriller"), ("Twelve Monkeys", 1995, "Drama, Sci-Fi"),
    ("Fargo", 1996, "Crime, Drama, Thriller"), ("Independence Day", 1996, "Action, Sci-Fi, War"),
    ("Trainspotting", 1996, "Drama"), ("Jerry Maguire", 1996, "Drama, Romance"),
    ("Scream", 1996, "Horror, Thriller"), ("The English Patient", 1996, "Drama, Romance, War"),
    ("Titanic", 1997, "Action, Drama, Romance"), ("Good Will Hunting", 1997, "Drama"),
    ("L.A. Confidential", 1997, "Crime, Film-Noir, Mystery"), ("Men in Black", 1997, "Action, Comedy, Sci-Fi"),
    ("Jackie Brown", 1997, "Crime, Drama"), ("Contact", 1997, "Drama, Sci-Fi"),
    ("The Silence of the Lambs", 1991, "Drama, Thriller"), ("Terminator 2: Judgment Day", 1991, "Action, Sci-Fi"),
    ("Reservoir Dogs", 1992, "Crime, Thriller"), ("Unforgiven", 1992, "Western"),
    ("Jurassic Park", 1993, "Action, Adventure, Sci-Fi"), ("Schindler's List", 1993, "Drama, War"),
    ("Groundhog Day", 1993, "Comedy, Romance"), ("Pulp Fiction", 1994, "Crime, Drama"),
    ("Forrest Gump", 1994, "Comedy, Romance, War"), ("The Shawshank Redemption", 1994, "Drama"),
    ("The Lion King", 1994, "Animation, Children's, Musical"), ("Speed", 1994, "Action, Romance, Thriller"),
]

rng = random.Random(args.seed)
rows = []
for _ in range(64):
    picks = rng.sample(FILMS, 6)
    hist, rec = picks[:5], picks[5]
    user = ("Recently I enjoyed: " + "; ".join(f"{t} ({y})" for t, y, _ in hist) + ".\n"
            f"Recommended for me: {rec[0]} ({rec[1]}) (genres: {rec[2]}).\nWhy might I like it?")
    rows.append({"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                 "rec_title": rec[0], "hist_titles": [t for t, _, _ in hist]})
if args.ml100k:
    import collections, pyarrow.parquet as pq
    P = os.path.join(os.environ["RECRL_ROOT"], "data/proc/ml-100k/")
    items = {r["item"]: r for r in pq.read_table(P + "items.parquet").to_pylist()}
    hist = collections.defaultdict(list)
    for r in sorted((r for r in pq.read_table(P + "interactions.parquet").to_pylist() if r["split"] == "train"),
                    key=lambda r: (r["user"], r["position"])):
        hist[r["user"]].append(r["item"])
    desc = lambda m: m["title"] + (f" ({m['year']})" if m["year"] is not None else "")
    rows = []
    for u in rng.sample(sorted(hist), 64):
        h = hist[u][-5:]
        rec = items[rng.choice([i for i in items if i not in hist[u]])]
        g = rec["genres"]; extra = f" (genres: {', '.join(g.split('|'))})" if g else ""
        user = ("Recently I enjoyed: " + "; ".join(f"{desc(items[i])} *" for i in h) + ".\n"
                f"Recommended for me: {desc(rec)} *{extra}.\nWhy might I like it?")
        rows.append({"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
                     "rec_title": rec["title"], "hist_titles": [items[i]["title"] for i in h]})
ds = Dataset.from_list(rows)

tok = AutoTokenizer.from_pretrained(MODEL_DIR)
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
t_load = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
t_load = time.perf_counter() - t_load
prompt_lens = [len(tok.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True,
                                           return_dict=True)["input_ids"]) for r in rows]

completion_lens = []  # per round, list of token lengths


def reward_fn(completions, rec_title, hist_titles, completion_ids=None, **kw):
    if completion_ids is not None:
        completion_lens.append([len(c) for c in completion_ids])
    out = []
    for c, title, hist in zip(completions, rec_title, hist_titles):
        text = c[0]["content"] if isinstance(c, list) else c
        low = text.lower()
        r = 0.0
        if title.lower() in low:
            r += 0.35
        n = len(text.split())
        if 8 <= n <= 45:
            r += 0.2
        if any(h.lower() in low for h in hist):
            r += 0.15
        if "you" in low:
            r += 0.1
        out.append(r)
    return out


ROUND = 8  # global steps per generation round (steps_per_generation * num_iterations)


class Timer(TrainerCallback):
    def __init__(self):
        self.marks = []

    def on_train_begin(self, a, state, control, **kw):
        self.marks.append(time.perf_counter())

    def on_step_end(self, a, state, control, **kw):
        if state.global_step % ROUND == 0:
            self.marks.append(time.perf_counter())
            print(f"[timer] round {len(self.marks)-1} done at global_step {state.global_step}: "
                  f"{self.marks[-1]-self.marks[-2]:.2f} s", flush=True)


gen_kwargs = {"min_new_tokens": args.min_new_tokens} if args.min_new_tokens > 0 else None
cfg = GRPOConfig(
    output_dir=os.path.join(os.environ.get("PEER_DIR", "."), "out", "trl_tmp"),
    use_cpu=True, bf16=False, fp16=False,
    gradient_checkpointing=False,           # TRL's default is True; recrl does not recompute activations
    per_device_train_batch_size=4,          # micro-batch of 4 completions
    gradient_accumulation_steps=1,          # one optimizer step per micro-batch (recrl grad_accum 1)
    steps_per_generation=2,                 # generation_batch_size = 4*2 = 8 completions per round
    num_generations=args.generations,       # 8 / G prompts x G
    num_iterations=4,                       # 4 passes over each generation batch (recrl epochs=4)
    max_completion_length=32,
    generation_kwargs=gen_kwargs,
    temperature=0.7, top_p=0.9,
    learning_rate=3e-4, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
    max_grad_norm=1.0,
    beta=0.05,                              # KL to the reference (PEFT: adapter disabled)
    epsilon=0.2,
    loss_type="dapo",                       # TRL default; token-weighted like recrl's share-weighted loss
    max_steps=ROUND * args.rounds,
    logging_steps=ROUND,
    save_strategy="no", report_to="none",
    dataloader_num_workers=0,
    seed=args.seed,
)
peft_cfg = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.05,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
timer = Timer()
trainer = GRPOTrainer(model=model, reward_funcs=reward_fn, args=cfg, train_dataset=ds,
                      processing_class=tok, peft_config=peft_cfg, callbacks=[timer])
trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
print(f"generation_batch_size={cfg.generation_batch_size} steps_per_generation={cfg.steps_per_generation} "
      f"trainable={trainable} torch_threads={torch.get_num_threads()}", flush=True)
t0 = time.perf_counter()
trainer.train()
wall = time.perf_counter() - t0
rounds = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
timed = rounds[1:]
res = {
    "tool": "trl.GRPOTrainer",
    "generations": args.generations,
    "versions": {m: importlib.metadata.version(m) for m in ["torch", "trl", "transformers", "peft", "accelerate", "datasets", "gguf"]},
    "torch_threads": torch.get_num_threads(),
    "model_load_s": t_load,
    "round_seconds": rounds,
    "timed_rounds": timed,
    "median_timed": statistics.median(timed) if timed else None,
    "train_wall_s": wall,
    "completion_token_lens": completion_lens,
    "mean_completion_len": statistics.mean(x for r in completion_lens for x in r) if completion_lens else None,
    "prompt_tokens_mean": statistics.mean(prompt_lens),
    "prompt_tokens_min_max": [min(prompt_lens), max(prompt_lens)],
    "min_new_tokens": args.min_new_tokens,
    "ml100k_prompts": args.ml100k,
    "example_prompt": rows[0]["prompt"][1]["content"],
    "trainable_params": trainable,
    "log_history": trainer.state.log_history,
}
os.makedirs(os.path.dirname(args.out), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(res, f, indent=1, default=str)
print(json.dumps({k: res[k] for k in ["round_seconds", "median_timed", "mean_completion_len",
                                      "prompt_tokens_mean", "prompt_tokens_min_max"]}), flush=True)
