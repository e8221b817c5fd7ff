#!/usr/bin/env python3
"""Reference for the data tests: ml-100k counts after the default processing (no rating
threshold, iterative 5-core, leave-one-out), computed independently in plain Python from the
RecBole atomic file. Writes recrl-lib/tests/fixtures/data/ml100k_counts.json.

    python3 scripts/reference_ml100k_counts.py
"""
import collections
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rows = []
with open(os.path.join(ROOT, "data/raw/ml-100k/ml-100k.inter"), encoding="utf-8") as f:
    next(f)
    for n, line in enumerate(f):
        u, i, r, t = line.rstrip("\n").split("\t")
        rows.append((u, i, float(r), int(float(t)), n))
loaded = len(rows)
k = 5
while True:
    cu = collections.Counter(r[0] for r in rows)
    ci = collections.Counter(r[1] for r in rows)
    kept = [r for r in rows if cu[r[0]] >= k and ci[r[1]] >= k]
    if len(kept) == len(rows):
        break
    rows = kept
seqs = collections.defaultdict(list)
for u, i, _, t, n in sorted(rows, key=lambda r: (int(r[0]), r[3], r[4])):
    seqs[u].append(int(i))
users = sorted(seqs, key=int)
first = users[0]
out = {
    "loaded_interactions": loaded,
    "users": len(seqs),
    "items": len({r[1] for r in rows}),
    "interactions": len(rows),
    "user_1_test_raw_item": seqs[first][-1],
    "user_1_valid_raw_item": seqs[first][-2],
    "user_1_train_len": len(seqs[first]) - 2,
    "max_seq_len": max(len(s) for s in seqs.values()),
}
path = os.path.join(ROOT, "recrl-lib/tests/fixtures/data/ml100k_counts.json")
with open(path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print(json.dumps(out))
