"""After training, measured for docs/results.md (``tools/results.py --labeling``, see its docstring): whether
``actnet suggest``'s strategies save labels (each strategy's picks added, retrained, evaluated), the precision of
``actnet pseudo-label`` against the stored labels, and the README's pictures of both and of ``predict --timeline``."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from actnet import code_version
from actnet.files import atomic_write
from actnet.labeling import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("primary", "auxiliary", "ensemble")


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


ACTIVE_BUDGET = 16  # as many videos again as the 16 labeled ones


def _actnet(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "actnet"), *args], check=True)


def _measured_here(report: Path) -> bool:
    return report.exists() and json.loads(report.read_text()).get("code") == code_version()


def _top1(report: Path) -> dict:
    data = json.loads(report.read_text())
    return {r: data["models"][r]["top1"] for r in ROLES if r in data["models"]}


def measure_active(out: Path, setting: str, opts: dict, data: dict, seeds: list[int], budget: int, starting, save):
    """Each strategy of ``actnet suggest`` from each seed's actnetformer run of ``setting`` (``starting(seed)``: its
    recorded figures at the current code, made first where needed): ``budget`` more labeled videos, retrained with
    the same recipe, seed and steps, test top-1 (module docstring); into ``data["active"]``, ``save()`` after each
    seed."""
    start = out / setting
    shards = start / "shards" / "synthetic" / "split1"
    data["active"] = {"from": setting, "budget": budget, "seeds": {}}
    found = data["active"]["seeds"]
    for seed in seeds:
        recorded = starting(seed)
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


def make_pictures(out: Path, setting: str, opts: dict, seed: int = 0) -> list[Path]:
    """The README's pictures of what comes after training, from seed ``seed``'s actnetformer run of the demo setting
    at the current code: suggest's sheet (disagreement), pseudo-label's sheet (0.8, models agree) and a timeline of
    a video made by concatenating 3 test videos of each of 4 classes (true boundaries every 5.76 s)."""
    from actnet.config import SyntheticConfig
    from actnet.data.synthetic import synthetic_root

    base = out / setting / "runs" / f"actnetformer-seed{seed}"
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
    manifest = out / setting / "shards" / "synthetic" / "split1" / "manifests" / "test.jsonl"
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


def active_markdown(measured: dict, opts: dict) -> list[str]:
    """The active-labeling section; ``opts``: the starting setting's options."""
    seeds = sorted(measured["seeds"], key=int)
    budget = measured["budget"]
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
