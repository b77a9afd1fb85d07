"""Where researchers run: logs that are files, two "nodes" on this machine, restarts under torchrun, signals
before a time limit, and --dry-run. Every launch here is a real torchrun with gloo on 127.0.0.1."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import TINY, tiny_config
from rich.console import Console
from typer.testing import CliRunner

from actnet.cli import app
from actnet.progress import RichSink

pytestmark = pytest.mark.slow
runner = CliRunner()
SETS = [*TINY, "train.epochs=6", "train.steps_per_epoch=3", "train.eval_every=0", "train.keep=1"]


def _train_args(shards: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for s in SETS for a in ("--set", s)]
    return ["train", "--data", str(shards), "--labeled", "1/class", "--out", str(out), "--name", "r", *sets, *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(launcher: list[str], args: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "actnet", *args]
    # one thread per process: the two "nodes" share this machine's cores as one launch's processes do
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACTNET_CPU_THREADS": "1", "NO_COLOR": "1"}
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def _finish(proc: subprocess.Popen, log: Path, timeout: int = 400) -> str:
    proc.wait(timeout=timeout)
    text = log.read_text()
    assert proc.returncode == 0, text[-5000:]
    return text


def _one_launch(args, log, nproc=2, extra=()):
    port = _free_port()
    rdzv = ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id=one-{port}"]
    return _torchrun(["--nnodes=1", f"--nproc-per-node={nproc}", *rdzv, *extra], args, log)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    return {f"{role}.{k}": v for role, state in ckpt["models"].items() for k, v in state.items()} | {
        "step": torch.tensor(ckpt["step"])
    }


def _losses(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, different[:5]
    assert _losses(a) == _losses(b)


@pytest.fixture(scope="module")
def one_launch(shards, tmp_path_factory) -> Path:
    """The reference: one torchrun launch, two processes, uninterrupted; trained, then evaluated."""
    out = tmp_path_factory.mktemp("one-launch")
    _finish(_one_launch(_train_args(shards, out), out / "train.log"), out / "train.log")
    evaluate = ["evaluate", str(out / "r"), "--clips", "1", "--crops", "1", "--out", str(out / "eval")]
    _finish(_one_launch(evaluate, out / "eval.log"), out / "eval.log")
    return out


def test_two_nodes_train_and_evaluate_like_one_launch(one_launch, shards, tmp_path):
    """Two torchrun launches (one process each) meeting by the c10d rendezvous, as on two machines."""
    port = _free_port()

    def launch(args, log):
        rdzv = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}"]
        return _torchrun([*rdzv, f"--rdzv-id=job-{port}"], args, log)

    nodes = [launch(_train_args(shards, tmp_path), tmp_path / f"node{i}.log") for i in range(2)]
    for i, node in enumerate(nodes):
        _finish(node, tmp_path / f"node{i}.log")
    _assert_same_run(one_launch / "r", tmp_path / "r")
    port = _free_port()
    evaluate = ["evaluate", str(tmp_path / "r"), "--clips", "1", "--crops", "1", "--out", str(tmp_path / "eval")]
    nodes = [launch(evaluate, tmp_path / f"eval{i}.log") for i in range(2)]
    for i, node in enumerate(nodes):
        _finish(node, tmp_path / f"eval{i}.log")
    ours, theirs = (json.loads((d / "eval" / "eval-test-1x1.json").read_text()) for d in (tmp_path, one_launch))
    assert ours["models"] == theirs["models"] and ours["videos"] == theirs["videos"]


def _workers(proc: subprocess.Popen) -> dict[int, psutil.Process]:
    """torchrun's worker processes by their RANK."""
    found = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            env = child.environ()
        except psutil.Error:
            continue
        if "RANK" in env and "actnet" in " ".join(child.cmdline()):
            found[int(env["RANK"])] = child
    return found


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_killed_worker_restarts_the_group_which_resumes_and_ends_identical(one_launch, shards, tmp_path):
    log = tmp_path / "train.log"
    proc = _one_launch(_train_args(shards, tmp_path, "--resume", "auto"), log, extra=["--max-restarts=1"])
    run = tmp_path / "r"
    _wait_for(lambda: any(run.glob("step-*.pt")) and len(_workers(proc)) == 2, proc)
    _workers(proc)[1].kill()  # SIGKILL: no handler, no checkpoint, mid-step
    text = _finish(proc, log)
    assert "resuming from" in text  # the restarted group found the checkpoint
    _assert_same_run(one_launch / "r", run)


