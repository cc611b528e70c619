"""The tar a parallel dump is stored as (storage/dirtar.py): what is packed comes back
byte for byte, a stored tar missing a file pg_dump wrote fails verification, and an
unpacked tar cannot write outside its directory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from backupbot.errors import VerificationFailed
from backupbot.storage.dirtar import TarTocLister, extract_dump, tar_stream
from backupbot.storage.pg_binaries import PgBinaries

BINARIES = PgBinaries(Path("/nonexistent"), 15, "15")  # never run: the checks fail first


def _dump_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "20261203T000000Z-abc"
    directory.mkdir()
    (directory / "toc.dat").write_bytes(b"PGDMP" + bytes(range(256)) * 40)
    (directory / "3401.dat").write_bytes(b"1\tone\n" * 50_000)
    return directory


def _packed(directory: Path) -> bytes:
    with tar_stream(directory, directory.name) as stream:
        return stream.read()


def test_the_tar_stream_holds_every_file_under_the_top_directory_byte_for_byte(
    tmp_path: Path,
) -> None:
    directory = _dump_dir(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(_packed(directory))) as tar:
        names = sorted(tar.getnames())
        assert names == [f"{directory.name}/3401.dat", f"{directory.name}/toc.dat"]
        for name in names:
            member = tar.extractfile(name)
            assert member is not None
            assert member.read() == (directory / name.split("/")[1]).read_bytes()


def test_a_stored_tar_missing_a_file_pg_dump_wrote_fails_verification(tmp_path: Path) -> None:
    directory = _dump_dir(tmp_path)
    packed = _packed(directory)
    members = [f"{directory.name}/3401.dat", f"{directory.name}/4000.dat"]
    members.append(f"{directory.name}/toc.dat")
    lister = TarTocLister(BINARIES, members, tmp_path)
    sink = lister.start()
    sink.write(packed)
    with pytest.raises(VerificationFailed, match=r"missing: 20261203T000000Z-abc/4000\.dat"):
        lister.finish()


def test_a_truncated_stored_tar_fails_verification(tmp_path: Path) -> None:
    directory = _dump_dir(tmp_path)
    packed = _packed(directory)
    members = sorted(f"{directory.name}/{p.name}" for p in directory.iterdir())
    lister = TarTocLister(BINARIES, members, tmp_path)
    lister.start().write(packed[:20_000])
    with pytest.raises(VerificationFailed, match="tar"):
        lister.finish()


def test_unpacking_refuses_a_member_outside_its_directory(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(VerificationFailed, match="could not be unpacked"):
        extract_dump(hostile, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out").exists()


def test_unpacking_gives_the_dump_directory_and_removes_the_tar(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    directory = _dump_dir(tmp_path / "src")
    tar_path = tmp_path / "archive.dump"
    tar_path.write_bytes(_packed(directory))
    top = extract_dump(tar_path, tmp_path / "archive.d")
    assert top == tmp_path / "archive.d" / directory.name
    assert (top / "3401.dat").read_bytes() == (directory / "3401.dat").read_bytes()
    assert not tar_path.exists()
    assert (tmp_path / "archive.d").stat().st_mode & 0o777 == 0o700
