"""Where study files are found (``$LRSEARCH_STUDIES``, ``./studies``, the bundled ones) and how one is read
as TOML, before any validation: what listing the studies needs, without the imports validating takes."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from lrsearch.errors import ConfigError

__all__ = ["bundled_dir", "find_study", "list_studies", "read_study_file"]


def bundled_dir() -> Path:
    """The bundled studies: package data, in a checkout and in an installed wheel alike."""
    return Path(__file__).resolve().parent.parent / "bundled_studies"


def _search_dirs() -> list[Path]:
    dirs = [Path.cwd() / "studies", bundled_dir()]
    if os.environ.get("LRSEARCH_STUDIES"):
        dirs.insert(0, Path(os.environ["LRSEARCH_STUDIES"]))
    return list(dict.fromkeys(d.resolve() for d in dirs))


def find_study(name_or_path: str) -> Path:
    """A study file: a path to a .toml file, or a name looked up in $LRSEARCH_STUDIES, ./studies, the
    bundled studies."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"study file {name_or_path} does not exist")
        return path
    for folder in _search_dirs():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in list_studies())) or "none"
    raise ConfigError(f"unknown study {name_or_path!r} (known: {known})")


def list_studies() -> list[Path]:
    """Study files on the search path, first of each name."""
    found: dict[str, Path] = {}
    for folder in _search_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return list(found.values())


def read_study_file(path: Path) -> dict[str, Any]:
    """A study file's keys as TOML gives them, not yet checked."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a study file is TOML, which is UTF-8") from None
    except (OSError, ValueError) as exc:  # ValueError: a path the system cannot even look up (a NUL in it)
        raise ConfigError(f"{path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
