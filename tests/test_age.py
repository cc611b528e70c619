"""age encryption of backups: recipients and identities checked in plain words (a private
key is never echoed), the stream stays a stream and decrypts with the real `age` CLI, and
the read-back catches a short or altered stored copy on both stores, with and without the
private key. Keys are generated at test time."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zstandard
from pyrage import x25519

from backupbot.errors import ConfigError, StoreError, VerificationFailed
from backupbot.settings.loading import parse_settings
from backupbot.storage.agecheck import FULL, HEADER, verify_encrypted
from backupbot.storage.agestream import (
    AGE_MAGIC,
    KeyUnavailable,
    encrypt_stream,
    identities_for,
    load_identities,
    parse_recipient,
)
from backupbot.storage.dumpstream import StreamResult
from backupbot.storage.local_store import LocalStore
from backupbot.storage.pg_binaries import find_binaries
from backupbot.storage.s3_store import S3Store
from tests.conftest import make_settings

MB = 1 << 20
NO_BINARIES: Any = None  # pg tools are not used without identities: nothing is decrypted


def _age() -> str:
    found = shutil.which("age")
    assert found, "the age CLI is missing: run scripts/install-system-deps.sh (Debian: age)"
    return found


def new_key(path: Path) -> str:
    identity = x25519.Identity.generate()
    path.write_text(f"# created by the test\n{identity}\n", encoding="utf-8")
    return str(identity.to_public())


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    return S3Store(s3, request.getfixturevalue("bucket"), "team/", part_size=5 * MB)


# -- keys in the configuration -------------------------------------------------------------


def test_a_private_key_in_encrypt_to_is_refused_without_being_echoed(tmp_path: Path) -> None:
    secret = str(x25519.Identity.generate())
    raw = {
        "storage": {"local": {"path": "./b"}},
        "databases": [{"name": "app", "url": "postgresql://u@h/app"}],
        "backup": {"encrypt_to": [secret]},
    }
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, {}, base_dir=tmp_path)
    shown = str(info.value) + " ".join(info.value.problems)
    assert "backup.encrypt_to" in shown and "private key" in shown
    assert secret not in shown and secret[15:] not in shown


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ssh-ed25519 AAAAC3Nza", "not an age X25519 recipient"),
        ("age1notbech32atall", "not a valid age recipient"),
    ],
)
def test_a_malformed_recipient_is_refused_at_load(tmp_path: Path, value: str, words: str) -> None:
    raw = {
        "storage": {"local": {"path": "./b"}},
        "databases": [{"name": "app", "url": "postgresql://u@h/app"}],
        "backup": {"encrypt_to": [value]},
    }
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, {}, base_dir=tmp_path)
    assert any("backup.encrypt_to" in p and words in p for p in info.value.problems)


def test_good_keys_load_and_the_identity_path_is_relative_to_the_config(tmp_path: Path) -> None:
    public = new_key(tmp_path / "key.txt")
    raw = {
        "storage": {"local": {"path": "./b"}},
        "databases": [{"name": "app", "url": "postgresql://u@h/app"}],
        "backup": {"encrypt_to": [public], "verify_identity": "key.txt"},
    }
    settings = parse_settings(raw, {}, base_dir=tmp_path)
    assert settings.backup.encrypt_to == [public]
    assert settings.backup.verify_identity == tmp_path / "key.txt"
    assert parse_recipient(public) is not None


def test_identity_problems_name_the_setting_and_never_the_key(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match=r"backup\.verify_identity.*does not exist"):
        load_identities(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\nAGE-SECRET-KEY-1NOTAKEYATALLXYZ\n")
    with pytest.raises(KeyUnavailable, match="Line 2") as info:
        load_identities(bad)
    assert "NOTAKEY" not in str(info.value)
    public = new_key(tmp_path / "mine.txt")
    other = new_key(tmp_path / "other.txt")
    with pytest.raises(KeyUnavailable, match=r"no key to decrypt it is configured: set backup"):
        identities_for(None, [public], "Backup x")
    with pytest.raises(KeyUnavailable, match="holds no private key"):
        identities_for(tmp_path / "other.txt", [public], "Backup x")
    assert len(identities_for(tmp_path / "mine.txt", [public, other], "Backup x")) == 1


# -- the stream -----------------------------------------------------------------------------


class _Writes:
    """An ArtifactWriter that keeps what it got, and the size of each write."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.sizes: list[int] = []

    def write(self, data: bytes) -> None:
        self.data += data
        self.sizes.append(len(data))

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


