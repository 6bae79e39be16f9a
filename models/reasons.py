"""Per-lead reasons in plain words: the three features pushing a lead's score up most, and the three pulling it down.

Input is LightGBM's per-row SHAP contributions (log-odds, `ConversionModel.contributions`) and the same rows'
feature values; each chosen (feature, value) pair becomes a sentence a sales rep can read ("3 pricing-page visits
in the last 7 days", "VP-level title", "company below the ICP size"). Contributions are costly, so callers pass
only the rows handed to sales or queued for a call.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEPARATOR = "; "
SENIORITY_WORDS = {0: "intern-level", 1: "individual-contributor", 2: "senior individual-contributor",
                   3: "manager-level", 4: "director-level", 5: "VP-level", 6: "C-level"}
ACTIVITY_WORDS = {
    "email_open": ("email open", "email opens"),
    "email_click": ("email click", "email clicks"),
    "web_visit": ("website visit", "website visits"),
    "pricing_page_view": ("pricing-page visit", "pricing-page visits"),
    "content_download": ("content download", "content downloads"),
    "webinar_attended": ("webinar attended", "webinars attended"),
    "demo_request": ("demo request", "demo requests"),
    "trial_signup": ("trial signup", "trial signups"),
    "meeting": ("meeting", "meetings"),
    "high_intent": ("high-intent action (pricing, demo, trial, meeting)",
                    "high-intent actions (pricing, demo, trial, meeting)"),
    "total": ("activity", "activities"),
}
BANT_WORDS = {"budget": "budget", "authority": "decision authority", "need": "need", "timeline": "timeline"}
_COUNT = re.compile(r"^n_(?P<kind>.+)_(?P<days>\d+)d$")
_COUNT_ALL = re.compile(r"^n_(?P<kind>.+)_all$")
_CONFIRMED = re.compile(r"^bant_(?P<gate>\w+)_confirmed$")


@dataclass(frozen=True)
class Phrasebook:
    """What the sentences compare against: the ideal customer profile's size band."""

    icp_min_employees: float = 200
    icp_max_employees: float = 10_000


Phraser = Callable[[pd.Series, pd.DataFrame, Phrasebook], pd.Series]


def _fmt_int(v: pd.Series) -> pd.Series:
    return v.round().astype("Int64").map("{:,}".format)


def _plural(v: pd.Series, one: str, many: str) -> pd.Series:
    n = v.fillna(0).round().astype(int)
    words = np.where(n == 1, one, many)
    return pd.Series(np.where(n == 0, "no " + many, n.map("{:,}".format) + " " + words), index=v.index)


def _when(cond, yes: str, no: str, index) -> pd.Series:
    return pd.Series(np.where(np.asarray(cond, dtype=bool), yes, no), index=index)


def _money(v: pd.Series) -> pd.Series:
    def one(x: float) -> str:
        if x >= 1e9:
            return f"${x / 1e9:,.1f}B"
        if x >= 1e6:
            return f"${x / 1e6:,.1f}M"
        if x >= 1e3:
            return f"${x / 1e3:,.0f}k"
        return f"${x:,.0f}"

    return v.map(one)


def _count_phrase(kind: str, days: str) -> Phraser:
    one, many = ACTIVITY_WORDS.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
    return lambda v, rows, pb: _plural(v, one, many) + f" in the last {days} days"


def _count_all_phrase(kind: str) -> Phraser:
    one, many = ACTIVITY_WORDS.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
    return lambda v, rows, pb: _plural(v, one, many) + " since the lead came in"


