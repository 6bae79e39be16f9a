"""BANT gates: hard qualification criteria with three outcomes per lead — pass, fail or unknown.

A gate is a set of conditions over lead, account and feature columns, any of which passing passes the gate
(Kleene OR: one True passes, all False fails, otherwise unknown). A qualification call's confirmed answer,
when present, overrides the inferred conditions: direct communication beats inference.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
OUTCOMES = (PASS, UNKNOWN, FAIL)  # a gate's outcome codes 0, 1, 2 (`BantGate.evaluate`)
GATE_ORDER = ("budget", "authority", "need", "timeline")

_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
OPERATORS = (*_COMPARE, "in", "not_in")


def texts_of(codes: np.ndarray, labels, dtype: str = "string"):
    """The text array whose row i is ``labels[codes[i]]`` (a negative code: missing) in pandas' `dtype`, built by
    Arrow from the few labels: the array pandas makes of the same Python strings, without one object per row."""
    import pyarrow as pa

    codes = np.asarray(codes)
    missing = codes < 0
    index = pa.array(codes, mask=missing) if missing.any() else pa.array(codes)
    return pd.array(pa.array(list(labels), pa.large_string()).take(index), dtype=dtype)


class GateConfigError(ValueError):
    """The gate configuration names an unknown column or operator, or is malformed."""


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """True / False per row, <NA> where the column's value is missing."""
        values = frame[self.column]
        missing = values.isna().to_numpy()
        if self.op in ("in", "not_in"):
            wanted = list(self.value)
            if isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype) and all(isinstance(v, str) for v in wanted):
                hit = values.isin(wanted).to_numpy(dtype=bool)  # no object copy (missing rows are set NA below)
            else:
                hit = values.astype("object").isin(wanted).to_numpy()
            result = hit if self.op == "in" else ~hit
        elif _numeric(values) or pd.api.types.is_bool_dtype(values):
            if isinstance(values.dtype, np.dtype):  # numpy floats / ints / bools: NaN already marks the missing
                numbers = values.to_numpy(dtype=float)
            else:
                numbers = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                result = _COMPARE[self.op](numbers, float(self.value))
        else:
            text = values.astype("string").fillna("")
            result = _COMPARE[self.op](text, str(self.value)).to_numpy(dtype=bool)
        out = pd.arrays.BooleanArray(np.asarray(result, dtype=bool), missing.astype(bool, copy=True))
        return pd.Series(out, index=frame.index)

    def describe(self) -> str:
        if self.op in ("in", "not_in"):
            return f"{self.column} {self.op.replace('_', ' ')} {list(self.value)}"
        return f"{self.column} {self.op} {self.value:,}" if isinstance(self.value, int | float) else f"{self.column} {self.op} {self.value}"


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


@dataclass(frozen=True)
class BantGate:
    name: str
    conditions: tuple[Condition, ...]
    confirmed: str | None = None  # column holding the qualification call's answer (True/False/missing)

    def columns(self) -> list[str]:
        cols = [c.column for c in self.conditions]
        return cols + [self.confirmed] if self.confirmed else cols

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """pass / fail / unknown per row."""
        any_true = np.zeros(len(frame), dtype=bool)
        # No inferred condition at all means no evidence either way: unknown until a call answers.
        any_unknown = np.full(len(frame), not self.conditions, dtype=bool)
        for cond in self.conditions:
            res = cond.evaluate(frame)
            any_true |= res.fillna(False).to_numpy(dtype=bool)
            any_unknown |= res.isna().to_numpy()
        outcome = np.where(any_true, 0, np.where(any_unknown, 1, 2)).astype(np.int8)  # codes of OUTCOMES
        if self.confirmed:
            confirmed = pd.Series(frame[self.confirmed]).astype("Float64")
            known = confirmed.notna().to_numpy()
            yes = confirmed.fillna(0).to_numpy(dtype=float) > 0.5
            outcome[known & yes] = 0
            outcome[known & ~yes] = 2
        return pd.Series(texts_of(outcome, OUTCOMES, "string"), index=frame.index)


def parse_gates(config: Mapping[str, Any], available_columns: list[str] | None = None) -> list[BantGate]:
    """Build gates from the `score.gates` params section, rejecting unknown operators and columns."""
    if not isinstance(config, Mapping) or not config:
        raise GateConfigError("score.gates: at least one gate must be defined")
    gates = []
    for name, spec in config.items():
        where = f"score.gates.{name}"
        if not isinstance(spec, Mapping):
            raise GateConfigError(f"{where}: expected a mapping with 'any' and optionally 'confirmed'")
        unknown_keys = set(spec) - {"any", "confirmed"}
        if unknown_keys:
            raise GateConfigError(f"{where}: unknown key(s) {sorted(unknown_keys)}; use 'any' and 'confirmed'")
        conditions = []
        for i, cond in enumerate(spec.get("any") or []):
            if not isinstance(cond, Mapping) or set(cond) != {"column", "op", "value"}:
                raise GateConfigError(f"{where}.any[{i}]: a condition needs exactly column, op and value")
            if cond["op"] not in OPERATORS:
                raise GateConfigError(f"{where}.any[{i}]: unknown operator {cond['op']!r}; use one of {list(OPERATORS)}")
            if cond["op"] in ("in", "not_in") and not isinstance(cond["value"], list | tuple):
                raise GateConfigError(f"{where}.any[{i}]: operator {cond['op']!r} needs a list value")
            conditions.append(Condition(str(cond["column"]), cond["op"], cond["value"]))
        if not conditions and not spec.get("confirmed"):
            raise GateConfigError(f"{where}: a gate needs conditions under 'any' or a 'confirmed' column")
        gate = BantGate(name=str(name), conditions=tuple(conditions), confirmed=spec.get("confirmed"))
        if available_columns is not None:
            missing = [c for c in gate.columns() if c not in available_columns]
            if missing:
                raise GateConfigError(f"{where}: unknown column(s) {missing}; not in the feature table")
        gates.append(gate)
    return gates


def evaluate_gates(frame: pd.DataFrame, gates: list[BantGate]) -> pd.DataFrame:
    """One `gate_<name>` column per gate with pass / fail / unknown."""
    return pd.DataFrame({f"gate_{g.name}": g.evaluate(frame) for g in gates}, index=frame.index)
