"""Hand-over: assign SQLs, best first, to sales reps by territory or round-robin within each rep's weekly capacity."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MODES = ("territory", "round_robin")


class AssignmentConfigError(ValueError):
    """The reps / territories / capacities configuration is malformed."""


CRMS = ("salesforce", "hubspot")  # the CRMs whose import files name the owner by user id


@dataclass(frozen=True)
class Rep:
    name: str
    capacity: int  # leads per week
    territories: tuple[str, ...] = ()
    crm_ids: Mapping[str, str] = field(default_factory=dict)  # CRM -> the rep's user id there (Salesforce OwnerId)


@dataclass(frozen=True)
class AssignmentPolicy:
    mode: str = "round_robin"
    territory_column: str = "region"
    reps: tuple[Rep, ...] = ()
    overflow: bool = True  # territory mode: a lead whose territory's reps are full (or absent) may go to any rep

    @property
    def capacity(self) -> int:
        return sum(r.capacity for r in self.reps)

    def owner_ids(self, crm: str) -> dict[str, str]:
        """Rep name -> the rep's user id in `crm` (reps without one are left out)."""
        return {r.name: r.crm_ids[crm] for r in self.reps if crm in r.crm_ids}


def queue_file_stem(name: str) -> str:
    """The rep's queue file name (without .csv): the name's letters and digits in any script, lower case, other
    characters as one underscore ("Ann Lee" -> ann_lee, "Анна Ли" -> анна_ли). Two reps with one stem are refused."""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    return re.sub(r"[\W_]+", "_", text).strip("_") or "rep"


