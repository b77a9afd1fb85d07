"""actnet prepare --engine ray: videos encoded as Ray tasks on a local Ray started by the test, the shards
assembled by the driver; the output is byte-identical to a local run's, and a rerun keeps what is finished."""

import hashlib
from pathlib import Path

import pytest
import ray
from conftest import prepare_options

from actnet.data.sources import list_folder
from actnet.errors import ActnetError
from actnet.prepare import prepare


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_ray_engine_writes_what_a_local_run_writes(local_ray, synthetic_tree, shards, tmp_path):
    listing = list_folder(synthetic_tree, 0.25, name="synthetic")
    summary = prepare(listing, prepare_options(tmp_path, labeled=("1/class",), engine="ray"))
    assert summary.encoded_now == 12 and summary.rejected == 0
    made = tmp_path / "shards" / "synthetic" / "split1"
    local, remote = digests(shards), digests(made)
    assert sorted(remote) == sorted(local) and any(name.endswith(".tar") for name in local)
    for name in local:  # shards, indices, info files, _done markers: the same bytes
        assert remote[name] == local[name], name
    assert digests(tmp_path / "manifests") == digests(shards.parent.parent.parent / "manifests")
    again = prepare(listing, prepare_options(tmp_path, labeled=("1/class",), engine="ray"))
    assert again.encoded_now == 0 and digests(made) == remote  # finished shards kept, nothing rewritten


def test_ray_options_are_checked(tmp_path):
    from actnet.config import PrepareOptions

    with pytest.raises(ActnetError, match="--engine must be one of local, ray, not 'spark'"):
        PrepareOptions(out=str(tmp_path), engine="spark")
    with pytest.raises(ActnetError, match="--address is for --engine ray"):
        PrepareOptions(out=str(tmp_path), ray_address="auto")
