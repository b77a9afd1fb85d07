#!/usr/bin/env bash
# The GPU path proved in one short run on a lent GPU machine (../shared/GPU.md; README, "Checking a GPU").
#
#   tools/gpu_check.sh pack    here: builds .gpu/ (DALI in parts, the wheels the GPU machine lacks, shard sets)
#   tools/gpu_check.sh run     there: installs from .gpu/, runs every check, writes the results under $OUT
#
# A GPU machine has PyTorch, timm, torchvision and numpy, but no ffmpeg, no DALI and no internet, and each call of
# the device tool carries at most 64 MiB with the working tree. DALI's wheel (190 MiB) is unpacked, trimmed (its
# C++ headers, backends for other Pythons, symbol tables) and xz-compressed to about 110 MiB, in parts of at most
# 60 MiB. So the carry plan is three calls, back to back while the machine stays warm:
#   1. carry [".gpu/dali.part.aa"]                        command: ls -la .gpu
#   2. carry [".gpu/dali.part.ab"]                        command: ls -la .gpu
#   3. carry [".gpu/dali.part.ac", ".gpu/rest"]           command: bash tools/gpu_check.sh run   (timeout 580)
# (`pack` prints the parts it made; if there are only two, the second call carries .gpu/rest and runs.)
#
# What `run` does, each step under its own time limit so that results come back within one call (about 8 min):
# actnet doctor; the gpu-marked tests (tests/test_gpu.py: NVDEC on VP9 at speeds 6 and 4, H.264 and MJPEG shards,
# the frames asked for including each video's last, all three streams with RandAugment and cutout for 20 batches,
# bad-sample recovery, this rank's device, a frame below NVDEC's minimum); NVDEC against the CPU decoder on every
# set; and `actnet benchmark all --skip prepare,scaling` on GPU-decodable synthetic shards, the GPU rows of
# docs/benchmarks.md. Copy $OUT/benchmarks.md's sections into docs/benchmarks.md afterwards.
#
# Environment: GPU_PYTHON (pack: the GPU machine's Python, default 3.12), PYTHON (the interpreter to use, default
# .venv/bin/python for pack, python3 for run), GPU_CHECK_BENCH=0 (run: leave the benchmarks out, for a quick look).
set -uo pipefail
cd "$(dirname "$0")/.."
GPU=.gpu
PART=60M

pack() {
  local python=${PYTHON:-.venv/bin/python} version=${GPU_PYTHON:-3.12}
  command -v xz >/dev/null && command -v strip >/dev/null || { echo "pack needs xz and strip (binutils)" >&2; exit 2; }
  grep -qx "/$GPU/" .git/info/exclude 2>/dev/null || echo "/$GPU/" >> .git/info/exclude
  rm -rf "$GPU" && mkdir -p "$GPU/rest/whl" "$GPU/tmp"
  local download=("$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$version"
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
  echo "pack: DALI for Python $version"
  "${download[@]}" -d "$GPU/tmp" nvidia-dali-cuda130==2.4.0 || exit 1
  mkdir "$GPU/tmp/site" && (cd "$GPU/tmp/site" && unzip -q ../nvidia_dali_cuda130-*.whl) || exit 1
  local tag="cpython-${version/./}"
  rm -rf "$GPU/tmp/site/nvidia/dali/include"
  find "$GPU/tmp/site/nvidia/dali" -maxdepth 1 -name "*.cpython-*.so" ! -name "*${tag}-*" -delete
  find "$GPU/tmp/site" -name "*.so*" -type f -exec strip --strip-unneeded {} +
  echo "pack: compressing DALI ($(du -sh "$GPU/tmp/site" | cut -f1) unpacked)"
  tar -C "$GPU/tmp/site" -cf - . | xz -T0 -9e | split -b "$PART" - "$GPU/dali.part."
  # What DALI, actnet and pytest need beyond the GPU machine's PyTorch, timm, torchvision and numpy (DALI opens
  # nvimgcodec and nvcomp only for image decoding and inflation, which actnet does not use).
  "${download[@]}" -d "$GPU/rest/whl" astunparse gast libcst makefun nvtx optree packaging six typer annotated-doc \
    pydantic pydantic-core typing-inspection annotated-types rich markdown-it-py mdurl pygments shellingham click \
    webdataset braceexpand pyyaml ffmpeg-python future psutil pytest iniconfig pluggy pytest-timeout || exit 1
  echo "pack: shard sets (NVDEC-sized: 256x144 per codec; synthetic scaled up to NVDEC's VP9 minimum)"
  "$python" tests/gpu_sets.py "$GPU/rest/sets" >/dev/null || exit 1
  "$python" -m actnet prepare synthetic --out "$GPU/rest/bench" --manifests "" --cache "$GPU/tmp/cache" \
    --labeled 10% --short-side 96 --small-videos upscale >/dev/null || exit 1
  rm -rf "$GPU/tmp"
  local tree
  tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
  echo "pack: the working tree carries $((tree / 1024)) KiB with every call"
  ls -la "$GPU"/dali.part.* | awk '{printf "  %-24s %5.1f MiB\n", $9, $5 / 1048576}'
  echo "  $GPU/rest                $(du -sm "$GPU/rest" | cut -f1) MiB"
}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt, never stop the run
  local name=$1 seconds=$2
  shift 2
  local started=$SECONDS
  timeout "$seconds" "$@" >"$OUT/$name.txt" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
}

