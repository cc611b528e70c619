"""`backupbot config check` with `backup.verify_identity`, run as the installed console
script: the identity file must exist, be a readable age identity and hold the key of one
of `backup.encrypt_to`; a file others may read is a warning. The private key is never
printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pyrage import x25519

BACKUPBOT = Path(sys.executable).with_name("backupbot")


def _identity(path: Path, mode: int = 0o600) -> tuple[str, str]:
    """An age identity file at `path` as age-keygen writes it: (private, public) key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    path.write_text(f"# created: now\n# public key: {public}\n{identity}\n", encoding="utf-8")
    path.chmod(mode)
    return str(identity), public


def _check(
    tmp_path: Path, encrypt_to: list[str], identity: str
) -> subprocess.CompletedProcess[str]:
    """`backupbot config check` over a config naming `identity` (relative to the file)."""
    if not BACKUPBOT.exists():
        pytest.fail(f"{BACKUPBOT} is missing: pip install -e '.[test]'", pytrace=False)
    config = tmp_path / "backupbot.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": f"sqlite:///{tmp_path}/state.db",
                "storage": {"local": {"path": str(tmp_path / "backups")}},
                "backup": {"encrypt_to": encrypt_to, "verify_identity": identity},
                "databases": [{"name": "app", "url": "postgresql://app@127.0.0.1:5432/app"}],
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLACK_") and k != "BACKUPBOT_CONFIG"
    }
    return subprocess.run(
        [str(BACKUPBOT), "--config", str(config), "config", "check"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_identity_for_a_recipient_is_named_by_its_public_key_only(tmp_path: Path) -> None:
    secret, public = _identity(tmp_path / "key.txt")
    other = str(x25519.Identity.generate().to_public())

    done = _check(tmp_path, [other, public], "key.txt")

    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("verify identity: ")]
    assert line.startswith(f"verify identity: {tmp_path / 'key.txt'}, the key of {public}:")
    assert "may be read by group or others" not in done.stdout
    assert secret not in done.stdout + done.stderr


def test_an_identity_others_may_read_is_a_warning(tmp_path: Path) -> None:
    secret, public = _identity(tmp_path / "key.txt", mode=0o644)

    done = _check(tmp_path, [public], "key.txt")

    assert done.returncode == 0, done.stderr
    path = tmp_path / "key.txt"
    assert (
        f"warning: backup.verify_identity {path} may be read by group or others (mode 0644): "
        f"it holds a private key; chmod 600 {path}"
    ) in done.stdout.splitlines()
    assert secret not in done.stdout + done.stderr


def test_an_identity_for_no_recipient_means_verification_could_not_decrypt(
    tmp_path: Path,
) -> None:
    secret, public = _identity(tmp_path / "key.txt")
    recipient = str(x25519.Identity.generate().to_public())

    done = _check(tmp_path, [recipient], "key.txt")

    assert done.returncode == 2 and done.stdout == ""
    assert "verification could not decrypt the backups" in done.stderr
    assert f"it holds the key of {public}" in done.stderr
    assert secret not in done.stderr


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (None, "does not exist"),
        ("dir", "is not a file"),
        (b"AGE-SECRET-KEY-1NOTAKEYATALL\n", "Line 1 of"),
        (b"\xff\xfe not text\n", "cannot read"),
        (b"# only a comment\n", "holds no age identity"),
    ],
)
def test_an_unusable_identity_file_is_one_error_naming_the_setting(
    tmp_path: Path, make: bytes | str | None, problem: str
) -> None:
    path = tmp_path / "key.txt"
    if make == "dir":
        path.mkdir()
    elif isinstance(make, bytes):
        path.write_bytes(make)
        path.chmod(0o600)
    public = str(x25519.Identity.generate().to_public())

    done = _check(tmp_path, [public], "key.txt")

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {tmp_path / 'backupbot.yml'} is invalid:")
    assert "backup.verify_identity" in done.stderr and problem in done.stderr
    assert "NOTAKEYATALL" not in done.stderr


def test_an_identity_without_encrypt_to_is_noted_as_for_older_backups(tmp_path: Path) -> None:
    secret, _ = _identity(tmp_path / "key.txt")

    done = _check(tmp_path, [], "key.txt")

    assert done.returncode == 0, done.stderr
    assert "backup.encrypt_to is empty: new backups are not encrypted" in done.stdout
    assert secret not in done.stdout
