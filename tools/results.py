"""docs/results.md from scratch: the ablations of ActNetFormer on the synthetic set, every setting, over seeds.

    .venv/bin/python tools/results.py                         # every setting x 3 seeds x every method (hours)
    .venv/bin/python tools/results.py --settings main         # one setting
    .venv/bin/python tools/results.py --settings small --seeds 0 --methods actnetformer,supervised
    .venv/bin/python tools/results.py --labeling            # suggest's strategies and pseudo-label precision (~95 min)
    .venv/bin/python tools/results.py --pseudo-labels       # pseudo-label precision alone, from the demo runs (minutes)

Each (setting, seed) runs `actnet demo --methods ...` in its own folder under --out: the same prepared data and
the same labeled subset for every seed and method (the seed changes initialisation, sampling and augmentation),
every method trained for the same steps with the demo recipe, then evaluated on the test set. The methods are the
paper's ablations (actnet/demo.py, METHODS): supervised only, FixMatch on each model alone, cross pseudo-labels
without the contrastive term (CMPL-like), the contrastive term without pseudo-labels, and the full method.

Every finished (setting, seed) is recorded in docs/results.json at once, with the code version it ran at, so an
interrupted regeneration keeps what it measured; docs/results.md is then rewritten whole from that file: one table
per setting (top-1 per seed, mean, std, spread), the 95% interval the test set's size leaves open, and each
method against supervised-only. A rerun at the same code reuses the demo's finished runs (its demo-state.json);
``--fresh`` forgets what results.json holds for the settings asked for before running them.

``--labeling`` measures what comes after training, from each seed's actnetformer run of the demo setting (16 labeled
videos; run first at the current code if results.json does not hold it). ``actnet suggest``, as a user would run
it: every strategy picks
``--budget`` more videos; ``actnet prepare --labeled-list`` makes each bigger labeled set in the same shards,
``actnet train`` retrains with the same recipe, seed and steps, and ``actnet evaluate`` scores it on the test set.
The stored labels of the picked videos are read only afterwards, to say how many the starting models got wrong
and how many classes the picks cover. ``actnet pseudo-label``: the precision of its pseudo-labels against the stored
labels at several thresholds, on the same runs' unlabeled videos. Last, the README's pictures of suggest,
pseudo-label and predict --timeline (docs/images) are drawn again from the first seed's run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actnet import code_version  # noqa: E402
from actnet.bench.common import machine_description  # noqa: E402
from actnet.demo import DEFAULT_METHODS, DEMO_EPOCHS, METHODS  # noqa: E402
from actnet.evaluate import wilson_interval  # noqa: E402
from actnet.files import atomic_write  # noqa: E402
from actnet.labeling import STRATEGIES  # noqa: E402

RESULTS_MD = ROOT / "docs" / "results.md"
ROLES = ("primary", "auxiliary", "ensemble")
ORDER = ("supervised", "fixmatch", "cross-pl", "contrastive", "actnetformer")  # as the paper's ablation tables
# The settings tried, each a set of `actnet demo` options; every one is reported, whichever method wins.
SETTINGS = {
    "main": {
        "videos_per_class": 48,
        "appearance": 0.5,
        "labeled": "2/class",
        "epochs": 16,
        "about": "384 videos: 16 labeled, 288 unlabeled, 96 test (one test video is ~1 point)",
    },
    "demo": {
        "videos_per_class": 48,
        "appearance": 0.5,
        "labeled": "2/class",
        "epochs": DEMO_EPOCHS,
        "methods": DEFAULT_METHODS,
        "about": "what `actnet demo` runs by default: main's data, fewer epochs, its two methods",
    },
    "small": {
        "videos_per_class": 24,
        "appearance": 0.5,
        "labeled": "2/class",
        "epochs": 16,
        "about": "192 videos, the demo's set before it grew: 16 labeled, 144 unlabeled, 48 test (one test video is "
        "~2 points)",
    },
    "motion": {
        "videos_per_class": 48,
        "appearance": 0.0,
        "labeled": "2/class",
        "epochs": 16,
        "about": "as main, but motion is the only cue (no class colour)",
    },
}


def setting_methods(setting: str, methods: tuple[str, ...]) -> tuple[str, ...]:
    """The methods asked for that the setting runs (the demo setting: the demo's own two)."""
    return tuple(m for m in methods if m in SETTINGS[setting].get("methods", methods))


def run_setting_seed(out: Path, setting: str, seed: int, methods: tuple[str, ...]) -> dict:
    opts = SETTINGS[setting]
    folder = out / setting
    methods = setting_methods(setting, methods)
    cmd = [str(Path(sys.executable).parent / "actnet"), "demo", "--out", str(folder), "--seed", str(seed)]
    cmd += ["--videos-per-class", str(opts["videos_per_class"]), "--appearance", str(opts["appearance"])]
    cmd += ["--labeled", opts["labeled"], "--epochs", str(opts["epochs"]), "--methods", ",".join(methods)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    found = {"seconds": time.perf_counter() - started, "code": code_version(), "methods": {}}
    for method in methods:
        [report] = sorted((folder / "runs" / f"{method}-seed{seed}").glob("eval-test-*.json"))
        data = json.loads(report.read_text())
        found["methods"][method] = {r: data["models"][r]["top1"] for r in ROLES if r in data["models"]}
        found["videos"], found["views"] = data["videos"], data["views"]
        if data.get("code") and data["code"] != found["code"]:
            raise SystemExit(f"{report}: measured at {data['code']}, not at {found['code']}")
    return found


def table(setting: str, runs: dict[str, dict]) -> list[str]:
    """One setting's section: top-1 per seed, mean, std, spread, and each method against supervised-only."""
    opts = SETTINGS[setting]
    seeds = sorted(runs, key=int)
    methods = [m for m in ORDER if all(m in runs[s]["methods"] for s in seeds)]
    first = runs[seeds[0]]
    codes = sorted({runs[s]["code"] for s in seeds})
    n = first["videos"]
    lines = [
        f"Synthetic set, 8 classes, {opts['videos_per_class']} videos per class, appearance {opts['appearance']:g}, "
        f"`--labeled {opts['labeled']}` ({opts['about']}); the demo recipe (tiny presets at 64 px), "
        f"{opts['epochs']} epochs, every method the same steps; test top-1 (%) on {n} videos, {first['views']} "
        f"views; seeds {', '.join(seeds)}; measured at actnet {', '.join(codes)}.",
        "",
        "| method | model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std | spread |",
        "|---|---|" + "---:|" * (len(seeds) + 3),
    ]
    values = {}
    for method in methods:
        for role in ROLES:
            if not all(role in runs[s]["methods"][method] for s in seeds):
                continue
            v = [100 * runs[s]["methods"][method][role] for s in seeds]
            values[method, role] = v
            std = statistics.stdev(v) if len(v) > 1 else 0.0
            cells = " | ".join(f"{x:.1f}" for x in v)
            lines.append(
                f"| {method} | {role} | {cells} | {statistics.mean(v):.1f} | {std:.1f} | {max(v) - min(v):.1f} |"
            )
    lines += ["", "Mean (std) over the seeds, the paper's ablation layout:", ""]
    lines += ["| method | primary (3D-CNN) | auxiliary (ViT) | ensemble |", "|---|---:|---:|---:|"]
    for method in methods:
        cells = []
        for role in ROLES:
            v = values.get((method, role))
            cells.append(
                "-" if v is None else f"{statistics.mean(v):.1f} ({statistics.stdev(v) if len(v) > 1 else 0:.1f})"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for role in ROLES:  # the best mean per model, and whether it stands clear of the runner-up
        ranked = sorted(((statistics.mean(v), m) for (m, r), v in values.items() if r == role), key=lambda x: -x[0])
        if len(ranked) > 1:
            (best, winner), (_, second) = ranked[0], ranked[1]
            clear = min(values[winner, role]) > max(values[second, role])
            lines.append(
                f"\nBest mean on the {role}: {winner} ({best:.1f}), "
                f"{'every seed above' if clear else 'not clear of'} the runner-up {second}'s best seed."
            )
    lo, hi = wilson_interval(round(0.9 * n), n)
    half = 100 * (hi - lo) / 2
    lines += [
        "",
        f"Noise: with {n} test videos a top-1 of 90% has a 95% interval of {100 * lo:.0f}-{100 * hi:.0f} (Wilson) "
        "from the test set's size alone; the seed spread adds to that. A method *beats* supervised-only below "
        "only when, over at least two seeds, its worst seed is above supervised's best seed and the mean gap is "
        "beyond that interval.",
        "",
    ]
    for method in methods:
        if method == "supervised":
            continue
        for role in ROLES:
            if (method, role) not in values or ("supervised", role) not in values:
                continue
            a, s = values[method, role], values["supervised", role]
            gap, margin = statistics.mean(a) - statistics.mean(s), min(a) - max(s)
            size = "beyond" if abs(gap) > half else "within"
            verdict = "beats" if margin > 0 and size == "beyond" and len(seeds) > 1 else "does not clearly beat"
            lines.append(
                f"- {method}, {role}: {verdict} supervised-only (mean gap {gap:+.1f} points, {size} one test set's "
                f"+-{half:.0f}; worst {method} seed minus best supervised seed {margin:+.1f})."
            )
    minutes = ", ".join(f"{runs[s]['seconds'] / 60:.1f}" for s in seeds)
    lines += [
        "",
        f"Wall minutes per seed ({len(methods)} methods): {minutes}. The first `actnet demo` in a folder also renders "
        "and prepares the set; one at the same code and options reuses the finished runs; wall time on a machine "
        "that ran other work at times, not a benchmark.",
    ]
    return lines


THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)


def measure_pseudo_labels(out: Path, setting: str, seeds: list[int]) -> dict:
    """Precision of `actnet pseudo-label` against the synthetic set's stored labels, from each seed's actnetformer
    run of ``setting`` (its unlabeled videos, 2x1 views as the demo evaluates)."""
    from actnet.labeling import precision_table, score_unlabeled

    found = {}
    for seed in seeds:
        run = out / setting / "runs" / f"actnetformer-seed{seed}"
        if not (run / "last.pt").exists():
            raise SystemExit(f"{run}: no finished run; `tools/results.py --settings {setting}` makes it first")
        scores = score_unlabeled(run)
        [report] = sorted(run.glob("eval-test-*.json"))
        found[str(seed)] = {
            "table": precision_table(scores, list(THRESHOLDS)),
            "trained_at": json.loads(report.read_text()).get("code"),
            "scored_at": code_version(),
        }
    return {"setting": setting, "seeds": found}


def pseudo_label_markdown(measured: dict) -> list[str]:
    seeds = sorted(measured["seeds"], key=int)
    first = measured["seeds"][seeds[0]]
    trained = sorted({measured["seeds"][s]["trained_at"] for s in seeds})
    scored = sorted({measured["seeds"][s]["scored_at"] for s in seeds})
    lines = [
        f"`actnet pseudo-label` on the unlabeled videos of the `{measured['setting']}` setting's actnetformer runs "
        f"(seeds {', '.join(seeds)}; trained at {', '.join(trained)}, scored at {', '.join(scored)}): how many "
        "pseudo-labels a threshold keeps and how many of them are right against the stored labels (mean over "
        "seeds; per seed in results.json). `--agree`: the two models must also predict the same class.",
        "",
        "| threshold | models agree | kept (mean of " + str(first["table"][0]["of"]) + ") | precision |",
        "|---:|---|---:|---:|",
    ]
    for row_index, row in enumerate(first["table"]):
        kept = [measured["seeds"][s]["table"][row_index]["kept"] for s in seeds]
        precisions = [measured["seeds"][s]["table"][row_index]["precision"] for s in seeds]
        known = [p for p in precisions if p is not None]
        precision = f"{100 * statistics.mean(known):.1f}%" if known else "-"
        agree = "yes" if row["agree"] else "-"
        lines.append(f"| {row['threshold']:g} | {agree} | {statistics.mean(kept):.1f} | {precision} |")
    return lines


LABELING_FROM = "demo"  # the setting whose actnetformer runs suggest and pseudo-label start from
ACTIVE_BUDGET = 16  # as many videos again as the 16 labeled ones


def _actnet(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "actnet"), *args], check=True)