run() {
  local python=${PYTHON:-python3} site=/tmp/actnet-site
  OUT=${OUT:-/tmp/actnet-gpu-check}
  mkdir -p "$OUT" "$site"
  : >"$OUT/summary.txt"
  cat "$GPU"/dali.part.* | xz -d | tar -x -C "$site" || { echo "unpacking DALI failed" | tee -a "$OUT/summary.txt"; exit 1; }
  # wheels are zip files of site-packages: unpacked as they are, no pip needed
  "$python" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
    "$site" "$GPU"/rest/whl/*.whl || exit 1
  # PyTorch's CUDA wheels make `nvidia` a regular package in site-packages, which would hide this nvidia/dali:
  # this nvidia/ comes first on the path and extends itself with every other nvidia/ folder on it
  echo "__path__ = __import__('pkgutil').extend_path(__path__, __name__)" >"$site/nvidia/__init__.py"
  export PYTHONPATH="$site:$PWD" ACTNET_GPU_SETS="$PWD/$GPU/rest/sets" HOME="$OUT/home"
  mkdir -p "$HOME"
  step nvidia-smi 30 nvidia-smi
  step versions 60 "$python" -c "import sys, torch, nvidia.dali, actnet; print(sys.version, torch.__version__, \
torch.cuda.is_available() and torch.cuda.get_device_name(0), nvidia.dali.__version__, nvidia.dali.__file__, actnet.__file__)"
  step doctor 120 "$python" -m actnet doctor
  step gpu-tests 240 "$python" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
  step decoders 120 "$python" - "$PWD/$GPU/rest/sets" "$OUT/benchmarks.md" <<'EOF'
import sys
from pathlib import Path
import torch
from actnet.bench.common import record
from actnet.bench.decoders import benchmark_decoders, decoders_markdown
from actnet.errors import ActnetError
sets, results = Path(sys.argv[1]), Path(sys.argv[2])
gpu = torch.cuda.is_available()
for folder in sorted(sets.iterdir()):  # NVDEC against the CPU decoder, frames spread over each video, the last included
    try:
        result = benchmark_decoders(str(folder / "videos" / "split1"), "train", 6, gpu=gpu, frames_per_sample=12)
    except ActnetError as err:  # H.264 where no FFmpeg-based decoder loads: tests/test_gpu.py checks its frames
        print(f"{folder.name}: {err}")
        continue
    if gpu:
        result["device"] = torch.cuda.get_device_name()
    text = decoders_markdown(result, f"the GPU check's {folder.name} set (256x144)")
    record(f"decoders-{folder.name}", text, result, results)
    print(text)
EOF
  if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
    step benchmarks 330 "$python" -m actnet benchmark all --data "$GPU/rest/bench/synthetic/split1" \
      --skip prepare,scaling --results "$OUT/benchmarks.md"
  fi
  cat "$OUT/summary.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: tools/gpu_check.sh pack|run" >&2; exit 2 ;;
esac
