"""RecBole's SASRec on recrl's leave-one-out split: the peer of `cargo bench --bench ranker`.

Usage: recbole_sasrec.py DATA_DIR DATASET OUT_JSON [--seed N] [--epochs N] [--patience N]

DATA_DIR/DATASET/DATASET.inter is written by the benchmark from recrl's processed split, with
`timestamp` = the item's position in the user's sequence, so RecBole's own leave-one-out
(`LS: valid_and_test`, order `TO`) reproduces recrl's split exactly. The model has recrl's
default size (d 64, 2 blocks, 1 head, FFN 64, ReLU, dropout 0.2, max_len 50, CE loss, lr 1e-3,
patience 20 on valid NDCG@10, full ranking). Per epoch the script records the wall-clock time
since training started and the validation NDCG@10; at the end, test metrics of the best epoch.

RecBole 1.2.1 predates NumPy 2 and torch's `weights_only` default; two small shims below fix
that without touching the installed package.
"""
import argparse
import functools
import json
import os
import sys
import time

import numpy as np

# NumPy 2 removed the aliases RecBole's Config.compatibility_settings() re-creates from others
# that are gone too (np.float_, np.complex_, np.unicode_): give it those, once.
for _old, _new in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}.items():
    if _old not in np.__dict__:
        setattr(np, _old, _new)
import torch  # noqa: E402

torch.load = functools.partial(torch.load, weights_only=False)  # RecBole's own checkpoints

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402


def dump(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=20)
    a = ap.parse_args()
    ckpt = os.path.join(os.path.dirname(os.path.abspath(a.out)), "recbole-saved")
    cfg = {
        "data_path": a.data_dir,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "MAX_ITEM_LIST_LENGTH": 50,
        "n_layers": 2,
        "n_heads": 1,
        "hidden_size": 64,
        "inner_size": 64,
        "hidden_dropout_prob": 0.2,
        "attn_dropout_prob": 0.2,
        "hidden_act": "relu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "epochs": a.epochs,
        "learning_rate": 1e-3,
        "stopping_step": a.patience,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO",
                      "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "eval_batch_size": 4096,
        "device": "cpu",
        "use_gpu": False,
        "seed": a.seed,
        "reproducibility": True,
        "show_progress": False,
        "checkpoint_dir": ckpt,
        "log_wandb": False,
        "state": os.environ.get("RECBOLE_LOG", "WARNING"),
    }
    config = Config(model="SASRec", dataset=a.dataset, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    curve, train_time = [], [0.0]
    inner = trainer._train_epoch

    def timed_train_epoch(*args, **kw):  # training time alone, for the throughput
        t = time.perf_counter()
        loss = inner(*args, **kw)
        train_time[0] += time.perf_counter() - t
        return loss

    trainer._train_epoch = timed_train_epoch
    t0 = time.perf_counter()

    def on_epoch(epoch_idx, valid_score):
        curve.append({"epoch": epoch_idx + 1, "seconds": time.perf_counter() - t0,
                      "train_seconds": train_time[0], "valid_ndcg10": float(valid_score)})
        # a partial result after every epoch, so a run cut short still tells its curve
        dump(a.out, {"finished": False, "peer": "RecBole 1.2.1 SASRec", "curve": curve,
                     "best_valid_ndcg10": max(c["valid_ndcg10"] for c in curve)})

    best_valid, best_result = trainer.fit(train_data, valid_data, verbose=False,
                                          saved=True, callback_fn=on_epoch)
    train_seconds = time.perf_counter() - t0
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    targets = len(train_data.dataset)  # one supervised target per training prefix
    out = {
        "finished": True,
        "peer": "RecBole 1.2.1 SASRec", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "seed": a.seed,
        "train_targets_per_epoch": targets,
        "epochs_run": len(curve), "seconds_total": train_seconds,
        "train_seconds": train_time[0],
        "targets_per_s": targets * len(curve) / max(train_time[0], 1e-9),
        "curve": curve,
        "best_valid_ndcg10": float(best_valid),
        "valid": {k: float(v) for k, v in best_result.items()},
        "test": {k: float(v) for k, v in test.items()},
        "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
    }
    dump(a.out, out)
    print(json.dumps({k: out[k] for k in ("epochs_run", "seconds_total", "best_valid_ndcg10", "test")}))


if __name__ == "__main__":
    sys.exit(main())
