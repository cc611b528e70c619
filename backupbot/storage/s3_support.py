"""S3 errors in plain words with the fix, and the Object Lock arguments and state of
objects (`s3_store.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
)

from backupbot.errors import StoreError
from backupbot.storage.artifacts import ObjectLock


def s3_error(exc: BaseException, bucket: str, action: str) -> StoreError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            return StoreError(
                f"The S3 bucket {bucket!r} does not exist. Create it or fix storage.s3.bucket."
            )
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(
                f"S3 refused access to bucket {bucket!r} ({code}). Check the credentials and "
                "the bucket policy."
            )
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            return StoreError(
                f"S3 refused the bytes it received while {action}: they did not match "
                f"their SHA-256 checksum ({code}), so they were damaged on the way. Nothing "
                "was kept; try again, and check the network or proxy in between if it recurs.",
                permanent=False,
            )
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in _UNAVAILABLE or status >= 500:
            return StoreError(
                f"S3 was unavailable ({code or status}) while {action}, even after "
                "retrying. Check the S3 service's status, then try again.",
                permanent=False,
            )
        return StoreError(f"S3 failed while {action}: {code or exc}. Try again.")
    if isinstance(exc, EndpointConnectionError):
        return StoreError(
            f"Could not reach the S3 endpoint while {action}. Check storage.s3.endpoint_url "
            "and the network.",
            permanent=False,
        )
    if isinstance(exc, HTTPClientError | IncompleteReadError):  # dropped, reset, cut short
        return StoreError(
            f"The connection to S3 broke while {action}. Check the network and "
            "storage.s3.endpoint_url, then try again.",
            permanent=False,
        )
    return StoreError(f"S3 failed while {action}: {exc}. Try again.", permanent=False)


_UNAVAILABLE = ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")


def s3_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class LockPolicy:
    """Object Lock retention to put on every object written: `mode` for `days` days."""

    mode: str  # GOVERNANCE | COMPLIANCE
    days: int

    def args(self) -> dict[str, Any]:
        """The lock arguments of a PutObject / CreateMultipartUpload written now."""
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=self.days)
        return {"ObjectLockMode": self.mode, "ObjectLockRetainUntilDate": until}


def lock_from(head: dict[str, Any]) -> ObjectLock | None:
    mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if not mode or not isinstance(until, datetime):
        return None
    return ObjectLock(str(mode), until if until.tzinfo else until.replace(tzinfo=UTC))
