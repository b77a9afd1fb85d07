#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine with Python >= 3.10:
# the system ffmpeg, a virtual environment, PyTorch and actnet with its dev extras.
# Fast when already done: a stamp keyed on pyproject.toml and this script skips the pip work.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# torch's cu130 build matches nvidia-dali-cuda130 and runs on CPU too; override for other platforms.
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "setup: installing ffmpeg (Debian package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

stamp="$VENV/.actnet-installed"
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "setup: installing $TORCH_SPEC into $VENV"
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q $TORCH_SPEC 2>&1 | grep -v "is ignored: it is neither" || true
echo "setup: installing actnet[dev]"
"$VENV/bin/pip" install -q -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
"$VENV/bin/python" -c "import actnet, torch, nvidia.dali, webdataset, ffmpeg, typer, rich, boto3" \
  || { echo "setup: the environment in $VENV is incomplete" >&2; exit 1; }
echo "$want" > "$stamp"
