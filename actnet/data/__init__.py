"""Data, from video files to batches, and nothing of models or training.

The prepare side: ``sources`` (data set layouts), ``synthetic``, ``splits`` (labeled subsets), ``manifest``,
``media`` (ffprobe/ffmpeg), ``shards`` (tars, DALI index files, info.json) and ``storage`` (local or s3). The
loading side: ``sampling`` (which samples, frames and bytes each rank reads), ``batch`` (the contract), ``loader``
(``make_loader``), ``dali`` (decoding and augmenting; the only module that imports DALI) and ``views`` (evaluation's
views in torch, for frames that do not come through DALI).
"""
