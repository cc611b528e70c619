"""Artifact store on S3 or any S3-compatible service (R2, MinIO, B2, moto).

Artifacts go up as multipart uploads with bounded memory (`s3_upload.py`): at most
`max_concurrency` parts in flight plus the one being filled; with `checksums`, every part
carries its SHA-256 and S3's composite checksum proves the object. Any failure aborts the
multipart upload, so no partial object is ever visible.

With an Object Lock policy (`storage.s3.object_lock`) every artifact and manifest is
written with `ObjectLockMode` and `ObjectLockRetainUntilDate` (now + days), and a delete
removes every version of the key, so a locked one is refused by S3 (`ObjectLocked`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backupbot.errors import NotFound
from backupbot.storage.artifacts import ObjectLock, ObjectLocked
from backupbot.storage.s3_support import LockPolicy, lock_from, s3_code, s3_error
from backupbot.storage.s3_upload import MultipartWriter

log = logging.getLogger(__name__)


class S3Store:
    kind = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = 16 << 20,
        max_concurrency: int = 4,
        object_lock: LockPolicy | None = None,
        checksums: bool = False,
    ) -> None:
        self.client = client
        self.checksums = checksums  # S3 additional checksums (SHA-256) on every upload
        self.object_lock = object_lock
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.max_concurrency = max_concurrency

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def open_writer(self, key: str) -> MultipartWriter:
        return MultipartWriter(self, self._key(key))

    def read_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"{self.location(key)} is missing from the bucket.") from None
            raise s3_error(exc, self.bucket, "reading") from exc
        except BotoCoreError as exc:
            raise s3_error(exc, self.bucket, "reading") from exc
        try:
            yield from body.iter_chunks(chunk_size)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "reading") from exc
        finally:
            body.close()

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            lock = self.object_lock.args() if self.object_lock else {}
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **lock)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "writing the manifest") from exc

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.read_chunks(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise s3_error(exc, self.bucket, "checking an object") from exc

    def delete(self, key: str) -> None:
        """Delete `key`; with a lock policy every version of it (the bucket is versioned,
        and a plain delete would only hide the object), refused while one is locked."""
        try:
            if self.object_lock is None:
                self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
                return
            for version in self._versions(key):
                self._delete_version(key, version)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "deleting") from exc

    def _versions(self, key: str) -> list[str]:
        """The version ids (delete markers included) of exactly `key`, oldest first."""
        full = self._key(key)
        found: list[tuple[datetime, str]] = []
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=full
        )
        for page in pages:
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if entry["Key"] == full:
                    found.append((entry["LastModified"], entry["VersionId"]))
        return [version for _modified, version in sorted(found)]

    def _delete_version(self, key: str, version: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), VersionId=version)
        except ClientError as exc:
            if s3_code(exc) not in ("AccessDenied", "403"):
                raise
            lock = self._version_lock(key, version)
            if lock is None:
                raise  # refused for another reason: the access error stands
            raise ObjectLocked(self.location(key), lock) from exc

    def _version_lock(self, key: str, version: str) -> ObjectLock | None:
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self._key(key), VersionId=version
            )
        except (ClientError, BotoCoreError):
            return None
        lock = lock_from(head)
        return lock if lock is not None and lock.until > datetime.now(UTC) else None

    def lock(self, key: str) -> ObjectLock | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if s3_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, self.bucket, "reading an object's lock") from exc
        except BotoCoreError as exc:
            raise s3_error(exc, self.bucket, "reading an object's lock") from exc
        return lock_from(head)

    def lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (`GetObjectLockConfiguration`)."""
        try:
            conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if s3_code(exc) == "ObjectLockConfigurationNotFoundError":
                return False
            raise s3_error(exc, self.bucket, "reading the Object Lock configuration") from exc
        except BotoCoreError as exc:
            raise s3_error(exc, self.bucket, "reading the Object Lock configuration") from exc
        lock_conf = conf.get("ObjectLockConfiguration", {})
        return bool(lock_conf.get("ObjectLockEnabled") == "Enabled")

    def discard(self, key: str) -> None:
        full = self._key(key)
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] == full:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=full, UploadId=upload["UploadId"]
                        )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "aborting an unfinished upload") from exc
        try:
            self.delete(key)
        except ObjectLocked:
            # A failed backup's object that is locked: hide it behind a delete marker,
            # so nothing under the key looks like a backup; S3 drops it after the date.
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full)
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(exc, self.bucket, "deleting") from exc

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                keys.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "listing") from exc
        return sorted(keys)

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "checking the bucket") from exc
