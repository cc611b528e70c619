"""Multipart uploads to S3 with bounded memory and, with `checksums`, S3's own proof of
every byte (S3 additional checksums).

Memory: at most `max_concurrency` parts in flight plus the one being filled, each in a
buffer of `part_size` bytes allocated once and reused (a part is never copied). Any
failure aborts the multipart upload, so no partial object is ever visible.

Checksums (`backup.verify: checksums`): the bot hashes each part with SHA-256 and sends it
(`ChecksumSHA256`); S3 refuses a part whose bytes do not hash to it (`BadDigest`). On
completion S3 answers the composite checksum (SHA-256 of the parts' SHA-256s, "-N"), and
`HeadObject` with `ChecksumMode=ENABLED` the one it stored: both must equal the bot's own,
or the upload is discarded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from backupbot.errors import BackupbotError, VerificationFailed
from backupbot.storage.s3_support import lock_from, s3_code, s3_error

if TYPE_CHECKING:
    from backupbot.storage.s3_store import S3Store

log = logging.getLogger(__name__)


def composite_sha256(part_digests: list[bytes]) -> str:
    """S3's checksum of a multipart object: SHA-256 of its parts' SHA-256s, "-<parts>"."""
    joined = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(joined).decode()}-{len(part_digests)}"


def _same_composite(theirs: str, mine: str) -> bool:
    """Whether S3's composite checksum `theirs` is `mine`; S3 appends "-<parts>", some
    look-alikes (moto) do not."""
    digest, _, parts = theirs.partition("-")
    mine_digest, _, mine_parts = mine.partition("-")
    return digest == mine_digest and parts in ("", mine_parts)


class MultipartWriter:
    def __init__(self, store: S3Store, key: str) -> None:
        self._s3 = store.client
        self._bucket = store.bucket
        self._key = key
        self._part_size = store.part_size
        self._checksums = store.checksums
        self._buf = bytearray(store.part_size)
        self._fill = 0
        self._spare: list[bytearray] = []  # buffers of finished parts, for the next ones
        self._parts: list[Future[dict[str, Any]]] = []
        self._digests: dict[int, bytes] = {}
        self._slots = threading.BoundedSemaphore(store.max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=store.max_concurrency)
        self._upload_id: str | None = None
        self._closed = False
        self._completing = False  # CompleteMultipartUpload was sent: the object may exist
        self._size = 0
        self.checksum: str | None = None  # S3's composite SHA-256, once committed
        self._lock = store.object_lock.args() if store.object_lock else {}
        extra = {"ChecksumAlgorithm": "SHA256"} if self._checksums else {}
        try:
            resp = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, **self._lock, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            self._pool.shutdown(wait=False)
            raise s3_error(exc, self._bucket, "starting the upload") from exc
        self._upload_id = resp["UploadId"]

    def _upload(self, number: int, body: bytearray) -> dict[str, Any]:
        try:
            extra: dict[str, str] = {}
            if self._checksums:
                digest = hashlib.sha256(body).digest()  # releases the GIL: parts hash in parallel
                self._digests[number] = digest
                extra["ChecksumSHA256"] = base64.b64encode(digest).decode()
            resp = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **extra,
            )
            return {"PartNumber": number, "ETag": resp["ETag"], **extra}
        finally:
            self._spare.append(body)  # before the slot: the next part finds a buffer
            self._slots.release()

    def _raise_failed_part(self) -> None:
        for fut in self._parts:
            if fut.done() and fut.exception() is not None:
                exc = fut.exception()
                assert exc is not None
                raise s3_error(exc, self._bucket, "uploading") from exc

    def _flush_part(self) -> None:
        if not self._fill:
            return
        self._raise_failed_part()
        self._slots.acquire()  # bounds memory: waits while max_concurrency parts are in flight
        number = len(self._parts) + 1
        if self._fill < len(self._buf):  # the last part: shrunk in place, not copied
            del self._buf[self._fill :]
        self._parts.append(self._pool.submit(self._upload, number, self._buf))
        # Every buffer not in flight is spare or being filled: at most max_concurrency + 1.
        self._buf = self._spare.pop() if self._spare else bytearray(self._part_size)
        self._fill = 0

    def write(self, data: bytes) -> None:
        """Copy `data` into the part being filled, sending each part once full."""
        self._size += len(data)
        view = memoryview(data)
        while view:
            take = min(self._part_size - self._fill, len(view))
            self._buf[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self._part_size:
                self._flush_part()

    def commit(self) -> None:
        try:
            self._flush_part()
            if not self._parts:  # an empty artifact still needs one part
                self._slots.acquire()
                self._parts.append(self._pool.submit(self._upload, 1, bytearray()))
            try:
                parts = [f.result() for f in self._parts]
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(exc, self._bucket, "uploading") from exc
            self._spare.clear()
            self._buf = bytearray()
            answered = self._complete(parts)
            self._check_stored(answered)
            self._closed = True
        except BackupbotError:
            self.abort()
            raise
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise s3_error(exc, self._bucket, "finishing the upload") from exc
        finally:
            self._pool.shutdown(wait=True)

    def _complete(self, parts: list[dict[str, Any]]) -> str | None:
        """CompleteMultipartUpload; the composite checksum S3 answered (None: none, or the
        upload was found completed already). S3 can perform it yet fail to answer (a 500,
        a dropped connection); the client's retry then finds the upload id gone
        (NoSuchUpload). In that case the object under the key decides: there with every
        byte, the upload was completed (its checksum or the read-back verifies its
        content); else the error stands."""
        self._completing = True
        try:
            resp = self._s3.complete_multipart_upload(
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
            return None
        answer = resp.get("ChecksumSHA256")
        return str(answer) if answer else None

    def _check_stored(self, answered: str | None) -> None:
        """With checksums, the composite S3 answered on completion and the one it stored
        (HeadObject, ChecksumMode=ENABLED) equal the bot's own; with a lock policy, the
        object carries its retention (put there if the service did not apply the
        upload's: moto, some S3 look-alikes)."""
        if not self._checksums and not self._lock:
            return
        args = {"ChecksumMode": "ENABLED"} if self._checksums else {}
        head = self._s3.head_object(Bucket=self._bucket, Key=self._key, **args)
        if self._checksums:
            self.checksum = self._verified_checksum(answered, head)
        if self._lock and lock_from(head) is None:
            self._s3.put_object_retention(
                Bucket=self._bucket,
                Key=self._key,
                Retention={
                    "Mode": self._lock["ObjectLockMode"],
                    "RetainUntilDate": self._lock["ObjectLockRetainUntilDate"],
                },
            )

    def _verified_checksum(self, answered: str | None, head: dict[str, Any]) -> str:
        mine = composite_sha256([self._digests[n] for n in sorted(self._digests)])
        stored = head.get("ChecksumSHA256")
        where = f"s3://{self._bucket}/{self._key}"
        if not stored:
            raise VerificationFailed(
                f"S3 kept no SHA-256 checksum for {where}, so it cannot prove the upload. "
                "It was not kept. If this service has no S3 additional checksums, set "
                "backup.verify: full (the bot then reads every backup back)."
            )
        size = int(head.get("ContentLength", -1))
        for what, theirs in (("answered on completion", answered), ("stored", stored)):
            if theirs is not None and not _same_composite(str(theirs), mine):
                raise VerificationFailed(
                    f"The checksum S3 {what} for {where} ({theirs}) is not the bot's own "
                    f"({mine}): the stored bytes are not the ones sent. It was not kept; "
                    "run the backup again."
                )
        if size != self._size:
            raise VerificationFailed(
                f"S3 holds {size} bytes for {where} instead of the {self._size} sent. It "
                "was not kept; run the backup again."
            )
        return mine

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
        self._buf = bytearray()
        self._spare.clear()
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
