"""Per-lead reasons in plain words: the three features pushing a lead's score up most, and the three pulling it down.

Input is LightGBM's per-row SHAP contributions (log-odds, `ConversionModel.contributions`) and the same rows'
feature values; each chosen (feature, value) pair becomes a sentence a sales rep can read, as a colleague would say
it ("3 pricing-page visits in the last 7 days", "VP-level title", "company of about 50 employees, smaller than your
typical customer", "in Retail, outside your target industries"). No sentence shows a column name, a transformed
value (log, standard deviation) or a z-score: firmographics are phrased against the ideal customer profile
(`Phrasebook`), and a column without a sentence of its own (a flat export's `Total Time Spent on Website`,
`euribor3m`) gets its name in words and its value as high / low against typical leads. Contributions are costly,
so callers pass only the rows handed to sales or queued for a call.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.schema import BUDGET_BANDS, USE_CASES

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
    "other": ("other activity", "other activities"),
}
BANT_WORDS = {"budget": "budget", "authority": "decision authority", "need": "need", "timeline": "timeline"}
DEPARTMENT_WORDS = {"it": "works in IT", "hr": "works in HR", "customer_success": "works in customer success",
                    "executive": "executive role", "other": "works in another department",
                    "unknown": "department unclear from the title"}
LEAD_SOURCE_WORDS = {"Organic Search": "organic search", "Paid Search": "paid search", "Referral": "a referral",
                     "Event": "an event", "Webinar": "a webinar", "Partner": "a partner",
                     "Outbound": "outbound prospecting", "Content Syndication": "content syndication",
                     "Social": "social media", "Direct": "a direct visit"}
TIMELINE_WORDS = {0: "wants to buy now", 2: "plans to buy this quarter", 5: "plans to buy next quarter",
                  9: "plans to buy in 6-12 months", 18: "just researching, no purchase planned yet"}
_OTHER = {"other", "unknown", "none", ""}  # picklist catch-alls: said as "another ...", never quoted
_COUNT = re.compile(r"^n_(?P<kind>.+)_(?P<days>\d+)d$")
_COUNT_ALL = re.compile(r"^n_(?P<kind>.+)_all$")
_CONFIRMED = re.compile(r"^bant_(?P<gate>\w+)_confirmed$")


@dataclass(frozen=True)
class Phrasebook:
    """What the sentences compare against.

    The ideal customer profile's size band ("smaller than your typical customer"; a bound of 0 or >= 1e9 means
    none), and `typical`: per column without a sentence of its own, the (25th, 50th, 75th) percentiles of typical
    leads, so that a flat export's column reads "high total time spent on website (1,250; typical lead 300)".
    `with_typical(rows)` fills it from the leads being scored; `top_reasons` fills what is still missing from the
    rows it explains.
    """

    icp_min_employees: float = 200
    icp_max_employees: float = 10_000
    typical: Mapping[str, tuple[float, float, float]] = field(default_factory=dict, hash=False)

    def with_typical(self, rows: pd.DataFrame) -> Phrasebook:
        """A copy whose `typical` also holds the quartiles of `rows`' numeric columns without a sentence of their
        own (values already present are kept)."""
        add = {c: q for c in rows.columns if str(c) not in self.typical and not has_phrase(str(c))
               and (q := _quartiles(rows[c])) is not None}
        return dataclasses.replace(self, typical={**add, **self.typical}) if add else self

    def size_band(self, employees: pd.Series) -> pd.Series:
        """"smaller" / "larger" / "inside" per employee count against the band ("" when unknown or no band)."""
        n = employees.astype(float).round()
        lo = self.icp_min_employees if self.icp_min_employees > 1 else -np.inf
        hi = self.icp_max_employees if self.icp_max_employees < 1e9 else np.inf
        if np.isinf(lo) and np.isinf(hi):
            return pd.Series("", index=employees.index, dtype=object)
        return pd.Series(np.where(n.isna(), "", np.where(n < lo, "smaller", np.where(n > hi, "larger", "inside"))),
                         index=employees.index, dtype=object)


Phraser = Callable[[pd.Series, pd.DataFrame, Phrasebook], pd.Series]


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


def _texts(v: pd.Series) -> list[str | None]:
    """Each value as text, None when missing (categorical, text and boolean columns)."""
    return [str(x) if present else None for x, present in zip(v.astype(object), v.notna().to_numpy(), strict=True)]


def _is_other(name: str | None) -> bool:
    return name is None or name.strip().lower() in _OTHER


_SIZE_WORDS = {"smaller": ", smaller than your typical customer", "larger": ", larger than your typical customer",
               "inside": ", in your target size range", "outside": ", outside your target size range", "": ""}


def _size_sentence(employees: pd.Series, band: pd.Series) -> pd.Series:
    """"company of about 50 employees, smaller than your typical customer" ("company size unknown" when missing)."""
    n = employees.astype(float).round().clip(lower=1)
    text = "company of about " + _plural(n, "employee", "employees") + band.map(_SIZE_WORDS).fillna("")
    return text.where(employees.notna(), "company size unknown")


def _employees(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    employees = 10 ** v
    return _size_sentence(employees, pb.size_band(employees))


def _icp_size(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    """The flag decides in or out; the employee count (when a feature) says which way and how far. Worded like
    `log_employees`' sentence, so that the two chosen together read as one reason."""
    if "log_employees" not in rows:
        return _when(v >= 0.5, "company size in your target range", "company size outside your target range",
                     v.index)
    employees = 10 ** rows["log_employees"].astype(float)
    band = pb.size_band(employees)
    inside = np.asarray(v >= 0.5, dtype=bool)
    band = band.where(~inside, "inside").where(inside | band.isin(["smaller", "larger"]), "outside")
    return _size_sentence(employees, band)


