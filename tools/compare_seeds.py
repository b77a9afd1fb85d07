"""Does the method work? ActNetFormer vs the supervised-only baseline on the synthetic set, over several seeds.

    .venv/bin/python tools/compare_seeds.py                 # seeds 0 1 2, writes the "semi-supervised" section
    .venv/bin/python tools/compare_seeds.py --seeds 0 --no-record

Each seed runs `actnet demo --seed S` (the same prepared data and the same 10% labeled subset for every seed and
method; the seed changes initialisation, sampling and augmentation), which trains both methods for the same
number of steps and evaluates them on the test set. This script collects the reports and writes the table of
top-1 per seed, mean and spread into docs/results.md (+ .json) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actnet.bench.common import machine_description, record  # noqa: E402

RESULTS_MD = ROOT / "docs" / "results.md"
METHODS = ("actnetformer", "supervised")
ROLES = ("primary", "auxiliary", "ensemble")


def run_seed(out: Path, seed: int, args: argparse.Namespace) -> dict:
    cmd = [str(Path(sys.executable).parent / "actnet"), "demo", "--out", str(out), "--seed", str(seed)]
    cmd += ["--videos-per-class", str(args.videos_per_class), "--appearance", str(args.appearance)]
    cmd += ["--labeled", args.labeled]
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    reports = {}
    for method in METHODS:
        run = out / "runs" / f"{method}-seed{seed}"
        [report] = sorted(run.glob("eval-test-*.json"))
        data = json.loads(report.read_text())
        reports[method] = {role: data["models"][role]["top1"] for role in ROLES if role in data["models"]}
        reports[method]["views"] = data["views"]
        reports[method]["videos"] = data["videos"]
    reports["seconds"] = time.perf_counter() - started
    return reports


def markdown(results: dict[int, dict], args: argparse.Namespace) -> str:
    seeds = sorted(results)
    first = results[seeds[0]]["actnetformer"]
    epochs = f" with {args.epochs} epochs" if args.epochs else ""
    lines = [
        f"Synthetic set (8 classes, {args.videos_per_class} videos per class, appearance {args.appearance:g}), "
        f"`--labeled {args.labeled}` (the same subset for every run), tiny presets at 64 px, `actnet demo` "
        f"recipe{epochs}; test top-1 (%) on {first['videos']} videos, {first['views']} views. "
        f"Seeds change initialisation, sampling and augmentation. "
        f"`tools/compare_seeds.py --videos-per-class {args.videos_per_class} --appearance {args.appearance:g} "
        f"--labeled {args.labeled}`.",
        "",
        "| method | model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std | spread (max-min) |",
        "|---|---|" + "---:|" * (len(seeds) + 3),
    ]
    summary = {}
    for method in METHODS:
        for role in ROLES:
            values = [100 * results[s][method][role] for s in seeds]
            mean, spread = statistics.mean(values), max(values) - min(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[f"{method}/{role}"] = {"mean": mean, "spread": spread, "values": values}
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {method} | {role} | {cells} | {mean:.1f} | {std:.1f} | {spread:.1f} |")
    lines.append("")
    for role in ROLES:
        a, s = summary[f"actnetformer/{role}"], summary[f"supervised/{role}"]
        gap = a["mean"] - s["mean"]
        worst_pair = min(a["values"]) - max(s["values"])
        verdict = "beats" if gap > max(a["spread"], s["spread"]) else "does not clearly beat"
        lines.append(
            f"- {role}: ActNetFormer {verdict} supervised-only: mean gap {gap:+.1f} points; "
            f"seed spread {a['spread']:.1f} (ActNetFormer) / {s['spread']:.1f} (supervised); "
            f"worst ActNetFormer seed minus best supervised seed {worst_pair:+.1f}."
        )
    minutes = statistics.mean(r["seconds"] for r in results.values()) / 60
    m = machine_description()
    lines += [
        "",
        f"{minutes:.1f} min per seed (both methods, prepare cached) on {m['cores']} cores, "
        f"{m['host_cpu']}, {m['date']}, actnet {m['actnet']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo recipe's)")
    parser.add_argument("--videos-per-class", type=int, default=24, help="synthetic videos per class")
    parser.add_argument("--appearance", type=float, default=0.5, help="weight of the per-class colour")
    parser.add_argument("--labeled", default="10%", help="labeled subset, as for prepare")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    parser.add_argument("--no-record", action="store_true", help="print the table only")
    args = parser.parse_args()
    results = {seed: run_seed(args.out, seed, args) for seed in args.seeds}
    text = markdown(results, args)
    print(text)
    if not args.no_record:
        record(
            "semi-supervised",
            text,
            {"results": {str(k): v for k, v in results.items()}, "machine": machine_description()},
            RESULTS_MD,
        )


if __name__ == "__main__":
    main()