def _measured_here(report: Path) -> bool:
    return report.exists() and json.loads(report.read_text()).get("code") == code_version()


def _top1(report: Path) -> dict:
    data = json.loads(report.read_text())
    return {r: data["models"][r]["top1"] for r in ROLES if r in data["models"]}


def measure_active(out: Path, data: dict, seeds: list[int], budget: int, save) -> None:
    """Each strategy of ``actnet suggest`` from each seed's actnetformer run of the demo setting: ``budget`` more
    labeled videos, retrained with the same recipe, seed and steps, test top-1 (module docstring); into
    ``data["active"]``, ``save()`` after each seed."""
    opts = SETTINGS[LABELING_FROM]
    start = out / LABELING_FROM
    shards = start / "shards" / "synthetic" / "split1"
    data["active"] = {"from": LABELING_FROM, "budget": budget, "seeds": {}}
    found = data["active"]["seeds"]
    for seed in seeds:
        recorded = data["settings"].get(LABELING_FROM, {}).get(str(seed))
        if not recorded or recorded["code"] != code_version():  # the starting run, at this code
            recorded = run_setting_seed(out, LABELING_FROM, seed, DEFAULT_METHODS)
            data["settings"].setdefault(LABELING_FROM, {})[str(seed)] = recorded
            save()
        base = start / "runs" / f"actnetformer-seed{seed}"
        folder = out / "active" / f"seed{seed}"
        lists = []
        for strategy in STRATEGIES:
            picks = folder / strategy
            if not _measured_here(folder / "runs" / strategy / "eval-test-2x1.json"):
                shutil.rmtree(picks, ignore_errors=True)
                _actnet(
                    "suggest",
                    str(base),
                    "--budget",
                    str(budget),
                    "--strategy",
                    strategy,
                    "--seed",
                    str(seed),
                    "--out",
                    str(picks),
                )
            lists.append(folder / "lists" / f"active-s{seed}-{strategy}.txt")
            lists[-1].parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(picks / "labeled-next.txt", lists[-1])
        prep = ["prepare", "synthetic", "--out", str(start / "shards"), "--manifests", str(start / "manifests")]
        prep += ["--short-side", "96", "--small-videos", "keep"]
        prep += ["--videos-per-class", str(opts["videos_per_class"]), "--appearance", str(opts["appearance"])]
        _actnet(*prep, *[x for path in lists for x in ("--labeled-list", str(path))])
        labels = {}
        for line in (shards / "manifests" / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            labels[row["key"]] = row["label"]
        classes = json.loads((shards / "train.info.json").read_text())["classes"]
        found[str(seed)] = {"start": recorded["methods"]["actnetformer"], "strategies": {}}
        for strategy, path in zip(STRATEGIES, lists):
            run = folder / "runs" / strategy
            report = run / "eval-test-2x1.json"
            trained = {"code": code_version(), "labeled": path.read_text().split()}
            marker = run / "trained.json"  # written once training finished: what made last.pt
            if not _measured_here(report):
                if not marker.exists() or json.loads(marker.read_text()) != trained:
                    shutil.rmtree(run, ignore_errors=True)
                    train = ["train", "--recipe", "demo", "--data", str(shards), "--out", str(run.parent)]
                    train += ["--labeled", f"labeled-list-{path.stem}", "--name", strategy]
                    _actnet(*train, "--epochs", str(opts["epochs"]), "--seed", str(seed))
                    atomic_write(marker, json.dumps(trained) + "\n")
                _actnet("evaluate", str(run), "--clips", "2", "--crops", "1")  # the demo's views
            rows = [json.loads(x) for x in (folder / strategy / "suggestions.jsonl").read_text().splitlines()]
            truth = [classes[labels[r["key"]]] for r in rows]
            found[str(seed)]["strategies"][strategy] = {
                "top1": _top1(report),
                "code": json.loads(report.read_text())["code"],
                "picked": len(rows),
                "start_wrong": sum(r["ensemble"]["class"] != t for r, t in zip(rows, truth)),
                "classes": len(set(truth)),
                # training's own span, config.yaml (written first) to last.pt: a rerun that reuses the run reports
                # the time it took when it was made
                "seconds": (run / "last.pt").stat().st_mtime - (run / "config.yaml").stat().st_mtime,
            }
        save()


IMAGES = ROOT / "docs" / "images"


def _top_rows(sheet: Path, rows: int, keep: int, to: Path) -> None:
    """The first ``keep`` of a contact sheet's ``rows`` (equal heights), as a JPEG small enough for the README."""
    from PIL import Image

    with Image.open(sheet) as image:
        height = image.height // rows
        image.convert("RGB").crop((0, 0, image.width, height * min(keep, rows))).save(to, quality=85)


def make_pictures(out: Path, seed: int = 0) -> list[Path]:
    """The README's pictures of what comes after training, from seed ``seed``'s actnetformer run of the demo setting
    at the current code: suggest's sheet (disagreement), pseudo-label's sheet (0.8, models agree) and a timeline of
    a video made by concatenating 3 test videos of each of 4 classes (true boundaries every 5.76 s)."""
    from actnet.config import SyntheticConfig
    from actnet.data.synthetic import synthetic_root

    opts = SETTINGS[LABELING_FROM]
    base = out / LABELING_FROM / "runs" / f"actnetformer-seed{seed}"
    made = out / "labeling" / "pictures"
    IMAGES.mkdir(parents=True, exist_ok=True)
    picks = out / "active" / f"seed{seed}" / "disagreement"
    rows = len((picks / "next.txt").read_text().split())
    _top_rows(picks / "suggestions.png", min(rows, 24), 6, IMAGES / "suggest-disagreement.jpg")
    _actnet("pseudo-label", str(base), "--threshold", "0.8", "--agree", "--out", str(made / "pseudo-labels"))
    accepted = len((made / "pseudo-labels" / "accepted.txt").read_text().split())
    _top_rows(made / "pseudo-labels" / "pseudo-labels.png", min(accepted, 16), 6, IMAGES / "pseudo-labels.jpg")
    cfg = SyntheticConfig(appearance=opts["appearance"], videos_per_class=opts["videos_per_class"])
    root = synthetic_root(cfg, None)
    manifest = out / LABELING_FROM / "shards" / "synthetic" / "split1" / "manifests" / "test.jsonl"
    tests = [json.loads(line) for line in manifest.read_text().splitlines()]
    listing = made / "long.txt"
    chosen = []
    for name in ("move_left", "grow", "rotate_cw", "move_up"):
        chosen += [r for r in tests if r["class_name"] == name][:3]
    listing.write_text("".join(f"file '{root / r['path']}'\n" for r in chosen))
    video = made / "long.mp4"
    concat = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    subprocess.run([*concat, "-c", "copy", str(video)], check=True)
    _actnet("predict", str(base), str(video), "--timeline", str(made / "timeline"))
    shutil.copy(made / "timeline" / "long.mp4.timeline.png", IMAGES / "timeline.png")
    return [IMAGES / "suggest-disagreement.jpg", IMAGES / "pseudo-labels.jpg", IMAGES / "timeline.png"]


def active_markdown(measured: dict) -> list[str]:
    seeds = sorted(measured["seeds"], key=int)
    budget, opts = measured["budget"], SETTINGS[measured["from"]]
    codes = sorted({v["code"] for s in seeds for v in measured["seeds"][s]["strategies"].values()})
    lines = [
        f"Does `actnet suggest` save labels? From each seed's actnetformer run of the `{measured['from']}` setting "
        f"(`--labeled {opts['labeled']}`: 16 labeled videos), each strategy picks {budget} more unlabeled videos; "
        "`actnet prepare --labeled-list` makes the bigger labeled set in the same shards, `actnet train` retrains "
        f"from scratch with the same recipe, seed and steps ({opts['epochs']} epochs), `actnet evaluate` scores it on "
        f"the same 96 test videos (2x1 views). Seeds {', '.join(seeds)}; measured at actnet {', '.join(codes)}; "
        "`tools/results.py --labeling` regenerates it.",
        "",
        "Test top-1 (%), mean over seeds (each seed's figure after the slash: " + ", ".join(seeds) + "):",
        "",
        "| labeled videos | strategy | primary | auxiliary | ensemble | picks the start got wrong | classes picked |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]

    def cells(values: list[dict]) -> list[str]:
        out = []
        for role in ROLES:
            v = [100 * x[role] for x in values]
            out.append(f"{statistics.mean(v):.1f} / " + " ".join(f"{x:.0f}" for x in v))
        return out

    start = [measured["seeds"][s]["start"] for s in seeds]
    lines.append("| 16 | (start) | " + " | ".join(cells(start)) + " | - | - |")
    means = {}
    for strategy in STRATEGIES:
        got = [measured["seeds"][s]["strategies"][strategy] for s in seeds]
        means[strategy] = {r: [100 * g["top1"][r] for g in got] for r in ROLES}
        wrong = statistics.mean(g["start_wrong"] for g in got)
        classes = statistics.mean(g["classes"] for g in got)
        lines.append(
            f"| {16 + budget} | {strategy} | "
            + " | ".join(cells([g["top1"] for g in got]))
            + f" | {wrong:.1f} of {budget} | {classes:.1f} of 8 |"
        )
    lines += ["", "Against the start (16 labeled videos), paired by seed (mean gap; each seed's in brackets):", ""]
    for strategy in STRATEGIES:
        said = []
        for role in ROLES:
            gaps = [a - 100 * x[role] for a, x in zip(means[strategy][role], start)]
            said.append(f"{role} {statistics.mean(gaps):+.1f} (" + " ".join(f"{g:+.0f}" for g in gaps) + ")")
        lines.append(f"- {strategy}: " + "; ".join(said) + ".")
    lines += [
        "",
        "Against random, per model (mean gap; a strategy *beats* random only when every seed of it is above "
        "random's best seed):",
        "",
    ]
    for strategy in STRATEGIES:
        if strategy == "random":
            continue
        said = []
        for role in ROLES:
            a, r = means[strategy][role], means["random"][role]
            gap = statistics.mean(a) - statistics.mean(r)
            verdict = "beats" if min(a) > max(r) and len(seeds) > 1 else "does not clearly beat"
            if max(a) < min(r) and len(seeds) > 1:
                verdict = "is beaten by"
            said.append(f"{role} {gap:+.1f} ({verdict} random)")
        lines.append(f"- {strategy}: " + "; ".join(said) + ".")
    seconds = [v["seconds"] for s in seeds for v in measured["seeds"][s]["strategies"].values()]
    lines += [
        "",
        f"Wall minutes per retraining: {statistics.mean(seconds) / 60:.1f} on average, from each run's files "
        "(config.yaml to last.pt), on this machine, which ran little else meanwhile; suggest, prepare and evaluate "
        "add well under a minute.",
    ]
    return lines


def stale_sections(data: dict) -> list[str]:
    """The sections of results.json measured at code other than the current."""
    now, stale = code_version(), []
    for setting, runs in data.get("settings", {}).items():
        if setting in SETTINGS and any(r["code"] != now for r in runs.values()):
            stale.append(setting)
    labels = data.get("pseudo_labels", {}).get("seeds", {}).values()
    if any(v["trained_at"] != now or v["scored_at"] != now for v in labels):
        stale.append("pseudo-labels")
    active = data.get("active", {}).get("seeds", {}).values()
    if any(x["code"] != now for v in active for x in v["strategies"].values()):
        stale.append("active labeling")
    return stale


def markdown(data: dict) -> str:
    m = data.get("machine") or machine_description()
    out = [
        "# Results",
        "",
        "Accuracy of the method and its ablations on the built-in synthetic set, written whole by "
        "`tools/results.py` from [results.json](results.json) (every setting it was run with, each with the "
        "code version it ran at). Speed figures are in [benchmarks.md](benchmarks.md).",
        "",
        "Methods (settings of the demo recipe, actnet/demo.py): **supervised** (labeled videos only), **fixmatch** "
        "(each model pseudo-labels itself: FixMatch on each model alone), **cross-pl** (cross pseudo-labels, no "
        "contrastive term: CMPL-like with our two models), **contrastive** (the contrastive term, no pseudo-labels), "
        "**actnetformer** (both). In runs without cross-teaching or contrastive term the two models never meet, so "
        "their rows are each model trained alone.",
        "",
        f"Machine: {m['cores']} cores, {m['host_cpu']}.",
        "",
        f"Code: this file was written at actnet {code_version()} (the last commit that changed the package). Each "
        "section names the code it was measured at; one measured at another is from older code, until "
        "`tools/results.py` runs it again: " + (", ".join(stale_sections(data)) or "none is") + ".",
    ]
    out += [
        "",
        "Before this tool, `tools/compare_seeds.py` compared only actnetformer with supervised (3 seeds, the "
        "git history of this file holds its tables): on the demo's 192-video set (48 test videos, commit "
        "before 7a16e5e) the gap was within the seed noise (primary 86.1 vs 83.3, auxiliary 86.8 vs 74.3, "
        "ensemble 92.4 vs 88.2, every worst actnetformer seed below the best supervised one); on 384 videos "
        "(96 test videos, commit ed3b0ae) actnetformer was ahead beyond it (96.2 / 92.7 / 96.5 vs 72.9 / 85.8 / "
        "89.2). Both are remeasured below with every ablation.",
    ]
    for setting in SETTINGS:
        runs = data.get("settings", {}).get(setting)
        out += ["", f"## {setting}", ""]
        if not runs:
            out.append(f"Not measured yet: `tools/results.py --settings {setting}`.")
            continue
        out += table(setting, runs)
    out += ["", "## pseudo-labels", ""]
    if data.get("pseudo_labels"):
        out += pseudo_label_markdown(data["pseudo_labels"])
    else:
        out.append("Not measured yet: `tools/results.py --labeling`.")
    out += ["", "## active labeling", ""]
    if data.get("active", {}).get("seeds"):
        out += active_markdown(data["active"])
    else:
        out.append("Not measured yet: `tools/results.py --labeling`.")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"among {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", default=",".join(METHODS), help=f"among {', '.join(METHODS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "results")
    parser.add_argument("--fresh", action="store_true", help="forget the recorded figures of these settings first")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite docs/results.md from results.json")
    parser.add_argument(
        "--pseudo-labels", action="store_true", help="measure pseudo-label precision on the demo runs (no training)"
    )
    parser.add_argument(
        "--labeling", action="store_true", help="measure suggest's strategies (retraining) and pseudo-label precision"
    )
    parser.add_argument("--budget", type=int, default=ACTIVE_BUDGET, help="videos each strategy adds (--labeling)")
    args = parser.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if unknown := [s for s in settings if s not in SETTINGS] + [m for m in methods if m not in METHODS]:
        raise SystemExit(f"unknown setting or method: {', '.join(unknown)}")
    json_path = RESULTS_MD.with_suffix(".json")
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    if "settings" not in data:  # the older layout (compare_seeds.py) held one section and no code versions
        data = {"settings": {}}

    def save() -> None:
        atomic_write(json_path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        atomic_write(RESULTS_MD, markdown(data))

    if not args.markdown_only and not args.pseudo_labels and not args.labeling:
        data["machine"] = machine_description()
        for setting in settings:
            if args.fresh:
                data["settings"].pop(setting, None)
            for seed in args.seeds:
                data["settings"].setdefault(setting, {})[str(seed)] = run_setting_seed(args.out, setting, seed, methods)
                save()
    if args.labeling:
        data["machine"] = machine_description()
        measure_active(args.out, data, args.seeds, args.budget, save)
    if args.labeling or args.pseudo_labels:
        data["pseudo_labels"] = measure_pseudo_labels(args.out, LABELING_FROM, args.seeds)
        save()
    if args.labeling:
        for picture in make_pictures(args.out, args.seeds[0]):
            print(f"picture: {picture}")
    atomic_write(RESULTS_MD, markdown(data))
    print(RESULTS_MD.read_text())


if __name__ == "__main__":
    main()
