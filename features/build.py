"""The feature table: one row per lead and as-of date, point-in-time correct, with its label.

Semantics (documented in the README):
- a lead appears in the snapshot of date T when it was created before T and had no opportunity closed
  before T (already won or lost leads are not scored again);
- a lead already with sales at T (an opportunity open at T; in the scoring snapshot also what the export says
  now: converted, or a working CRM status) is not an SQL candidate: its rows carry ``with_sales``, and labelled
  ones get the split ``with_sales`` instead of train / test, so the model is fitted and judged on the leads the
  decision is for (`decision_population`);
- features see only what was known before T: activities, calls and opportunities strictly before T;
- the label is 1 when one of the lead's opportunities closed won in [T, T + horizon).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import DEFAULT_ICP, FeaturizeConfig, Icp, snapshot_dates  # noqa: F401 - re-exported
from features.engagement import EngagementConfig, Events, engagement_features, prepare_events
from features.schema import (
    BANT_CONFIRMED_COLUMNS,
    BUDGET_BANDS,
    FLAT_TIME,
    INDUSTRY_VALUES,
    LEAD_SOURCE_VALUES,
    TIMELINE_ANSWERS,
    USE_CASES,
)
from features.titles import DEPARTMENTS, parse_titles

REGIONS: dict[str, str] = {
    "US": "North America", "CA": "North America", "MX": "Latin America", "BR": "Latin America",
    "AR": "Latin America", "CL": "Latin America", "CO": "Latin America",
    "GB": "Europe", "DE": "Europe", "FR": "Europe", "NL": "Europe", "ES": "Europe", "IT": "Europe",
    "SE": "Europe", "CH": "Europe", "IE": "Europe", "BE": "Europe", "AT": "Europe", "DK": "Europe",
    "NO": "Europe", "FI": "Europe", "PL": "Europe", "PT": "Europe",
    "IN": "Asia Pacific", "JP": "Asia Pacific", "AU": "Asia Pacific", "SG": "Asia Pacific",
    "CN": "Asia Pacific", "KR": "Asia Pacific", "NZ": "Asia Pacific",
    "ZA": "Middle East & Africa", "AE": "Middle East & Africa", "IL": "Middle East & Africa",
}
REGION_NAMES = tuple(sorted(set(REGIONS.values())) + ["Other"])

META_COLUMNS = ("lead_id", "account_id", "as_of", "split", "label", FLAT_TIME, "with_sales")
WITH_SALES = "with_sales"  # the split of labelled rows of leads already with sales (not the decision's population)
CATEGORICAL_FEATURES: dict[str, tuple[str, ...]] = {
    # picklists with their catch-all "Other" (validation keeps unknown values as it), so it is a category too
    "industry": INDUSTRY_VALUES,
    "region": REGION_NAMES,
    "department": tuple(DEPARTMENTS) + ("unknown",),
    "lead_source": LEAD_SOURCE_VALUES,
    "form_use_case": USE_CASES,
}


@dataclass(frozen=True)
class FeatureConfig:
    horizon_days: int = 90
    engagement: EngagementConfig = field(default_factory=EngagementConfig)
    icp: Icp = field(default_factory=Icp)


def feature_config(c: FeaturizeConfig) -> FeatureConfig:
    """The snapshot builder's settings of a featurize config."""
    return FeatureConfig(
        horizon_days=c.horizon_days,
        engagement=EngagementConfig(windows_days=tuple(c.windows_days), half_life_days=c.half_life_days,
                                    activity_weights=c.activity_weights),
        icp=c.icp,
    )


@dataclass
class PreparedCrm:
    """The validated CRM encoded once, so that many as-of snapshots are cheap."""

    leads: pd.DataFrame  # sorted by lead_id, with static lead and account features joined
    events: Events
    opportunities: pd.DataFrame  # with lead_code and account_code