def _industry_sentence(name: pd.Series | None, target: pd.Series | None) -> pd.Series:
    """"in Software, one of your target industries", "in Retail, outside your target industries", or without the
    ICP flag "in the Retail industry"; picklist catch-alls ("other") are not quoted. `name` None: no industry
    column (the flag alone speaks)."""
    index = target.index if name is None else name.index
    names = [""] * len(index) if name is None else _texts(name)
    flags = [None] * len(index) if target is None else [None if pd.isna(t) else t >= 0.5 for t in target]
    out = []
    for x, ok in zip(names, flags, strict=True):
        known = not _is_other(x)
        if ok is True:
            out.append(f"in {x}, one of your target industries" if known else "in one of your target industries")
        elif ok is False:
            out.append(f"in {x}, outside your target industries" if known else
                       "outside your target industries" if x is not None else "industry unknown")
        else:
            out.append(f"in the {x} industry" if known else "in another industry" if x is not None
                       else "industry unknown")
    return pd.Series(out, index=index, dtype=object)


def _industry(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    return _industry_sentence(v, rows["icp_industry"].astype(float) if "icp_industry" in rows else None)


def _icp_industry(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    return _industry_sentence(rows.get("industry"), v.fillna(0.0))


def _icp_match_count(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    n = v.fillna(0).round().astype(int)
    text = np.where(n >= 3, "fits all 3 of your ideal-customer criteria",
                    np.where(n <= 0, "fits none of your ideal-customer criteria",
                             "fits " + n.astype(str) + " of your 3 ideal-customer criteria"))
    return pd.Series(text, index=v.index, dtype=object) + " (industry, size, country)"


def _words_of(table: Mapping[str, str], template: str, other: str, missing: str) -> Phraser:
    """A picklist value in words: `table`'s wording when it has one, else `template` with the value in words."""
    def phrase(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
        return pd.Series([missing if x is None else table[x] if x in table else other if _is_other(x) else
                          template.format(_value_words(x)) for x in _texts(v)],
                         index=v.index, dtype=object)
    return phrase


def _confirmed(gate: str) -> Phraser:
    word = BANT_WORDS.get(gate, gate.replace("_", " "))
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


def _count_of(v: pd.Series, one: str, many: str, none: str) -> pd.Series:
    """"1 point", "42 points", and `none` for zero or missing."""
    n = v.fillna(0).round().astype(int)
    return pd.Series(np.where(n <= 0, none, n.map("{:,}".format) + " " + np.where(n == 1, one, many)),
                     index=v.index, dtype=object)


def _budget(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    lowest = min((b for b in BUDGET_BANDS.values() if b > 0), default=10_000.0)
    text = np.where(v.fillna(0) <= 0, "stated budget under " + _money(pd.Series([lowest]))[0],
                    "stated budget of at least " + _money(v.fillna(0)))
    return pd.Series(text, index=v.index, dtype=object).where(v.notna(), "no budget stated")


def _timeline(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    n = v.round()
    generic = "plans to buy within " + _count_of(n.clip(lower=1), "month", "months", "a month")
    return n.map(TIMELINE_WORDS).fillna(generic).where(v.notna(), "no purchase timeline stated")


def _company_age(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    years = "company founded " + _count_of(v, "year", "years", "this year") + " ago"
    return years.str.replace("this year ago", "this year", regex=False).where(v.notna(), "company age unknown")


def _activity_spread(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    """The standard deviation of the lead's event ages, said as how spread out the activity is."""
    s = v.fillna(0)
    text = np.where(s < 2, "all activity within a few days", np.where(
        s < 7, "activity spread over a few weeks", np.where(s < 30, "activity spread over a few months",
                                                            "activity spread over many months")))
    return pd.Series(text, index=v.index, dtype=object).where(v.notna(), "no activity yet")


def _usual_activity(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
    x = v.astype(float)
    text = np.where(x < 0.95, "usually less than one action a month",
                    np.where(x.round() == 1, "usually about 1 action a month",
                             "usually about " + _compact(x) + " actions a month"))
    return pd.Series(text, index=v.index, dtype=object).where(v.notna(), "no usual activity yet")


def _value_words(x: str) -> str:
    """A category value in words: `basic.4y` -> `basic 4y`, `paid_search` -> `paid search`, Yes -> yes."""
    if x.strip().lower() in ("yes", "no", "true", "false"):
        return {"true": "yes", "false": "no"}.get(x.strip().lower(), x.strip().lower())
    return re.sub(r"(?<=[A-Za-z])\.(?=[A-Za-z0-9])", " ", x.replace("_", " ")).strip()


def humanise(name: str) -> str:
    """A column name in words: `Total Time Spent on Website` -> `total time spent on website`, `euribor3m` ->
    `euribor 3m`, `emp.var.rate` -> `emp var rate`, `TotalVisits` -> `total visits` (acronyms keep their case)."""
    s = re.sub(r"[_.\-/]+", " ", str(name))
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s)
    s = re.sub(r"(?<=[A-Za-z])(?=\d)", " ", s)
    words = [w.lower() if w.islower() or w[1:].islower() else w for w in s.split()]
    return " ".join(words) or "value"


def _quartiles(values: pd.Series) -> tuple[float, float, float] | None:
    """(25th, 50th, 75th) percentiles of a numeric column; None for text, booleans or no numbers."""
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    x = values.to_numpy(dtype=float, na_value=np.nan)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
    return float(q25), float(q50), float(q75)


def _generic(feature: str) -> Phraser:
    """A column without a sentence of its own (a flat export's): its name in words and, for numbers, the value as
    high / typical / low against typical leads (`Phrasebook.typical`, else the values at hand); for categories the
    value itself."""
    label = humanise(feature)
    unknown = f"{label} not recorded"

    def phrase(v: pd.Series, rows: pd.DataFrame, pb: Phrasebook) -> pd.Series:
        if pd.api.types.is_bool_dtype(v.dtype) or not pd.api.types.is_numeric_dtype(v.dtype):
            return pd.Series([unknown if x is None else f"{label}: {_value_words(x)}" for x in _texts(v)],
                             index=v.index, dtype=object)
        x = v.astype(float)
        q = pb.typical.get(feature) or _quartiles(x)
        value = _compact(x)
        if q is None:
            return (label + ": " + value).where(x.notna(), unknown)
        typical = _compact(pd.Series([q[1]]))[0]
        text = np.where(x > q[2], "high " + label + " (" + value + "; typical lead " + typical + ")",
                        np.where(x < q[0], "low " + label + " (" + value + "; typical lead " + typical + ")",
                                 "typical " + label + " (" + value + ")"))
        return pd.Series(text, index=v.index, dtype=object).where(x.notna(), unknown)

    return phrase


PHRASES: dict[str, Phraser] = {
    "seniority_level": _seniority,
    "is_decision_maker": lambda v, r, pb: _when(v >= 0.5, "decision-maker title", "not a decision-maker title", v.index),
    "department": _words_of(DEPARTMENT_WORDS, "works in {}", "works in another department", "department unknown"),
    "lead_source": _words_of({k: f"came in via {w}" for k, w in LEAD_SOURCE_WORDS.items()}, "came in via {}",
                             "came in via another source", "lead source unknown"),
    "form_budget_min": _budget,
    "form_timeline_months": _timeline,
    "form_use_case": _words_of({u: f"wants it for {u.lower()}" for u in USE_CASES if not _is_other(u)}, "use case: {}",
                               "has another use case", "no use case stated"),
    "log_employees": _employees,
    "log_revenue": lambda v, r, pb: ("annual revenue about " + _money(10 ** v.fillna(0))).where(
        v.notna(), "annual revenue unknown"),
    "log_revenue_per_employee": lambda v, r, pb: ("revenue per employee about " + _money(10 ** v.fillna(0))).where(
        v.notna(), "revenue per employee unknown"),
    "industry": _industry,
    "region": _words_of({}, "based in {}", "based in another region", "region unknown"),
    "icp_industry": _icp_industry,
    "icp_size": _icp_size,
    "icp_country": lambda v, r, pb: _when(v >= 0.5, "in one of your target countries", "outside your target countries",
                                          v.index),
    "icp_match_count": _icp_match_count,
    "lead_age_days": lambda v, r, pb: "lead came in " + _days(v),
    "company_age": _company_age,
    "had_qualification_call": lambda v, r, pb: _when(v >= 0.5, "qualification call held", "no qualification call yet",
                                                     v.index),
    "has_open_opportunity": lambda v, r, pb: _when(v >= 0.5, "already has an open opportunity",
                                                   "no open opportunity yet", v.index),
    "days_since_opportunity_created": _days_ago("opportunity opened", "no opportunity opened"),
    "account_won_before": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, "company bought before (" + _plural(v, "won deal", "won deals") + ")",
                 "no earlier won deal with the company"), index=v.index),
    "account_lost_before": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, _plural(v, "lost deal", "lost deals") + " with the company before",
                 "no earlier lost deal with the company"), index=v.index),
    "n_activities_all": lambda v, r, pb: _plural(v, "activity", "activities") + " in total",
    "engagement_trend": lambda v, r, pb: pd.Series(
        np.where(v.fillna(0) > 0, "engagement rising over the last two weeks",
                 np.where(v.fillna(0) < 0, "engagement falling over the last two weeks",
                          "engagement flat over the last four weeks")), index=v.index),
    "engagement_decayed": lambda v, r, pb: ("recent engagement of " + _count_of(v, "point", "points", "")).where(
        v.fillna(0).round() > 0, "no recent engagement"),
    "days_since_last_activity": _days_ago("last activity", "no activity yet"),
    "days_since_last_high_intent": _days_ago("last high-intent action", "no high-intent action yet"),
    "buying_group_active_90d": lambda v, r, pb: _plural(v, "contact", "contacts")
    + " at the company active in the last 90 days",
    "days_since_pricing_page_view": _days_ago("last pricing-page visit", "no pricing-page visit yet"),
    "days_since_demo_request": _days_ago("last demo request", "no demo request yet"),
    "days_since_trial_signup": _days_ago("signed up for a trial", "no trial yet"),
    "days_since_meeting": _days_ago("last meeting", "no meeting yet"),
    "days_since_first_activity": _days_ago("first engaged", "never engaged"),
    "days_since_burst": _days_ago("last burst of activity", "no burst of activity yet"),
    "burst_points_14d": lambda v, r, pb: (_count_of(v, "engagement point", "engagement points", "")
                                          + " in their busiest two weeks").where(v.fillna(0).round() > 0,
                                                                                 "no burst of engagement yet"),
    "activity_age_std": _activity_spread,
    "burst_events_14d": lambda v, r, pb: _plural(v, "action", "actions") + " in their busiest two weeks",
    "burst_high_intent_14d": lambda v, r, pb: _plural(v, "high-intent action", "high-intent actions")
    + " in their busiest two weeks",
    "burst_excess_events": lambda v, r, pb: (_count_of(v, "more action", "more actions", "")
                                             + " in their busiest weeks than usual").where(
        v.fillna(0).round() >= 1, "no burst above their usual activity"),
    "burst_high_intent_42d": lambda v, r, pb: _plural(v, "high-intent action", "high-intent actions")
    + " around their busiest weeks",
    "background_events_per_30d": _usual_activity,
    "high_intent_share_all": lambda v, r, pb: (_percent(v) + " of all actions high-intent").where(
        v.notna(), "no actions yet"),
    "activity_age_mean": lambda v, r, pb: ("activity centred around " + _days(v)).where(v.notna(), "no activity yet"),
    "buying_group_leads": lambda v, r, pb: _plural(v, "contact", "contacts") + " from the company in the CRM",
    "buying_group_engagement_decayed_others": lambda v, r, pb: (
        "colleagues' recent engagement of " + _count_of(v, "point", "points", "")).where(
        v.fillna(0).round() > 0, "no recent engagement from colleagues"),
    "buying_group_burst_points_14d_others": lambda v, r, pb: (
        "colleagues' busiest two weeks: " + _count_of(v, "engagement point", "engagement points", "")).where(
        v.fillna(0).round() > 0, "no burst of engagement from colleagues"),
    "buying_group_n_high_intent_90d_others": lambda v, r, pb: _plural(
        v, "high-intent action", "high-intent actions") + " by colleagues in the last 90 days",
    "buying_group_max_seniority": lambda v, r, pb: ("most senior active contact is " + v.round().map(SENIORITY_WORDS)
                                                    ).where(v.round().isin(list(SENIORITY_WORDS)),
                                                            "no active contact of known seniority"),
}


def has_phrase(feature: str) -> bool:
    """Whether `feature` has a sentence of its own (else `humanise`'s generic one)."""
    return feature in PHRASES or any(p.match(feature) for p in (_COUNT, _COUNT_ALL, _CONFIRMED))


def phraser_for(feature: str) -> Phraser:
    """The sentence builder for one feature column (the generic, humanised one for columns without their own)."""
    if feature in PHRASES:
        return PHRASES[feature]
    if m := _COUNT.match(feature):
        return _count_phrase(m["kind"], m["days"])
    if m := _COUNT_ALL.match(feature):
        return _count_all_phrase(m["kind"])
    if m := _CONFIRMED.match(feature):
        return _confirmed(m["gate"])
    return _generic(feature)


def _percent(v: pd.Series) -> pd.Series:
    return (100 * v.fillna(0)).round().astype(int).map("{}%".format)


def _compact(v: pd.Series) -> pd.Series:
    """Values as people write them: 117.2 not 117.16489697421622, 1,250 not 1250.0; missing says so."""
    if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
        x = v.astype(float)
        text = pd.Series([f"{n:,.0f}" if abs(n) >= 100 or float(n).is_integer() else f"{n:.2g}" if abs(n) < 1
                          else f"{n:.1f}".removesuffix(".0") for n in x.fillna(0.0)], index=v.index)
        return text.where(x.notna(), "missing")
    return v.astype(object).where(v.notna(), "missing").astype(str)


# A feature whose sentence states the same fact as another's: its contribution is added to that one, which speaks
# for both (SHAP values add up, so a group's attribution is the sum of its members').
SAME_FACT = {"log_employees": "icp_size", "industry": "icp_industry"}


def _same_fact_together(contributions: pd.DataFrame) -> pd.DataFrame:
    pairs = [(a, b) for a, b in SAME_FACT.items() if a in contributions and b in contributions]
    if not pairs:
        return contributions
    out = contributions.copy()
    for a, b in pairs:
        out[b] = out[b].to_numpy(dtype=float) + out[a].to_numpy(dtype=float)
        out[a] = 0.0
    return out


def describe(feature: str, values: pd.Series, rows: pd.DataFrame, phrasebook: Phrasebook | None = None) -> pd.Series:
    """One sentence per value of `feature` (rows gives the other columns some sentences need)."""
    pb = phrasebook or Phrasebook()
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    v = values.astype(float) if numeric else values
    return phraser_for(feature)(v, rows, pb).astype(object)


def top_reasons(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3,
                phrasebook: Phrasebook | None = None) -> pd.DataFrame:
    """`reasons_for` and `reasons_against`: up to k sentences each, strongest first, joined by "; ".

    A factor counts *for* a lead when its contribution is positive and *against* it when negative; zero
    contributions are not reasons. Features that state the same fact are one reason with their contributions
    added (`SAME_FACT`: `log_employees` and `icp_size` both say "company of about 50 employees, smaller than your
    typical customer"); any other sentence chosen twice is said once, the next factor taking the freed place.
    Columns without a sentence of their own are called high / low against `phrasebook.typical`, else against the
    rows given.
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
    contributions = _same_fact_together(contributions)
    names = np.asarray(contributions.columns)
    values = contributions.to_numpy(dtype=float)
    if k <= 0:
        return out
    pb = (phrasebook or Phrasebook()).with_typical(features[[c for c in names if not has_phrase(str(c))]])
    n_candidates = min(k + 2, values.shape[1])  # a spare factor or two for sentences that repeat another
    rows = features.reset_index(drop=True)
    for column, sign in (("reasons_for", 1.0), ("reasons_against", -1.0)):
        signed = sign * values
        top = np.argsort(-signed, axis=1, kind="stable")[:, :n_candidates]  # strongest first
        strength = np.take_along_axis(signed, top, axis=1)
        sentences = np.full(top.shape, "", dtype=object)
        # One vectorised pass per feature over every (row, slot) that chose it.
        for j in np.unique(top[strength > 0]):
            r, slot = np.nonzero((top == j) & (strength > 0))
            sentences[r, slot] = describe(names[j], rows[names[j]].iloc[r], rows.iloc[r], pb).to_numpy()
        out[column] = [SEPARATOR.join(list(dict.fromkeys(s for s in row if s))[:k]) for row in sentences]
    return out
