"""Inputs in an object store (``s3://bucket/prefix/``) against a real S3 API on loopback (moto's
server, started here): the outputs are those of the same files in a local folder, through ranged
reads, with local processes and on a Dask cluster; missing buckets and objects are named."""

from __future__ import annotations

import gzip
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import boto3
import pytest
from distributed import LocalCluster
from moto.server import ThreadedMotoServer

from mapreduce_logs import discover
from mapreduce_logs.cli import main
from mapreduce_logs.ingest import storage

DATA = Path(__file__).parent.parent.parent / "data" / "input.txt"
BUCKET = "logs-bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    """moto's S3 server on a free loopback port, and the AWS environment pointing at it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with mock.patch.dict(os.environ, env):
            yield boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    finally:
        server.stop()


def _objects() -> dict[str, bytes]:
    """The shipped data cut into files, one of them gzipped, one in a sub-folder, and names a
    folder listing skips."""
    lines = DATA.read_bytes().splitlines(keepends=True)
    third = len(lines) // 3
    return {
        "a.log": b"".join(lines[:third]),
        "b.log.gz": gzip.compress(b"".join(lines[third:2 * third])),
        "sub/c.log": b"".join(lines[2 * third:]),
        ".hidden": b"not input\n",
        "d.log.tmp": b"not input either\n",
    }


@pytest.fixture(scope="module")
def stored(s3: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The objects under s3://BUCKET/logs/, and the same files in a local folder, each file
    dated at its object's LastModified."""
    client: object = s3
    client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    local = tmp_path_factory.mktemp("s3-twin") / "logs"
    for name, content in _objects().items():
        client.put_object(Bucket=BUCKET, Key=f"logs/{name}", Body=content)  # type: ignore[attr-defined]
        head = client.head_object(Bucket=BUCKET, Key=f"logs/{name}")  # type: ignore[attr-defined]
        path = local / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        ns = int(head["LastModified"].timestamp()) * 1_000_000_000
        os.utime(path, ns=(ns, ns))
    return local


def run_cli(out: Path, *args: str) -> tuple[int, dict[str, bytes]]:
    code = main(["run", *args, "--out", str(out), "--quiet"])
    return code, {p.name: p.read_bytes() for p in out.glob("*.json")} if out.exists() else {}


def assert_same_as_local(local: dict[str, bytes], remote: dict[str, bytes], folder: Path,
                         url: str) -> None:
    """Same documents, the local folder's name aside (the anomalies name files)."""
    assert remote["summary.json"] == local["summary.json"]
    named = local["anomalies.json"].replace(str(folder).encode(), url.rstrip("/").encode())
    assert remote["anomalies.json"] == named


def test_listing_follows_the_folder_rules(stored: Path) -> None:
    url = f"s3://{BUCKET}/logs/"
    assert discover([url]) == [url + "a.log", url + "b.log.gz"]
    assert discover([url], recursive=True) == [url + "a.log", url + "b.log.gz", url + "sub/c.log"]
    assert discover([f"s3://{BUCKET}/logs"]) == discover([url])  # a prefix is a folder
    assert discover([url + "a.log"]) == [url + "a.log"]
    size, mtime = storage.stat(url + "a.log")
    assert (size, mtime) == ((stored / "a.log").stat().st_size, (stored / "a.log").stat().st_mtime_ns)


@pytest.mark.parametrize(("chunk", "workers"), [("1000", "1"), ("4096", "2"), ("33554432", "2")])
def test_bucket_equals_local_folder(tmp_path: Path, stored: Path, chunk: str, workers: str) -> None:
    """Ranged reads of every chunk size, serial and in local processes, give the local bytes."""
    url = f"s3://{BUCKET}/logs/"
    args = ["--recursive", "--chunk-size", chunk, "--workers", workers]
    code, local = run_cli(tmp_path / "local", str(stored), *args)
    assert code == 0
    code, remote = run_cli(tmp_path / "s3", url, *args)
    assert code == 0
    assert_same_as_local(local, remote, stored, url)
    metrics = json.loads(remote["metrics.json"])
    assert metrics["bytes"] == json.loads(local["metrics.json"])["bytes"]


def test_bucket_on_a_cluster(tmp_path: Path, stored: Path) -> None:
    """The workers of a Dask cluster read the objects themselves (the AWS environment is
    theirs too): the local bytes again."""
    url = f"s3://{BUCKET}/logs/"
    code, local = run_cli(tmp_path / "local", str(stored), "--recursive", "--chunk-size", "5000")
    assert code == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        code, remote = run_cli(tmp_path / "s3", url, "--recursive", "--chunk-size", "5000",
                               "--scheduler", cluster.scheduler_address)
    assert code == 0
    assert_same_as_local(local, remote, stored, url)
    assert json.loads(remote["metrics.json"])["executor"] == "dask"


def test_missing_bucket_is_exit_3_with_the_rest(tmp_path: Path, stored: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Like a folder that cannot be listed: named, the other inputs still counted."""
    missing = "s3://no-such-bucket/logs/"
    code, out = run_cli(tmp_path, missing, f"s3://{BUCKET}/logs/a.log")
    err = capsys.readouterr().err
    assert code == 3
    assert f"could not read {missing}: cannot list the folder: no such bucket" in err
    assert json.loads(out["summary.json"])["totals"]["files"] == 1


def test_missing_object_is_a_usage_error(tmp_path: Path, stored: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Like a missing path: exit 2, one line naming it."""
    missing = f"s3://{BUCKET}/logs/nope.log"
    code, _ = run_cli(tmp_path, missing)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and missing in err[0], err


def test_without_the_extra_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch.dict(sys.modules, {"s3fs": None}):
        code, _ = run_cli(tmp_path, "s3://some-bucket/logs/")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "[s3] extra" in err[0], err