def prepare_crm(
    accounts: pd.DataFrame, leads: pd.DataFrame, activities: pd.DataFrame, opportunities: pd.DataFrame,
    icp: Icp,
) -> PreparedCrm:
    """Join and encode the four tables; nothing here depends on an as-of date."""
    leads = leads.sort_values("lead_id", kind="stable").reset_index(drop=True)
    static = _static_lead_features(leads).join(_firmographics(leads, accounts, icp))
    static.insert(0, "lead_id", leads["lead_id"].to_numpy())
    static.insert(1, "account_id", leads["account_id"].to_numpy())
    static["created_at"] = pd.to_datetime(leads["created_at"]).to_numpy()
    static["call_date"] = pd.to_datetime(leads["call_date"]) if "call_date" in leads else pd.NaT
    for col in BANT_CONFIRMED_COLUMNS:
        static[col] = _bool_as_float(leads[col]) if col in leads else np.nan
    # export-time CRM state: only the scoring snapshot (as of the export) may read it
    static["with_sales_now"] = _bool_as_float(leads["with_sales"]) == 1 if "with_sales" in leads else False
    static["account_code"] = pd.factorize(static["account_id"])[0]

    lead_index = pd.Index(static["lead_id"])
    opps = opportunities.copy()
    opps["lead_code"] = lead_index.get_indexer(opps["lead_id"])
    opps = opps[opps["lead_code"] >= 0]
    opps["account_code"] = static["account_code"].to_numpy()[opps["lead_code"].to_numpy()]
    opps["created_at"] = pd.to_datetime(opps["created_at"])
    opps["closed_at"] = pd.to_datetime(opps["closed_at"])
    return PreparedCrm(leads=static, events=prepare_events(activities, lead_index), opportunities=opps)


def _bool_as_float(values: pd.Series) -> np.ndarray:
    return values.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _static_lead_features(leads: pd.DataFrame) -> pd.DataFrame:
    titles = parse_titles(leads["job_title"])
    out = pd.DataFrame(index=leads.index)
    out["seniority_level"] = titles["seniority_level"].astype(float)
    out["is_decision_maker"] = titles["is_decision_maker"].astype(float)
    out["department"] = titles["department"].astype("string")
    out["lead_source"] = leads["lead_source"].astype("string")
    out["form_budget_min"] = _mapped(leads, "form_budget", BUDGET_BANDS)
    out["form_timeline_months"] = _mapped(leads, "form_timeline", TIMELINE_ANSWERS)
    use_case = leads["form_use_case"] if "form_use_case" in leads else pd.Series(pd.NA, index=leads.index)
    out["form_use_case"] = use_case.astype("string")
    return out


def _mapped(leads: pd.DataFrame, column: str, mapping: Mapping[str, float]) -> np.ndarray:
    if column not in leads:
        return np.full(len(leads), np.nan)
    return leads[column].map(mapping).astype(float).to_numpy()


