"""actnet: semi-supervised video action recognition (ActNetFormer, ICPR 2024).

Data flows one way: ``prepare`` (videos -> manifests + WebDataset shards) -> loader -> trainer -> evaluate.
Importing the package is cheap: no torch, DALI or ffmpeg at import time.
"""

__version__ = "0.1.0"
