"""Backups encrypted at rest with age: pg_dump → zstd → age → SHA-256 → store.

The bot holds only the recipients' public keys (`backup.encrypt_to`). pyrage's
`encrypt_io`/`decrypt_io` pull from a file-like reader and push to a file-like writer in
bounded buffers (64 KiB age chunks), so a dump of any size streams through without being
held in memory: the reader is zstd's `stream_reader` over pg_dump's stdout, the writer
hashes and counts what it forwards to the store.

Without the private key, verification proves the stored bytes are the ones written (size,
SHA-256) and that they carry an age header with one X25519 stanza per recipient. With
`backup.verify_identity` (an identity file the bot may read) the stored copy is decrypted,
decompressed and listed by `pg_restore --list` as an unencrypted backup is; restores and
drills decrypt with the same identity.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import pyrage
import zstandard
from pyrage import x25519

from backupbot.errors import BackupbotError, NotFound, StoreError, VerificationFailed
from backupbot.storage.artifacts import ArtifactStore, ArtifactWriter
from backupbot.storage.dumpstream import CHUNK, HashingSink, StreamResult

AGE_MAGIC = b"age-encryption.org/v1\n"
SUFFIX = ".age"
RECIPIENTS_SETTING = "backup.encrypt_to"
IDENTITY_SETTING = "backup.verify_identity"
_HEADER_LIMIT = 64 << 10  # an age header with a few recipients is a few hundred bytes
_T = TypeVar("_T")


@dataclass(frozen=True)
class Encryption:
    """What backups are encrypted to, and the identity the bot may decrypt them with."""

    recipients: tuple[str, ...]  # age1… public keys (backup.encrypt_to)
    identity: Path | None = None  # backup.verify_identity

    def parsed(self) -> list[x25519.Recipient]:
        return [parse_recipient(r) for r in self.recipients]

    def manifest(self) -> dict[str, Any]:
        """The manifest's `encryption` entry: how and to whom the artifact is encrypted."""
        return {"format": "age", "recipients": list(self.recipients)}


class KeyUnavailable(BackupbotError):
    """An encrypted backup cannot be decrypted: no identity is configured, or it holds no
    key the backup was encrypted to."""


def parse_recipient(text: str) -> x25519.Recipient:
    """An age X25519 recipient (`age1…`); ValueError in plain words otherwise. A private
    key is named as such and never echoed."""
    value = text.strip()
    if value.upper().startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "this is an age private key; put only public keys (age1…) here: "
            "age-keygen -y key.txt prints the public key of key.txt"
        )
    if not value.startswith("age1"):
        raise ValueError(
            f"{value[:16]!r} is not an age X25519 recipient (a public key starting with age1, "
            "as printed by age-keygen)"
        )
    try:
        return x25519.Recipient.from_str(value)
    except pyrage.RecipientError as exc:
        raise ValueError(f"{value!r} is not a valid age recipient ({exc})") from None


def load_identities(path: Path) -> list[x25519.Identity]:
    """The X25519 identities in the age identity file `path` (comments and blank lines
    skipped); `KeyUnavailable` names the setting and the line, never the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyUnavailable(
            f"The age identity file {path} ({IDENTITY_SETTING}) does not exist."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise KeyUnavailable(
            f"backupbot cannot read the age identity file {path} ({IDENTITY_SETTING}): {reason}."
        ) from None
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise KeyUnavailable(
                f"Line {number} of {path} ({IDENTITY_SETTING}) is not an age X25519 identity "
                "(AGE-SECRET-KEY-1…, as written by age-keygen)."
            ) from None
    if not identities:
        raise KeyUnavailable(f"{path} ({IDENTITY_SETTING}) holds no age identity.")
    return identities


def identities_for(path: Path | None, recipients: Iterable[str], what: str) -> list[Any]:
    """The identities in `path` that can decrypt `what`, encrypted to `recipients`;
    `KeyUnavailable` naming the setting when there is none."""
    if path is None:
        raise KeyUnavailable(
            f"{what} is encrypted with age and no key to decrypt it is configured: set "
            f"{IDENTITY_SETTING} to an age identity file holding the private key of one of "
            f"its recipients ({', '.join(recipients)})."
        )
    identities = load_identities(path)
    wanted = set(recipients)
    matching = [i for i in identities if str(i.to_public()) in wanted]
    if not matching:
        raise KeyUnavailable(
            f"{path} ({IDENTITY_SETTING}) holds no private key for any recipient of {what} "
            f"({', '.join(sorted(wanted))})."
        )
    return matching


class _Relay:
    """Keeps the first exception a Python callback raised inside pyrage, which pyrage
    reports only as text, so the caller can raise the real one."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def call(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except BaseException as exc:
            if self.error is None:
                self.error = exc
            raise


class _Reader(io.BufferedIOBase):
    """A file-like reader for pyrage over `read(size)`, through the relay."""

    def __init__(self, read: Callable[[int], bytes], relay: _Relay) -> None:
        self._read = read
        self._relay = relay

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        n = CHUNK if size is None or size < 0 else size
        return self._relay.call(lambda: self._read(n))


