"""TLS for the throwaway cluster: a self-signed certificate made with the `openssl`
program, so URLs with `sslmode=require` (what the bot uses for Neon, Supabase and Render,
see `settings/connection_advice.py`) connect to it as they would to the provider.
Without `openssl` the cluster runs without TLS and says nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


def tls_settings(data_dir: Path, chown: Callable[[Path], None]) -> dict[str, str]:
    """postgresql.conf settings turning TLS on with a certificate in `data_dir` (made
    once, the key readable by its owner only); empty when `openssl` is missing."""
    cert, key = data_dir / "devkit-server.crt", data_dir / "devkit-server.key"
    if not (cert.exists() and key.exists()):
        openssl = shutil.which("openssl")
        if openssl is None:
            return {}
        args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"]
        args += ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)]
        made = subprocess.run(
            [openssl, *args],
            capture_output=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if made.returncode != 0:
            return {}
        os.chmod(key, 0o600)
        for path in (cert, key):
            chown(path)
    return {"ssl": "on", "ssl_cert_file": f"'{cert}'", "ssl_key_file": f"'{key}'"}
