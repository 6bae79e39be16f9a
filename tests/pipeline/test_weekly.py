"""The weekly loop revenue ops runs: a fresh export scored with the registered champion, without training, week
after week; the challenger in shadow; `promote` is what changes what reps get."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _stages import champion_project
from conftest import isolated_store
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "salesforce"
NAME = "weekly-test-model"


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("weekly")
    mp = isolated_store(root)
    stages = champion_project(root, "salesforce", FIXTURE, NAME, "weekly-test", "weekly", evaluate={"n_bootstrap": 20})
    yield {"root": root, "params": root / "params.yaml", "paths": stages["paths"], "stages": stages}
    mp.undo()


def _week2(src: Path, dst: Path) -> dict:
    """Next week's export: a day later, three open leads asked for a demo, one new lead came in."""
    shutil.copytree(src, dst)
    leads = pd.read_csv(dst / "Lead.csv", dtype=str, keep_default_na=False)
    opps = pd.read_csv(dst / "Opportunity.csv", dtype=str, keep_default_na=False)
    open_leads = leads[(leads["Status"] == "Open - Not Contacted") & ~leads["Id"].isin(opps["Lead__c"])]
    hot = open_leads["Id"].head(3).tolist()
    tasks = pd.read_csv(dst / "Task.csv", dtype=str, keep_default_na=False)
    new_tasks = pd.DataFrame([{"Id": f"00TNEW{i:03d}{j}", "WhoId": lead, "ActivityDate": "10/01/2026 10:00 AM",
                               "Type": kind, "Status": "Completed"}
                              for i, lead in enumerate(hot) for j, kind in enumerate(
                                  ["Demo Request", "Pricing Page View", "Trial Signup", "Demo Request"])])
    pd.concat([tasks, new_tasks]).to_csv(dst / "Task.csv", index=False)
    new_lead = leads.iloc[[0]].assign(Id="L9999999", CreatedDate="10/01/2026 09:00 AM", Status="Open - Not Contacted",
                                      IsConverted="false")
    pd.concat([leads, new_lead]).to_csv(dst / "Lead.csv", index=False)
    return {"hot": hot, "new": "L9999999"}


def test_two_weeks_of_score_only_runs_with_the_champion(project, tmp_path):
    params, P = str(project["params"]), project["paths"]
    week1 = tmp_path / "week1"
    shutil.copytree(FIXTURE, week1)
    out = tmp_path / "scored"
    _cli("score", "--params", params, "--profile", "salesforce", "--input", str(week1), "--out", str(out))
    first = pd.read_parquet(out / "sql_leads.parquet")
    summary = json.loads((P["reports"] / "score_summary.json").read_text())
    assert first["model_version"].eq(f"{NAME}/1").all()  # the registered champion, no training
    assert summary["history_entries"] == 1 and summary["compared_with"] is None
    assert first["as_of"].eq(pd.Timestamp("2026-10-01")).all()
    # converted and working leads (Salesforce Status / IsConverted) are sales' already: never handed over
    lead_csv = pd.read_csv(FIXTURE / "Lead.csv", dtype=str)
    worked = set(lead_csv.loc[lead_csv["Status"].isin(["Working - Contacted", "Closed - Converted"]), "Id"])
    scored_worked = first[first["lead_id"].isin(worked)]
    assert len(scored_worked) > 0 and scored_worked["status"].eq("with_sales").all()
    assert not first.loc[first["status"] != "with_sales", "lead_id"].isin(worked).any()

    # the same export again: the same table, no second history entry
    _cli("score", "--params", params, "--profile", "salesforce", "--input", str(week1), "--out", str(out))
    again = pd.read_parquet(out / "sql_leads.parquet")
    pd.testing.assert_frame_equal(first.drop(columns="change"), again.drop(columns="change"))
    assert json.loads((P["reports"] / "score_summary.json").read_text())["history_entries"] == 1

    # week 2: the export changed; changes.csv compares with week 1
    week = _week2(FIXTURE, tmp_path / "week2")
    _cli("score", "--params", params, "--profile", "salesforce", "--input", str(tmp_path / "week2"), "--out", str(out))
    second = pd.read_parquet(out / "sql_leads.parquet").set_index("lead_id")
    summary = json.loads((P["reports"] / "score_summary.json").read_text())
    assert summary["history_entries"] == 2
    assert summary["compared_with"] == first["scoring_run_id"].iloc[0]
    assert second["as_of"].iloc[0] == pd.Timestamp("2026-10-02")
    changes = pd.read_csv(out / "changes.csv", dtype=str).set_index("lead_id")
    assert changes.loc[week["new"], "change"] == "new_lead"
    before = first.set_index("lead_id")
    for lead in week["hot"]:
        assert second.loc[lead, "engagement_score"] > before.loc[lead, "engagement_score"]
        assert second.loc[lead, "p_convert"] != before.loc[lead, "p_convert"]
        assert changes.loc[lead, "change"] in ("new_sql", "upgraded", "downgraded", "unchanged", "dropped")
    assert (changes["change"] != "new_lead").sum() >= len(first) - 5  # the rest is compared, not new


