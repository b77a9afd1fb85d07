"""What DALI's video decoders read: facts that decide where a shard set can be decoded.

DALI 2.4's CPU decoder (libavcodec) reads VP8, VP9 and MJPEG; its GPU decoder (``mixed``, NVDEC) also reads H.264,
HEVC, AV1 and MPEG-4, but refuses frames smaller than a per-codec minimum that the driver reports
(``cuvidGetDecoderCaps``: nMinWidth x nMinHeight; DALI stops with "Video is too small in at least one
dimension"). The minimums below are the largest seen across GPU generations (H.264 48x16 and MJPEG 64x64 from
nvdecinfo; VP9's 128x128 is the commonly quoted figure, not yet confirmed on a GPU of ours), so a frame of at
least that size decodes on every one of them.
"""

from __future__ import annotations

import math

CPU_DECODER_CODECS = ("vp8", "vp9", "mjpeg")
GPU_DECODER_CODECS = ("vp8", "vp9", "mjpeg", "h264", "hevc", "av1", "mpeg4")
NVDEC_MIN_SIZE = {"vp8": (48, 16), "vp9": (128, 128), "mjpeg": (64, 64), "h264": (48, 16), "hevc": (144, 144)}
NVDEC_MIN_SIZE |= {"av1": (128, 128), "mpeg4": (48, 16)}


def decoders_for(codec: str, width: int, height: int) -> list[str]:
    """``cpu`` and/or ``gpu``: the DALI decoders that read frames of ``width`` x ``height`` in ``codec``."""
    devices = ["cpu"] if codec in CPU_DECODER_CODECS else []
    min_width, min_height = NVDEC_MIN_SIZE.get(codec, (0, 0))
    if codec in GPU_DECODER_CODECS and width >= min_width and height >= min_height:
        devices.append("gpu")
    return devices


def at_least(width: int, height: int, minimum: tuple[int, int]) -> tuple[int, int]:
    """``width`` x ``height`` scaled up (aspect kept, both sides even) until both reach ``minimum``; as it is when
    they already do."""
    scale = max(minimum[0] / width, minimum[1] / height)
    if scale <= 1:
        return width, height
    return 2 * math.ceil(width * scale / 2), 2 * math.ceil(height * scale / 2)
