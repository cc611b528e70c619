"""Artifact store on S3 or any S3-compatible service (R2, MinIO, B2, moto).

Artifacts go up as multipart uploads with bounded memory: at most `max_concurrency`
parts in flight plus the one being filled. Any failure aborts the multipart upload, so
no partial object is ever visible.

With an Object Lock policy (`storage.s3.object_lock`) every artifact and manifest is
written with `ObjectLockMode` and `ObjectLockRetainUntilDate` (now + days), and a delete
removes every version of the key, so a locked one is refused by S3 (`ObjectLocked`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backupbot.errors import NotFound, StoreError
from backupbot.storage.artifacts import ObjectLock, ObjectLocked
from backupbot.storage.s3_support import LockPolicy, lock_from, s3_code, s3_error

log = logging.getLogger(__name__)


class _MultipartWriter:
    def __init__(self, store: S3Store, key: str) -> None:
        self._s3 = store.client
        self._bucket = store.bucket
        self._key = key
        self._part_size = store.part_size
        self._buf = bytearray()
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(store.max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=store.max_concurrency)
        self._upload_id: str | None = None
        self._closed = False
        self._completing = False  # CompleteMultipartUpload was sent: the object may exist
        self._size = 0
        self._lock = store.object_lock.args() if store.object_lock else {}
        try:
            resp = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, **self._lock)
        except (ClientError, BotoCoreError) as exc:
            self._pool.shutdown(wait=False)
            raise s3_error(exc, self._bucket, "starting the upload") from exc
        self._upload_id = resp["UploadId"]

    def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            resp = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
            return {"PartNumber": number, "ETag": resp["ETag"]}
        finally:
            self._slots.release()

    def _raise_failed_part(self) -> None:
        for fut in self._parts:
            if fut.done() and fut.exception() is not None:
                exc = fut.exception()
                assert exc is not None
                raise s3_error(exc, self._bucket, "uploading") from exc

    def _flush_part(self) -> None:
        if not self._buf:
            return
        self._raise_failed_part()
        self._slots.acquire()  # bounds memory: waits while max_concurrency parts are in flight
        body = bytes(self._buf)
        self._buf.clear()
        self._parts.append(self._pool.submit(self._upload, len(self._parts) + 1, body))

    def write(self, data: bytes) -> None:
        self._size += len(data)
        self._buf.extend(data)
        if len(self._buf) >= self._part_size:
            self._flush_part()

    def commit(self) -> None:
        try:
            self._flush_part()
            if not self._parts:  # an empty artifact still needs one part
                self._slots.acquire()
                self._parts.append(self._pool.submit(self._upload, 1, b""))
            try:
                parts = [f.result() for f in self._parts]
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(exc, self._bucket, "uploading") from exc
            self._complete(parts)
            self._ensure_locked()
            self._closed = True
        except StoreError:
            self.abort()
            raise
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise s3_error(exc, self._bucket, "finishing the upload") from exc
        finally:
            self._pool.shutdown(wait=True)

    def _complete(self, parts: list[dict[str, Any]]) -> None:
        """CompleteMultipartUpload. S3 can perform it yet fail to answer (a 500, a dropped
        connection); the client's retry then finds the upload id gone (NoSuchUpload). In
        that case the object under the key decides: there with every byte, the upload was
        completed (the caller's read-back verifies its content); else the error stands."""
        self._completing = True
        try:
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as exc:
            if s3_code(exc) != "NoSuchUpload" or not self._completed_already():
                raise
            log.warning(
                "S3 reported the upload gone after completing it; the object is there",
                extra={"key": self._key},
            )

    def _ensure_locked(self) -> None:
        """With a lock policy, check the completed object carries its retention, and put
        it there if the service did not apply the upload's (moto, some S3 look-alikes)."""
        if not self._lock:
            return
        head = self._s3.head_object(Bucket=self._bucket, Key=self._key)
        if lock_from(head) is not None:
            return
        self._s3.put_object_retention(
            Bucket=self._bucket,
            Key=self._key,
            Retention={
                "Mode": self._lock["ObjectLockMode"],
                "RetainUntilDate": self._lock["ObjectLockRetainUntilDate"],
            },
        )

    def _completed_already(self) -> bool:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=self._key)
        except (ClientError, BotoCoreError):
            return False
        return int(head.get("ContentLength", -1)) == self._size

    def abort(self) -> None:
        """Discard the upload: abort it, and where its completion was sent (and may have
        been performed though it reported failure), delete the object too."""
        if self._closed:
            return
        self._closed = True
        for fut in self._parts:
            fut.cancel()
        self._pool.shutdown(wait=True)
        self._buf.clear()
        try:
            self._s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        except ClientError as exc:
            if not (self._completing and s3_code(exc) == "NoSuchUpload"):
                log.warning("could not abort multipart upload", extra={"key": self._key})
        except BotoCoreError:
            log.warning("could not abort multipart upload", extra={"key": self._key})
        if self._completing:
            try:
                self._s3.delete_object(Bucket=self._bucket, Key=self._key)
            except (ClientError, BotoCoreError):
                log.warning("could not delete a completed upload", extra={"key": self._key})


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
    ) -> None:
        self.client = client
        self.object_lock = object_lock
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.max_concurrency = max_concurrency

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def open_writer(self, key: str) -> _MultipartWriter:
        return _MultipartWriter(self, self._key(key))

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
