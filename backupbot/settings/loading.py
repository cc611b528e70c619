"""Reading the file: where it is, `${VAR}` interpolation, paths made absolute against the
file's directory, and validation errors worded as the key and the fix."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    SecretStr,
    ValidationError,
)

from backupbot.errors import ConfigError
from backupbot.settings.connection_advice import with_provider_sslmode
from backupbot.settings.model import SQLITE_URL, Settings
from backupbot.settings.sections import DatabaseSettings

DEFAULT_CONFIG_PATH = "backupbot.yml"
CONFIG_ENV = "BACKUPBOT_CONFIG"
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MISSING_HINTS = {
    ("storage",): "add storage.local.path (a directory) or storage.s3.bucket",
}


def config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """`--config` wins, then $BACKUPBOT_CONFIG, then ./backupbot.yml."""
    return Path(cli_value or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def interpolate(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing variable is an error."""
    if isinstance(value, dict):
        return {
            k: interpolate(v, environ, f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if environ.get(name) or (name in environ and default is None):
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _ENV_RE.sub(sub, value)
    if missing:
        raise ConfigError(
            [
                f"{where}: environment variable {n} is not set; export it or use ${{{n}:-default}}"
                for n in missing
            ]
        )
    return result


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("LocalStorage", "S3Storage", "function-after"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            inner = getattr(candidate, "__args__", (candidate,))
            found = next(
                (c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None
            )
            if found is not None:
                current = found
                break
        else:
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                current = annotation
            else:
                return []
    return list(getattr(current, "model_fields", {}))


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    where = _location(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(Settings, loc)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key; {hint}"
    if loc in _MISSING_HINTS and (kind == "missing" or err.get("input", "") is None):
        return f"{where}: required; {_MISSING_HINTS[loc]}"  # also `storage:` left empty
    if kind == "missing":
        return f"{where}: required; add it"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: must be one of {expected}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}"


def resolve_path(value: str | Path, base: Path) -> Path:
    """`value` with `~` expanded, relative to the absolute directory `base`, normalised."""
    return Path(os.path.normpath(base / os.path.expanduser(value)))


def resolve_state_url(url: str, base: Path) -> str:
    """A relative SQLite file (`sqlite:///rel.db`) made absolute (`sqlite:////dir/rel.db`);
    absolute files, in-memory databases and other databases' URLs are returned as they are."""
    m = SQLITE_URL.match(url)
    if m is None:
        return url
    prefix, path, query = m.group(1), m.group(2), m.group(3) or ""
    if path in ("", ":memory:") or path.startswith(("/", "file:")):
        return url
    return f"{prefix}{resolve_path(path, base)}{query}"


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """The settings with every relative path in them resolved against `base`."""
    base = Path(os.path.abspath(os.path.expanduser(base)))
    storage = settings.storage
    if storage.local is not None:
        local = storage.local.model_copy(update={"path": resolve_path(storage.local.path, base)})
        storage = storage.model_copy(update={"local": local})
    identity = settings.backup.verify_identity
    backup = settings.backup.model_copy(
        update={
            "pg_bin_dirs": [resolve_path(d, base) for d in settings.backup.pg_bin_dirs],
            "verify_identity": None if identity is None else resolve_path(identity, base),
        }
    )
    work_dir = settings.restore.work_dir
    restore = settings.restore.model_copy(
        update={"work_dir": None if work_dir is None else resolve_path(work_dir, base)}
    )
    resolved = settings.model_copy(
        update={
            "databases": [_with_sslmode(d) for d in settings.databases],
            "state_url": resolve_state_url(settings.state_url, base),
            "storage": storage,
            "backup": backup,
            "restore": restore,
        }
    )
    resolved._base_dir = base
    return resolved


def _with_sslmode(db: DatabaseSettings) -> DatabaseSettings:
    """`db` with the sslmode its provider needs when the URL names none
    (`connection_advice.with_provider_sslmode`)."""
    url = db.url.get_secret_value()
    effective = with_provider_sslmode(url, db.provider)
    return db if effective == url else db.model_copy(update={"url": SecretStr(effective)})


def parse_settings(
    raw: Any,
    environ: Mapping[str, str],
    source: str = "configuration",
    base_dir: Path | None = None,
) -> Settings:
    """Validate `raw` (the parsed YAML). Relative paths in it resolve against `base_dir`
    (`load_settings` passes the config file's directory; default: the current directory)."""
    if not isinstance(raw, dict):
        raise ConfigError(["the file must be a YAML mapping with a databases: list"], source)
    try:
        data = interpolate(raw, environ)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(e) for e in exc.errors()))
        raise ConfigError(problems, source) from None
    return resolve_paths(settings, Path.cwd() if base_dir is None else base_dir)


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    if not path.exists():
        raise ConfigError(
            [f"{path} does not exist; create it (see README 'Configuration') or pass --config"],
            str(path),
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [f"not valid YAML{at}: {getattr(exc, 'problem', exc)}"], str(path)
        ) from None
    file = Path(os.path.abspath(path))
    settings = parse_settings(raw, environ, str(path), base_dir=file.parent)
    settings._config_file = file
    return settings
