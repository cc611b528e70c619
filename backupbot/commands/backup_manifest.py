"""A backup's manifest: the JSON document stored beside the artifact that says what it
holds, how it was checked, and how to restore it without backupbot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.settings import DatabaseSettings
from backupbot.storage.agecheck import CHECKSUMS, FULL, HEADER
from backupbot.storage.agestream import SUFFIX
from backupbot.storage.catalog import BackupRecord
from backupbot.storage.dirtar import CUSTOM, DIRECTORY_TAR, TAR_EXTENSION, top_directory
from backupbot.storage.dumpstream import COMPRESSION, StreamResult
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import SnapshotSession

MANIFEST_FORMAT = "backupbot-manifest/1"


def restore_command(artifact_name: str) -> str:
    """The shell command that restores the artifact by hand, without backupbot (an
    encrypted one, `….age`, is decrypted first with the age CLI and a recipient's key; a
    `.tar.zst` is untarred, then restored by parallel pg_restore)."""
    unpack = f"zstd -dc {artifact_name}"
    if artifact_name.endswith(SUFFIX):
        unpack = f"age -d -i key.txt {artifact_name} | zstd -dc"
    if TAR_EXTENSION in artifact_name:  # a directory-format dump (backup.jobs > 1)
        directory = top_directory(artifact_name)
        return f"{unpack} | tar -x && pg_restore -j 4 --no-owner --no-acl -d TARGET_DB {directory}"
    return f"{unpack} | pg_restore --no-owner --no-acl -d TARGET_DB"


@dataclass(frozen=True)
class DumpFacts:
    """What a finished, verified dump leaves for its manifest."""

    session: SnapshotSession
    pg_dump_version: str
    streamed: StreamResult
    row_counts: dict[str, int]
    prisma: dict[str, Any] | None
    compression_level: int
    toc_entries: int | None  # None: only the bytes and the age header were verified
    verification: str = FULL  # agecheck.FULL or agecheck.HEADER
    encryption: dict[str, Any] | None = None  # Encryption.manifest(), when encrypted
    schema: dict[str, Any] | None = None  # storage/pgschema.py's fingerprint
    warnings: tuple[str, ...] = ()  # connection pitfalls (settings/connection_advice.py)
    store_checksum: str | None = None  # S3's composite SHA-256 of the stored parts
    jobs: int = 1  # pg_dump --jobs of a directory-format dump
    directory: bool = False  # pg_dump -Fd, stored as a tar (`dirtar.py`, backup.jobs > 1)


def build_manifest(
    db: DatabaseSettings,
    record: BackupRecord,
    conn: ConnInfo,
    artifact_key: str,
    dump: DumpFacts,
    finished: datetime,
) -> dict[str, Any]:
    """The manifest of backup `record` of `db`, stored at `artifact_key`."""
    name = artifact_key.rsplit("/", 1)[-1]
    session, streamed = dump.session, dump.streamed
    return {
        "format": MANIFEST_FORMAT,
        "backup_id": record.id,
        "database": db.name,
        "provider": db.provider,
        "source": {"host": conn.host, "port": conn.port, "dbname": conn.dbname},
        "label": record.label,
        "requested_by": record.actor,
        "started_at": record.started_at.isoformat(),
        "finished_at": finished.isoformat(),
        "server_version": session.server.version,
        "server_version_num": session.server.version_num,
        "pg_dump_version": dump.pg_dump_version,
        "artifact": name,
        "archive_format": _archive_format(dump),
        "dump_format": DIRECTORY_TAR if dump.directory else CUSTOM,
        "dump_jobs": dump.jobs,
        "compression": COMPRESSION,
        "compression_level": dump.compression_level,
        "raw_size": streamed.raw_size,
        "stored_size": streamed.stored_size,
        "sha256": streamed.sha256,
        "row_counts": dump.row_counts,
        "row_counts_snapshot": "same as dump" if session.consistent else "separate",
        "connection_warnings": list(dump.warnings),
        "prisma_migration": dump.prisma,
        "schema": _schema(dump),
        "encryption": dump.encryption,
        "verified": _verified(dump, finished),
        "restore_command": restore_command(name),
    }


def _archive_format(dump: DumpFacts) -> str:
    if dump.directory:
        jobs = dump.jobs
        return f"pg_dump directory format (--format=directory --jobs={jobs} --compress=0) in tar"
    return "pg_dump custom format (--format=custom --compress=0)"


def _schema(dump: DumpFacts) -> dict[str, Any] | None:
    """The schema fingerprint restores are checked against, and whether its catalog part
    shares the dump's snapshot (sequence values never do: they are read just before)."""
    if dump.schema is None:
        return None
    snapshot = "same as dump" if dump.session.consistent else "separate"
    return {**dump.schema, "snapshot": snapshot}


def _verified(dump: DumpFacts, finished: datetime) -> dict[str, Any]:
    """What verification proved: `full` read the stored copy back and the archive in it;
    `checksums` checked the archive on its way out and S3's SHA-256 checksums prove the
    stored copy is those bytes; `age-header` (an encrypted backup, no private key on the
    bot) read back the stored bytes and the age header."""
    full = dump.verification in (FULL, CHECKSUMS)
    verified: dict[str, Any] = {
        "method": dump.verification,
        "sha256": True,
        "zstd_checksum": full,
        "pg_restore_list": full,
        "toc_entries": dump.toc_entries,
        "read_back": dump.verification != CHECKSUMS,
        "at": finished.isoformat(),
    }
    if dump.store_checksum is not None:
        verified["s3_checksum"] = {"algorithm": "SHA256", "composite": dump.store_checksum}
    if dump.encryption is not None:
        verified["age_header"] = True
        verified["decrypted"] = full
    return verified


def verification_summary(manifest: dict[str, Any]) -> str:
    """In words, what the verification after upload checked on the stored copy."""
    verified = manifest.get("verified") or {}
    if verified.get("method") == HEADER:
        return (
            "size, checksum and age header on the stored copy; not decrypted "
            "(no backup.verify_identity)"
        )
    if verified.get("method") == CHECKSUMS:
        return (
            "pg_restore --list on the way out; SHA-256 of every part checked by S3, "
            "composite checksum matched"
        )
    if manifest.get("encryption"):
        return "checksum, decrypted, and pg_restore --list on the stored copy"
    return "checksum and pg_restore --list on the stored copy"
