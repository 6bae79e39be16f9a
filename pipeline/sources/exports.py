"""The ingest stage's core: a profile, and the export it reads, mapped onto the data contract.

A profile is a shipped name (``pipeline/profiles/<name>.yaml``), a path to a profile YAML, or ``demo`` (the
generated demo CRM). `ingest_export` reads the export (four tables, or one flat file) and maps it; the demo
profile generates its CRM instead. `variant_of` is the one place that decides which variant of the pipeline a
profile runs: ``snapshots`` (four tables, point-in-time snapshots) or ``flat`` (one row per lead).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from features.schema import BANT_CONFIRMED_COLUMNS, FLAT, FLAT_TIME, SNAPSHOTS, TABLE_ORDER
from pipeline.sources.demo_crm import DemoConfig, generate_demo_crm
from pipeline.sources.profiles import (
    FlatData,
    Profile,
    ProfileError,
    empty_table,
    export_as_of,
    map_flat,
    map_table,
    missing_source_column,
    parse_profile,
    with_sales_flag,
)
from pipeline.sources.readers import InputFileError, read_export, wrong_delimiter_hint

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"
DEMO = "demo"
DEMO_PROFILE = Profile(name=DEMO, kind="tables",
                       description="The generated demo CRM (params `demo:`): four contract tables and a hidden truth.")
# A flat export without BANT mappings: every gate reads a confirmation column the export never has, so every gate
# is unknown (a missing answer is not a "no") and the call queue decides.
UNKNOWN_GATES = {name.split("_")[1]: {"confirmed": name, "any": [{"column": name, "op": "==", "value": 1}]}
                 for name in BANT_CONFIRMED_COLUMNS}


def available_profiles() -> list[str]:
    return sorted([DEMO, *(p.stem for p in PROFILES_DIR.glob("*.yaml"))])


def load_profile(name_or_path: str | Path) -> Profile:
    """``demo``, a shipped profile by name (``pipeline/profiles/<name>.yaml``) or a profile YAML file by path."""
    if str(name_or_path) == DEMO:
        return DEMO_PROFILE
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ProfileError(f"profile {str(name_or_path)!r} not found; shipped profiles: {', '.join(available_profiles())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from None
    return parse_profile(data, path.stem)


def variant_of(profile: Profile) -> str:
    """The pipeline variant of a profile: ``snapshots`` for four-table exports (and the demo), ``flat`` else."""
    return FLAT if profile.kind == "flat" else SNAPSHOTS


def apply_overrides(params, profile: Profile):
    """The profile's ``overrides`` (per params section) on top of the params; unknown fields refused. A flat
    profile's BANT ``gates`` replace ``score.gates`` (none declared: every gate unknown)."""
    sections = {}
    for section, fields in profile.overrides.items():
        if not hasattr(params, section):
            raise ProfileError(f"{profile.name}.overrides: unknown params section {section!r}")
        current = getattr(params, section)
        known = {f.name for f in dataclasses.fields(current)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ProfileError(f"{profile.name}.overrides.{section}: unknown field(s) {unknown}")
        sections[section] = dataclasses.replace(current, **{
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
        })
    params = dataclasses.replace(params, **sections)
    if variant_of(profile) == FLAT:
        params = dataclasses.replace(params, score=dataclasses.replace(
            params.score, gates=dict(profile.gates) or UNKNOWN_GATES))
    return params


# ------------------------------------------------------------------------------------------------ reading


def read_tables_export(profile: Profile, input_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The contract tables mapped from a four-table export folder; a table the profile does not map is empty."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputFileError(f"{input_dir}: a four-table profile needs the export folder, not a file")
    mapped, rows_read = {}, {}
    for table in TABLE_ORDER:
        if table not in profile.tables:
            mapped[table] = empty_table(table)
            continue
        frames = []
        for fname in profile.tables[table].files:
            df = read_export(input_dir / fname)
            missing = missing_source_column(list(df.columns), profile, table)
            if missing:
                raise ProfileError(
                    f"{input_dir / fname}: column {missing[0]!r} (contract {table}.{missing[1]}) missing"
                    f"{wrong_delimiter_hint(df, missing[0].split(' or ')[0])}; the file has {list(df.columns)[:12]}")
            frames.append(df)
        mapped[table] = map_table(frames, profile, table)
        if table == "leads":
            mapped[table] = with_sales_flag(mapped[table], profile.working_statuses)
        rows_read[table] = sum(len(f) for f in frames)
    return mapped, rows_read


def _input_file(input_path: Path, name: str | None) -> Path:
    if input_path.is_dir():
        if not name:
            raise ProfileError(f"{input_path}: a folder was given, but the profile names no file")
        return input_path / name
    return input_path


def read_flat_export(profile: Profile, input_path: Path, cv_folds: int = 0) -> tuple[pd.DataFrame, int]:
    """A flat export as one table: ``lead_id``, ``label`` (1 / 0, missing for open leads), ``_time`` when the
    profile declares a time column, then the declared feature columns. Returns (table, rows read); the rows that
    failed a row check are left out (`read_flat_export_checked` returns them).

    Refuses, naming the file and the label, labels too few for the hold-out (and `cv_folds`-fold CV)."""
    table, rows, _ = read_flat_export_checked(profile, input_path, cv_folds)
    return table, rows


def read_flat_export_checked(profile: Profile, input_path: Path, cv_folds: int = 0,
                             not_after: pd.Timestamp | None = None) -> tuple[pd.DataFrame, int, FlatData]:
    """(table of the valid rows, rows read, the mapped `FlatData` with its ``quarantine`` and ``failures``):
    `read_flat_export` with the rows `map_flat` quarantined (``not_after``: the latest plausible date)."""
    input_path = Path(input_path)
    path = _input_file(input_path, profile.file)
    raw = read_export(path)
    positives = None
    if profile.label.in_file:
        label_path = (input_path if input_path.is_dir() else input_path.parent) / profile.label.in_file
        label_raw = read_export(label_path)
        if profile.label.key not in label_raw.columns:
            raise ProfileError(f"{label_path}: column {profile.label.key!r} missing")
        positives = set(label_raw[profile.label.key].dropna().astype(str))
    missing = [c for c in profile.source_columns() if c not in raw.columns]
    if missing:
        raise ProfileError(f"{path}: column {missing[0]!r} missing{wrong_delimiter_hint(raw, missing[0])}; "
                           f"the file has {list(raw.columns)[:12]}")
    data = map_flat(raw, profile, positives, source=str(path), not_after=not_after)
    labelled = data.y.notna()
    if labelled.sum() == 0 or data.y[labelled].nunique() < 2:
        raise ProfileError(f"{path}: column {profile.label.column or profile.label.key!r}: the label needs both "
                           f"outcomes among labelled rows")
    y = data.y[labelled].astype(int)
    n_pos, n_neg, need = int(y.sum()), int(len(y) - y.sum()), max(cv_folds, 2)
    if min(n_pos, n_neg) < need:
        label = profile.label.column or f"{profile.label.in_file}:{profile.label.key}"
        needs = f"a hold-out and {cv_folds}-fold cross-validation need" if cv_folds > 1 else "a hold-out needs"
        raise ProfileError(f"{path}: label {label!r}: {n_pos} converted and {n_neg} not converted among {len(y)} "
                           f"labelled rows; {needs} at least {need} of each")
    head = {"lead_id": data.ids.astype("string").to_numpy(), "label": data.y.astype("Int8").to_numpy()}
    if data.time is not None:
        head[FLAT_TIME] = data.time.to_numpy()
    table = pd.concat([pd.DataFrame(head), data.X.reset_index(drop=True)], axis=1)
    return table, len(raw), data


# ------------------------------------------------------------------------------------------------- ingest


@dataclass
class Ingested:
    """An export mapped onto the contract: the four tables or the flat table, its scoring date and its counts."""

    profile: str
    variant: str
    as_of: pd.Timestamp
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # snapshots variant
    flat: pd.DataFrame | None = None  # flat variant
    rows_read: dict[str, int] = field(default_factory=dict)
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)  # the demo's hidden state (evaluation only)
    # flat variant: the rows the row checks refused (source columns, `source_row`, `reason`) and per check counts
    flat_quarantine: pd.DataFrame | None = None
    flat_failures: dict[str, int] = field(default_factory=dict)

    def manifest(self, input_path: Any) -> dict[str, Any]:
        return {"profile": self.profile, "variant": self.variant, "as_of": str(self.as_of.date()),
                "input": str(input_path), "rows_read": self.rows_read,
                "tables": sorted(self.tables) if self.flat is None else ["flat"]}


def resolve_as_of(as_of: str, profile: Profile, found: pd.Timestamp | None) -> pd.Timestamp:
    """``ingest.as_of`` when set, else the profile's ``export_date``, else the date the data implies."""
    for value in (as_of, profile.export_date):
        if value and value != "auto":
            try:
                return pd.Timestamp(value).normalize()
            except ValueError:
                raise ProfileError(f"as_of {value!r}: not a date (YYYY-MM-DD) or 'auto'") from None
    if found is None:
        raise ProfileError(f"profile {profile.name!r}: the export has no dates; set ingest.as_of (YYYY-MM-DD)")
    return found


def ingest_export(profile: Profile, input_path: Path | str, demo: DemoConfig | None = None,
                  as_of: str = "auto", today: pd.Timestamp | None = None, cv_folds: int = 0) -> Ingested:
    """Read (or, for the demo, generate) an export and map it onto the contract."""
    today = today if today is not None else pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
    if profile.name == DEMO and profile is DEMO_PROFILE:
        crm = generate_demo_crm(demo or DemoConfig())
        tables = {name: getattr(crm, name) for name in TABLE_ORDER}
        return Ingested(DEMO, SNAPSHOTS, resolve_as_of(as_of, profile, export_as_of(tables)), tables=tables,
                        rows_read={n: len(t) for n, t in tables.items()},
                        truth={"truth": crm.truth, "dirty_rows": crm.dirty})
    if variant_of(profile) == FLAT:
        declared = next((v for v in (as_of, profile.export_date) if v and v != "auto"), None)
        try:
            not_after = pd.Timestamp(declared).normalize() + pd.Timedelta(days=1) if declared else today
        except ValueError:
            not_after = today  # resolve_as_of names the bad date below
        flat, n_rows, mapped = read_flat_export_checked(profile, Path(input_path), cv_folds,
                                                         not_after - pd.Timedelta(microseconds=1))
        found = None
        if FLAT_TIME in flat and pd.api.types.is_datetime64_any_dtype(flat[FLAT_TIME]) and flat[FLAT_TIME].notna().any():
            found = pd.Timestamp(flat[FLAT_TIME].max()).normalize() + pd.Timedelta(days=1)
        found = found if found is not None else pd.Timestamp.now().normalize()
        return Ingested(profile.name, FLAT, resolve_as_of(as_of, profile, found), flat=flat,
                        rows_read={"flat": n_rows}, flat_quarantine=mapped.quarantine,
                        flat_failures=mapped.failures)
    mapped, rows_read = read_tables_export(profile, Path(input_path))
    present = {k: v for k, v in mapped.items() if len(v)}
    found = export_as_of(present, not_after=today) if present else None
    return Ingested(profile.name, SNAPSHOTS, resolve_as_of(as_of, profile, found), tables=mapped,
                    rows_read=rows_read)

