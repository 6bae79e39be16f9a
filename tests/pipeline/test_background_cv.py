"""The k-fold CV in a background process (`pipeline.evaluate.BackgroundCV`): the same fold AUCs as inline, its
errors raised in the caller, stopped on cancel, and chosen by table size."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pipeline import evaluate
from pipeline.params import load_params
from tests._stages import run_stages

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    params = load_params()
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, n_jobs=1),
                                 evaluate=dataclasses.replace(params.evaluate, n_bootstrap=20, cv_folds=3))
    root = tmp_path_factory.mktemp("bgcv")
    out = run_stages(root, params, profile="salesforce", input_path=FIXTURE, upto="train")
    return out


def test_background_folds_equal_the_inline_folds_and_report_progress(stages, monkeypatch):
    features = stages["paths"]["features"] / "features.parquet"
    train = stages["params"].train
    inline = evaluate.cross_validation(features, train, 3)
    reported = []
    monkeypatch.setattr(evaluate, "progress", _recording(reported))
    # two worker processes (one thread each) share the folds: the same models as one thread folding in turn
    background = evaluate.start_cross_validation(features, dataclasses.replace(train, n_jobs=2), 3, min_rows=0)
    assert isinstance(background, evaluate.BackgroundCV)
    assert len(background._workers) == 2
    assert background.result() == inline
    assert len(inline) == 3 and all(0.5 < a <= 1 for a in inline)
    assert sorted(reported) == [1, 2, 3]  # each fold reported as it finished in the child


def test_small_tables_fold_inline(stages):
    features = stages["paths"]["features"] / "features.parquet"
    assert evaluate.start_cross_validation(features, stages["params"].train, 3) is None  # ~1k rows < 20k
    assert evaluate.start_cross_validation(features, stages["params"].train, 0, min_rows=0) is None


def test_the_childs_error_is_raised_in_the_caller(tmp_path, stages):
    missing = tmp_path / "no_such_features.parquet"
    background = evaluate.BackgroundCV(missing, stages["params"].train, 3)
    with pytest.raises(FileNotFoundError, match="no_such_features"):
        background.result()


def test_cancel_stops_the_process(stages):
    features = stages["paths"]["features"] / "features.parquet"
    background = evaluate.BackgroundCV(features, stages["params"].train, 3)
    background.cancel()
    assert background._workers and all(not w.is_alive() and w.exitcode != 0 for w in background._workers)


def test_evaluate_gives_the_same_cv_in_the_background(stages, monkeypatch):
    P, params = stages["paths"], stages["params"]
    features = P["features"] / "features.parquet"

    def evaluated(min_rows: int) -> dict:
        monkeypatch.setattr(evaluate, "BACKGROUND_CV_ROWS", min_rows)
        return evaluate.run(features, P["models"], None, P["reports"], params.evaluate,
                            params.featurize.horizon_days, P["truth"], P["raw"], params.train)

    inline, background = evaluated(10**9), evaluated(0)
    assert background["cv_roc_auc_folds"] == inline["cv_roc_auc_folds"]
    assert background["roc_auc"] == inline["roc_auc"]
    assert (P["reports"] / "metrics.json").read_text().count("cv_roc_auc_folds") == 1


def _recording(seen: list):
    import contextlib

    @contextlib.contextmanager
    def progress(description, total=None, unit="rows"):
        yield lambda done, total=None: seen.append(done)

    return progress


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prestarted workers are forked (Linux)")
def test_prestarted_workers_fold_as_spawned_ones_and_leave_when_dismissed(stages):
    """evaluate.CVWorkers: forked before the table exists, given the job later: the same fold AUCs as inline. Workers
    never given a job exit cleanly on close(); one pool serves one cross-validation."""
    features = stages["paths"]["features"] / "features.parquet"
    train = stages["params"].train
    inline = evaluate.cross_validation(features, train, 3)
    workers = evaluate.CVWorkers.start(2)
    # ~1k rows: inline for spawned workers (test_small_tables_fold_inline), in the background for prestarted ones
    background = evaluate.start_cross_validation(features, dataclasses.replace(train, n_jobs=2), 3, workers=workers)
    assert background._workers == workers.workers and workers.used
    assert background.result() == inline
    workers.close()
    assert all(w.exitcode == 0 for w in workers.workers)

    unused = evaluate.CVWorkers.start(2)
    assert all(w.is_alive() for w in unused.workers)
    os.kill(unused.workers[0].pid, signal.SIGINT)  # Ctrl-C is the run's to handle, not a waiting worker's
    time.sleep(0.5)
    assert unused.workers[0].is_alive()
    unused.close()
    assert all(w.exitcode == 0 for w in unused.workers)


ORPHAN = """
import os, sys
from pipeline import evaluate
workers = evaluate.CVWorkers.start(1)
print(workers.workers[0].pid, flush=True)
os._exit(0)  # dies without dismissing its worker
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prestarted workers are forked (Linux)")
def test_a_prestarted_worker_leaves_when_its_run_dies():
    import subprocess

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", ORPHAN], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)}, check=True)
    pid = int(out.stdout.split()[0])
    deadline = time.time() + 10 * evaluate.CVWorkers.POLL_S
    while time.time() < deadline and Path(f"/proc/{pid}").exists() and \
            "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]:
        time.sleep(0.2)
    alive = Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    assert not alive, "the orphaned CV worker is still waiting"