def test_sigterm_checkpoints_at_the_next_step_and_exits_cleanly(shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    args = _train_args(shards, tmp_path, "--set", "train.epochs=50")
    proc = subprocess.Popen([sys.executable, "-m", "actnet", *args], env=env, stdout=subprocess.PIPE, text=True)
    metrics = tmp_path / "r" / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert time.monotonic() - sent < 30
    step = torch.load(tmp_path / "r" / "last.pt", map_location="cpu", weights_only=True)["step"]
    assert 0 < step < 150 and f"stopped by SIGTERM at step {step} of 150" in out
    assert _losses(tmp_path / "r")[-1][0] == step  # logged up to the step it saved, not beyond
    # the requeued job continues from there (here for three more steps)
    resumed = runner.invoke(app, [*args, "--set", f"train.max_steps={step + 3}", "--resume", "auto"])
    assert resumed.exit_code == 0, resumed.output
    assert torch.load(tmp_path / "r" / "last.pt", map_location="cpu", weights_only=True)["step"] == step + 3
    steps = [s for s, _ in _losses(tmp_path / "r")]
    assert steps == list(range(1, step + 4))  # every step logged once


def test_sigusr1_to_the_workers_of_a_ddp_run_stops_every_rank_at_one_step(shards, tmp_path):
    log = tmp_path / "train.log"
    proc = _one_launch(_train_args(shards, tmp_path, "--set", "train.epochs=50"), log)
    metrics = tmp_path / "r" / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, proc)
    _workers(proc)[1].send_signal(signal.SIGUSR1)  # one rank only: the ranks still agree
    text = _finish(proc, log, timeout=120)
    step = torch.load(tmp_path / "r" / "last.pt", map_location="cpu", weights_only=True)["step"]
    assert 0 < step < 150 and f"at step {step} of 150" in text
    assert "stopped by a signal to another rank" in text  # rank 0 reports; rank 1 got the signal


def test_plain_status_lines_when_stdout_is_not_a_terminal(shards, tmp_path, capsys):
    from actnet.train import Trainer

    cfg = tiny_config(shards, tmp_path, "plain", "train.print_every=5", "train.eval_every=0")
    Trainer(cfg, progress=True).fit()  # pytest's captured stdout is not a terminal
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/12", "6/12", "11/12", "12/12"]
    for field in ("ep ", "loss ", "sup ", "mask ", "clips/s", "data ", "rss ", "lr ", "eta "):
        assert field in lines[-1], (field, lines[-1])


def test_the_bar_and_no_plain_lines_on_a_terminal(shards, tmp_path, capsys, monkeypatch):
    import rich

    from actnet.train import Trainer

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200)
    monkeypatch.setattr(rich, "get_console", lambda: terminal)
    Trainer(tiny_config(shards, tmp_path, "bar", "train.eval_every=0"), progress=True).fit()
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert "bar" in screen.getvalue() and "clips/s" in screen.getvalue()


@pytest.mark.parametrize("terminal", [False, True])
def test_prepare_and_evaluate_progress_in_both_modes(terminal):
    screen = io.StringIO()
    sink = RichSink(Console(file=screen, force_terminal=terminal, width=200), unit="videos", every_s=3600)
    with sink:
        sink.start("train: encoding", 40)
        for _ in range(40):
            sink.advance()
        sink.start("evaluate test", 3)
        sink.advance(3)
    lines = screen.getvalue().splitlines()
    plain = [line for line in lines if line.startswith(("train: encoding: ", "evaluate test: "))]
    if terminal:
        assert not plain and "━" in screen.getvalue()
    else:  # a line to start each phase, then every 10% (4 videos), the last at 100%
        assert plain[0] == "train: encoding: 40 videos" and len(plain) == 1 + 10 + 2
        assert plain[10].startswith("train: encoding: 40/40 (100%), ") and plain[-1].startswith("evaluate test: 3/3")


def test_dry_run_prints_the_plan_and_writes_nothing(shards, tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(app, [*_train_args(shards, out), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in (
        "dry run:",
        "labeled-1perclass-seed0: 3 videos",
        "train: 9 videos",
        "3 per epoch x 6 epochs = 18",
        "clips per step",
        "time per step",
        "estimate",
        "batch_size: 2",
        "primary: r3d_tiny",
    ):
        assert text in result.output, text
    assert not out.exists()
