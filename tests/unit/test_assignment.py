"""Hand-over to sales reps: round-robin and territory assignment within weekly capacity; config errors."""

import pandas as pd
import pytest

from models.assignment import AssignmentConfigError, assign, parse_assignment


def leads(territories):
    return pd.DataFrame({"lead_id": [f"L{i}" for i in range(len(territories))], "region": territories})


def test_round_robin_alternates_reps_and_respects_each_capacity():
    policy = parse_assignment({"mode": "round_robin", "reps": [
        {"name": "Ana", "capacity": 3}, {"name": "Ben", "capacity": 1}, {"name": "Cy", "capacity": 2}]})
    out = assign(leads(["x"] * 8), policy)
    assert out["assigned_rep"].tolist()[:6] == ["Ana", "Ben", "Cy", "Ana", "Cy", "Ana"]
    assert out["assigned_rep"].isna().tolist() == [False] * 6 + [True] * 2
    assert out["queue_position"].tolist()[:6] == [1, 1, 1, 2, 2, 3]
    assert out["assignment_reason"].tolist()[6:] == ["every rep is at weekly capacity"] * 2


def test_territory_assignment_keeps_leads_with_their_territory_reps():
    policy = parse_assignment({"mode": "territory", "overflow": False, "reps": [
        {"name": "Eu1", "territories": ["Europe"], "capacity": 2},
        {"name": "Eu2", "territories": ["Europe"], "capacity": 1},
        {"name": "Na", "territories": ["North America"], "capacity": 5}]})
    out = assign(leads(["Europe", "North America", "Europe", "Europe", "Europe", "Asia Pacific"]), policy)
    assert out["assigned_rep"].tolist()[:4] == ["Eu1", "Na", "Eu2", "Eu1"]
    assert out["assigned_rep"].isna().tolist()[4:] == [True, True]
    assert out["assignment_reason"].tolist() == [
        "territory Europe", "territory North America", "territory Europe", "territory Europe",
        "territory Europe: reps at capacity", "no rep covers territory Asia Pacific"]


def test_overflow_sends_leads_of_full_or_uncovered_territories_to_any_rep_with_room():
    policy = parse_assignment({"mode": "territory", "overflow": True, "reps": [
        {"name": "Eu", "territories": ["Europe"], "capacity": 1},
        {"name": "Na", "territories": ["North America"], "capacity": 2}]})
    out = assign(leads(["Europe", "Europe", "Asia Pacific", "North America"]), policy)
    assert out["assigned_rep"].tolist()[:3] == ["Eu", "Na", "Na"]
    assert out["assignment_reason"].tolist()[:3] == [
        "territory Europe", "overflow: territory Europe full", "overflow: no rep covers Asia Pacific"]
    assert pd.isna(out["assigned_rep"].iloc[3])  # the North America rep's capacity went to overflow earlier


def test_priority_order_decides_who_gets_the_last_slots():
    policy = parse_assignment({"mode": "round_robin", "reps": [{"name": "Ana", "capacity": 2}]})
    out = assign(leads(["x", "x", "x"]), policy)  # rows come best first
    assert out["assigned_rep"].notna().tolist() == [True, True, False]


def test_no_reps_means_nothing_is_assigned_and_says_why():
    out = assign(leads(["x"]), parse_assignment({}))
    assert out["assigned_rep"].isna().all() and out["assignment_reason"].tolist() == ["no sales reps configured"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "lottery", "reps": []}, "'lottery' is not one of"),
        ({"reps": [{"name": "Ana"}]}, r"reps\[0\]: a rep needs a name and a weekly capacity"),
        ({"reps": [{"name": "Ana", "capacity": -1}]}, r"reps\[0\].capacity"),
        ({"reps": [{"name": "Ana", "capacity": 1, "teritory": "EU"}]}, "unknown key"),
        ({"reps": [{"name": "Ana", "capacity": 1}, {"name": "Ana", "capacity": 2}]}, "duplicate rep name"),
        ({"mode": "territory", "reps": [{"name": "Ana", "capacity": 1}]}, "needs at least one rep with territories"),
        ({"strategy": "x"}, "unknown key"),
    ],
)
def test_bad_assignment_config_is_a_clear_error(config, message):
    with pytest.raises(AssignmentConfigError, match=message):
        parse_assignment(config)


def test_territory_column_must_exist():
    policy = parse_assignment({"mode": "territory", "territory_column": "state",
                               "reps": [{"name": "Ana", "capacity": 1, "territories": ["CA"]}]})
    with pytest.raises(AssignmentConfigError, match="'state' is not in the scored leads"):
        assign(leads(["x"]), policy)


def test_the_projects_params_assignment_config_is_valid():
    from pathlib import Path

    from pipeline.params import load_params

    p = load_params(Path(__file__).resolve().parents[2] / "params.yaml").score
    policy = parse_assignment(p.assignment)
    assert policy.mode == "territory" and policy.capacity == sum(r["capacity"] for r in p.assignment["reps"])


def test_rep_names_sharing_a_queue_file_are_refused_and_other_scripts_keep_their_letters():
    from models.assignment import queue_file_stem

    for names in (["Ann Lee", "ann-lee"], ["Ann Lee", "ANN  LEE"]):
        with pytest.raises(AssignmentConfigError, match="would share one queue file"):
            parse_assignment({"mode": "round_robin", "reps": [{"name": n, "capacity": 1} for n in names]})
    cyrillic = ["Анна Ли", "Иван Петров", "Ольга Смирнова"]
    policy = parse_assignment({"mode": "round_robin", "reps": [{"name": n, "capacity": 1} for n in cyrillic]})
    assert [queue_file_stem(r.name) for r in policy.reps] == ["анна_ли", "иван_петров", "ольга_смирнова"]
