"""prepare --out s3://... against a real S3-compatible HTTP server (moto) on 127.0.0.1, and reading it back."""

import json
from dataclasses import replace

import boto3
from conftest import prepare_options

from actnet.data.shards import ShardSetInfo, iter_samples
from actnet.data.sources import list_folder
from actnet.data.storage import open_storage
from actnet.inspect_shards import contact_sheet, load_sets
from actnet.prepare import prepare


def test_prepare_writes_to_s3_and_resumes(synthetic_tree, s3_bucket, tmp_path):
    listing = list_folder(synthetic_tree, test_fraction=0.25, name="videos")
    opts = prepare_options(tmp_path, labeled=("1%",), work_dir=str(tmp_path / "staging"))
    opts = replace(opts, out=f"s3://{s3_bucket}/datasets")
    summary = prepare(listing, opts)
    assert summary.complete and summary.url == f"s3://{s3_bucket}/datasets/videos/split1"

    client = boto3.client("s3")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    prefix = "datasets/videos/split1/"
    info = ShardSetInfo.from_json(client.get_object(Bucket=s3_bucket, Key=prefix + "train.info.json")["Body"].read())
    for shard in info.shards:
        assert prefix + shard.name in keys and prefix + shard.index in keys
    assert {
        prefix + n
        for n in (
            "test.info.json",
            "labeled-1pct-seed0.info.json",
            "manifests/train.jsonl",
            "rejects.jsonl",
            "plan.json",
        )
    } <= keys
    assert not any(".tmp" in k or ".staging" in k for k in keys)

    # Stream a shard back from the server and check it against the manifest.
    storage = open_storage(summary.url)
    manifest = {json.loads(x)["key"]: json.loads(x) for x in storage.read_bytes("manifests/train.jsonl").splitlines()}
    with storage.open_read(info.shards[0].name) as body:
        samples = list(iter_samples(body))
    assert len(samples) == info.shards[0].num_samples
    for key, members in samples:
        assert int(members["cls"]) == manifest[key]["label"] and len(members["webm"]) > 100

    # inspect reads the same URL; a rerun encodes nothing.
    assert [i.set for i in load_sets(summary.url)] == ["train", "test", "labeled-1pct-seed0"]
    assert contact_sheet(summary.url, "train", tmp_path / "sheet.png", clips=2, frames=3).stat().st_size > 1000
    assert prepare(listing, opts).encoded_now == 0


def test_sources_read_from_s3_give_the_output_of_a_local_root(synthetic_tree, s3_bucket, tmp_path):
    """--root s3://: listed from one LIST, each video streamed to ffmpeg through a presigned URL (never copied to
    a disk), and the shards, indices and manifests byte-identical to those of the same videos read locally."""
    import hashlib

    from typer.testing import CliRunner

    from actnet.cli import app
    from actnet.data.remote_root import as_remote, remote_root

    client = boto3.client("s3")
    for path in sorted(synthetic_tree.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"data/videos/{path.relative_to(synthetic_tree).as_posix()}")
    client.put_object(Bucket=s3_bucket, Key="data/videos/move_up/broken.mp4", Body=b"\x00\x00\x00\x18ftypmp42" * 50)
    url = f"s3://{s3_bucket}/data/videos"

    local_tree = tmp_path / "videos"  # the same objects as a local folder, with the broken one
    for path in sorted(synthetic_tree.rglob("*")):
        if path.is_file():
            (local_tree / path.relative_to(synthetic_tree)).parent.mkdir(parents=True, exist_ok=True)
            (local_tree / path.relative_to(synthetic_tree)).write_bytes(path.read_bytes())
    (local_tree / "move_up" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" * 50)

    with remote_root(url, tmp_path / "work") as shadow:
        assert shadow.name == "videos" and (shadow / "move_up" / "broken.mp4").stat().st_size == 0  # a placeholder
        listing = as_remote(list_folder(shadow, test_fraction=0.25), shadow, url)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())  # the layout is removed
    assert all(c.path.startswith(url + "/") for c in listing.candidates) and listing.dataset == "videos"
    remote = prepare(listing, prepare_options(tmp_path / "remote", max_reject_fraction=0.5))
    local = prepare(
        list_folder(local_tree, test_fraction=0.25), prepare_options(tmp_path / "local", max_reject_fraction=0.5)
    )
    assert remote.encoded_now == local.encoded_now == 13 and remote.rejected == local.rejected == 1

    def digests(folder):
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.suffix in (".tar", ".idx") or p.parent.name == "manifests")
        }

    made = {k: digests(tmp_path / k / "shards" / "videos" / "split1") for k in ("remote", "local")}
    assert made["remote"] == made["local"] and any(name.endswith(".tar") for name in made["local"])
    rejects = [
        json.loads(x)
        for x in (tmp_path / "remote" / "shards" / "videos" / "split1" / "rejects.jsonl").read_text().splitlines()
    ]
    assert [r["path"] for r in rejects] == ["move_up/broken.mp4"] and "unreadable" in rejects[0]["reason"]

    # the command line keeps the URL as it is (not a path) and prepares from it the same way
    result = CliRunner().invoke(
        app,
        [
            "prepare",
            "folder",
            "--root",
            url,
            "--out",
            str(tmp_path / "cli"),
            "--manifests",
            "",
            "-j",
            "2",
            "--test-fraction",
            "0.25",
            "--max-reject-fraction",
            "0.5",
            "--work-dir",
            str(tmp_path / "work"),
        ],
    )
    assert result.exit_code == 0, result.output
    cli_keys = (tmp_path / "cli" / "videos" / "split1" / "manifests" / "train.jsonl").read_text()
    local_keys = (tmp_path / "local" / "shards" / "videos" / "split1" / "manifests" / "train.jsonl").read_text()
    assert [json.loads(x)["key"] for x in cli_keys.splitlines()] == [
        json.loads(x)["key"] for x in local_keys.splitlines()
    ]
    missing = CliRunner().invoke(
        app, ["prepare", "folder", "--root", f"s3://{s3_bucket}/nothing", "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and f"--root s3://{s3_bucket}/nothing: no objects under this prefix" in missing.output
