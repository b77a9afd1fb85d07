"""NVIDIA DALI decodes and augments the clips: the only module of actnet that imports DALI.

One pipeline graph per stream, the same on both backends: ``fn.decoders.video`` runs ``mixed`` (NVDEC) when
the loader's device is a GPU and ``cpu`` otherwise, and every augmentation follows it on that device.

    external_source (bytes, frames, per-model orders, id, label[, crop positions])      <- sampling.SampleStream
      -> decoders.video(frames=union of the models' frames)                   only the needed frames are decoded
      -> per model: sequence_rearrange(order)                                  that model's T frames, in order
           labeled:    weak                                                    short-side jitter, crop, flip
           unlabeled:  weak, strong                                            strong = its own weak draw +
                                                                               RandAugment (+ cutout)
           eval:       resize short side (test_short_side), K clips x 1 or 3 crops
      -> crop_mirror_normalize -> float (C, T, H, W)

Python (``sampling.py``) picks samples, strides and frames and reads the bytes; DALI never reads files. So the
same code serves local folders and ``s3://`` URLs, ranks split samples exactly, and a batch's ids and labels
travel through the graph beside the clips, so they cannot be misaligned.

Bad data at run time: a sample DALI cannot decode fails its whole batch and invalidates the pipeline. The
loader then decodes each sample of the batches in flight on its own to find the culprit, logs its key and
shard, counts it, leaves it out (training reads the next sample of the epoch order instead), rebuilds the
pipeline and carries on. More than ``max_bad_samples`` such samples stop the run with an error listing them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import torch
from nvidia.dali import Pipeline, fn, pipeline_def, types
from nvidia.dali import ops as dali_ops
from nvidia.dali.auto_aug import rand_augment
from nvidia.dali.plugin.pytorch import feed_ndarray
from nvidia.dali.tensors import TensorGPU

from actnet.config import AugmentConfig, ClipConfig, LoaderConfig
from actnet.data.batch import Batch, Loader, view_names
from actnet.data.codecs import CPU_DECODER_CODECS
from actnet.data.sampling import Job, SampleStream
from actnet.errors import ActnetError, RunFailed
from actnet.runtime import local_rank

log = logging.getLogger("actnet.data")
SAME_FAILURES = 3  # GPU probes that fail alike before the GPU, not the samples, is blamed (GPU-only codecs)


class _Feeder:
    """The ``external_source`` callback: the next list of jobs, as arrays; remembers what is in flight.

    Columns: encoded video, the union of frames to decode, id, label, then each model's order into the union,
    then (evaluation) the crop positions.
    """

    def __init__(
        self,
        jobs: Iterator[list[Job]],
        models: list[str],
        with_crops: bool,
        clean: Callable[[list[Job]], list[Job]] | None = None,  # replaces jobs of samples found bad since
    ):
        self.jobs, self.models, self.with_crops = jobs, models, with_crops
        self.clean = clean
        self.requeued: deque[list[Job]] = deque()
        self.in_flight: deque[list[Job]] = deque()

    def dtypes(self) -> list:
        return (
            [types.UINT8, types.INT32, types.INT64, types.INT32]
            + [types.INT32] * len(self.models)
            + ([types.FLOAT] if self.with_crops else [])
        )

    def __call__(self):
        batch = self.requeued.popleft() if self.requeued else next(self.jobs)  # StopIteration ends an epoch
        if self.clean is not None:
            batch = self.clean(batch)
        self.in_flight.append(batch)
        return self.arrays(batch)

    def arrays(self, batch: list[Job]) -> tuple:
        cols: list[list] = [[] for _ in self.dtypes()]
        for job in batch:
            union, orders = job.union()
            row = [np.frombuffer(job.video, np.uint8), np.asarray(union, np.int32)]
            row += [np.asarray([job.id], np.int64), np.asarray([job.label], np.int32)]
            row += [np.asarray(orders[m], np.int32) for m in self.models]
            if self.with_crops:
                row.append(np.asarray(job.crops, np.float32))
            for col, value in zip(cols, row):
                col.append(value)
        return tuple(cols)


def _error_summary(err: Exception) -> str:
    """The informative line of a DALI pipeline error (they start with several generic lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if "encountered:" in lines and lines.index("encountered:") + 1 < len(lines):
        line = lines[lines.index("encountered:") + 1]
        return line.split('" failed: ', 1)[-1][:300]
    generic = ("Critical error", "Current pipeline", "File ", "C++ context")
    useful = [line for line in lines if not line.startswith(generic)]
    return (useful[-1] if useful else type(err).__name__)[:300]


def _normalize(x, mean, std, **crop):
    return fn.crop_mirror_normalize(
        x,
        mean=[255 * m for m in mean],
        std=[255 * s for s in std],
        dtype=types.FLOAT,
        output_layout="CFHW",
        **crop,
    )


def _short_side_jitter(clip, size: int, aug: AugmentConfig):
    lo, hi = aug.scale
    shorter = fn.random.uniform(range=[lo * size, hi * size]) if hi > lo else float(lo * size)  # DALI wants lo < hi
    return fn.resize(clip, resize_shorter=shorter, antialias=False)


def _flip_draw(aug: AugmentConfig):
    return fn.random.coin_flip() if aug.flip else 0


def _random_pos():
    return fn.random.uniform(range=[0.0, 1.0])


def weak_view(clip, clip_cfg: ClipConfig, aug: AugmentConfig, mean, std):
    """Short-side scale jitter, random crop, horizontal flip: one draw for all frames of the clip."""
    x = _short_side_jitter(clip, clip_cfg.size, aug)
    size = clip_cfg.size
    return _normalize(
        x, mean, std, crop=(size, size), crop_pos_x=_random_pos(), crop_pos_y=_random_pos(), mirror=_flip_draw(aug)
    )


def strong_view(clip, clip_cfg: ClipConfig, aug: AugmentConfig, mean, std):
    """Its own weak draw, then RandAugment on the uint8 frames (same ops for every frame), then cutout."""
    size = clip_cfg.size
    x = _short_side_jitter(clip, size, aug)
    x = fn.crop(x, crop=(size, size), crop_pos_x=_random_pos(), crop_pos_y=_random_pos())
    if aug.flip:
        x = fn.flip(x, horizontal=fn.random.coin_flip())
    if aug.rand_augment_n:
        interp = types.INTERP_NN if aug.rand_augment_interp == "nearest" else types.INTERP_LINEAR
        x = rand_augment.rand_augment(
            x, n=aug.rand_augment_n, m=aug.rand_augment_m, shape=(size, size), interp_type=interp
        )
    if aug.cutout:
        side = max(1, round(aug.cutout * size))
        anchor = fn.random.uniform(range=[0.0, float(size - side)], shape=[2])
        x = fn.erase(x, anchor=anchor, shape=[side, side], axis_names="HW", fill_value=128)
    return _normalize(x, mean, std)


def eval_views(clip, clip_cfg: ClipConfig, crops, num_crops: int, mean, std) -> list:
    """Short side resized to ``clip_cfg.test_scale`` (the crop size unless ``test_short_side`` is set), then 1 or 3
    crops of the crop size of all K*T frames: each (C, K*T, S, S)."""
    size = clip_cfg.size
    x = fn.resize(clip, resize_shorter=clip_cfg.test_scale, antialias=True)
    views = [
        _normalize(x, mean, std, crop=(size, size), crop_pos_x=crops[j, 0], crop_pos_y=crops[j, 1])
        for j in range(num_crops)
    ]
    return views


@contextlib.contextmanager
def _quiet_dali_aliases():
    """DALI 2.4's own ``auto_aug`` calls ops by deprecated ``experimental`` aliases and forces the warning past
    any filter; silence it while our graphs are traced (our code calls no deprecated op)."""
    original = getattr(dali_ops, "_handle_op_deprecation", None)
    if original is not None:
        dali_ops._handle_op_deprecation = lambda *args, **kwargs: None
    try:
        yield
    finally:
        if original is not None:
            dali_ops._handle_op_deprecation = original


def _build(graph, **kwargs) -> Pipeline:
    with _quiet_dali_aliases():
        pipe = pipeline_def(graph, **kwargs)()
        pipe.build()
    return pipe


class DaliLoader(Loader):
    """Batches of one stream (``labeled``, ``unlabeled`` or ``eval``) as torch tensors, decoded by DALI.

    Training streams are endless (take ``steps_per_epoch`` batches per epoch); evaluation streams end after
    one pass over this rank's samples.
    """

    def __init__(
        self, stream: SampleStream, cfg: LoaderConfig, device: str = "cpu", *, epoch: int = 0, device_id: int = 0
    ):
        super().__init__(stream)
        self.cfg, self.device, self.epoch = cfg, device, epoch
        self.device_id = device_id  # the GPU the pipelines and their tensors live on (torchrun: LOCAL_RANK)
        self.models = list(stream.clips)
        self._rebuilds = 0
        self._probes: list[str | None] = []  # every probe's outcome: None (decodes) or the decoder's message

    # ------------------------------------------------------------------------------------------------ graph

    def _pipeline(self, feeder: _Feeder, batch_size: int, seed: int) -> Pipeline:
        cfg, kind = self.cfg, self.kind
        gpu = self.device == "gpu"

        def graph():
            dtypes = feeder.dtypes()
            inputs = fn.external_source(source=feeder, num_outputs=len(dtypes), batch=True, dtype=dtypes)
            video, frames, ids, labels, *rest = inputs
            orders, crops = rest[: len(self.models)], rest[len(self.models) :]
            decoded = _decoder(video, frames, gpu)
            outputs = [ids, labels]
            for model, order in zip(self.models, orders):
                clip_cfg = self.stream.clips[model]
                clip = fn.sequence_rearrange(decoded, new_order=order)
                if kind == "eval":
                    outputs += eval_views(clip, clip_cfg, crops[0], self.stream.eval_crops, cfg.mean, cfg.std)
                    continue
                outputs.append(weak_view(clip, clip_cfg, cfg.augment, cfg.mean, cfg.std))
                if kind == "unlabeled":
                    outputs.append(strong_view(clip, clip_cfg, cfg.augment, cfg.mean, cfg.std))
            return tuple(outputs)

        return _build(
            graph,
            batch_size=batch_size,
            num_threads=cfg.num_threads,
            device_id=self.device_id if gpu else None,
            seed=seed,
            prefetch_queue_depth=cfg.prefetch,
            enable_conditionals=kind == "unlabeled" and cfg.augment.rand_augment_n > 0,
        )

    # ------------------------------------------------------------------------------------------- iteration

    def _seed(self, epoch: int, skip: int) -> int:
        tag = {"labeled": 1, "unlabeled": 2, "eval": 3}[self.kind]
        mixed = np.random.SeedSequence([self.cfg.seed, tag, self.stream.rank, epoch, skip, self._rebuilds])
        return int(mixed.generate_state(1)[0] & 0x7FFFFFFF)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate(self.epoch)

    def iterate(self, epoch: int, skip: int = 0) -> Iterator[Batch]:
        """Batches from batch ``skip`` of ``epoch`` on, with augmentation seeded by (seed, stream, rank, epoch,
        skip): two iterations started at the same place give the same batches, which is what makes a resumed
        training run repeat an uninterrupted one (the trainer restarts its loaders at every checkpoint).

        Training streams (labeled, unlabeled) never end: they run on into the next epochs, so take
        ``steps_per_epoch`` batches and close the iterator; only evaluation stops after its last batch."""
        feeder = _Feeder(self.stream.batches(epoch, skip), self.models, self.kind == "eval", clean=self._clean)
        pipe = self._pipeline(feeder, self.stream.batch_size, self._seed(epoch, skip))
        while True:
            try:
                outputs = pipe.run()
            except StopIteration:
                return
            except RuntimeError as err:
                failure = err.with_traceback(None)  # its frames would keep the failed pipeline alive
            else:
                yield self._batch(outputs, feeder.in_flight.popleft())
                continue
            del pipe  # release the failed pipeline (its threads, its device memory) before probing and rebuilding
            self._recover(feeder, failure)
            self._rebuilds += 1
            pipe = self._pipeline(feeder, self.stream.batch_size, self._seed(epoch, skip))

    def _batch(self, outputs, jobs: list[Job]) -> Batch:
        ids, labels, *views = (self._to_torch(o) for o in outputs)
        ids, labels = ids.reshape(-1).cpu(), labels.reshape(-1).long().cpu()
        if ids.tolist() != [j.id for j in jobs]:  # cannot happen unless DALI reorders a batch
            raise RuntimeError("DALI returned a batch out of order")
        named = {}
        if self.kind == "eval":  # per model, one (B, C, K*T, S, S) output per crop -> (B, K*crops, C, T, S, S)
            crops, k = self.stream.eval_crops, self.stream.eval_clips
            for m, model in enumerate(self.models):
                v = torch.stack(views[m * crops : (m + 1) * crops], dim=1)  # (B, crops, C, K*T, S, S)
                b, _, c, kt, s1, s2 = v.shape
                v = v.view(b, crops, c, k, kt // k, s1, s2).transpose(1, 3).transpose(2, 3)  # (B, K, crops, C, ...)
                named[model, "eval"] = v.reshape(b, k * crops, c, kt // k, s1, s2)
        else:
            named = dict(zip(view_names(self.kind, self.models), views))
        strides = {m: [j.strides[m] for j in jobs] for m in self.models}
        frames = {m: [j.frames[m] for j in jobs] for m in self.models}
        return Batch(named, labels, ids, [j.key for j in jobs], strides, frames)

    def _to_torch(self, tensor_list) -> torch.Tensor:
        t = tensor_list.as_tensor()
        dtype = {
            types.FLOAT: torch.float32,
            types.INT32: torch.int32,
            types.INT64: torch.int64,
            types.UINT8: torch.uint8,
        }[t.dtype]
        if not isinstance(t, TensorGPU):  # ids and labels stay on the CPU; so does everything of a CPU pipeline
            out = torch.empty(t.shape(), dtype=dtype)
            feed_ndarray(t, out)
            return out
        device = torch.device("cuda", self.device_id)  # the pipeline's own GPU, whatever torch's current one is
        out = torch.empty(t.shape(), dtype=dtype, device=device)
        feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(device))
        return out

    # ------------------------------------------------------------------------------------------- bad data

    def _recover(self, feeder: _Feeder, err: Exception) -> None:
        """Find which in-flight samples fail to decode, leave them out, requeue the rest; stop with one error when
        it is the device that fails, not the samples (see :meth:`_judge`)."""
        suspects = list(feeder.in_flight)
        feeder.in_flight.clear()
        found = False
        for batch in suspects:
            good = []
            for job in self._clean(batch):
                while job is not None and (problem := self._probe_logged(job)) is not None:
                    self._judge(job, problem)
                    found = True
                    self._leave_out(job, problem)
                    job = self.stream.replacement(job)  # training: the next good sample; evaluation: none
                if job is not None:
                    good.append(job)
            if good:
                feeder.requeued.append(good)
        if not found:  # the failure is not a sample's fault: do not hide it
            raise err

    def _probe_logged(self, job: Job) -> str | None:
        problem = self.probe(job)
        self._probes.append(problem)
        return problem

    def _judge(self, job: Job, problem: str) -> None:
        """Raise DeviceFault when a GPU decode failure is the GPU's: the sample decodes on the CPU decoder, or (for
        codecs only the GPU reads) the first :data:`SAME_FAILURES` probes all failed with this same message."""
        if self.device != "gpu":
            return
        codec = self.stream.shards.codec
        if codec in CPU_DECODER_CODECS:
            if self.probe(job, "cpu") is None:
                raise DeviceFault(self._gpu_name(), codec, problem, f"sample {job.key} decodes on the CPU")
        elif len(self._probes) >= SAME_FAILURES and all(p == problem for p in self._probes[:SAME_FAILURES]):
            raise DeviceFault(self._gpu_name(), codec, problem, f"the first {SAME_FAILURES} samples probed fail alike")

    def _gpu_name(self) -> str:
        try:
            return f"cuda:{self.device_id} ({torch.cuda.get_device_name(self.device_id)})"
        except (RuntimeError, AssertionError, ValueError):
            return f"cuda:{self.device_id}"

    def _clean(self, batch: list[Job]) -> list[Job]:
        """``batch`` without samples already found bad (planned before they were): replaced in training."""
        if not self.stream.bad or all(job.id not in self.stream.bad for job in batch):
            return batch
        kept = [job if job.id not in self.stream.bad else self.stream.replacement(job) for job in batch]
        return [job for job in kept if job is not None]

    def _leave_out(self, job: Job, problem: str) -> None:
        shard = self.stream.shards.samples[job.id].shard
        self.bad.append({"key": job.key, "shard": shard, "error": problem})
        log.warning("skipping sample %s (%s): it does not decode: %s", job.key, shard, problem)
        if len(self.bad) > self.cfg.max_bad_samples:
            keys = ", ".join(f"{b['key']} ({b['shard']})" for b in self.bad)
            raise ActnetError(
                f"{len(self.bad)} samples failed to decode, more than max_bad_samples={self.cfg.max_bad_samples}: "
                f"{keys}; last error: {problem}"
            )
        self.stream.mark_bad(job.id)

    def probe(self, job: Job, device: str | None = None) -> str | None:
        """Decode one sample's frames on their own (on ``device``, default the loader's); the decoder's error
        message, or None when they decode."""
        union = job.union()[0]
        try:
            decoded = decode_frames(job.video, union, device or self.device, self.device_id)
        except DecodeError as err:
            return err.reason
        if len(decoded) != len(union):
            return f"decoded {len(decoded)} frames, wanted {len(union)}"
        return None


def dali_version() -> str:
    import nvidia.dali

    return nvidia.dali.__version__


class DecodeError(ActnetError):
    """DALI could not decode a video; ``reason`` is DALI's own line."""

    def __init__(self, device: str, reason: str):
        super().__init__(f"DALI {device} decoder: {reason}")
        self.reason = reason


class DeviceFault(RunFailed):
    """The GPU decoder cannot do its work on this GPU (a codec or size it refuses, a broken CUDA context): no sample
    is to blame, so the run stops with what to do."""

    def __init__(self, gpu: str, codec: str, problem: str, evidence: str):
        super().__init__(
            f"the GPU video decoder on {gpu} fails on {codec} videos ({evidence}): {problem}; "
            "run `actnet doctor` to see what this GPU decodes, or use --device cpu"
            + (" (VP9, VP8 and MJPEG shards decode on the CPU)" if codec not in CPU_DECODER_CODECS else "")
        )


def _decoder(video, frames, gpu: bool):
    """DALI's video decoder on the given frames: NVDEC (``mixed``) or the CPU. A frame index past the end of the
    video is an error (``pad_mode="none"``), never a silent black frame: wrong frame counts in a sample's metadata
    then fail that sample, which the loader names and leaves out."""
    return fn.decoders.video(video, device="mixed" if gpu else "cpu", frames=frames, pad_mode="none")


def decode_frames(video: bytes, frames: list[int], device: str = "cpu", device_id: int | None = None) -> np.ndarray:
    """Frames ``frames`` of one encoded video as uint8 (F, H, W, 3), decoded by DALI on ``cpu`` or ``gpu``
    (NVDEC, on GPU ``device_id``; default this process's ``LOCAL_RANK``) in a pipeline of its own; raises
    DecodeError with DALI's reason when it cannot (the loader's probe of a suspect sample, ``actnet doctor``, the
    decoder comparisons)."""
    data, index = np.frombuffer(video, np.uint8), np.asarray(frames, np.int32)
    gpu = device == "gpu"

    def graph():
        v, f = fn.external_source(source=lambda: ([data], [index]), num_outputs=2, batch=True)
        return _decoder(v, f, gpu)

    try:
        pipe = _build(
            graph,
            batch_size=1,
            num_threads=1,
            device_id=(local_rank() if device_id is None else device_id) if gpu else None,
            prefetch_queue_depth=1,
        )
        (decoded,) = pipe.run()
    except RuntimeError as err:
        raise DecodeError(device, _error_summary(err)) from None
    out = decoded.as_cpu() if gpu else decoded
    return np.array(out.as_tensor())[0]


# ----------------------------------------------------------------------------------- reading, measured alone


def time_reading(batch_size: int, batches: int, num_threads: int, *, feed=None, native: dict | None = None) -> float:
    """Seconds to bring ``batches`` batches of encoded samples into a DALI pipeline, after one warm-up batch.

    ``feed`` is an iterator of lists of encoded videos (numpy uint8) for ``external_source``; ``native`` holds
    ``paths``, ``index_paths`` and ``ext`` for DALI's own ``fn.readers.webdataset``. Only the bytes' sizes
    leave the pipeline, so what is timed is reading.
    """

    def graph():
        if native is not None:
            video = fn.readers.webdataset(
                paths=native["paths"], index_paths=native["index_paths"], ext=[native["ext"]], name="reader"
            )
        else:
            video = fn.external_source(source=feed, batch=True, dtype=types.UINT8)
        return fn.shapes(video)

    pipe = _build(graph, batch_size=batch_size, num_threads=num_threads, device_id=None, prefetch_queue_depth=2)
    pipe.run()
    started = time.perf_counter()
    for _ in range(batches):
        pipe.run()
    return time.perf_counter() - started