def _seniority(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    words = v.round().map(SENIORITY_WORDS)
    return (words + " title").where(words.notna(), "job title with no recognisable seniority")


def _employees(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    n = 10 ** v
    return ("company of about " + _fmt_int(n) + " employees").where(v.notna(), "company size unknown")


def _icp_size(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    employees = 10 ** rows["log_employees"].astype(float) if "log_employees" in rows else pd.Series(np.nan, v.index)
    outside = np.where(employees < pb.icp_min_employees, "company below the ICP size",
                       np.where(employees > pb.icp_max_employees, "company above the ICP size",
                                "company size outside the ICP"))
    return pd.Series(np.where(v >= 0.5, "company within the ICP size", outside), index=v.index)


def _icp_industry(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    name = rows["industry"].astype("string").fillna("unknown") if "industry" in rows else pd.Series("unknown", v.index)
    return pd.Series(np.where(v >= 0.5, "ICP industry (" + name + ")", "industry outside the ICP (" + name + ")"),
                     index=v.index)


def _confirmed(gate: str) -> Phraser:
    word = BANT_WORDS.get(gate, gate)
    return lambda v, rows, pb: pd.Series(
        np.where(v.isna(), f"{word} not yet confirmed on a call",
                 np.where(v >= 0.5, f"{word} confirmed on a call", f"{word} not confirmed on the call")),
        index=v.index)


def _days(v: pd.Series) -> pd.Series:
    n = v.fillna(0).round().astype(int)
    return pd.Series(np.where(n == 0, "today", np.where(n == 1, "1 day ago", n.map("{:,}".format) + " days ago")),
                     index=v.index)


def _days_ago(what: str, never: str) -> Phraser:
    return lambda v, rows, pb: (what + " " + _days(v)).where(v.notna(), never)


def _category(template: str, missing: str) -> Phraser:
    return lambda v, rows, pb: pd.Series(
        [template.format(x) if isinstance(x, str) else missing for x in v.astype(object).where(v.notna(), None)],
        index=v.index)


PHRASES: dict[str, Phraser] = {
    "seniority_level": _seniority,
    "is_decision_maker": lambda v, r, pb: _when(v >= 0.5, "decision-maker title", "not a decision-maker title", v.index),
    "department": _category("{} department", "department unknown"),
    "lead_source": _category("came in via {}", "lead source unknown"),
    "form_budget_min": lambda v, r, pb: ("stated budget of at least " + _money(v.fillna(0))).where(
        v.notna(), "no budget stated"),
    "form_timeline_months": lambda v, r, pb: ("plans to buy within " + _fmt_int(v) + " months").where(
        v.notna(), "no purchase timeline stated"),
    "form_use_case": _category("use case: {}", "no use case stated"),
    "log_employees": _employees,
    "log_revenue": lambda v, r, pb: ("annual revenue about " + _money(10 ** v.fillna(0))).where(
        v.notna(), "annual revenue unknown"),
    "log_revenue_per_employee": lambda v, r, pb: ("revenue per employee about " + _money(10 ** v.fillna(0))).where(
        v.notna(), "revenue per employee unknown"),
    "industry": _category("{} industry", "industry unknown"),
    "region": _category("based in {}", "region unknown"),
    "icp_industry": _icp_industry,
    "icp_size": _icp_size,
    "icp_country": lambda v, r, pb: _when(v >= 0.5, "ICP country", "country outside the ICP", v.index),
    "icp_match_count": lambda v, r, pb: "matches " + _fmt_int(v.fillna(0)) + " of 3 ICP criteria",
    "lead_age_days": lambda v, r, pb: "lead created " + _days(v),
    "company_age": lambda v, r, pb: ("company founded " + _fmt_int(v) + " years ago").where(
        v.notna(), "company age unknown"),
    "had_qualification_call": lambda v, r, pb: _when(v >= 0.5, "qualification call held", "no qualification call yet",
                                                     v.index),
    "has_open_opportunity": lambda v, r, pb: _when(v >= 0.5, "open opportunity", "no open opportunity", v.index),
    "days_since_opportunity_created": _days_ago("opportunity opened", "no opportunity opened"),
    "account_won_before": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, "company bought before (" + _plural(v, "won deal", "won deals") + ")",
                 "no earlier won deal with the company"), index=v.index),
    "account_lost_before": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, _plural(v, "lost deal", "lost deals") + " with the company before",
                 "no earlier lost deal with the company"), index=v.index),
    "n_activities_all": lambda v, r, pb: _plural(v, "activity", "activities") + " in total",
    "engagement_trend": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, "engagement rising", np.where(v.fillna(0) < 0, "engagement falling",
                                                                "engagement flat")), index=v.index),
    "engagement_decayed": lambda v, r, pb: "recent engagement of " + _fmt_int(v.fillna(0)) + " points",
    "days_since_last_activity": _days_ago("last activity", "no activity yet"),
    "days_since_last_high_intent": _days_ago("last high-intent action", "no high-intent action yet"),
    "buying_group_active_90d": lambda v, r, pb: _plural(v, "contact", "contacts") + " at the company active in 90 days",
    "days_since_pricing_page_view": _days_ago("last pricing-page visit", "no pricing-page visit yet"),
    "days_since_demo_request": _days_ago("last demo request", "no demo request yet"),
    "days_since_trial_signup": _days_ago("trial signup", "no trial yet"),
    "days_since_meeting": _days_ago("last meeting", "no meeting yet"),
    "days_since_first_activity": _days_ago("first engaged", "never engaged"),
    "days_since_burst": _days_ago("last burst of activity", "no burst of activity yet"),
    "burst_points_14d": lambda v, r, pb: _compact(v) + " engagement points in the busiest 14 days",
    "activity_age_std": lambda v, r, pb: ("activity spread over about " + _compact(v) + " days (std)").where(
        v.notna(), "no activity yet"),
    "burst_events_14d": lambda v, r, pb: _plural(v, "action", "actions") + " in the busiest 14 days",
    "burst_high_intent_14d": lambda v, r, pb: _plural(v, "high-intent action", "high-intent actions")
    + " in the busiest 14 days",
    "burst_excess_events": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) >= 1, _fmt_int(v.fillna(0).clip(lower=0)) + " more actions in the busiest weeks than usual",
                 "no burst above the usual activity"), index=v.index),
    "burst_high_intent_42d": lambda v, r, pb: _plural(v, "high-intent action", "high-intent actions")
    + " around the busiest weeks",
    "background_events_per_30d": lambda v, r, pb: ("usually " + _compact(v) + " actions a month").where(
        v.notna(), "no usual activity yet"),
    "high_intent_share_all": lambda v, r, pb: (_percent(v) + " of all actions high-intent").where(
        v.notna(), "no actions yet"),
    "activity_age_mean": lambda v, r, pb: ("activity centred about " + _compact(v) + " days ago").where(
        v.notna(), "no activity yet"),
    "buying_group_leads": lambda v, r, pb: _plural(v, "contact", "contacts") + " from the company in the CRM",
    "buying_group_engagement_decayed_others": lambda v, r, pb: "colleagues' recent engagement of "
    + _fmt_int(v.fillna(0)) + " points",
    "buying_group_burst_points_14d_others": lambda v, r, pb: "colleagues' busiest 14 days: "
    + _compact(v.fillna(0)) + " engagement points",
    "buying_group_n_high_intent_90d_others": lambda v, r, pb: _plural(
        v, "high-intent action", "high-intent actions") + " by colleagues in the last 90 days",
    "buying_group_max_seniority": lambda v, r, pb: ("most senior active contact is " + v.round().map(SENIORITY_WORDS)
                                                    ).where(v.round().isin(list(SENIORITY_WORDS)),
                                                            "no active contact of known seniority"),
}


