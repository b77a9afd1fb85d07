"""Closed sets of values (:class:`Choice` enums, declared once: configs hold their string value, the CLI offers
the enum) and the codec tables."""

from __future__ import annotations

from enum import Enum

from actnet.errors import ActnetError


class Choice(str, Enum):
    """A closed set of string values."""

    @classmethod
    def check(cls, value: str, flag: str) -> str:
        """``value`` when it is one of the choices, else an error naming ``flag``."""
        values = [c.value for c in cls]
        if value not in values:
            raise ActnetError(f"{flag} must be one of {', '.join(values)}, not {value!r}")
        return value


class Codec(Choice):
    vp9 = "vp9"  # decodes on DALI's CPU and GPU backends
    h264 = "h264"  # GPU (NVDEC) only
    mjpeg = "mjpeg"


class Verify(Choice):
    full = "full"  # decode every encoded frame
    packets = "packets"  # demux only


class SmallVideos(Choice):
    upscale = "upscale"  # scale videos below the smallest frame NVDEC decodes up to it: the set decodes everywhere
    keep = "keep"  # store them as they are: the set then decodes on the CPU only (info.json says so)


class Device(Choice):
    auto = "auto"  # the GPU when there is one
    cpu = "cpu"
    gpu = "gpu"


class Teaching(Choice):
    cross = "cross"  # each model pseudo-labels the other (ActNetFormer, CMPL)
    self = "self"  # each model pseudo-labels itself (FixMatch)
    none = "none"  # supervised only


class Negatives(Choice):
    global_ = "global"  # every rank's videos: one objective whatever the number of GPUs
    local = "local"  # this rank's videos only (the per-rank form, for ablation)


class TeacherMode(Choice):
    train = "train"  # pseudo-labels from the training forward (FixMatch: one pass, drop-path and BN batch stats on)
    eval = "eval"  # pseudo-labels from a separate no-grad forward in eval mode (no drop-path/dropout, BN running stats)


class Optimizer(Choice):
    sgd = "sgd"
    adamw = "adamw"


class Precision(Choice):
    auto = "auto"  # bf16 autocast on a GPU, fp32 on the CPU
    fp32 = "fp32"
    bf16 = "bf16"


class Interpolation(Choice):
    nearest = "nearest"
    linear = "linear"


class Engine(Choice):
    local = "local"  # --workers threads on this machine, each running ffmpeg
    ray = "ray"  # Ray tasks across a cluster (pip install 'actnet[ray]'); sources must be reachable from every node


class HmdbPool(Choice):
    """HMDB-51's training pool: tag 1 only, or tags 0 and 1 (the semi-supervised protocol)."""

    train = "train"
    all_non_test = "all-non-test"


CODEC_EXTENSION = {"vp9": "webm", "h264": "mp4", "mjpeg": "avi"}
# Quality when --crf is not given: libvpx-vp9 crf, libx264 crf, mjpeg qscale (2 best .. 31 worst).
DEFAULT_QUALITY = {"vp9": 32, "h264": 23, "mjpeg": 3}
