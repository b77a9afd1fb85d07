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
