"""Finding and validating the sidecar (JSON/YAML column roles) of a generic CSV, with errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from edge_agent.dataformat import Sidecar
from training.data.errors import DataError

SIDECAR_SUFFIXES = (".sidecar.json", ".sidecar.yaml", ".sidecar.yml")


def sidecar_candidates(csv_path: Path) -> list[Path]:
    """Where a CSV's sidecar may live: `<csv>.sidecar.json|yaml|yml`, then `<stem>.sidecar.json|yaml|yml`."""
    csv_path = Path(csv_path)
    stem = csv_path.name
    for ext in (".gz", ".csv", ".txt"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    out = [csv_path.with_name(csv_path.name + s) for s in SIDECAR_SUFFIXES]
    out += [csv_path.with_name(stem + s) for s in SIDECAR_SUFFIXES]
    return out


def find_sidecar(csv_path: Path) -> Path:
    for cand in sidecar_candidates(csv_path):
        if cand.is_file():
            return cand
    raise DataError(
        f"{csv_path}: no sidecar found (looked for {sidecar_candidates(csv_path)[0].name} or .yaml next to it); "
        "write one declaring each column's role (see edge_agent/dataformat.py) or pass --sidecar PATH"
    )


def _format_validation_error(path: Path, err: ValidationError) -> str:
    e = err.errors()[0]
    loc = [str(p) for p in e.get("loc", ())]
    where = ".".join(loc) if loc else "(top level)"
    if len(loc) >= 3 and loc[0] == "columns":
        where = f"column {loc[1]!r} key {loc[2]!r}"
    elif len(loc) == 2 and loc[0] == "columns":
        where = f"column {loc[1]!r}"
    got = e.get("input")
    got_txt = ""
    if got is not None and not isinstance(got, dict | list):  # quote the value, never the whole file
        text = repr(got)
        got_txt = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
    more = f"; {len(err.errors()) - 1} more problem(s)" if len(err.errors()) > 1 else ""
    return f"sidecar {path}: {where}: {e.get('msg', 'invalid')}{got_txt}{more}; fix that key in the sidecar"


def read_sidecar(path: Path) -> Sidecar:
    """Parse and validate a sidecar file (JSON, or YAML by suffix). Raises DataError naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sidecar {path}: file not found; pass an existing sidecar path")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise DataError(
            f"sidecar {path}: not valid {path.suffix.lstrip('.').upper()} ({err}); fix the syntax"
        ) from None
    if not isinstance(raw, dict):
        raise DataError(
            f"sidecar {path}: expected a mapping with a 'columns' key; see edge_agent/dataformat.py"
        )
    try:
        return Sidecar.model_validate(raw)
    except ValidationError as err:
        raise DataError(_format_validation_error(path, err)) from None
