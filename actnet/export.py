"""``actnet export``: one model or the ensemble to TorchScript and ONNX, with its input contract beside it.

The exported graph takes preprocessed clips, float (B, 3, T, S, S) in NCTHW order, RGB scaled to 0..1 and
normalised with the run's mean/std (``actnet predict`` and ``actnet evaluate`` make exactly these), and
returns logits; the ensemble takes one clip per model (their strides differ) and also returns the mean of
the two softmaxes. ``<name>.json`` beside the files says all of it: inputs, frames, size, strides (or
time-based rates), mean/std, class names, outputs, how videos were decoded, and where the weights came from.

    export_checkpoint("runs/demo/actnetformer-seed0", "exported/", model="ensemble")
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from actnet import __version__
from actnet.checkpoint import load_checkpoint, trained_models
from actnet.errors import ActnetError
from actnet.files import atomic_path, atomic_write, require_folder

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 18


class Ensemble(nn.Module):
    """Both models on their own clips: (primary logits, auxiliary logits, mean softmax)."""

    def __init__(self, primary: nn.Module, auxiliary: nn.Module):
        super().__init__()
        self.primary, self.auxiliary = primary, auxiliary

    def forward(self, primary_clip: torch.Tensor, auxiliary_clip: torch.Tensor):
        a, b = self.primary(primary_clip), self.auxiliary(auxiliary_clip)
        return a, b, (a.softmax(-1) + b.softmax(-1)) / 2


def _module_and_contract(ckpt: dict, which: str, use_ema: bool) -> tuple[nn.Module, dict]:
    cfg = ckpt["run_config"]
    models, weights = trained_models(ckpt, torch.device("cpu"), use_ema)
    if which == "ensemble" and len(models) < 2:
        raise ActnetError("--model ensemble: this run trained one model; export --model primary")
    if which not in ("ensemble", *models):
        raise ActnetError(f"--model must be one of ensemble, {', '.join(models)}; not {which!r}")
    roles = list(models) if which == "ensemble" else [which]
    clip_cfgs = {"primary": cfg.loader.primary, "auxiliary": cfg.loader.auxiliary}
    inputs = []
    for role in roles:
        c = clip_cfgs[role]
        inputs.append(
            {
                "name": f"{role}_clip",
                "model": ckpt["presets"][role],
                "shape": ["batch", 3, c.frames, c.size, c.size],
                "layout": "NCTHW",
                "frames": c.frames,
                "size": c.size,
                "stride": c.test_stride if not c.fps else None,
                "fps": list(c.fps) or None,
                "test_short_side": c.test_scale,
            }
        )
    outputs = [f"{r}_logits" for r in roles] + (["ensemble_probs"] if which == "ensemble" else [])
    module = Ensemble(models["primary"], models["auxiliary"]) if which == "ensemble" else models[which]
    contract = {
        "format": "actnet.export/1",
        "actnet_version": __version__,
        "model": which,
        "inputs": inputs,
        "outputs": outputs,
        "dtype": "float32",
        "pixels": "RGB, divided by 255, then (x - mean) / std per channel",
        "mean": list(cfg.loader.mean),
        "std": list(cfg.loader.std),
        "class_names": ckpt["class_names"],
        "evaluation": {
            "clips": cfg.eval.clips,
            "crops": cfg.eval.crops,
            "views": "K clips evenly spaced over the video; short side resized (antialiased) to test_short_side; "
            "1 centre crop or 3 along the long side; a video's prediction is the mean softmax over its views",
        },
        "decode": ckpt.get("encode") or {},
        "source": {"step": ckpt["step"], "weights": weights},
    }
    return module.eval(), contract


def example_inputs(contract: dict, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *i["shape"][1:], generator=gen) for i in contract["inputs"])


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    model: str = "ensemble",
    formats: tuple[str, ...] = FORMATS,
    use_ema: bool = True,
) -> dict[str, Path]:
    """Write ``<name>.torchscript.pt`` and/or ``<name>.onnx`` and ``<name>.json`` to ``out_dir``; returns the paths."""
    for f in formats:
        if f not in FORMATS:
            raise ActnetError(f"--format must be among {', '.join(FORMATS)}, not {f!r}")
    ckpt = load_checkpoint(checkpoint)
    module, contract = _module_and_contract(ckpt, model, use_ema)
    out_dir = Path(out_dir)
    require_folder(out_dir, "--out").mkdir(parents=True, exist_ok=True)
    name = f"actnet-{model}"
    args = example_inputs(contract, batch=2)
    in_names = [i["name"] for i in contract["inputs"]]
    written = {}
    with torch.no_grad():
        if "torchscript" in formats:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic: the shapes are fixed
                traced = torch.jit.trace(module, args, check_trace=False)
            path = out_dir / f"{name}.torchscript.pt"
            with atomic_path(path) as tmp:
                traced.save(str(tmp))
            written["torchscript"] = path
        if "onnx" in formats:
            written["onnx"] = _export_onnx(module, args, in_names, contract["outputs"], out_dir / f"{name}.onnx")
    contract["files"] = {k: p.name for k, p in written.items()}
    contract["onnx_opset"] = ONNX_OPSET if "onnx" in written else None
    written["contract"] = atomic_write(out_dir / f"{name}.json", json.dumps(contract, indent=1) + "\n")
    return written


def _export_onnx(module: nn.Module, args, in_names: list[str], out_names: list[str], path: Path) -> Path:
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ActnetError("ONNX export needs onnx and onnxscript: pip install 'actnet[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = tuple({0: batch} for _ in in_names)  # by position: the arguments' names differ per model
    for noisy in ("torch.onnx", "torch.export", "onnxscript"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                args,
                input_names=in_names,
                output_names=out_names,
                dynamic_shapes=dynamic,
                opset_version=ONNX_OPSET,
                dynamo=True,
                verbose=False,
            )
        except Exception as err:  # noqa: BLE001 - the exporter raises many kinds; one line names the cause
            cause = err.__cause__ or err
            raise ActnetError(f"{path.name}: ONNX export failed: {str(cause).splitlines()[0][:300]}") from None
    with atomic_path(path) as tmp:
        program.save(str(tmp))
    return path
