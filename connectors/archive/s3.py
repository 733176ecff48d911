"""Frame archive in an S3-compatible bucket (AWS S3, MinIO, Ceph), through boto3 (`s3` extra)."""

from __future__ import annotations

import logging
from typing import Any

from defectline.config.models import S3ArchiveConfig
from defectline.connectors.archive.base import FrameArchive
from defectline.connectors.archive.errors import ArchiveError, ArchiveUnavailableError

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


def _import_boto3() -> tuple[Any, Any, tuple[type[Exception], ...]]:
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise ArchiveUnavailableError(
            "archive.store.type is 's3' but boto3 is not installed; install the s3 extra "
            "(pip install 'defectline[s3]') or use archive.store.type 'local'"
        ) from exc
    return boto3, Config, (BotoCoreError, ClientError)


class S3Archive(FrameArchive):
    """Objects in `bucket` under `prefix`; URIs are s3://bucket/key."""

    def __init__(self, config: S3ArchiveConfig) -> None:
        boto3, client_config, self._errors = _import_boto3()
        self.bucket = config.bucket
        self.prefix = config.prefix
        secret = config.secret_access_key.get_secret_value() if config.secret_access_key else None
        self._client = boto3.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=secret,
            config=client_config(
                connect_timeout=config.timeout_s,
                read_timeout=config.timeout_s,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            ),
        )
        logger.info(
            "frame archive opened type=s3 bucket=%s prefix=%s endpoint=%s",
            self.bucket,
            self.prefix,
            config.endpoint_url or "aws",
        )

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.check_key(key)
        object_key = self.prefix + key
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=object_key, Body=data, ContentType=content_type
            )
        except self._errors as exc:
            raise ArchiveError(
                f"archive upload failed bucket={self.bucket} key={object_key}: {exc}"
            ) from exc
        return f"s3://{self.bucket}/{object_key}"

    def get(self, uri: str) -> bytes:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise ArchiveError(f"URI {uri} is not in this archive's bucket {self.bucket}")
        object_key = uri[len(prefix) :]
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
            return bytes(response["Body"].read())
        except self._errors as exc:
            raise ArchiveError(
                f"archive download failed bucket={self.bucket} key={object_key}: {exc}"
            ) from exc

    def close(self) -> None:
        self._client.close()