def test_promote_changes_which_version_the_next_score_run_uses(project, tmp_path):
    import dataclasses

    from mlflow import MlflowClient

    from pipeline import package, train

    root, params, P = project["root"], str(project["params"]), project["paths"]
    prm = project["stages"]["params"]
    features = P["features"] / "features.parquet"
    v2 = root / "v2"
    train.run(features, v2 / "models", root / "reports-v2", dataclasses.replace(prm.train, num_leaves=7))
    info = package.run(features, v2 / "models", v2 / "package", {"train": prm.train, "score": prm.score},
                       source="weekly", experiment=prm.train.experiment, registered_model=NAME)
    assert info["alias"] == "challenger"
    out = tmp_path / "scored"
    _cli("score", "--params", params, "--profile", "salesforce", "--input", str(FIXTURE), "--out", str(out))
    assert pd.read_parquet(out / "sql_leads.parquet")["model_version"].eq(f"{NAME}/1").all()
    summary = json.loads((P["reports"] / "score_summary.json").read_text())
    shadow = pd.read_parquet(out / "shadow_challenger.parquet") if (out / "shadow_challenger.parquet").exists() else None
    assert summary.get("shadow") is None or shadow is not None  # `score --input` does not shadow; the stage does

    # the DVC score stage (no --input) scores with the champion and the challenger in shadow beside it
    _cli("score", "--params", params)
    stage_table = pd.read_parquet(P["scored"] / "sql_leads.parquet")
    assert stage_table["model_version"].eq(f"{NAME}/1").all()
    shadow = pd.read_parquet(P["scored"] / "shadow_challenger.parquet")
    assert shadow["model_version"].eq(f"{NAME}/2").all() and len(shadow) == len(stage_table)

    MlflowClient().set_registered_model_alias(NAME, "champion", "2")  # what `leadscore promote` does on a pass
    _cli("score", "--params", params, "--profile", "salesforce", "--input", str(FIXTURE), "--out", str(out))
    assert pd.read_parquet(out / "sql_leads.parquet")["model_version"].eq(f"{NAME}/2").all()
    _cli("score", "--params", params, "--model", "models:/" + NAME + "/1", "--profile", "salesforce",
         "--input", str(FIXTURE), "--out", str(out))
    assert pd.read_parquet(out / "sql_leads.parquet")["model_version"].eq(f"{NAME}/1").all()


def _code_block(markdown: str, heading: str) -> list[str]:
    """The commands of the first bash block under `heading` (comments dropped)."""
    part = markdown.split(heading, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in part.strip().splitlines() if line.split("#", 1)[0].strip()]


def test_the_documented_weekly_job_runs_and_its_exit_codes_are_the_clis(project, tmp_path):
    import shlex

    from pipeline import cli

    doc = (ROOT / "docs" / "schedule.md").read_text()
    weekly = _code_block(doc, "## Weekly")
    assert [shlex.split(c)[:2] for c in weekly] == [["leadscore", "score"], ["leadscore", "report"]]
    export = tmp_path / "latest"
    shutil.copytree(FIXTURE, export)
    tasks = pd.read_csv(export / "Task.csv", dtype=str, keep_default_na=False)
    tasks.loc[0, "ActivityDate"] = "not a date"  # one bad row: quarantined with its reason, kept as evidence
    tasks.to_csv(export / "Task.csv", index=False)
    for command in weekly:
        args = [str(export) if a == "exports/latest/" else a for a in shlex.split(command)[1:]]
        result = CliRunner().invoke(app, [*args, "--params", str(project["params"])])
        assert result.exit_code in (0, cli.EXIT_DRIFT), result.output
        if result.exit_code == cli.EXIT_DRIFT:
            assert "drift flagged" in result.output
    summary = json.loads((project["paths"]["reports"] / "score_summary.json").read_text())
    assert summary["model"] == f"models:/{NAME}@champion" and summary["profile"] == "salesforce"
    evidence = pd.read_csv(project["paths"]["reports"] / "quarantine" / "activities.csv", dtype=str)
    assert evidence["activity_id"].tolist() == [tasks.loc[0, "Id"]] and "occurred_at" in evidence["reason"].iloc[0]
    page = (project["paths"]["reports"] / "report.html").read_text()
    # the weekly page: the trend over the kept history (weeks 1 and 2 of the test above, and this run)
    entries = json.loads((project["paths"]["reports"] / "score_history" / "index.json").read_text())
    assert len(entries) >= 3 and "Week by week" in page
    section = page.split("Week by week", 1)[1]
    assert "2026-10-01" in section and "2026-10-02" in section
    table = {int(line.split("|")[1]) for line in doc.split("## Exit codes", 1)[1].splitlines()
             if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert table == set(cli.EXIT_CODES) == {0, cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_DRIFT, cli.EXIT_PROMOTION_REFUSED,
                                           cli.EXIT_INPUT, cli.EXIT_CONFIG, cli.EXIT_MODEL, cli.EXIT_DATABASE,
                                           cli.EXIT_OUTPUT}
    bad = CliRunner().invoke(app, ["score", "--no-such-flag"])
    assert bad.exit_code == cli.EXIT_USAGE
    missing = CliRunner().invoke(app, ["score", "--params", str(project["params"]), "--profile", "salesforce",
                                       "--input", str(tmp_path / "nowhere")])
    assert missing.exit_code == cli.EXIT_INPUT and "nowhere" in missing.output
