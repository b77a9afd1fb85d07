#!/usr/bin/env bash
# The GPU path proved in one short run on a lent GPU machine (../shared/GPU.md; README, "Checking a GPU").
#
#   tools/gpu_check.sh pack    here: builds .gpu/ (DALI in parts, the wheels the GPU machine lacks, shard sets)
#   tools/gpu_check.sh run     there: installs from .gpu/, runs every check, writes the results under $OUT
#
# A GPU machine has PyTorch, timm, torchvision and numpy, but no ffmpeg, no DALI and no internet, and each call of
# the device tool carries at most 64 MiB with the working tree. DALI's wheel (190 MiB) is unpacked, trimmed (its
# C++ headers, backends for other Pythons, symbol tables) and xz-compressed to about 110 MiB, in parts of at most
# 60 MiB; PyAV's wheel (which bundles FFmpeg's libraries: the DALI-free loader to compare with) goes in .gpu/av.
# `pack` prints the carry calls (usually three), which must follow each other at once while the machine is warm:
#   1. carry [".gpu/dali.part.aa"]                 command: ls -la .gpu
#   2. carry [".gpu/dali.part.ab"]                 command: ls -la .gpu
#   3. carry [".gpu/av", ".gpu/rest"]              command: bash tools/gpu_check.sh run   (timeout_s 560)
# torchcodec is not carried: it loads the system's FFmpeg libraries (the GPU machine has none) and its CUDA decoding
# needs an FFmpeg built with NVDEC, so PyAV (CPU decoding in a DataLoader) is the alternative measured there.
#
# What `run` does: the steps of PLAN below, most valuable first, each within its budget (`tools/gpu_check.sh plan`
# prints them and the total with the carries, at most 9 minutes): nvidia-smi and versions; actnet doctor; the
# gpu-marked tests (tests/test_gpu.py: NVDEC on VP9 at speeds 6 and 4, H.264 and MJPEG shards, the frames asked for
# including each video's last, all three streams with RandAugment and cutout, bad-sample recovery, this rank's
# device, a frame below NVDEC's minimum); then the benchmark sections one by one on GPU-decodable synthetic shards:
# loader (DALI GPU against PyAV), training, step-options; NVDEC against the CPU decoder on every set; the soak.
# Nothing there needs the ffmpeg binary. What comes back: $OUT/summary.txt (one line per step, with the end of its
# log) and $OUT/gpu-check.tar.gz (every log and benchmarks.md + .json), rewritten after each step, so a run
# cut off early still returns what finished. Copy the archive's benchmarks.md sections into docs/benchmarks.md.
#
# Environment: GPU_PYTHON (pack: the GPU machine's Python, default 3.12), PYTHON (the interpreter to use, default
# .venv/bin/python for pack, python3 for run), GPU_CHECK_BENCH=0 (run: leave the benchmarks out, for a quick look),
# GPU_CHECK_SIMULATE=1 (run: nothing to unpack, this interpreter as it is; tests/test_gpu_check.py uses it with a
# PATH without ffmpeg and GPU_CHECK_BUDGET_SCALE, as a CPU is slower), GPU_CHECK_BENCH_DATA (run: the benchmarks' shards, default .gpu/rest/bench/...).
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
  echo "pack: PyAV (its wheel bundles FFmpeg's libraries: the DALI-free loader the GPU machine can run)"
  mkdir -p "$GPU/av" && "${download[@]}" -d "$GPU/av" av==18.1.1 || exit 1
  echo "pack: shard sets (NVDEC-sized: 256x144 per codec; synthetic scaled up to NVDEC's VP9 minimum)"
  "$python" tests/gpu_sets.py "$GPU/rest/sets" >/dev/null || exit 1
  "$python" -m actnet prepare synthetic --out "$GPU/rest/bench" --manifests "" --cache "$GPU/tmp/cache" \
    --labeled 10% --short-side 96 --small-videos upscale >/dev/null || exit 1
  rm -rf "$GPU/tmp"
  local tree
  tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
  echo "pack: the working tree carries $((tree / 1024)) KiB with every call; the carry calls, back to back:"
  # greedy: each call takes paths while the tree and they stay under 63 MiB; the last call also runs the check
  local sizes
  sizes=$(for p in "$GPU"/dali.part.* "$GPU/av" "$GPU/rest"; do echo "$p $(du -sb "$p" | cut -f1)"; done)
  awk -v tree="$tree" -v limit=$((63 * 1048576)) '
    { if (n && used + $2 > limit) { calls[++c] = line; line = ""; used = tree }
      if (!n) used = tree; n++; used += $2; line = line (line ? ", " : "") "\"" $1 "\"" }
    END { calls[++c] = line
          for (i = 1; i <= c; i++) printf "  %d. carry [%s]  command: %s\n", i, calls[i],
            (i < c ? "ls -la .gpu" : "bash tools/gpu_check.sh run   (timeout_s 560)")
          print c > "'"$GPU"'/carry-calls" }' <<<"$sizes"
  bash "$0" plan
}

# The plan: every step of `run`, most valuable first, each with its budget in seconds (a step past its budget is
# stopped and reported, and the next one starts). With the unpacking and the carry calls it ends within 9 minutes
# of device time, so one lease (15 min, 3-4 of them starting the machine) leaves room for a rerun.
UNPACK_BUDGET=40  # xz -d of DALI and unzipping the wheels, on the GPU machine
CARRY_BUDGET=30   # each carry call: the transfer, its `ls`, the start of the next call
PLAN="
nvidia-smi 10
versions 20
doctor 40
gpu-tests 100
loader 70
training 60
step-options 45
decoders 40
soak 25
"

