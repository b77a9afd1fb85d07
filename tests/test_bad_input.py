"""Every bad input a user can give is one line naming the file, flag or URL, with the documented exit status
(2: bad input, 1: a run that failed after starting), and never a traceback. One row per case: a new case is one
line here.

Placeholders in the arguments: {data} a sound prepared output (never changed), {ckpt} a trained checkpoint,
{tmp} this case's own folder, {copy} a private copy of {data} the case's ``setup`` may damage, {videos} a
class-per-folder tree of videos.
"""

import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from actnet.cli import app
from actnet.data.storage import S3_TIMEOUT_ENV

runner = CliRunner()


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    says: str  # what the one error line must contain
    setup: object = None  # setup(tmp, copy): makes the bad input
    env: dict = field(default_factory=dict)
    s3: bool = False  # needs the local S3 server (env points at it)


# ---------------------------------------------------------------------------------------------- bad inputs made


def _file(name: str, data: bytes = b"not a folder"):
    def setup(tmp: Path, copy: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return setup


def _write(rel: str, data: bytes | str):
    def setup(tmp: Path, copy: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def _in_copy(change):
    def setup(tmp: Path, copy: Path) -> None:
        change(copy)

    return setup


def _truncate(name: str, size: int):
    return _in_copy(lambda copy: os.truncate(copy / name, size))


def _remove(name: str):
    return _in_copy(lambda copy: (copy / name).unlink())


def _edit_info(set_name: str, **changes):
    def change(copy: Path) -> None:
        path = copy / f"{set_name}.info.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return _in_copy(change)


def _classes_renamed(copy: Path) -> None:
    path = copy / "test.info.json"
    info = json.loads(path.read_text())
    info["classes"] = [f"other_{c}" if i == 0 else c for i, c in enumerate(info["classes"])]
    path.write_text(json.dumps(info))


def _video_garbled(copy: Path) -> None:
    from conftest import with_one_sample_changed

    scratch = copy.parent / "rewritten"
    scratch.mkdir()
    with_one_sample_changed(copy, "train", scratch, lambda m: {**m, "webm": m["webm"][:300]})
    for path in scratch.iterdir():
        shutil.move(path, copy / path.name)


def _checkpoint_changed(change):
    def setup(tmp: Path, copy: Path) -> None:
        ckpt = torch.load(CKPT[0], map_location="cpu", weights_only=True)
        change(ckpt)
        torch.save(ckpt, tmp / "changed.pt")

    return setup


def _drop_first_weight(ckpt: dict) -> None:
    first = next(iter(ckpt["models"]["primary"]))
    del ckpt["models"]["primary"][first]
    if ckpt.get("ema"):
        del ckpt["ema"]["primary"][first]


def _run_with_checkpoint(tmp: Path, copy: Path) -> None:
    run = tmp / "runs" / "r"
    run.mkdir(parents=True)
    shutil.copy(CKPT[0], run / "last.pt")


def _plan(**changes):
    def setup(tmp: Path, copy: Path) -> None:
        plan = json.loads((copy / "plan.json").read_text())
        (copy / "plan.json").write_text(json.dumps({**plan, **changes}))

    return setup


def _kinetics(csv_text: bytes):
    def setup(tmp: Path, copy: Path) -> None:
        (tmp / "k").mkdir()
        (tmp / "k.csv").write_bytes(csv_text)

    return setup


def _tree_without_classes(tmp: Path, copy: Path) -> None:
    (tmp / "empty" / "loose").mkdir(parents=True)
    (tmp / "empty" / "readme.txt").write_text("no videos")


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


CKPT: list[Path] = []  # the trained checkpoint, set by the module fixture (setups read it)
TRAIN = ["train", "--data", "{data}", "--labeled", "1/class", "--out", "{tmp}/runs", "--name", "r"]
PREP = ["prepare", "folder", "--root", "{tmp}/videos", "--out", "{tmp}/out", "--manifests", ""]
EVAL = ["evaluate", "{ckpt}", "--clips", "1", "--crops", "1", "--out", "{tmp}"]
CSV_HEAD = b"label,youtube_id,time_start,time_end,split\n"

CASES = [
    # the command line itself
    Case("unknown command", ["frobnicate"], 2, "No such command"),
    Case("unknown option", ["train", "--bogus"], 2, "No such option: --bogus"),
    Case("bad choice", ["train", "--device", "tpu"], 2, "'tpu'"),
    Case("bad integer", ["train", "--epochs", "many"], 2, "'--epochs'"),
    Case("missing argument", ["evaluate"], 2, "Missing argument"),
    Case("option without value", ["prepare", "folder", "--root"], 2, "requires an argument"),
    Case("unknown source", ["prepare", "nowhere"], 2, "No such command"),
    Case("bad codec", ["prepare", "folder", "--root", "{tmp}", "--codec", "av1"], 2, "'av1'"),
    # prepare: flags and roots
    Case("root missing", ["prepare", "folder", "--root", "{tmp}/nope"], 2, "--root {tmp}/nope: not a folder"),
    Case("root is a file", ["prepare", "folder", "--root", "{tmp}/f"], 2, "not a folder", _file("f")),
    Case("labeled bare number", [*PREP, "--labeled", "3"], 2, "--labeled '3'"),
    Case("labeled over 100%", [*PREP, "--labeled", "150%"], 2, "--labeled"),
    Case("shard size words", [*PREP, "--shard-size", "lots"], 2, "--shard-size"),
    Case("part beyond parts", [*PREP, "--part", "3/2"], 2, "--part"),
    Case("part not i/k", [*PREP, "--part", "x"], 2, "--part"),
    Case("test fraction > 1", [*PREP, "--test-fraction", "1.5"], 2, "--test-fraction"),
    Case("reject fraction > 1", [*PREP, "--max-reject-fraction", "2"], 2, "--max-reject-fraction"),
    Case("negative workers", [*PREP, "--workers", "-1"], 2, "--workers"),
    Case("labeled list missing", [*PREP, "--labeled-list", "{tmp}/no.txt"], 2, "--labeled-list {tmp}/no.txt"),
    Case(
        "no class folders", ["prepare", "folder", "--root", "{tmp}/empty"], 2, "no class folders", _tree_without_classes
    ),
    Case("ucf split 4", ["prepare", "ucf101", "--root", "{tmp}", "--split", "4"], 2, "--split must be 1, 2 or 3"),
    Case("ucf splits missing", ["prepare", "ucf101", "--root", "{videos}", "--splits", "{tmp}/s"], 2, "--splits"),
    Case("hmdb no split files", ["prepare", "hmdb51", "--root", "{tmp}", "--splits", "{tmp}"], 2, "_test_split1.txt"),
    Case(
        "kinetics csv missing", ["prepare", "kinetics", "--root", "{tmp}", "--annotations", "{tmp}/a.csv"], 2, "a.csv"
    ),
    Case(
        "kinetics csv columns",
        ["prepare", "kinetics", "--root", "{tmp}/k", "--annotations", "{tmp}/k.csv"],
        2,
        "missing columns",
        _kinetics(b"label,id\nx,y\n"),
    ),
    Case(
        "kinetics csv all rows bad",
        ["prepare", "kinetics", "--root", "{tmp}/k", "--annotations", "{tmp}/k.csv"],
        2,
        "no videos found",
        _kinetics(CSV_HEAD + b"abseiling,\xff\xfe,0,10,train\nabseiling,abc,soon,10,train\n"),
    ),
    Case("folder name climbs", ["prepare", "folder", "--root", "{videos}", "--name", "../up"], 2, "not a plain name"),
    Case("synthetic no classes", ["prepare", "synthetic", "--classes", "0", "--out", "{tmp}"], 2, "classes"),
    # prepare: where it writes
    Case("out is a file", ["prepare", "folder", "--root", "{videos}", "--out", "{tmp}/f"], 2, "is a file", _file("f")),
    Case(
        "out under a file",
        ["prepare", "folder", "--root", "{videos}", "--out", "{tmp}/f/x"],
        2,
        "lies under",
        _file("f"),
    ),
    Case(
        "manifests is a file",
        ["prepare", "folder", "--root", "{videos}", "--out", "{tmp}/o", "--manifests", "{tmp}/f"],
        2,
        "--manifests {tmp}/f: is a file",
        _file("f"),
    ),
    Case("s3 url without bucket", ["prepare", "folder", "--root", "{videos}", "--out", "s3://"], 2, "needs a bucket"),
    # merge
    Case("merge without plan", ["prepare", "merge", "{tmp}"], 2, "no plan.json"),
    Case("merge crafted dataset", ["prepare", "merge", "{copy}"], 2, "not a plain name", _plan(dataset="../../.ssh")),
    Case("merge crafted split", ["prepare", "merge", "{copy}"], 2, "not a plain name", _plan(split="/etc")),
    Case(
        "merge garbage plan",
        ["prepare", "merge", "{copy}"],
        2,
        "not a readable actnet plan",
        _in_copy(lambda c: (c / "plan.json").write_text("{oops")),
    ),
    Case("merge unfinished parts", ["prepare", "merge", "{copy}"], 2, "not finished", _plan(parts=3)),
    # train: flags, recipes, overrides
    Case("train without data", ["train"], 2, "--data is required"),
    Case("train data missing", ["train", "--data", "{tmp}/none"], 2, "no such shard set"),
    Case(
        "labeled set not prepared",
        [*TRAIN[:3], "--labeled", "7%"],
        2,
        "labeled-7pct-seed0.info.json: no such shard set",
    ),
    Case("recipe missing", ["train", "--recipe", "{tmp}/r.yaml", "--data", "{data}"], 2, "r.yaml"),
    Case(
        "recipe not yaml",
        ["train", "--recipe", "{tmp}/r.yaml", "--data", "{data}"],
        2,
        "r.yaml",
        _write("r.yaml", "a: [1, 2\n"),
    ),
    Case(
        "recipe not a mapping",
        ["train", "--recipe", "{tmp}/r.yaml", "--data", "{data}"],
        2,
        "r.yaml",
        _write("r.yaml", "- 1\n"),
    ),
    Case(
        "recipe unknown key",
        ["train", "--recipe", "{tmp}/r.yaml", "--data", "{data}"],
        2,
        "unknown config key 'trian'",
        _write("r.yaml", "trian: {}\n"),
    ),
    Case("set unknown key", [*TRAIN, "--set", "optim.primary.lrr=1"], 2, "did you mean"),
    Case("set without value", [*TRAIN, "--set", "optim.primary.lr"], 2, "optim.primary.lr"),
    Case("set float as word", [*TRAIN, "--set", "optim.primary.lr=fast"], 2, "optim.primary.lr: expected a number"),
    Case("set int as word", [*TRAIN, "--set", "loader.batch_size=x"], 2, "loader.batch_size: expected int"),
    Case("set nan", [*TRAIN, "--set", "objective.threshold=nan"], 2, "objective.threshold: expected a number"),
    Case("set zero epochs", [*TRAIN, "--set", "train.epochs=0"], 2, "epochs"),
    Case("set mapping for number", [*TRAIN, "--set", "optim.primary.lr={{a: 1}}"], 2, "optim.primary.lr"),
    Case("resume missing", [*TRAIN, "--resume", "{tmp}/none.pt"], 2, "no such checkpoint"),
    Case(
        "resume random bytes",
        [*TRAIN, "--resume", "{tmp}/x.pt"],
        2,
        "not a readable checkpoint",
        _file("x.pt", os.urandom(4096)),
    ),
    Case(
        "resume weights misfit",
        [*TRAIN, "--resume", "{tmp}/changed.pt"],
        2,
        "the weights do not fit",
        _checkpoint_changed(_drop_first_weight),
    ),
    Case("train out is a file", [*TRAIN[:-4], "--out", "{tmp}/f", "--name", "r"], 2, "lies under the file", _file("f")),
    Case("run already trained", TRAIN, 2, "already holds a checkpoint", _run_with_checkpoint),
    # train: damaged shard sets
    Case(
        "missing index",
        [*TRAIN[:2], "{copy}", *TRAIN[3:]],
        2,
        "train-000000.idx: missing index file",
        _remove("train-000000.idx"),
    ),
    Case("truncated tar", [*TRAIN[:2], "{copy}", *TRAIN[3:]], 2, "(truncated)", _truncate("train-000001.tar", 1024)),
    Case(
        "missing tar", [*TRAIN[:2], "{copy}", *TRAIN[3:]], 2, "train-000001.tar: missing", _remove("train-000001.tar")
    ),
    Case(
        "garbage info",
        [*TRAIN[:2], "{copy}", *TRAIN[3:]],
        2,
        "not a readable shard set description",
        _in_copy(lambda c: (c / "train.info.json").write_text("[]")),
    ),
    Case(
        "index count differs",
        [*TRAIN[:2], "{copy}", *TRAIN[3:]],
        2,
        "do not add up",
        _edit_info("train", num_samples=99),
    ),
    # evaluate, export, predict: checkpoints
    Case("evaluate missing", ["evaluate", "{tmp}/none.pt"], 2, "no such checkpoint"),
    Case(
        "evaluate random bytes",
        ["evaluate", "{tmp}/x.pt"],
        2,
        "not a readable checkpoint",
        _file("x.pt", os.urandom(4096)),
    ),
    Case(
        "evaluate a torch file",
        ["evaluate", "{tmp}/t.pt"],
        2,
        "not an actnet training checkpoint",
        lambda tmp, copy: torch.save({"a": torch.zeros(2)}, tmp / "t.pt"),
    ),
    Case(
        "evaluate incomplete",
        ["evaluate", "{tmp}/changed.pt"],
        2,
        "incomplete actnet checkpoint (no models)",
        _checkpoint_changed(lambda c: c.pop("models")),
    ),
    Case(
        "evaluate weights misfit",
        ["evaluate", "{tmp}/changed.pt", "--data", "{data}"],
        2,
        "the weights do not fit",
        _checkpoint_changed(_drop_first_weight),
    ),
    Case(
        "evaluate other classes",
        [*EVAL, "--data", "{copy}"],
        2,
        "other classes than the checkpoint's",
        _in_copy(_classes_renamed),
    ),
    Case(
        "evaluate fewer classes",
        [*EVAL, "--data", "{copy}"],
        2,
        "2 classes, the checkpoint's models know 3",
        _edit_info("test", classes=["a", "b"], class_counts=[1, 1]),
    ),
    Case("evaluate no such set", [*EVAL, "--data", "{data}", "--set", "nope"], 2, "nope.info.json: no such shard set"),
    Case("evaluate two crops", [*EVAL, "--crops", "2", "--data", "{data}"], 2, "--crops (eval.crops) must be 1 or 3"),
    Case(
        "evaluate out is a file", ["evaluate", "{ckpt}", "--out", "{tmp}/f"], 2, "--out {tmp}/f: is a file", _file("f")
    ),
    Case(
        "export random bytes",
        ["export", "{tmp}/x.pt", "--out", "{tmp}/e"],
        2,
        "not a readable checkpoint",
        _file("x.pt", os.urandom(512)),
    ),
    Case("predict no such file", ["predict", "{ckpt}", "{tmp}/none.mp4"], 2, "no such file or folder"),
    Case("predict no videos", ["predict", "{ckpt}", "{tmp}"], 2, "no video files"),
    Case(
        "predict corrupt video",
        ["predict", "{ckpt}", "{tmp}/bad.mp4"],
        1,
        "bad.mp4: ",
        _file("bad.mp4", os.urandom(3000)),
    ),
    # inspect and verify
    Case("inspect empty folder", ["inspect", "{tmp}"], 2, "no shard sets here"),
    Case(
        "sheet of unknown set",
        ["inspect", "{data}", "--contact-sheet", "{tmp}/s.png", "--set", "nope"],
        2,
        "--set 'nope'",
    ),
    Case(
        "sheet truncated tar",
        ["inspect", "{copy}", "--contact-sheet", "{tmp}/s.png"],
        2,
        "(truncated)",
        _truncate("train-000000.tar", 700),
    ),
    Case(
        "sheet garbled video",
        ["inspect", "{copy}", "--contact-sheet", "{tmp}/s.png", "--clips", "1"],
        2,
        "does not decode",
        _in_copy(_video_garbled),
    ),
    Case("verify empty folder", ["verify", "{tmp}"], 2, "no shard sets here"),
    Case("verify unknown set", ["verify", "{data}", "--set", "nope"], 2, "nope.info.json: no such shard set"),
    Case("verify damaged", ["verify", "{copy}", "--quick"], 1, "damaged shard(s)", _truncate("test-000000.tar", 100)),
    # object storage
    Case(
        "s3 no such bucket", [*TRAIN[:2], "s3://no-such-bucket-x/d", *TRAIN[3:]], 1, "no such bucket (endpoint", s3=True
    ),
    Case("s3 no such prefix", ["inspect", "s3://{bucket}/nothing"], 2, "no shard sets here", s3=True),
    Case(
        "s3 bad timeout",
        ["inspect", "s3://{bucket}/d"],
        2,
        f"{S3_TIMEOUT_ENV}='soon'",
        env={S3_TIMEOUT_ENV: "soon"},
        s3=True,
    ),
    Case(
        "s3 no credentials",
        ["inspect", "s3://{bucket}/d"],
        1,
        "no S3 credentials",
        env={
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_CONFIG_FILE": "/nonexistent",
        },
        s3=True,
    ),
    Case(
        "s3 refused", ["inspect", "s3://{bucket}/d"], 1, "cannot connect", env={"AWS_ENDPOINT_URL": "CLOSED"}, s3=True
    ),
    Case(
        "s3 out refused",
        ["prepare", "folder", "--root", "{videos}", "--out", "s3://{bucket}/o"],
        1,
        "cannot connect",
        env={"AWS_ENDPOINT_URL": "CLOSED"},
        s3=True,
    ),
]


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> Path:
    from actnet.train import Trainer

    out = tmp_path_factory.mktemp("bad-input-run")
    Trainer(tiny_config(shards, out, "run", "train.max_steps=1", "train.eval_every=0"), progress=False).fit()
    CKPT[:] = [out / "run" / "last.pt"]
    return CKPT[0]


def test_the_table_is_long_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line(case: Case, shards, synthetic_tree, trained, tmp_path, request):
    copy = tmp_path / "copy" / "videos" / "split1"
    shutil.copytree(shards, copy)
    work = tmp_path / "case"
    work.mkdir()
    env = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "300"}
    places = {"data": str(shards), "ckpt": str(trained), "tmp": str(work), "copy": str(copy), "bucket": ""}
    places["videos"] = str(synthetic_tree)
    if case.s3:
        places["bucket"] = request.getfixturevalue("s3_bucket")
        env[S3_TIMEOUT_ENV] = "6"
    if case.setup is not None:
        case.setup(work, copy)
    env.update({k: (_closed_port() if v == "CLOSED" else v) for k, v in case.env.items()})
    args = [a.format(**places) for a in case.args]
    result = runner.invoke(app, args, env=env)
    output = result.output
    says = case.says.format(**places)
    assert result.exit_code == case.code, f"exit {result.exit_code}\n{output[-3000:]}\n{result.exception!r}"
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) <= 1, errors
    naming = [line for line in lines if says in line]
    assert len(naming) == 1, f"expected one line with {says!r}:\n{output[-3000:]}"
