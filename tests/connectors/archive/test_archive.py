"""Frame archive: local directory storage and the S3 store's missing-extra message."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from defectline.config.models import LocalArchiveConfig, S3ArchiveConfig
from defectline.connectors.archive import (
    ArchiveError,
    ArchiveUnavailableError,
    create_archive,
    evidence_key,
)


def test_local_put_get_round_trip(tmp_path: Path) -> None:
    archive = create_archive(LocalArchiveConfig(path=tmp_path / "store"))
    uri = archive.put("st/cam/2026/01/02/f1.jpg", b"\xff\xd8jpeg", "image/jpeg")

    assert uri == (tmp_path / "store" / "st/cam/2026/01/02/f1.jpg").as_uri()
    assert archive.get(uri) == b"\xff\xd8jpeg"
    assert not list((tmp_path / "store").rglob("*.part"))


def test_local_rejects_escaping_keys(tmp_path: Path) -> None:
    archive = create_archive(LocalArchiveConfig(path=tmp_path))
    for key in ("../x.jpg", "/etc/x.jpg", "a//b.jpg", ""):
        with pytest.raises(ArchiveError, match="invalid"):
            archive.put(key, b"x", "image/jpeg")


def test_local_get_outside_root_fails(tmp_path: Path) -> None:
    archive = create_archive(LocalArchiveConfig(path=tmp_path / "store"))
    (tmp_path / "other.jpg").write_bytes(b"x")
    with pytest.raises(ArchiveError, match="not a file:// URI under"):
        archive.get((tmp_path / "other.jpg").as_uri())


def test_evidence_key_is_path_safe() -> None:
    captured = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    assert evidence_key("st-1", "cam-1", "../a/b c", captured) == "st-1/cam-1/2026/03/04/_a_b_c.jpg"


def test_s3_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    with pytest.raises(ArchiveUnavailableError, match=r"pip install 'defectline\[s3\]'"):
        create_archive(S3ArchiveConfig(bucket="evidence"))
