"""`leadscore show`: the top of the ranked table with the assigned rep and the reasons behind each score."""

import pandas as pd
import yaml
from typer.testing import CliRunner

from pipeline.cli import EXIT_INPUT, app


def test_show_prints_top_rows_reps_and_reasons_only_where_computed(tmp_path):
    scored = tmp_path / "scored"
    scored.mkdir()
    table = pd.DataFrame({
        "rank": [1, 2, 3], "lead_id": ["L1", "L2", "L3"], "status": ["sql", "needs_call", "nurture"],
        "is_sql": [True, False, False], "tier": ["A", "B", "D"], "score": [62, 20, 1],
        "p_convert": [0.62, 0.2, 0.01], "expected_value": [12400.0, 4000.0, 10.0], "fit_score": [80.0, 50.0, 10.0],
        "engagement_score": [70.0, 40.0, 0.0], "gate_budget": ["pass", "pass", "pass"],
        "gate_authority": ["pass", "unknown", "pass"], "gate_need": ["pass"] * 3, "gate_timeline": ["pass"] * 3,
        "assigned_rep": ["Avery Chen", None, None], "status_reason": ["all gates pass", "confirm on a call: authority",
                                                                      "p_convert 0.010 below threshold 0.100"],
        "reasons_for": ["VP-level title", "3 pricing-page visits in the last 7 days", None],
        "reasons_against": ["company below the ICP size", "", None],
        "model_version": ["leadscore-conversion/3"] * 3,
    })
    table.to_parquet(scored / "sql_leads.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"scored": str(scored)}}))

    result = CliRunner().invoke(app, ["show", "--params", str(params), "--top", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1 SQLs of 3 scored leads" in out and "leadscore-conversion/3" in out
    assert "Avery Chen" in out
    assert "for: VP-level title" in out and "against: company below the ICP size" in out
    assert "for: 3 pricing-page visits in the last 7 days" in out
    assert "L3" not in out  # --top 2
    assert "status counts: sql 1, needs_call 1, nurture 1" in out


def test_show_without_scores_is_a_clear_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"scored": str(tmp_path / "nothing")}}))
    result = CliRunner().invoke(app, ["show", "--params", str(params)])
    assert result.exit_code == EXIT_INPUT
    assert "not found: run `make demo`" in result.output