class _Writer(io.BufferedIOBase):
    """A file-like writer for pyrage into `write(data)`, through the relay."""

    def __init__(self, write: Callable[[bytes], object], relay: _Relay) -> None:
        self._write = write
        self._relay = relay

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._relay.call(lambda: self._write(chunk))
        return len(chunk)


def encrypt_stream(
    source: IO[bytes],
    writer: ArtifactWriter,
    recipients: list[x25519.Recipient],
    *,
    level: int = 3,
    threads: int = 0,
    on_bytes: Callable[[int], None] = lambda _n: None,
) -> StreamResult:
    """Copy `source` to `writer` as one zstd frame encrypted to `recipients`; the result's
    size and SHA-256 are those of the stored (encrypted) bytes."""
    cctx = zstandard.ZstdCompressor(
        level=level, threads=threads or -1, write_checksum=True, write_content_size=False
    )
    raw = 0

    def read_raw(size: int) -> bytes:
        nonlocal raw
        data = source.read(size)
        raw += len(data)
        on_bytes(raw)
        return data

    relay = _Relay()
    sink = HashingSink(writer)
    # zstandard only needs `read` of its source; its stubs ask for a whole IO[bytes].
    raw_reader = cast(IO[bytes], _Reader(read_raw, relay))
    compressed = cctx.stream_reader(raw_reader, read_size=CHUNK, closefd=False)
    try:
        pyrage.encrypt_io(_Reader(compressed.read, relay), _Writer(sink.write, relay), recipients)
    except (pyrage.EncryptError, OSError) as exc:
        if relay.error is not None:
            raise relay.error from None
        raise BackupbotError(f"Encrypting the backup with age failed: {exc}.") from None
    return StreamResult(raw_size=raw, stored_size=sink.size, sha256=sink.hash.hexdigest())


class StoredReader:
    """Reads a stored artifact for pyrage, hashing and counting every byte and keeping the
    first bytes (the age header)."""

    def __init__(self, chunks: Iterator[bytes], on_bytes: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._on_bytes = on_bytes
        self._pending = b""
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = bytearray()

    def _next(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self.hash.update(chunk)
        self.size += len(chunk)
        self._on_bytes(self.size)
        if len(self.head) < _HEADER_LIMIT:
            self.head += chunk[: _HEADER_LIMIT - len(self.head)]
        self._pending = chunk
        return True

    def read(self, size: int) -> bytes:
        while not self._pending:
            if not self._next():
                return b""
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def drain(self) -> None:
        """Read (hash and count) whatever is left."""
        self._pending = b""
        while self._next():
            self._pending = b""


def read_stored(store: ArtifactStore, key: str, on_bytes: Callable[[int], None]) -> StoredReader:
    """The whole stored artifact read through, hashed and counted."""
    reader = StoredReader(iter(store.read_chunks(key)), on_bytes)
    reader.drain()
    return reader


def decrypt_into(
    reader: StoredReader, write: Callable[[bytes], object], identities: list[Any]
) -> None:
    """Decrypt what `reader` yields into `write`; the callbacks' own exceptions propagate,
    pyrage's failures as `pyrage.DecryptError`."""
    relay = _Relay()
    try:
        pyrage.decrypt_io(_Reader(reader.read, relay), _Writer(write, relay), identities)
    except (pyrage.DecryptError, OSError) as exc:
        if relay.error is not None:
            raise relay.error from None
        raise pyrage.DecryptError(str(exc)) from None


def header_stanzas(head: bytes) -> list[str] | None:
    """The stanza types of the age header at the start of `head` (None: no complete age
    v1 header there)."""
    if not head.startswith(AGE_MAGIC):
        return None
    end = head.find(b"\n--- ")
    if end < 0 or head.find(b"\n", end + 1) < 0:
        return None
    lines = head[len(AGE_MAGIC) : end + 1].decode("ascii", "replace").splitlines()
    return [line.split()[1] for line in lines if line.startswith("-> ") and len(line.split()) > 1]


def check_header(where: str, head: bytes, recipients: int) -> None:
    """The age header has one X25519 stanza per configured recipient (grease stanzas of
    other types, which age adds, are ignored)."""
    stanzas = header_stanzas(head)
    if stanzas is None:
        raise VerificationFailed(
            f"The stored backup at {where} does not start with an age header. It was not kept."
        )
    found = stanzas.count("X25519")
    if found != recipients:
        raise VerificationFailed(
            f"The stored backup at {where} is encrypted to {found} X25519 recipient(s) instead "
            f"of the {recipients} in {RECIPIENTS_SETTING}. It was not kept."
        )


def stored_failure(exc: BaseException, where: str, verb: str) -> BackupbotError | None:
    """The failure to report for reading the stored artifact at `where` (None: `exc`)."""
    if isinstance(exc, NotFound):
        return VerificationFailed(f"The backup file is missing from {where}. {verb}")
    if isinstance(exc, StoreError) and not isinstance(exc, KeyUnavailable):
        return VerificationFailed(f"Could not read the stored backup at {where}: {exc} {verb}")
    return None
