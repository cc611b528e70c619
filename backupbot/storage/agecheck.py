"""Reading an age-encrypted backup back: verifying it after upload (with or without the
private key) and unpacking it for a restore or drill. See `agestream.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyrage
import zstandard

from backupbot.errors import VerificationFailed
from backupbot.storage.agestream import (
    IDENTITY_SETTING,
    SUFFIX,
    StoredReader,
    check_header,
    decrypt_into,
    identities_for,
    stored_failure,
)
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.bgwrite import BackgroundWriter
from backupbot.storage.catalog import BackupRecord
from backupbot.storage.dirtar import DIRECTORY_TAR, extract_dump
from backupbot.storage.dumpstream import (
    CHUNK,
    ReadBack,
    StreamResult,
    TocLister,
    TocUnpacker,
    Unpacked,
    check_free_space,
    check_read_back,
    check_toc,
    decompress_into,
    unpack_artifact,
    unpack_failure,
)
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_restore import PgRestoreList

FULL = "full"  # decrypted, decompressed and listed by pg_restore --list
HEADER = "age-header"  # size, SHA-256 and the age header: no private key on the bot
CHECKSUMS = "checksums"  # checked on the way out; the store's checksums prove the copy


@dataclass(frozen=True)
class Verification:
    method: str  # FULL, HEADER or CHECKSUMS
    toc_entries: int | None  # None: the archive was not read (HEADER)


def verify_encrypted(
    store: ArtifactStore,
    key: str,
    expected: StreamResult,
    binaries: PgBinaries,
    *,
    recipients: int,
    identities: list[Any] | None,
    expected_tables: Iterable[str] = (),
    on_bytes: Callable[[int], None] = lambda _n: None,
    lister: TocLister | None = None,
) -> Verification:
    """Read the stored encrypted artifact back and prove it is what was written: size,
    SHA-256 and the age header (one X25519 stanza per recipient) always; with
    `identities`, also decrypt it, decompress it to exactly `raw_size` bytes and have
    `pg_restore --list` read it, every counted table with data."""
    where = store.location(key)
    reader = StoredReader(iter(store.read_chunks(key)), on_bytes)
    if identities is None:
        _guarded(reader.drain, where)
        check_read_back(where, ReadBack(reader.size, reader.hash.hexdigest(), 0), _bytes(expected))
        check_header(where, bytes(reader.head), recipients)
        return Verification(HEADER, None)
    unpack = TocUnpacker(lister or PgRestoreList(binaries), where)
    produced = 0

    def write(data: bytes) -> None:
        nonlocal produced
        produced += unpack.feed(data)

    failure: pyrage.DecryptError | None = None
    try:
        try:
            _guarded(lambda: decrypt_into(reader, write, identities), where)
        except pyrage.DecryptError as exc:
            failure = exc
        _guarded(reader.drain, where)
    finally:
        toc_or_error = unpack.finish()
    check_read_back(where, ReadBack(reader.size, reader.hash.hexdigest(), 0), _bytes(expected))
    check_header(where, bytes(reader.head), recipients)
    if failure is not None:
        raise VerificationFailed(
            f"The stored backup at {where} could not be decrypted with {IDENTITY_SETTING} "
            f"(age: {failure}). It was not kept."
        )
    if not unpack.complete:
        raise VerificationFailed(f"The stored backup at {where} is truncated. It was not kept.")
    check_read_back(where, ReadBack(reader.size, reader.hash.hexdigest(), produced), expected)
    if isinstance(toc_or_error, Exception):
        raise VerificationFailed(
            f"pg_restore could not read the stored backup at {where}. It was not kept."
        ) from toc_or_error
    return Verification(FULL, check_toc(where, toc_or_error, expected_tables).toc_entries)


def _bytes(expected: StreamResult) -> StreamResult:
    """`expected` for a check of the stored bytes alone (nothing was decompressed)."""
    return StreamResult(raw_size=0, stored_size=expected.stored_size, sha256=expected.sha256)


def _guarded(read: Callable[[], None], where: str) -> None:
    """Run `read` of the stored artifact; a missing or unreadable object fails the
    verification in plain words."""
    try:
        read()
    except Exception as exc:
        failure = stored_failure(exc, where, "It was not kept.")
        if failure is None:
            raise
        raise failure from exc


def unpack_encrypted(
    store: ArtifactStore,
    key: str,
    dest: Path,
    *,
    identities: list[Any],
    sha256: str,
    stored_size: int,
    raw_size: int,
    on_bytes: Callable[[int], None] = lambda _n: None,
) -> Unpacked:
    """Download `key`, decrypt and unpack it to `dest`, checking it is byte for byte the
    verified backup. On any failure `dest` is removed and nothing is restored."""
    check_free_space(dest.parent, raw_size)
    where = store.location(key)
    dobj = zstandard.ZstdDecompressor().decompressobj(write_size=CHUNK)
    reader = StoredReader(iter(store.read_chunks(key)), on_bytes)
    produced = 0
    try:
        with open(dest, "wb") as out, BackgroundWriter(out) as writer:

            def write(data: bytes) -> None:  # the file write runs in the writer's thread
                nonlocal produced
                produced += decompress_into(dobj, data, writer)

            failure: pyrage.DecryptError | None = None
            try:
                decrypt_into(reader, write, identities)
            except pyrage.DecryptError as exc:
                failure = exc
            reader.drain()
        _check_unpacked(where, reader, failure, sha256, stored_size)
        if not dobj.eof or produced != raw_size:
            raise VerificationFailed(
                f"The stored backup at {where} does not unpack to the archive that was "
                f"verified ({produced:,} of {raw_size:,} bytes). Nothing was restored."
            )
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        mapped = stored_failure(exc, where, "Nothing was restored.") or unpack_failure(
            exc, where, dest
        )
        if mapped is None:
            raise
        raise mapped from None
    return Unpacked(dest, produced, reader.size, reader.hash.hexdigest())


def _check_unpacked(
    where: str,
    reader: StoredReader,
    failure: pyrage.DecryptError | None,
    sha256: str,
    stored_size: int,
) -> None:
    """The downloaded bytes are the verified backup's, and they decrypted."""
    digest = reader.hash.hexdigest()
    if reader.size != stored_size or digest != sha256:
        raise VerificationFailed(
            f"The stored backup at {where} is not the one that was verified: "
            f"{reader.size:,} bytes with SHA-256 {digest[:12]}…, expected "
            f"{stored_size:,} bytes with {sha256[:12]}…. It may be corrupt or replaced; "
            "nothing was restored."
        )
    if failure is not None:
        raise VerificationFailed(
            f"The backup at {where} could not be decrypted with {IDENTITY_SETTING} "
            f"(age: {failure}). Nothing was restored."
        )


