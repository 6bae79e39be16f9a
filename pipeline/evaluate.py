"""Stage `evaluate`: held-out metrics with bootstrap CIs for the model and its baselines, the oracle ceiling on
demo data, and plots (PNG for people, CSV for `dvc plots`)."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.build import WITH_SALES
from models.config import TrainConfig
from models.evaluate import (
    TOP_FRACTIONS,
    EvaluateConfig,
    calibration_warning,
    classification_metrics,
    feature_importance,
    full_report,
    reliability_table,
)
from models.leakage import DEFAULT_MAX_AUC, leakage_warnings
from models.monitoring import gains_table
from models.sampling import stratified_sample
from models.training import cross_validate
from pipeline import tracking
from pipeline.artifacts import features_variant, load_baselines, load_model
from pipeline.io import read_rows, write_atomic, write_csv, write_json
from pipeline.progress import log, progress

LEAKAGE_SAMPLE = 100_000  # labelled rows the single-column leakage check reads at most

PLOTS = ("roc", "pr", "calibration", "gains", "importance")


def oracle_scores(truth_dir: Path, raw_dir: Path, test: pd.DataFrame, horizon_days: int) -> np.ndarray | None:
    """The demo generator's Bayes-optimal probability for the held-out rows, or None outside demo data."""
    truth_path = Path(truth_dir) / "truth.parquet"
    if not truth_path.exists():
        return None
    from pipeline.io import find_table, read_table
    from pipeline.sources.demo_crm import oracle_probability

    truth = pd.read_parquet(truth_path)
    opps = read_table(find_table(raw_dir, "opportunities"))
    opps = opps[opps["lead_id"].isin(truth["lead_id"])]
    as_of = pd.Timestamp(test["as_of"].iloc[0])
    oracle = oracle_probability(truth, opps, as_of, horizon_days)
    return oracle.reindex(test["lead_id"]).to_numpy(dtype=float)


