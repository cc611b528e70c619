"""What pg_dump and pg_restore get: an explicit environment, and a passfile in a private
directory that a later process removes if its writer was killed."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backupbot.errors import BackupbotError
from backupbot.storage import pgconn
from backupbot.storage.pgconn import (
    PASSFILE_PREFIX,
    ConnInfo,
    child_env,
    private_dir,
    remove_leftover_passfiles,
)

PASSWORD = "Vb8n-child-env-Kq3z"
URL = (
    f"postgresql://alice:{PASSWORD}@db.example.com:6543/app?sslmode=verify-full&sslrootcert=/ca.pem"
)
SECRETS = {
    "APP_DATABASE_URL": URL,
    "AWS_SECRET_ACCESS_KEY": "aws-secret-Hj7k",
    "SLACK_BOT_TOKEN": "xoxb-slack-Tt5r",
    "PGPASSWORD": "inherited-Pp9o",
    "PGSSLKEY": "/not/configured.key",
}
ALLOWED = {"PATH", "HOME", "LANG", "TZ", "LC_ALL", "LC_MESSAGES"}


def test_the_child_environment_holds_only_the_allowed_names_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**SECRETS, "LANG": "C.UTF-8", "LC_MESSAGES": "C", "TZ": "UTC"}.items():
        monkeypatch.setenv(name, value)

    with ConnInfo.from_url(URL).client_env() as env:
        names = set(env)

    libpq = {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT"}
    libpq |= {"PGAPPNAME", "PGCONNECT_TIMEOUT", "PGPASSFILE"}
    assert names <= ALLOWED | libpq
    assert libpq <= names and {"PATH", "LANG", "LC_MESSAGES", "TZ"} <= names
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == "/ca.pem"
    assert not [v for v in env.values() for s in SECRETS.values() if s in v]


def test_the_environment_without_a_connection_passes_on_only_path_home_language_and_zone() -> None:
    environ = {**SECRETS, "PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "TMPDIR": "/t", "X": "1"}

    assert child_env(environ) == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C"}


def test_a_passfile_is_written_0600_in_a_0700_directory_of_ours_named_after_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgconn.tempfile, "tempdir", str(tmp_path))

    with ConnInfo.from_url(URL).client_env() as env:
        passfile = Path(env["PGPASSFILE"])
        directory = passfile.parent
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert directory == tmp_path / f"backupbot-{os.getuid()}"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert passfile.name.startswith(f"{PASSFILE_PREFIX}{socket.gethostname()}_{os.getpid()}_")
    assert not passfile.exists()


def test_the_private_directory_is_made_private_again_and_a_symlink_is_refused(
    tmp_path: Path,
) -> None:
    mine = tmp_path / "a"
    mine.mkdir()
    (mine / f"backupbot-{os.getuid()}").mkdir(mode=0o755)
    assert stat.S_IMODE(private_dir(mine).stat().st_mode) == 0o700

    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    (elsewhere / f"backupbot-{os.getuid()}").symlink_to(tmp_path / "a")
    with pytest.raises(BackupbotError, match="not a directory of this user"):
        private_dir(elsewhere)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _passfile(directory: Path, writer: str, *, old: bool = True) -> Path:
    path = directory / f"{PASSFILE_PREFIX}{writer}_x1y2z3"
    path.write_text("*:*:*:*:secret\n", encoding="utf-8")
    path.chmod(0o600)
    if old:  # written before this process started
        before = pgconn._PROCESS_STARTED - 60
        os.utime(path, (before, before))
    return path


def test_only_old_passfiles_of_this_user_whose_writer_is_gone_are_removed(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    killed = _passfile(directory, f"{host}_{_dead_pid()}_abc123")
    live_parent = _passfile(directory, f"{host}_{os.getppid()}_abc123")
    other_host = _passfile(directory, f"elsewhere.example_{_dead_pid()}_abc123")
    written_since = _passfile(directory, f"{host}_{_dead_pid()}_abc123_b", old=False)
    unrelated = directory / "someone-else.txt"
    unrelated.write_text("keep", encoding="utf-8")
    link = directory / f"{PASSFILE_PREFIX}{host}_{_dead_pid()}_abc123_link"
    link.symlink_to(unrelated)

    removed = remove_leftover_passfiles(directory)

    assert removed == [killed]
    assert not killed.exists()
    assert live_parent.exists() and other_host.exists() and written_since.exists()
    assert unrelated.exists() and link.is_symlink()


def test_a_host_name_with_underscores_still_tells_its_leftovers_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "build_box_7")
    killed = _passfile(tmp_path, f"build_box_7_{_dead_pid()}_abc123")
    other = _passfile(tmp_path, f"build_{_dead_pid()}_abc123")  # host "build": not ours

    assert remove_leftover_passfiles(tmp_path) == [killed]
    assert other.exists()