def unpack_backup(
    store: ArtifactStore, backup: BackupRecord, dest: Path, identity: Path | None
) -> Unpacked:
    """Download and unpack the verified `backup` to `dest` for pg_restore, decrypting it
    with the identity file `identity` if it is encrypted (refused, `KeyUnavailable`
    naming the setting, without one). A directory-format backup (`dump_format`
    `directory-tar`) is then untarred beside `dest`: the returned path is its directory."""
    unpacked = _unpack_stored(store, backup, dest, identity)
    if (backup.manifest or {}).get("dump_format") != DIRECTORY_TAR:
        return unpacked
    check_free_space(dest.parent, unpacked.raw_size)
    return replace(unpacked, path=extract_dump(unpacked.path, dest.with_suffix(".d")))


def _unpack_stored(
    store: ArtifactStore, backup: BackupRecord, dest: Path, identity: Path | None
) -> Unpacked:
    """`unpack_backup` up to the archive file."""
    key, sha256 = backup.artifact_key, backup.sha256
    if not (key and sha256 and backup.stored_size and backup.raw_size):
        raise VerificationFailed(f"Backup {backup.id} has no stored artifact to restore.")
    encryption = (backup.manifest or {}).get("encryption")
    if encryption is None and not key.endswith(SUFFIX):
        return unpack_artifact(
            store,
            key,
            dest,
            sha256=sha256,
            stored_size=backup.stored_size,
            raw_size=backup.raw_size,
        )
    recipients = list((encryption or {}).get("recipients") or [])
    what = f"Backup {backup.id}"
    identities = identities_for(identity, recipients, what)
    return unpack_encrypted(
        store,
        key,
        dest,
        identities=identities,
        sha256=sha256,
        stored_size=backup.stored_size,
        raw_size=backup.raw_size,
    )