def parse_assignment(config: Mapping[str, Any] | None) -> AssignmentPolicy:
    """Build the policy from the `score.assignment` params section, with errors naming the bad key."""
    where = "score.assignment"
    if not config:
        return AssignmentPolicy()
    if not isinstance(config, Mapping):
        raise AssignmentConfigError(f"{where}: expected a mapping with mode, reps and optionally territory_column")
    unknown = set(config) - {"mode", "territory_column", "reps", "overflow"}
    if unknown:
        raise AssignmentConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use mode, territory_column, reps, overflow")
    mode = config.get("mode", "round_robin")
    if mode not in MODES:
        raise AssignmentConfigError(f"{where}.mode: {mode!r} is not one of {list(MODES)}")
    reps = []
    for i, spec in enumerate(config.get("reps") or []):
        if not isinstance(spec, Mapping) or "name" not in spec or "capacity" not in spec:
            raise AssignmentConfigError(f"{where}.reps[{i}]: a rep needs a name and a weekly capacity")
        extra = set(spec) - {"name", "capacity", "territories", "crm_ids"}
        if extra:
            raise AssignmentConfigError(f"{where}.reps[{i}]: unknown key(s) {sorted(extra)}")
        cap = spec["capacity"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise AssignmentConfigError(f"{where}.reps[{i}].capacity: expected a whole number >= 0, got {cap!r}")
        territories = spec.get("territories") or []
        if isinstance(territories, str):
            territories = [territories]
        crm_ids = spec.get("crm_ids") or {}
        if not isinstance(crm_ids, Mapping) or set(crm_ids) - set(CRMS):
            raise AssignmentConfigError(f"{where}.reps[{i}].crm_ids: a mapping of CRM ({', '.join(CRMS)}) to the "
                                        f"rep's user id there, got {crm_ids!r}")
        reps.append(Rep(str(spec["name"]), cap, tuple(str(t) for t in territories),
                        {str(k): str(v) for k, v in crm_ids.items() if v is not None and str(v).strip()}))
    names = [r.name for r in reps]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AssignmentConfigError(f"{where}.reps: duplicate rep name(s) {dupes}")
    stems: dict[str, list[str]] = {}
    for n in names:
        stems.setdefault(queue_file_stem(n), []).append(n)
    clashes = [group for group in stems.values() if len(group) > 1]
    if clashes:
        raise AssignmentConfigError(f"{where}.reps: rep names {clashes[0]} would share one queue file "
                                    f"({queue_file_stem(clashes[0][0])}.csv); make them differ in letters or digits")
    if mode == "territory" and reps and not any(r.territories for r in reps):
        raise AssignmentConfigError(f"{where}: mode 'territory' needs at least one rep with territories")
    return AssignmentPolicy(mode=mode, territory_column=str(config.get("territory_column", "region")),
                            reps=tuple(reps), overflow=bool(config.get("overflow", True)))


def _round_robin_slots(reps: Sequence[Rep]) -> np.ndarray:
    """Rep indices in hand-over order: one lead per rep per round, skipping reps whose capacity is used up."""
    caps = np.array([r.capacity for r in reps], dtype=np.int64)
    if caps.sum() == 0:
        return np.empty(0, dtype=np.int64)
    rounds = np.arange(caps.max())
    has_slot = rounds[:, None] < caps[None, :]  # round x rep
    return np.nonzero(has_slot)[1]  # row-major: round by round, reps in order


def assign(leads: pd.DataFrame, policy: AssignmentPolicy) -> pd.DataFrame:
    """`assigned_rep` and `queue_position` (1 = the rep's first call) for SQLs given in priority order.

    Leads beyond every rep's capacity stay unassigned (`assigned_rep` missing) with the reason in
    `assignment_reason`.
    """
    n = len(leads)
    rep_idx = np.full(n, -1, dtype=np.int64)
    reason = np.full(n, "", dtype=object)
    reps = policy.reps
    if not reps:
        reason[:] = "no sales reps configured"
    elif policy.mode == "round_robin":
        slots = _round_robin_slots(reps)
        k = min(n, len(slots))
        rep_idx[:k] = slots[:k]
        reason[:k] = "round-robin"
    else:
        if policy.territory_column not in leads:
            raise AssignmentConfigError(
                f"score.assignment.territory_column: column {policy.territory_column!r} is not in the scored leads")
        territory = leads[policy.territory_column].astype("string").fillna("").to_numpy(dtype=object)
        remaining = np.array([r.capacity for r in reps], dtype=np.int64)
        covering: dict[str, list[int]] = {}
        for i, r in enumerate(reps):
            for t in r.territories:
                covering.setdefault(t, []).append(i)
        cursor = dict.fromkeys(covering, 0)
        overflow_cursor = 0
        left = int(remaining.sum())
        for row in range(n):  # priority order matters, so this walks the SQLs best first, stopping when all are full
            if left == 0:
                break
            pool = covering.get(territory[row], [])
            chosen = -1
            for step in range(len(pool)):
                i = pool[(cursor[territory[row]] + step) % len(pool)]
                if remaining[i] > 0:
                    chosen = i
                    cursor[territory[row]] = (cursor[territory[row]] + step + 1) % len(pool)
                    reason[row] = f"territory {territory[row]}"
                    break
            if chosen < 0 and policy.overflow:
                for step in range(len(reps)):
                    i = (overflow_cursor + step) % len(reps)
                    if remaining[i] > 0:
                        chosen = i
                        overflow_cursor = (i + 1) % len(reps)
                        reason[row] = (f"overflow: territory {territory[row] or 'unknown'} full" if pool
                                       else f"overflow: no rep covers {territory[row] or 'an unknown territory'}")
                        break
            if chosen >= 0:
                rep_idx[row] = chosen
                remaining[chosen] -= 1
                left -= 1
            else:
                reason[row] = (f"territory {territory[row] or 'unknown'}: reps at capacity" if pool
                               else f"no rep covers territory {territory[row] or 'unknown'}")
    unassigned = (rep_idx < 0) & (reason == "")
    reason[unassigned] = "every rep is at weekly capacity"
    names = np.array([r.name for r in reps] or [""], dtype=object)
    assigned = rep_idx >= 0
    rep = pd.Series(np.where(assigned, names[np.clip(rep_idx, 0, None)], None), index=leads.index, dtype="string")
    position = pd.Series(pd.array([pd.NA] * n, dtype="Int64"), index=leads.index)
    if assigned.any():
        order = pd.Series(rep_idx[assigned])
        position[assigned] = (order.groupby(order).cumcount() + 1).to_numpy()
    return pd.DataFrame({"assigned_rep": rep, "queue_position": position, "assignment_reason": reason},
                        index=leads.index)
