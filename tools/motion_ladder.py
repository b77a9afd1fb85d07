"""The motion ladder: can the tiny models learn what only motion tells, through the whole pipeline?

    .venv/bin/python tools/motion_ladder.py                      # every rung (about 25 minutes on 2 cores)
    .venv/bin/python tools/motion_ladder.py --rungs pair,overfit  # some of them
    PYTHONPATH=/path/to/older/checkout .venv/bin/python tools/motion_ladder.py --out runs/ladder-old   # older code

Each rung renders a synthetic set with no class colour (appearance 0), prepares it with every training video
labeled, trains both tiny models supervised only (the demo recipe with ``objective.teaching=none``,
``objective.beta=0``: the same prepare, DALI loader, augmentation, trainer and evaluation a user runs) and
evaluates each model on its own training videos (train top-1: can it fit them?) and on the held-out videos (test
top-1: did it learn motion, not the videos?). The rungs remove one difficulty at a time, the standard way to find
why a model does not learn:

    overfit        8 classes, 6 training videos each, 300 steps: can each model fit a handful of clips?
    no-augment     the same without scale jitter (the crop is the short side: only its position varies)
    still          the same with a still, plain background (clutter 0)
    pair           move_left vs move_right alone (each the other played backwards), still background
    full           8 classes, 72 training videos each, 16 epochs: the motion setting with every label

Prints one table (markdown) and writes ``ladder.json`` under ``--out``; nothing is reused between calls except
the rendered sources (``~/.cache/actnet``) and a rung's finished run at the same code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: an older checkout can be measured

from actnet import code_version  # noqa: E402

SUPERVISED = ["objective.teaching=none", "objective.beta=0", "train.eval_every=0"]
RUNGS = {
    "overfit": {"classes": 8, "videos": 8, "clutter": 1.0, "epochs": 50, "sets": []},
    "no-augment": {"classes": 8, "videos": 8, "clutter": 1.0, "epochs": 50, "sets": ["loader.augment.scale=[1,1]"]},
    "still": {"classes": 8, "videos": 8, "clutter": 0.0, "epochs": 50, "sets": ["loader.augment.scale=[1,1]"]},
    "pair": {"classes": 2, "videos": 32, "clutter": 0.0, "epochs": 50, "sets": ["loader.augment.scale=[1,1]"]},
    "full": {"classes": 8, "videos": 96, "clutter": 1.0, "epochs": 16, "sets": []},
}


def run_rung(out: Path, name: str, seed: int) -> dict:
    from actnet.config import EncodeConfig, EvalConfig, PrepareOptions, SyntheticConfig
    from actnet.data.splits import parse_labeled
    from actnet.data.synthetic import synthetic_listing
    from actnet.evaluate import evaluate_checkpoint
    from actnet.prepare import prepare
    from actnet.recipes import resolve_run_config
    from actnet.train import Trainer

    rung = RUNGS[name]
    folder = out / name
    cfg = SyntheticConfig(num_classes=rung["classes"], videos_per_class=rung["videos"], clutter=rung["clutter"])
    labeled = "100%"  # every training video
    labeled_set = parse_labeled(labeled).set_name(0)
    listing = synthetic_listing(cfg)
    shard_dir = folder / "shards" / listing.dataset / listing.split
    if not (shard_dir / f"{labeled_set}.info.json").exists():
        encode = EncodeConfig(short_side=96, small_videos="keep")  # as the demo: 128x96 stays
        opts = PrepareOptions(out=str(folder / "shards"), manifests=None, labeled=(labeled,), encode=encode)
        prepare(listing, opts)
    options = {
        "data": {"url": str(shard_dir), "labeled": labeled_set},
        "out": str(folder / "runs"),
        "name": f"supervised-seed{seed}",
        "train": {"epochs": rung["epochs"], "seed": seed},
    }
    run_cfg = resolve_run_config("demo", SUPERVISED + rung["sets"], options)
    run_dir = Path(run_cfg.run_dir)
    stamp = run_dir / "ladder-code.txt"
    started = time.perf_counter()
    if not (stamp.exists() and stamp.read_text() == code_version() and (run_dir / "last.pt").exists()):
        shutil.rmtree(run_dir, ignore_errors=True)
        trainer = Trainer(run_cfg)
        print(trainer.describe(), flush=True)
        trainer.fit()
        if trainer.preempted:  # a signal stopped it at a checkpoint: not a finished rung
            raise SystemExit(f"{name}: stopped at step {trainer.step} of {trainer.last_step}")
        stamp.write_text(code_version())
    minutes = (time.perf_counter() - started) / 60
    views = EvalConfig(clips=2, crops=1, batch_size=8)
    train = evaluate_checkpoint(run_dir / "last.pt", set_name=labeled_set, eval_cfg=views)
    test = evaluate_checkpoint(run_dir / "last.pt", eval_cfg=views)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["sup"] for m in metrics if "sup" in m]
    return {
        "code": code_version(),
        "synthetic": {"classes": cfg.num_classes, "videos_per_class": cfg.videos_per_class, "clutter": cfg.clutter},
        "train_videos": train["videos"],
        "test_videos": test["videos"],
        "steps": metrics[-1]["step"] if metrics else 0,
        "sets": rung["sets"],
        "loss_first_last": [losses[0], losses[-1]] if losses else [],
        "train_top1": {r: v["top1"] for r, v in train["models"].items()},
        "test_top1": {r: v["top1"] for r, v in test["models"].items()},
        "train_minutes": round(minutes, 1),
    }


def markdown(results: dict) -> str:
    lines = [
        "| rung | classes | train / test videos | steps | summed loss first -> last | train top-1 3D-CNN / ViT "
        "| test top-1 3D-CNN / ViT / ensemble | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        tr, te = r["train_top1"], r["test_top1"]
        loss = " -> ".join(f"{x:.2f}" for x in r["loss_first_last"])
        lines.append(
            f"| {name} | {r['synthetic']['classes']} | {r['train_videos']} / {r['test_videos']} | {r['steps']} | "
            f"{loss} | {100 * tr['primary']:.0f} / {100 * tr['auxiliary']:.0f} | "
            f"{100 * te['primary']:.0f} / {100 * te['auxiliary']:.0f} / {100 * te['ensemble']:.0f} | "
            f"{r['train_minutes']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ladder")
    parser.add_argument("--rungs", default=",".join(RUNGS), help=f"comma-separated, among {', '.join(RUNGS)}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n.strip() for n in args.rungs.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNGS]
    if unknown:
        raise SystemExit(f"--rungs: unknown {', '.join(unknown)}; among {', '.join(RUNGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "ladder.json"
    results = json.loads(record.read_text()) if record.exists() else {}
    for name in names:
        results[name] = run_rung(args.out, name, args.seed)
        record.write_text(json.dumps(results, indent=1) + "\n")
        print(markdown({name: results[name]}), flush=True)
    print(f"\nmotion ladder at actnet {code_version()} (appearance 0, supervised, every training video labeled):")
    print(markdown({n: results[n] for n in names}))


if __name__ == "__main__":
    main()