def held_out(table: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows of the decision population (leads not already with sales)."""
    return table[table["split"] == "test"].reset_index(drop=True)


def held_out_all_leads(table: pd.DataFrame) -> pd.DataFrame:
    """Every held-out lead, those already with sales included (the old all-leads figure, shown beside): the
    held-out rows first, in `held_out`'s order, then the leads already with sales on the same date."""
    test = table[table["split"] == "test"]
    if not len(test):
        return test
    same_date = (table["split"] == WITH_SALES) & (table["as_of"] == test["as_of"].iloc[0])
    return pd.concat([test, table[same_date]], ignore_index=True)


def oracle_metrics(y: np.ndarray, oracle: np.ndarray, roc_auc: float, prefix: str = "") -> dict:
    """The oracle's ROC AUC on the rows it knows and the model's gap to it (`roc_auc`: the model's)."""
    known = ~np.isnan(oracle)
    oracle_auc = float(roc_auc_score(y[known], oracle[known]))
    return {f"{prefix}oracle_roc_auc": oracle_auc, f"{prefix}oracle_gap": oracle_auc - roc_auc}


def all_leads_metrics(rows: pd.DataFrame, p_all: np.ndarray, oracle: np.ndarray | None) -> dict:
    """AUC (and the demo's oracle AUC and gap) on every held-out lead (`held_out_all_leads`), those already with
    sales included; `p_all` and `oracle` are the model's and the oracle's scores of those rows."""
    y = rows["label"].astype(int).to_numpy()
    if len(rows) == 0 or len(np.unique(y)) < 2:
        return {}
    out = {"all_leads_roc_auc": float(roc_auc_score(y, p_all)), "all_leads_n_test": int(len(rows)),
           "n_test_with_sales": int((rows["split"] == WITH_SALES).sum())}
    if oracle is not None:
        out.update(oracle_metrics(y, oracle, out["all_leads_roc_auc"], prefix="all_leads_"))
    return out


def flat_metrics(report: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """{name: value, name_ci_low: .., name_ci_high: ..} from a full_report."""
    out = {}
    for name, v in report.items():
        out[f"{prefix}{name}"] = v["value"]
        out[f"{prefix}{name}_ci_low"] = v["ci_low"]
        out[f"{prefix}{name}_ci_high"] = v["ci_high"]
    return out


def leakage_check(table: pd.DataFrame, columns: list[str], seed: int = 0) -> list[dict]:
    """Model columns that alone predict the label almost perfectly (filled in after the outcome?), on a sample of
    the labelled rows; each is logged as a warning."""
    labelled = table[table["split"].isin(["train", "test"])]
    y = labelled["label"].astype(int).to_numpy()
    rows = stratified_sample(y, LEAKAGE_SAMPLE, seed=seed)
    found = leakage_warnings(labelled.iloc[rows][columns], y[rows], DEFAULT_MAX_AUC)
    for w in found:
        log("WARNING " + w.message())
    return [{"column": w.column, "auc": round(w.auc, 4)} for w in found]


# ------------------------------------------------------------------------------------------ cross-validation
# From this many labelled rows on, the k-fold CV runs in a process of its own beside the rest of the evaluation
# (and, under `leadscore run`, the MLflow packaging): the folds' LightGBM fits then overlap Python work that holds
# one core, instead of following it. Below, starting a process (about 3 s of imports) costs more than it hides.
BACKGROUND_CV_ROWS = 20_000
CV_SPLITS = ("train", "test")


def cv_table(features_path: Path) -> pd.DataFrame:
    """The rows the cross-validation folds: every labelled row of the decision population (train and test)."""
    return read_rows(features_path, "split", CV_SPLITS)


def cross_validation(features_path: Path, train: TrainConfig, n_folds: int, category_shares: bool = False,
                     on_fold=None) -> list[float]:
    """ROC AUC of each of `n_folds` folds of the labelled rows, each fold's model fitted as the final one
    (`models.training.cross_validate`)."""
    return cross_validate(cv_table(features_path), train, features_variant(features_path), n_folds,
                          category_shares=category_shares, on_fold=on_fold)


def _fold_worker(tasks, results, features_path: Path, train: TrainConfig, n_folds: int,
                 category_shares: bool) -> None:
    """A background worker: takes fold numbers from `tasks` until None, puts ("fold", number, AUC) on `results`
    for each (one LightGBM and one BLAS thread), or ("error", exception) and stops."""
    from models.baselines import one_blas_thread

    try:
        table = cv_table(features_path)
        variant = features_variant(features_path)
        with one_blas_thread():
            for fold in iter(tasks.get, None):
                (auc,) = cross_validate(table, train, variant, n_folds, category_shares=category_shares,
                                        folds=[fold])
                results.put(("fold", fold, auc))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which raises it
        try:
            results.put(("error", exc))
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
            results.put(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


def _waiting_fold_worker(jobs, tasks, results, parent: int) -> None:
    """A prestarted (forked) worker of `CVWorkers`: waits for its job, then folds as `_fold_worker`; exits when
    told (None) or when its parent is gone. Ctrl-C reaches the whole process group: the run handles it (and stops
    its workers), a worker ignores it instead of printing a traceback of its own."""
    import os
    import queue
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    while True:
        try:
            job = jobs.get(timeout=CVWorkers.POLL_S)
            break
        except queue.Empty:
            if os.getppid() != parent:  # the run died before it needed the folds
                return
    if job is not None:
        _fold_worker(tasks, results, *job)


class CVWorkers:
    """`n_workers` fold workers forked now, before this process has run OpenMP or a fit, with every library it
    imported: `BackgroundCV` then starts without the spawned interpreters' imports (about 3 s of CPU each, which the
    run's two cores otherwise spend beside the MLflow packaging). `leadscore run` starts them before its first
    stage, while the table they will fold does not exist yet. Linux only (`start` returns None elsewhere, where the
    workers are spawned as before); `close()` dismisses workers that were never given a job."""

    POLL_S = 1.0

    def __init__(self, n_workers: int):
        import os
        import warnings

        context = multiprocessing.get_context("fork")
        self.jobs, self.tasks, self.results = context.Queue(), context.Queue(), context.Queue()
        with warnings.catch_warnings():  # Python 3.12+ warns on forking a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            self.workers = [context.Process(target=_waiting_fold_worker, name=f"leadscore-cv-{k}", daemon=True,
                                            args=(self.jobs, self.tasks, self.results, os.getpid()))
                            for k in range(max(1, n_workers))]
            for worker in self.workers:
                worker.start()
        self.used = False

    @classmethod
    def start(cls, n_workers: int) -> CVWorkers | None:
        import sys

        if not sys.platform.startswith("linux"):
            return None
        try:
            return cls(n_workers)
        except OSError:  # no fork (e.g. strict memory overcommit): spawned workers later
            return None

    def close(self) -> None:
        if not self.used:
            for _ in self.workers:
                self.jobs.put(None)
        for worker in self.workers:
            worker.join(timeout=5 * self.POLL_S)
            if worker.is_alive():
                worker.terminate()
                worker.join()


class BackgroundCV:
    """`cross_validation` in `train.n_jobs` worker processes, each fitting one fold at a time on one thread and
    taking the next fold when done: spawned (fresh interpreters: no inherited threads or OpenMP state, no shared
    GIL), or the prestarted `CVWorkers` when given; the folds are reported to this process's progress as they
    finish. `result()` waits and returns the fold AUCs in fold order, or raises a worker's error; `cancel()` stops
    the workers. Daemons: they never outlive the run."""

    POLL_S = 0.5  # how often the reader checks that the workers are still alive

    def __init__(self, features_path: Path, train: TrainConfig, n_folds: int, category_shares: bool = False,
                 workers: CVWorkers | None = None):
        one_thread = dataclasses.replace(train, n_jobs=1)
        job = (Path(features_path), one_thread, n_folds, category_shares)
        if workers is not None and not workers.used:
            workers.used = True
            self._tasks, self._results, self._workers = workers.tasks, workers.results, workers.workers
            self._queue_folds(n_folds, len(self._workers))
            for _ in self._workers:
                workers.jobs.put(job)
        else:
            context = multiprocessing.get_context("spawn")
            n_workers = max(1, min(train.n_jobs, n_folds))
            self._tasks, self._results = context.Queue(), context.Queue()
            self._queue_folds(n_folds, n_workers)
            self._workers = [context.Process(target=_fold_worker, name=f"leadscore-cv-{k}", daemon=True,
                                             args=(self._tasks, self._results, *job))
                             for k in range(n_workers)]
            for worker in self._workers:
                worker.start()
        self._n_folds = n_folds
        self._scores: dict[int, float] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._progress = contextlib.ExitStack()
        on_fold = self._progress.enter_context(progress("cross-validation", n_folds, "folds"))
        self._reader = threading.Thread(target=self._read, args=(on_fold,), name="leadscore-cv-reader", daemon=True)
        self._reader.start()

    def _queue_folds(self, n_folds: int, n_workers: int) -> None:
        for fold in range(n_folds):
            self._tasks.put(fold)
        for _ in range(n_workers):
            self._tasks.put(None)

    def _read(self, on_fold) -> None:
        import queue

        while len(self._scores) < self._n_folds and not self._stop.is_set():
            try:
                message = self._results.get(timeout=self.POLL_S)
            except queue.Empty:
                if not any(w.is_alive() for w in self._workers) and self._results.empty():
                    codes = [w.exitcode for w in self._workers]
                    self._error = RuntimeError(f"the cross-validation workers ended without all folds "
                                               f"({len(self._scores)} of {self._n_folds}; exit codes {codes})")
                    return
                continue
            if message[0] == "error":
                self._error = message[1]
                return
            _, fold, auc = message
            self._scores[fold] = auc
            on_fold(len(self._scores))

    def result(self) -> list[float]:
        self._reader.join()
        if self._error is not None:
            self.cancel()
            raise self._error
        for worker in self._workers:
            worker.join()
        self._progress.close()
        return [self._scores[i] for i in range(self._n_folds)]

    def cancel(self) -> None:
        self._stop.set()
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()
        for worker in self._workers:
            worker.join()
        self._reader.join()
        self._progress.close()


def start_cross_validation(features_path: Path, train: TrainConfig, n_folds: int,
                           category_shares: bool = False, min_rows: int | None = None,
                           workers: CVWorkers | None = None) -> BackgroundCV | None:
    """The CV started in the background when the table holds at least `min_rows` labelled rows, else None (the
    caller folds inline). `min_rows` defaults to `BACKGROUND_CV_ROWS` for spawned workers, and to 0 for prestarted
    `workers` (given and unused), which start without imports: X Education's 9,240 rows, folded by them, took
    0.85x the wall time of folding inline (paired), the same fold AUCs."""
    import pyarrow.parquet as pq

    if n_folds < 2:
        return None
    splits = pq.read_table(features_path, columns=["split"]).column("split").to_pandas()
    if min_rows is None:
        min_rows = 0 if workers is not None and not workers.used else BACKGROUND_CV_ROWS
    if int(splits.isin(CV_SPLITS).sum()) < min_rows:
        return None
    return BackgroundCV(features_path, train, n_folds, category_shares, workers)


def run(features_path: Path, models_dir: Path, package_dir: Path | None, reports_dir: Path, p: EvaluateConfig,
        horizon_days: int, truth_dir: Path | None = None, raw_dir: Path | None = None,
        train: TrainConfig | None = None, category_shares: bool = False,
        background_cv: BackgroundCV | None = None) -> dict:
    """Held-out metrics of the model and its baselines (bootstrap CIs), the oracle gap on the demo, plots, the
    leakage check, and with `p.cv_folds` > 1 the cross-validated AUC of the same fit (`train`): in a background
    process on a large table (`start_cross_validation`; ``background_cv``: one the caller started earlier)."""
    started = time.time()
    features_path = Path(features_path)
    train = train or TrainConfig()
    if p.cv_folds > 1 and background_cv is None:
        background_cv = start_cross_validation(features_path, train, p.cv_folds, category_shares)
    try:
        return _evaluate(features_path, models_dir, package_dir, reports_dir, p, horizon_days, truth_dir, raw_dir,
                         train, category_shares, background_cv, started)
    except BaseException:
        if background_cv is not None:
            background_cv.cancel()
        raise


def _evaluate(features_path: Path, models_dir: Path, package_dir: Path | None, reports_dir: Path,
              p: EvaluateConfig, horizon_days: int, truth_dir: Path | None, raw_dir: Path | None, train: TrainConfig,
              category_shares: bool, background_cv: BackgroundCV | None, started: float) -> dict:
    table = read_rows(features_path, "split", ["train", "test", WITH_SALES])
    variant = features_variant(features_path)
    test = held_out(table)
    model, info = load_model(models_dir, package_dir)
    y = test["label"].astype(int).to_numpy()
    p_hat = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    fractions = tuple(p.top_fractions) or TOP_FRACTIONS
    report = full_report(y, p_hat, fractions, p.capacity_k, n_boot=p.n_bootstrap)
    metrics = classification_metrics(y, p_hat, p.top_fraction)  # the foundation's keys, kept for readers
    metrics.update(flat_metrics(report))
    metrics.update({"n_test": int(len(test)), "n_train": int((table["split"] == "train").sum()), "variant": variant})
    calibration = calibration_warning(metrics["ece"], len(test), (metrics["ece_ci_low"], metrics["ece_ci_high"]))
    metrics["warnings"] = [calibration] if calibration else []  # read by the CLI (evaluate, run) and the report
    if calibration:
        log("WARNING " + calibration)

    baselines = load_baselines(models_dir)
    for name, base in baselines.items():
        p_base = base.predict_proba(test[list(base.feature_names_in_)])[:, 1]
        base_report = full_report(y, p_base, fractions, p.capacity_k, n_boot=p.n_bootstrap)
        metrics.update({f"baseline_{name}_{k}": v for k, v in flat_metrics(base_report).items()
                        if not k.endswith(("_ci_low", "_ci_high")) or k.startswith("roc_auc")})
    if baselines:
        metrics["beats_baselines"] = bool(all(metrics["roc_auc"] > metrics[f"baseline_{n}_roc_auc"] for n in baselines))

    # the held-out rows and the leads already with sales on the same date: scored and looked up in the truth once
    all_rows = held_out_all_leads(table)
    with_sales = all_rows.iloc[len(test):]
    p_all = np.concatenate([p_hat, model.predict_proba(with_sales[list(model.feature_names_in_)])[:, 1]]) \
        if len(with_sales) else p_hat
    oracle_all = oracle_scores(truth_dir, raw_dir, all_rows, horizon_days) \
        if truth_dir is not None and len(all_rows) else None
    if oracle_all is not None:
        oracle = oracle_all[: len(test)]
        metrics.update(oracle_metrics(y, oracle, metrics["roc_auc"]))
        metrics["oracle_coverage"] = float((~np.isnan(oracle)).mean())
    metrics.update(all_leads_metrics(all_rows, p_all, oracle_all))
    table = table[table["split"] != WITH_SALES]
    metrics["leakage_warnings"] = leakage_check(table, [str(c) for c in model.feature_names_in_])
    if p.cv_folds > 1 and background_cv is None:
        with progress("cross-validation", p.cv_folds, "folds") as on_fold:
            folds = cross_validate(table, train, variant, p.cv_folds, category_shares=category_shares,
                                   on_fold=on_fold)
        metrics.update(cv_metrics(folds))
    del table
    reports_dir = Path(reports_dir)
    importance = feature_importance(model, test[list(model.feature_names_in_)])
    curves = write_curves(y, p_hat, reports_dir, importance, fractions)
    if p.cv_folds > 1 and background_cv is not None:  # the plots were drawn while the folds ran
        metrics.update(cv_metrics(background_cv.result()))
    write_json(metrics, reports_dir / "metrics.json")
    log(f"held-out AUC {metrics['roc_auc']:.4f} [{metrics['roc_auc_ci_low']:.4f}, {metrics['roc_auc_ci_high']:.4f}], "
        f"PR AUC {metrics['pr_auc']:.4f}, Brier {metrics['brier']:.4f}, ECE {metrics['ece']:.4f}"
        + (f", oracle AUC {metrics['oracle_roc_auc']:.4f}" if "oracle_roc_auc" in metrics else "")
        + "".join(f"; {n} baseline AUC {metrics[f'baseline_{n}_roc_auc']:.4f}" for n in baselines)
        + (f"; on all leads (with sales included) AUC {metrics['all_leads_roc_auc']:.4f}"
           if "all_leads_roc_auc" in metrics else ""))
    if info.get("run_id"):
        log_evaluation(info, metrics, [reports_dir / "metrics.json", *curves], p, started,
                       str(test["as_of"].iloc[0])[:10] if len(test) else None)
    return metrics


def cv_metrics(folds: list[float]) -> dict:
    out = {"cv_roc_auc": float(np.mean(folds)), "cv_roc_auc_std": float(np.std(folds)),
           "cv_roc_auc_folds": [round(f, 4) for f in folds]}
    log(f"{len(folds)}-fold CV ROC AUC {out['cv_roc_auc']:.4f} ± {out['cv_roc_auc_std']:.4f}")
    return out


HEADLINE_TEST_METRICS = ("roc_auc", "pr_auc", "brier", "ece")  # tagged on the registered version (``test_*``)


def log_evaluation(info: dict, metrics: dict, files: list[Path], p: EvaluateConfig, started: float,
                   test_date: str | None) -> str:
    """The held-out metrics onto the training run (``test_*``) and its registered version (tags), and an
    ``evaluate <profile> <test date>`` run nested under the training run with the evaluate params, the metrics
    and the files (metrics.json, the plots). Returns the evaluate run's id."""
    tracking.log_test_metrics(info["run_id"], metrics, [], info.get("model_version"),
                              {f"test_{k}": f"{metrics[k]:.4f}" for k in HEADLINE_TEST_METRICS
                               if isinstance(metrics.get(k), int | float)})
    return tracking.log_stage_run("evaluate", info["run_id"], start_time=started,
                                  params=tracking.loggable_params({"evaluate": p}), metrics=metrics,
                                  artifacts=files, data_date=test_date,
                                  tags={"model_version": str(info.get("model_version", ""))})


def write_curves(y: np.ndarray, p_hat: np.ndarray, reports_dir: Path, importance: pd.Series | None = None,
                 fractions: tuple[float, ...] = TOP_FRACTIONS) -> list[Path]:
    """ROC, PR, calibration, gains/lift and importance as CSV (DVC plots) and PNGs (one per plot + a panel)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, p_hat)
    prec, rec, _ = precision_recall_curve(y, p_hat)
    data = {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
        "pr": pd.DataFrame({"recall": rec, "precision": prec}),
        "calibration": reliability_table(y, p_hat),
        "gains": gains_table(y, p_hat).rename(columns={"share_of_leads": "fraction", "share_of_winners": "capture"}),
    }
    if importance is not None:
        share = importance / importance.sum() if importance.sum() > 0 else importance
        data["importance"] = pd.DataFrame({"feature": share.index, "gain_share": share.to_numpy()})
    plots_dir = reports_dir / "plots"
    paths = [write_csv(frame, plots_dir / f"{name}.csv") for name, frame in data.items()]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw(name: str, ax) -> None:
        d = data[name]
        if name == "roc":
            ax.plot(d["fpr"], d["tpr"])
            ax.plot([0, 1], [0, 1], "--", color="grey")
            ax.set(title="ROC (held-out period)", xlabel="false positive rate", ylabel="true positive rate")
        elif name == "pr":
            ax.plot(d["recall"], d["precision"])
            ax.axhline(np.mean(y), ls="--", color="grey")
            ax.set(title="Precision-recall", xlabel="recall", ylabel="precision")
        elif name == "calibration":
            ax.plot(d["predicted"], d["observed"], "o-")
            top = max(d["predicted"].max(), d["observed"].max()) * 1.05
            ax.plot([0, top], [0, top], "--", color="grey")
            ax.set(title="Calibration (equal-count bins)", xlabel="mean predicted p", ylabel="observed rate")
        elif name == "gains":
            ax.plot(d["fraction"], d["capture"], label="model")
            ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
            for f in fractions:
                ax.axvline(f, color="lightgrey", lw=0.8)
            ax.set(title="Cumulative gains", xlabel="share of leads, best first", ylabel="share of conversions")
            ax.legend(loc="lower right")
        else:
            top = d.head(20).iloc[::-1]
            ax.barh(top["feature"], top["gain_share"])
            ax.set(title="Feature importance (gain share, top 20)", xlabel="share of total gain")
            ax.tick_params(axis="y", labelsize=7)

    def left_inches(name: str) -> float:
        """Room for the y tick labels and title: fixed margins instead of tight_layout, which draws every figure
        once more to measure its text (about a second per run)."""
        if name != "importance":
            return 0.75
        longest = max((len(str(f)) for f in data[name]["feature"].head(20)), default=10)
        return 0.25 + longest * 7 * 0.6 / 72  # 7-point labels, about 0.6 em a character

    def place(fig, ax, name: str, x0: float, width: float, height: float, total_width: float) -> None:
        left = min(left_inches(name), width / 2)
        ax.set_position([(x0 + left) / total_width, 0.6 / height, (width - left - 0.2) / total_width,
                         1 - 1.0 / height])

    names = [n for n in PLOTS if n in data]
    for name in names:
        width, height = (6, 4.5) if name != "importance" else (7, 6)
        fig, ax = plt.subplots(figsize=(width, height))
        draw(name, ax)
        place(fig, ax, name, 0, width, height, width)
        paths.append(write_atomic(plots_dir / f"{name}.png", lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=90)))
        plt.close(fig)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.5))
    for i, (name, ax) in enumerate(zip(names, np.atleast_1d(axes), strict=True)):
        draw(name, ax)
        place(fig, ax, name, 5 * i, 5, 4.5, 5 * len(names))
    paths.append(write_atomic(reports_dir / "evaluation.png", lambda tmp: fig.savefig(tmp, format="png", dpi=80)))
    plt.close(fig)
    return paths
