"""Parameters and FLOPs of every model preset at its default input, as a markdown table.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device (no memory, no compute):
one multiply-add counts as 2 FLOPs; GMACs (what fvcore calls "flops") are half of it.

    python tools/model_table.py --out docs/models.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from actnet.models import PRESETS, create_model


def measure(name: str, num_classes: int) -> dict:
    p = PRESETS[name]
    with torch.device("meta"):
        model = create_model(name, num_classes).eval()
        x = torch.empty(1, 3, p.frames, p.size, p.size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    flops = counter.get_total_flops()
    params = sum(t.numel() for t in model.parameters())
    return {"name": name, "input": f"3x{p.frames}x{p.size}x{p.size}", "params": params, "gflops": flops / 1e9}


def table(num_classes: int) -> str:
    rows = [measure(name, num_classes) for name in PRESETS]
    lines = [
        f"Parameters and compute per clip at {num_classes} classes (one view, batch 1), counted by "
        "`tools/model_table.py` with torch's FlopCounterMode (GFLOPs = 2 x GMACs).",
        "",
        "| preset | description | input (C x T x H x W) | parameters | GFLOPs | GMACs |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['name']}` | {PRESETS[r['name']].description} | {r['input']} | {r['params'] / 1e6:.2f} M | "
            f"{r['gflops']:.2f} | {r['gflops'] / 2:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--out", type=Path, help="write the table to this markdown file")
    args = parser.parse_args()
    text = table(args.classes)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# Model presets\n\n" + text)


if __name__ == "__main__":
    main()