def test_the_stream_is_encrypted_in_bounded_writes_and_the_age_cli_decrypts_it(
    tmp_path: Path,
) -> None:
    public = new_key(tmp_path / "key.txt")
    source = os.urandom(3 * MB) + b"\0" * (9 * MB)  # incompressible, then very compressible
    sink = _Writes()
    seen: list[int] = []
    result = encrypt_stream(
        io.BytesIO(source), sink, [parse_recipient(public)], threads=2, on_bytes=seen.append
    )
    assert result.raw_size == len(source) and seen[-1] == len(source)
    assert result.stored_size == len(sink.data)
    assert bytes(sink.data).startswith(AGE_MAGIC)
    assert len(sink.sizes) > 10 and max(sink.sizes) <= 1 * MB  # streamed, not one buffer
    artifact = tmp_path / "a.dump.zst.age"
    artifact.write_bytes(bytes(sink.data))
    plain = subprocess.run(
        [_age(), "-d", "-i", str(tmp_path / "key.txt"), str(artifact)],
        capture_output=True,
        check=True,
    ).stdout
    assert zstandard.ZstdDecompressor().decompressobj().decompress(plain) == source


def test_a_store_failure_inside_the_stream_is_reported_as_itself(tmp_path: Path) -> None:
    public = new_key(tmp_path / "key.txt")

    class Full(_Writes):
        def write(self, data: bytes) -> None:
            raise StoreError("The backup disk is full (/srv). Nothing was kept.")

    with pytest.raises(StoreError, match="disk is full"):
        encrypt_stream(io.BytesIO(os.urandom(2 * MB)), Full(), [parse_recipient(public)])


# -- verification of the stored copy, both stores --------------------------------------------


def _stored(store: Any, tmp_path: Path, recipients: int = 1) -> tuple[str, StreamResult, str]:
    publics = [new_key(tmp_path / f"key{i}.txt") for i in range(recipients)]
    writer = store.open_writer("app/x.dump.zst.age")
    result = encrypt_stream(
        io.BytesIO(os.urandom(6 * MB)), writer, [parse_recipient(p) for p in publics]
    )
    writer.commit()
    return "app/x.dump.zst.age", result, publics[0]


def _replace(store: Any, key: str, data: bytes) -> None:
    store.delete(key)
    store.put_bytes(key, data)


def test_without_the_key_a_good_copy_verifies_and_a_short_one_is_caught(
    store: Any, tmp_path: Path
) -> None:
    key, result, _public = _stored(store, tmp_path)
    ok = verify_encrypted(store, key, result, NO_BINARIES, recipients=1, identities=None)
    assert ok.method == HEADER and ok.toc_entries is None
    data = store.get_bytes(key)
    _replace(store, key, data[: len(data) // 2])
    with pytest.raises(VerificationFailed, match="does not match what was written"):
        verify_encrypted(store, key, result, NO_BINARIES, recipients=1, identities=None)


def test_without_the_key_a_copy_for_other_recipients_is_caught(store: Any, tmp_path: Path) -> None:
    key, result, _public = _stored(store, tmp_path, recipients=2)
    with pytest.raises(VerificationFailed, match="2 X25519 recipient"):
        verify_encrypted(store, key, result, NO_BINARIES, recipients=1, identities=None)


def test_without_the_key_a_missing_age_header_is_caught(store: Any, tmp_path: Path) -> None:
    plain = zstandard.ZstdCompressor().compress(os.urandom(1000))
    store.put_bytes("app/y.dump.zst.age", plain)
    expected = StreamResult(1000, len(plain), hashlib.sha256(plain).hexdigest())
    with pytest.raises(VerificationFailed, match="does not start with an age header"):
        verify_encrypted(
            store, "app/y.dump.zst.age", expected, NO_BINARIES, recipients=1, identities=None
        )


# -- a whole backup with the key: pg_restore --list on the decrypted copy ----------------------


@pytest.fixture
def encrypted_backup(sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any) -> Any:
    public = new_key(tmp_path / "key.txt")
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/s.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"]}],
        extra={"backup": {"encrypt_to": [public], "verify_identity": str(tmp_path / "key.txt")}},
    )
    record = bot_factory(settings).services.backups.backup_now("app", "UALICE")
    assert record.status == "succeeded", record.error
    return record, public, tmp_path


def test_with_the_key_the_copy_is_decrypted_listed_and_alterations_are_caught(
    encrypted_backup: Any,
) -> None:
    record, public, tmp_path = encrypted_backup
    assert record.artifact_key.endswith(".dump.zst.age")
    assert record.manifest["verified"]["method"] == FULL
    assert record.manifest["verified"]["pg_restore_list"] is True
    store = LocalStore(tmp_path / "backups")
    expected = StreamResult(record.raw_size, record.stored_size, record.sha256)
    binaries = find_binaries(record.manifest["server_version_num"] // 10000)
    identities = identities_for(tmp_path / "key.txt", [public], "the backup")
    tables = record.manifest["row_counts"]

    def verify() -> Any:
        return verify_encrypted(
            store,
            record.artifact_key,
            expected,
            binaries,
            recipients=1,
            identities=identities,
            expected_tables=tables,
        )

    assert verify().toc_entries > 0
    path = tmp_path / "backups" / record.artifact_key
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[:-200]))
    with pytest.raises(VerificationFailed, match="does not match what was written"):
        verify()
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="does not match"):
        verify()
