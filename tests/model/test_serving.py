"""The served pyfunc (issue 15, item 7): lead_id in the signature and every answer, short 400s for bad values and
missing columns, a cap on rows per request. Through `predict` and through MLflow's scoring server app in-process."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from _synthetic import GATES, feature_table

from models.baselines import LogisticBaseline
from models.config import ScoreConfig
from models.pyfunc import MAX_ROWS_ENV, RequestError

COLS = ["n_high_intent_30d", "seniority_level", "engagement_decayed"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The bundle as the package stage builds it, saved with its signature and loaded back as MLflow serves it."""
    import mlflow

    from pipeline import package, tracking

    table = feature_table(60)
    model = LogisticBaseline().fit(table[COLS], table["label"])
    bundle, example = package.bundle(model, table[table["split"] == "train"], ScoreConfig(gates=GATES))
    path = tmp_path_factory.mktemp("served") / "model"
    mlflow.pyfunc.save_model(path, python_model=bundle, input_example=example,
                             signature=tracking.model_signature(example, bundle.score(example)),
                             code_paths=tracking.model_code_paths(), pip_requirements=tracking.model_requirements())
    rows = bundle.input_example(table[table["split"] == "test"].head(20).assign(annual_revenue=2e7)).reset_index(drop=True)
    return {"bundle": bundle, "loaded": mlflow.pyfunc.load_model(str(path)), "rows": rows}


def test_lead_id_is_in_the_signature_and_every_answer(served):
    signature = served["loaded"].metadata.signature
    assert signature.inputs.input_names()[0] == "lead_id" and "lead_id" in signature.outputs.input_names()
    rows = served["rows"]
    out = served["loaded"].predict(rows)
    assert out["lead_id"].tolist() == rows["lead_id"].tolist() and list(out.columns[:2]) == ["lead_id", "p_convert"]
    assert served["bundle"].bounds["seniority_level"][0] == 0  # never negative in training


@pytest.mark.parametrize(("column", "value", "message"), [
    ("n_high_intent_30d", np.inf, r"n_high_intent_30d: non-finite value .* in row 3"),
    ("engagement_decayed", float("1e400"), r"engagement_decayed: non-finite"),
    ("seniority_level", -2.0, r"seniority_level: negative value in row 3; accepted 0 to"),
    ("n_high_intent_30d", 1e12, r"n_high_intent_30d: out-of-range value in row 3"),
    ("annual_revenue", -np.inf, r"annual_revenue: non-finite"),
])
def test_bad_values_are_refused_with_a_short_value_error(served, column, value, message):
    rows = served["rows"].copy()
    rows.loc[3, column] = value
    for predict in (served["loaded"].predict, lambda r: served["bundle"].predict(None, r)):
        with pytest.raises(ValueError, match=message) as caught:
            predict(rows)
        assert isinstance(caught.value, RequestError) and "\n" not in caught.value.message


@pytest.mark.parametrize("drop", [["seniority_level"], ["lead_id"]])
def test_missing_columns_are_refused(served, drop):
    with pytest.raises(ValueError, match=rf"missing required column\(s\).*{drop[0]}"):
        served["bundle"].predict(None, served["rows"].drop(columns=drop))
    with pytest.raises(Exception, match=drop[0]):  # MLflow's schema check comes first when it knows the column
        served["loaded"].predict(served["rows"].drop(columns=drop))


def test_rows_per_request_are_capped_and_configurable(served, monkeypatch):
    rows = served["rows"]
    many = pd.concat([rows] * 501, ignore_index=True)  # 10,020 rows > 10,000
    with pytest.raises(RequestError, match=r"10,020 rows in one request; at most 10,000"):
        served["bundle"].predict(None, many)
    monkeypatch.setenv(MAX_ROWS_ENV, "10")
    with pytest.raises(RequestError, match="at most 10 "):
        served["bundle"].predict(None, rows)
    monkeypatch.setenv(MAX_ROWS_ENV, "20")
    assert len(served["bundle"].predict(None, rows)) == 20


def _post(app, body: bytes) -> tuple[int, bytes]:
    """One POST /invocations through the ASGI app, in-process (no HTTP client needed)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/invocations", "raw_path": b"/invocations", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_scoring_server_answers_400_without_a_stack_trace(served, monkeypatch):
    from mlflow.pyfunc import scoring_server

    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # init() sets it; restored after the test
    app = scoring_server.init(served["loaded"])
    rows = served["rows"].head(3)
    payload = json.loads(rows.to_json(orient="split", index=False))
    status, body = _post(app, json.dumps({"dataframe_split": payload}).encode())
    assert status == 200 and [p["lead_id"] for p in json.loads(body)["predictions"]] == rows["lead_id"].tolist()

    col = payload["columns"].index("n_high_intent_30d")
    for literal in ("Infinity", "1e400", "-5"):
        text = json.dumps({"dataframe_split": payload})
        data = json.loads(text)
        data["dataframe_split"]["data"][1][col] = "__X__"
        status, body = _post(app, json.dumps(data).replace('"__X__"', literal).encode())
        error = json.loads(body)
        assert status == 400, body[:300]
        assert "n_high_intent_30d" in error["message"] and "stack_trace" not in error
        assert "Traceback" not in body.decode() and ".py" not in body.decode()