plan() {  # the plan and its total, counting the carry calls `pack` planned (3 before it has run)
  local calls=3 total=$UNPACK_BUDGET
  [ -f "$GPU/carry-calls" ] && calls=$(cat "$GPU/carry-calls")
  while read -r name seconds; do
    [ -n "$name" ] || continue
    printf '  %-13s %4d s\n' "$name" "$seconds"
    total=$((total + seconds))
  done <<<"$PLAN"
  total=$((total + calls * CARRY_BUDGET))
  printf '  %-13s %4d s\n  %-13s %4d s (%d calls)\ntotal %d s\n' unpack "$UNPACK_BUDGET" carries \
    $((calls * CARRY_BUDGET)) "$calls" "$total"
}

budget() {  # a step's budget; GPU_CHECK_BUDGET_SCALE stretches them for the CPU simulation, never on a GPU machine
  awk -v n="$1" -v k="${GPU_CHECK_BUDGET_SCALE:-1}" '$1 == n { print int($2 * k) }' <<<"$PLAN"
}

pack_results() {  # $OUT keeps two files: summary.txt and one archive of every log and record so far
  tar -C "$RECORDS" -czf "$OUT/gpu-check.tar.gz.tmp" . && mv "$OUT/gpu-check.tar.gz.tmp" "$OUT/gpu-check.tar.gz"
}

step() {  # step NAME COMMAND...: run within the plan's budget, log to NAME.txt in the records, never stop the run
  local name=$1 seconds started=$SECONDS rc
  seconds=$(budget "$name")
  shift
  if ! command -v "$1" >/dev/null; then
    echo "$1: not on PATH" >"$RECORDS/$name.txt"
    rc=127
  else
    timeout -k 5 "$seconds" "$@" >"$RECORDS/$name.txt" 2>&1
    rc=$?
  fi
  local what="exit $rc"
  { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && what="stopped at its budget"
  [ "$rc" = 127 ] && what="not run ($1 not found)"
  echo "$name: $what in $((SECONDS - started)) s (budget $seconds s)" | tee -a "$OUT/summary.txt"
  tail -n 3 "$RECORDS/$name.txt" | cut -c1-200 | sed 's/^/    /' >>"$OUT/summary.txt"
  pack_results
}

bench() {  # bench SECTION: one section of `actnet benchmark all`, recorded in the records' benchmarks.md
  local skip
  skip=$(printf '%s\n' prepare loader decoders training step-options scaling soak | grep -vx "$1" | paste -sd,)
  step "$1" "$python" -m actnet benchmark all --data "$BENCH_DATA" --skip "$skip" --results "$RECORDS/benchmarks.md"
}

run() {
  python=${PYTHON:-python3}
  local site=/tmp/actnet-site
  OUT=${OUT:-/tmp/actnet-gpu-check}
  RECORDS=$(mktemp -d "${TMPDIR:-/tmp}/actnet-gpu-records.XXXXXX")  # packed into $OUT after each step
  BENCH_DATA=${GPU_CHECK_BENCH_DATA:-$PWD/$GPU/rest/bench/synthetic/split1}
  mkdir -p "$OUT" "$RECORDS"
  : >"$OUT/summary.txt"
  if [ "${GPU_CHECK_SIMULATE:-0}" = 1 ]; then
    # CI's stand-in for the GPU machine: this interpreter (its packages stand for the carried ones), the sets named
    # by ACTNET_GPU_SETS, a PATH without ffmpeg; the gpu tests skip themselves and nvidia-smi is not found
    echo "simulated GPU machine ($(command -v ffmpeg >/dev/null && echo "ffmpeg on PATH" || echo "no ffmpeg"))" \
      | tee -a "$OUT/summary.txt"
  else
    local started=$SECONDS
    mkdir -p "$site"
    cat "$GPU"/dali.part.* | xz -d | tar -x -C "$site" || { echo "unpacking DALI failed" | tee -a "$OUT/summary.txt"; exit 1; }
    # wheels are zip files of site-packages: unpacked as they are, no pip needed
    "$python" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
      "$site" "$GPU"/rest/whl/*.whl "$GPU"/av/*.whl || exit 1
    # PyTorch's CUDA wheels make `nvidia` a regular package in site-packages, which would hide this nvidia/dali:
    # this nvidia/ comes first on the path and extends itself with every other nvidia/ folder on it
    echo "__path__ = __import__('pkgutil').extend_path(__path__, __name__)" >"$site/nvidia/__init__.py"
    echo "unpack: $((SECONDS - started)) s (budget $UNPACK_BUDGET s)" | tee -a "$OUT/summary.txt"
    export PYTHONPATH="$site:$PWD" ACTNET_GPU_SETS="$PWD/$GPU/rest/sets"
  fi
  export HOME="$RECORDS.home" PYTHONUNBUFFERED=1  # caches stay out of $OUT (at most 8 files come back)
  mkdir -p "$HOME"
  step nvidia-smi nvidia-smi
  step versions "$python" -c "import sys, torch, nvidia.dali, actnet; print(sys.version, torch.__version__, \
torch.cuda.is_available() and torch.cuda.get_device_name(0), nvidia.dali.__version__, nvidia.dali.__file__, actnet.__file__)"
  step doctor "$python" -m actnet doctor
  step gpu-tests "$python" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
  if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
    bench loader
    bench training
    bench step-options
  fi
  step decoders "$python" - "$ACTNET_GPU_SETS" "$RECORDS/benchmarks.md" <<'EOF'
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
  [ "${GPU_CHECK_BENCH:-1}" != 0 ] && bench soak
  pack_results
  rm -rf "$HOME" "$RECORDS"
  cat "$OUT/summary.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  plan) plan ;;
  *) echo "usage: tools/gpu_check.sh pack|run|plan" >&2; exit 2 ;;
esac