def _firmographics(leads: pd.DataFrame, accounts: pd.DataFrame, icp: Icp) -> pd.DataFrame:
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    joined = acc.reindex(leads["account_id"])
    employees = pd.to_numeric(joined["employees"], errors="coerce").astype(float).to_numpy()
    revenue = pd.to_numeric(joined["annual_revenue"], errors="coerce").astype(float).to_numpy()
    out = pd.DataFrame(index=leads.index)
    out["log_employees"] = np.log10(np.clip(employees, 1, None))
    out["log_revenue"] = np.log10(np.clip(revenue, 1, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log_revenue_per_employee"] = np.log10(np.clip(revenue / employees, 1, None))
    out["founded_year"] = pd.to_numeric(joined["founded_year"], errors="coerce").astype(float).to_numpy()
    out["industry"] = joined["industry"].astype("string").to_numpy()
    country = joined["country"].astype("string")
    out["region"] = country.map(REGIONS).fillna("Other").astype("string").to_numpy()
    out["icp_industry"] = joined["industry"].isin(icp.industries).astype(float).to_numpy()
    out["icp_size"] = ((employees >= icp.min_employees) & (employees <= icp.max_employees)).astype(float)
    out["icp_country"] = country.isin(icp.countries).astype(float).to_numpy()
    out["icp_match_count"] = out["icp_industry"] + out["icp_size"] + out["icp_country"]
    return out


def snapshot(crm: PreparedCrm, as_of: pd.Timestamp, config: FeatureConfig, with_label: bool = True) -> pd.DataFrame:
    """Features of every eligible lead as known just before `as_of`, and (optionally) its label."""
    as_of = pd.Timestamp(as_of)
    leads = crm.leads
    opps = crm.opportunities
    n = len(leads)

    closed_before = opps["closed_at"] < as_of
    done = np.zeros(n, dtype=bool)
    done[opps.loc[closed_before, "lead_code"].to_numpy()] = True
    eligible = (leads["created_at"].to_numpy() < as_of.to_datetime64()) & ~done

    eng = engagement_features(crm.events, as_of, config.engagement)
    frame = leads.drop(columns=["created_at", "call_date", *BANT_CONFIRMED_COLUMNS, "account_code",
                                "with_sales_now"]).copy()
    frame.insert(2, "as_of", as_of)
    frame["lead_age_days"] = (as_of - leads["created_at"]).dt.total_seconds().to_numpy() / 86_400
    frame["company_age"] = as_of.year - frame.pop("founded_year")

    # A qualification call's answers exist only once the call has happened.
    called = (leads["call_date"] < as_of).to_numpy()
    for col in BANT_CONFIRMED_COLUMNS:
        frame[col] = np.where(called, leads[col].to_numpy(dtype=float), np.nan)
    frame["had_qualification_call"] = called.astype(float)

    # The lead's own opportunity, if one was opened before the as-of date (and is still open: eligible).
    opened = opps[opps["created_at"] < as_of]
    opp_age = np.full(n, np.nan)
    np.fmax.at(opp_age, opened["lead_code"].to_numpy(), (as_of - opened["created_at"]).dt.total_seconds().to_numpy() / 86_400)
    frame["has_open_opportunity"] = (~np.isnan(opp_age)).astype(float)
    frame["days_since_opportunity_created"] = opp_age
    # Already with sales: an opportunity open at `as_of`; for the scoring snapshot (no label: as of the export)
    # also the CRM's own word now (converted, a working status). Never a feature: it decides the population.
    with_sales = ~np.isnan(opp_age)
    if not with_label:
        with_sales = with_sales | leads["with_sales_now"].to_numpy(dtype=bool)
    frame["with_sales"] = with_sales

    # Account history: earlier outcomes of the same company, closed before the as-of date.
    acc_code = leads["account_code"].to_numpy()
    n_acc = int(acc_code.max()) + 1 if n else 0
    closed = opps[closed_before]
    won = closed["stage"].eq("closed_won").to_numpy()
    frame["account_won_before"] = np.bincount(closed["account_code"].to_numpy()[won], minlength=n_acc)[acc_code]
    frame["account_lost_before"] = np.bincount(closed["account_code"].to_numpy()[~won], minlength=n_acc)[acc_code]

    frame = pd.concat([frame.reset_index(drop=True), eng], axis=1)

    # Buying group: how many contacts of the same account engaged lately, and the most senior of them.
    active = (eng["n_total_90d"].to_numpy() > 0) & (leads["created_at"].to_numpy() < as_of.to_datetime64())
    frame["buying_group_active_90d"] = np.bincount(acc_code[active], minlength=n_acc)[acc_code]
    senior = np.full(n_acc, np.nan)
    levels = leads["seniority_level"].to_numpy(dtype=float)
    np.fmax.at(senior, acc_code[active], levels[active])
    frame["buying_group_max_seniority"] = senior[acc_code]
    # The account's interest shows in its other contacts too: their engagement, excluding the lead's own.
    created = leads["created_at"].to_numpy() < as_of.to_datetime64()
    frame["buying_group_leads"] = np.bincount(acc_code[created], minlength=n_acc)[acc_code]
    for col in ("engagement_decayed", "burst_points_14d", "n_high_intent_90d"):
        own = np.where(created, eng[col].to_numpy(dtype=float), 0.0)
        frame[f"buying_group_{col}_others"] = np.bincount(acc_code, weights=own, minlength=n_acc)[acc_code] - own

    if with_label:
        window = opps["stage"].eq("closed_won") & (opps["closed_at"] >= as_of) & (
            opps["closed_at"] < as_of + pd.Timedelta(days=config.horizon_days)
        )
        label = np.zeros(n, dtype=np.int8)
        label[opps.loc[window, "lead_code"].to_numpy()] = 1
        frame["label"] = label
    else:
        frame["label"] = pd.array([pd.NA] * n, dtype="Int8")
    return frame.loc[eligible].reset_index(drop=True)


def feature_parts(crm: PreparedCrm, dates: dict[str, list[pd.Timestamp]], config: FeatureConfig,
                  float32: bool = False) -> Iterator[pd.DataFrame]:
    """The snapshots one at a time, each with its `split` column and fixed categories (compact when `float32`).

    One snapshot at a time keeps memory at one snapshot's width: a caller can write each part and drop it
    (pipeline/featurize.py streams the training table to Parquet this way).
    """
    for split, as_ofs in dates.items():
        for as_of in as_ofs:
            part = snapshot(crm, as_of, config, with_label=split != "score")
            part.insert(3, "split", split)
            if split != "score":
                part.loc[part["with_sales"].to_numpy(dtype=bool), "split"] = WITH_SALES
            part = with_categories(part)
            yield compact_dtypes(part) if float32 else part


def build_feature_table(crm: PreparedCrm, dates: dict[str, list[pd.Timestamp]], config: FeatureConfig,
                        float32: bool = False) -> pd.DataFrame:
    """All snapshots stacked, with a `split` column (train / test / score)."""
    # every part carries the same fixed categories, so the stacked columns stay categorical
    return pd.concat(list(feature_parts(crm, dates, config, float32)), ignore_index=True)


def compact_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """Numeric feature columns as float32 (half the memory of float64 / int64) and the label as nullable Int8.

    Counts stay exact (float32 holds every integer up to 2**24) and the rest keeps 7 significant digits, far more
    than LightGBM's histogram bins resolve. All-float32 features also let LightGBM build its Dataset without an
    upcast to float64. Categoricals, ids, dates and `split` are left as they are.
    """
    out = {}
    for col in table.columns:
        values = table[col]
        if col == "label":
            out[col] = values.astype("Int8")
        elif col not in META_COLUMNS and pd.api.types.is_numeric_dtype(values.dtype) \
                and not isinstance(values.dtype, pd.CategoricalDtype):
            out[col] = values.to_numpy(dtype=np.float32, na_value=np.nan) \
                if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy().astype(np.float32)
        else:
            out[col] = values
    return pd.DataFrame(out, index=table.index)


def with_categories(table: pd.DataFrame) -> pd.DataFrame:
    """Categorical features with fixed category sets, so every snapshot and scoring run encodes alike."""
    table = table.copy()
    for col, cats in CATEGORICAL_FEATURES.items():
        if col in table:
            table[col] = pd.Categorical(table[col].astype("object"), categories=list(cats))
    table["split"] = table["split"].astype("string") if "split" in table else table.get("split")
    return table


def decision_population(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the SQL decision is for: leads not already with sales (`with_sales` false or absent)."""
    if "with_sales" not in table:
        return table
    return table[~table["with_sales"].fillna(False).to_numpy(dtype=bool)]


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in META_COLUMNS]


# ---------------------------------------------------------------------------- the featurize stage's core


def featurize(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, c: FeaturizeConfig,
              dates: dict[str, list[pd.Timestamp]] | None = None) -> tuple[dict[str, list[pd.Timestamp]],
                                                                          Iterator[pd.DataFrame]]:
    """(as-of dates, the feature snapshots one at a time) of a validated four-table CRM scored at `as_of`.

    `dates` defaults to the train / test / score dates of `c`; ``{"score": [as_of]}`` gives only the open leads
    of one date (scoring new data). Every driver (the DVC stage, `leadscore run`, `score --input`, Spark buckets,
    benchmarks) builds its features here.
    """
    dates = dates if dates is not None else c.dates(as_of)
    config = feature_config(c)
    crm = prepare_crm(tables["accounts"], tables["leads"], tables["activities"], tables["opportunities"], icp=config.icp)
    return dates, feature_parts(crm, dates, config, float32=c.float32)


def score_features(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, c: FeaturizeConfig) -> pd.DataFrame:
    """The feature rows of the leads open at `as_of` (split ``score``), as the featurize stage stores them."""
    _, parts = featurize(tables, as_of, c, {"score": [pd.Timestamp(as_of).normalize()]})
    return pd.concat(list(parts), ignore_index=True)


def flat_features(flat: pd.DataFrame, as_of: pd.Timestamp, split: np.ndarray) -> pd.DataFrame:
    """A flat export's feature table: its declared columns passed through, in the export's row order, with the
    meta columns of the snapshot table. `split` says per row train / test (labelled) or score (open leads)."""
    meta = pd.DataFrame({
        "lead_id": flat["lead_id"].astype("string").to_numpy(),
        "account_id": pd.array([pd.NA] * len(flat), dtype="string"),
        "as_of": pd.Timestamp(as_of),
        "split": pd.array(np.asarray(split, dtype=object), dtype="string"),
        "label": flat["label"].astype("Int8").to_numpy(),
    })
    rest = flat.drop(columns=[col for col in ("lead_id", "label") if col in flat])
    return pd.concat([meta, rest.reset_index(drop=True)], axis=1)