def phraser_for(feature: str) -> Phraser:
    """The sentence builder for one feature column (a readable fallback for columns without one)."""
    if feature in PHRASES:
        return PHRASES[feature]
    if m := _COUNT.match(feature):
        return _count_phrase(m["kind"], m["days"])
    if m := _COUNT_ALL.match(feature):
        return _count_all_phrase(m["kind"])
    if m := _CONFIRMED.match(feature):
        return _confirmed(m["gate"])
    label = feature.replace("_", " ")
    return lambda v, rows, pb: label + " " + _compact(v)


def _percent(v: pd.Series) -> pd.Series:
    return (100 * v.fillna(0)).round().astype(int).map("{}%".format)


def _compact(v: pd.Series) -> pd.Series:
    """Values as people write them: 117.2 not 117.16489697421622, 1,250 not 1250.0; missing says so."""
    if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
        x = v.astype(float)
        text = pd.Series([f"{n:,.0f}" if abs(n) >= 100 or float(n).is_integer() else f"{n:.2g}" if abs(n) < 1
                          else f"{n:.1f}" for n in x.fillna(0.0)], index=v.index)
        return text.where(x.notna(), "missing")
    return v.astype(object).where(v.notna(), "missing").astype(str)


def describe(feature: str, values: pd.Series, rows: pd.DataFrame, phrasebook: Phrasebook | None = None) -> pd.Series:
    """One sentence per value of `feature` (rows gives the other columns some sentences need)."""
    pb = phrasebook or Phrasebook()
    v = values if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object else values.astype(float)
    return phraser_for(feature)(v, rows, pb).astype(object)


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3,
                phrasebook: Phrasebook | None = None) -> pd.DataFrame:
    """`reasons_for` and `reasons_against`: up to k sentences each, strongest first, joined by "; ".

    A factor counts *for* a lead when its contribution is positive and *against* it when negative; zero
    contributions are not reasons.
    """
    missing = [c for c in contributions.columns if c not in features.columns]
    if missing:
        raise ValueError(f"feature rows are missing column(s) the contributions name: {missing}")
    if not contributions.index.equals(features.index):
        raise ValueError("contributions and feature rows must share the same index")
    n = len(contributions)
    out = pd.DataFrame({"reasons_for": pd.Series([""] * n, index=contributions.index, dtype=object),
                        "reasons_against": pd.Series([""] * n, index=contributions.index, dtype=object)})
    if n == 0:
        return out
    names = np.asarray(contributions.columns)
    values = contributions.to_numpy(dtype=float)
    k = min(k, values.shape[1])
    rows = features.reset_index(drop=True)
    for column, sign in (("reasons_for", 1.0), ("reasons_against", -1.0)):
        signed = sign * values
        top = np.argsort(-signed, axis=1, kind="stable")[:, :k]  # strongest first
        strength = np.take_along_axis(signed, top, axis=1)
        sentences = np.full(top.shape, "", dtype=object)
        # One vectorised pass per feature over every (row, slot) that chose it.
        for j in np.unique(top[strength > 0]):
            r, slot = np.nonzero((top == j) & (strength > 0))
            sentences[r, slot] = describe(names[j], rows[names[j]].iloc[r], rows.iloc[r], phrasebook).to_numpy()
        joined = sentences[:, 0].copy()
        for slot in range(1, k):
            nonempty = sentences[:, slot] != ""
            joined[nonempty] = joined[nonempty] + SEPARATOR + sentences[nonempty, slot]
        out[column] = joined
    return out
