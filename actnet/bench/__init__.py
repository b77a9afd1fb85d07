"""Benchmarks that print figures and record them in the results file (docs/benchmarks.md + .json).

One module per section of ``actnet benchmark all``: ``prepare`` (prepare against the bare ffmpeg encode),
``loader`` (DALI against the DALI-free ``baseline`` loader), ``decoders`` (DALI's decoders against FFmpeg),
``training`` (the step, starvation, FLOPs, MFU), ``options`` (a ladder of compute options), ``scaling`` and
``soak``; ``common`` holds what they share and ``suite`` runs them. Their extra packages (torchcodec, PyAV,
torchvision) are the ``bench`` extra.
"""

SECTIONS = ("prepare", "loader", "decoders", "training", "step-options", "scaling", "soak")
