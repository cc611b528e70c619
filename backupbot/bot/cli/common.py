"""What every CLI command shares: who the actor is, and how JSON results are printed."""

from __future__ import annotations

import getpass
import json
import os
from typing import Any


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))
