"""A realistic demo CRM export (accounts, leads, activities, opportunities) with a known hidden truth.

The generator is a small structural model of B2B lead conversion, so that the rest of leadscore can be
built and measured on data whose Bayes-optimal answer is known:

* every lead has hidden state: ICP fit of its account, persona (true seniority / department behind a free-text
  title), true BANT (budget, authority, need, timeline) and an *interest curve* (a bump of amplitude
  ``interest_mass`` centred ``peak`` days after creation, on top of a background rate);
* activities are a Poisson process driven ONLY by that hidden state (never by the realised outcome), so
  engagement is a noisy view of interest and the oracle below stays a true ceiling;
* conversion happens in two hidden steps: with probability ``p_opp`` the lead becomes an opportunity at
  ``peak + lag`` (lag ~ U(opp_lag_min, opp_lag_max), or for a share ``late_opp_share`` of draws a later
  U(late_opp_lag_min, late_opp_lag_max): leads that sales picks up again months later), which closes
  ``U(close_lag_min, close_lag_max)`` days later, won with probability ``p_win`` (independent of the timing);
* ``oracle_probability`` is the exact posterior of the label given the hidden state and what is observable at
  the scoring date about the lead's own opportunity.

Dirty rows are appended to every table (and listed in ``DemoCRM.dirty``) so validation has real work; no clean
row depends on a dirty one, so dropping them leaves a consistent clean CRM that ``truth`` covers exactly.

Everything is vectorised numpy and deterministic for a seed. All times are handled as float *days relative to
the export instant* (negative = in the past) and converted to timestamps only at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit, ndtr

from features import schema

STRING = pd.StringDtype()  # pandas' nullable string dtype (pyarrow storage, NA for missing)
TIME_UNIT = "us"
SECONDS_PER_DAY = 86_400.0

SENIORITIES: tuple[str, ...] = ("intern", "ic", "senior_ic", "manager", "director", "vp", "c_level")
DEPARTMENTS: tuple[str, ...] = (
    "sales",
    "marketing",
    "revenue_operations",
    "it",
    "engineering",
    "operations",
    "finance",
    "hr",
    "general_management",
)


@dataclass(frozen=True)
class DemoConfig:
    """How much demo data to generate and over which period: the ``demo:`` section of params.yaml."""

    n_leads: int = 66_000  # about 2.5 years of a mid-size B2B funnel: enough old leads to learn late conversions
    seed: int = 42
    export_date: str = "2026-10-01"  # the day the export was taken; nothing happens after it
    history_days: int = 900  # leads are created in [export - history_days, export - 7 days]
    activities_per_lead: float = 20.0  # mean
    dirty_share: float = 0.01  # share of extra dirty rows per table


@dataclass
class DemoCRM:
    """The generated export, its hidden truth and the manifest of injected dirty rows."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame
    opportunities: pd.DataFrame
    truth: pd.DataFrame  # hidden per-lead truth, never an input to features (lead_id + hidden variables)
    dirty: pd.DataFrame  # manifest of injected dirty rows: columns table, row (0-based position), kind


# ------------------------------------------------------------------------------------------------------------
# Hidden model parameters. Constants (not config) on purpose: the demo's difficulty is part of its definition.
# ------------------------------------------------------------------------------------------------------------

INDUSTRY_SHARE = np.array([0.20, 0.11, 0.09, 0.11, 0.08, 0.06, 0.05, 0.04, 0.05, 0.06, 0.04, 0.11])
# ICP fit by industry (the product sells best to software, finance and telecom, worst to the public sector).
INDUSTRY_FIT = np.array([0.8, 0.5, 0.0, 0.0, -0.1, -0.6, 0.4, -0.8, 0.2, -0.1, -0.2, 0.3])
# Median revenue per employee (USD) by industry.
INDUSTRY_REVENUE_PER_EMPLOYEE = np.array(
    [250e3, 400e3, 150e3, 200e3, 120e3, 80e3, 350e3, 100e3, 180e3, 150e3, 500e3, 150e3]
)
assert (
    len(INDUSTRY_SHARE) == len(INDUSTRY_FIT) == len(INDUSTRY_REVENUE_PER_EMPLOYEE) == len(schema.INDUSTRIES)
)

# country, share, language of local-language job titles, legal-form suffixes
COUNTRIES: tuple[tuple[str, float, str, tuple[str, ...]], ...] = (
    ("US", 0.45, "en", ("Inc.", "LLC", "Corp.")),
    ("GB", 0.09, "en", ("Ltd", "plc")),
    ("DE", 0.08, "de", ("GmbH", "AG")),
    ("FR", 0.05, "fr", ("SAS", "SA")),
    ("CA", 0.05, "en", ("Inc.", "Ltd.")),
    ("AU", 0.04, "en", ("Pty Ltd",)),
    ("IN", 0.04, "en", ("Pvt Ltd",)),
    ("NL", 0.03, "nl", ("B.V.",)),
    ("BR", 0.03, "pt", ("Ltda.", "S.A.")),
    ("ES", 0.03, "es", ("S.L.", "S.A.")),
    ("JP", 0.03, "ja", ("K.K.",)),
    ("SE", 0.02, "sv", ("AB",)),
    ("IT", 0.02, "en", ("S.r.l.", "S.p.A.")),
    ("CH", 0.015, "de", ("AG", "GmbH")),
    ("SG", 0.015, "en", ("Pte Ltd",)),
    ("IE", 0.01, "en", ("Ltd",)),
    ("MX", 0.01, "es", ("S.A. de C.V.",)),
    ("PL", 0.01, "en", ("Sp. z o.o.",)),
    ("DK", 0.01, "en", ("A/S",)),
)
ENGLISH_MARKETS = ("US", "GB", "CA", "AU", "IE")
LOCAL_TITLE_SHARE = 0.4  # share of leads in a non-English country whose title is in the local language

LEAD_SOURCE_SHARE = np.array([0.22, 0.15, 0.07, 0.08, 0.09, 0.05, 0.12, 0.08, 0.07, 0.07])
# Interest shift by source: referrals / partners / events bring warmer leads than syndicated content.
LEAD_SOURCE_INTEREST = np.array([0.0, 0.1, 0.5, 0.2, 0.15, 0.35, -0.3, -0.4, -0.3, 0.25])
# Probability that the lead came through a web form (form answers exist), by source.
LEAD_SOURCE_FORM = np.array([0.75, 0.8, 0.3, 0.35, 0.7, 0.3, 0.1, 0.85, 0.6, 0.55])
assert (
    len(LEAD_SOURCE_SHARE) == len(LEAD_SOURCE_INTEREST) == len(LEAD_SOURCE_FORM) == len(schema.LEAD_SOURCES)
)

# Seniority mix; small companies have many founders / owners filling in forms.
SENIORITY_SHARE = np.array([0.04, 0.26, 0.16, 0.22, 0.15, 0.10, 0.07])
SENIORITY_SHARE_SMALL = np.array([0.02, 0.16, 0.10, 0.16, 0.10, 0.08, 0.38])
# Probability that the person truly holds buying authority, by seniority.
AUTHORITY_BY_SENIORITY = np.array([0.0, 0.03, 0.08, 0.35, 0.75, 0.92, 0.97])
# Department mix for non-executives and for C-level titles.
DEPARTMENT_SHARE = np.array([0.29, 0.27, 0.07, 0.10, 0.10, 0.08, 0.05, 0.04, 0.0])
DEPARTMENT_SHARE_C_LEVEL = np.array([0.12, 0.12, 0.0, 0.06, 0.10, 0.05, 0.08, 0.02, 0.45])
# How relevant a lead-scoring product is to the department (drives the hidden need).
DEPARTMENT_RELEVANCE = np.array([1.0, 1.0, 1.2, 0.2, -0.3, 0.3, -0.3, -0.8, 0.6])

# True budget / timeline count as "qualified" from these thresholds (aligned with form answer bands).
BUDGET_OK_USD = 25_000.0
TIMELINE_OK_MONTHS = 7.0

USE_CASE_SHARE = np.array([0.25, 0.2, 0.2, 0.1, 0.13, 0.12])
USE_CASE_NEED = np.array([0.5, 0.5, 0.3, -0.3, 0.0, -0.6])

# Conversion model (logits). Interest dominates, the BANT drivers and fit add up; lead-level noise is the part
# no feature can see. p_win depends on the same drivers, more weakly.
OPP_INTERCEPT = -2.6
OPP_WEIGHTS = {"interest": 1.2, "fit": 0.7, "authority": 0.6, "budget": 0.5, "timeline": 0.5, "need": 0.7}
OPP_NOISE = 0.3
WIN_INTERCEPT = -1.05
WIN_WEIGHTS = {"interest": 0.45, "fit": 0.3, "authority": 0.4, "budget": 0.4, "timeline": 0.2, "need": 0.2}
WIN_NOISE = 0.3

# Timing (days). Opportunity opens opp_lag after the interest peak: usually soon, for a share of leads much
# later (nurtured / recycled leads that sales picks up again); it closes close_lag later. Ranges are stretched
# by a sales-cycle factor that grows with company size (enterprise deals take longer).
OPP_LAG_DAYS = (0.0, 60.0)
LATE_OPP_SHARE = 0.6
LATE_OPP_LAG_DAYS = (30.0, 365.0)
CLOSE_LAG_DAYS = (7.0, 60.0)
CYCLE_FACTOR_RANGE = (0.7, 1.8)

# Activity mixes (order of schema.ACTIVITY_TYPES): background (low interest) and bump (high interest), for
# three persona groups (junior / manager-director / executive).
_BG_MIX = np.array([0.50, 0.12, 0.25, 0.03, 0.07, 0.025, 0.002, 0.002, 0.001])
_BUMP_MIX = np.array([0.18, 0.12, 0.20, 0.16, 0.10, 0.06, 0.06, 0.05, 0.07])
_PERSONA_MULT = np.array(
    [  # multipliers on the mix per persona group
        [1.0, 1.0, 1.0, 0.9, 1.3, 1.2, 0.7, 1.6, 0.5],  # intern / ic / senior_ic: trials, content
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # manager / director
        [1.2, 0.9, 0.8, 1.1, 0.6, 0.6, 1.2, 0.3, 1.6],  # vp / c_level: meetings, few trials
    ]
)
# Interest peak: soon after creation for some leads (they arrive while evaluating), weeks to months later for
# the rest (they come back when a project starts); the bump is a Gaussian of this median width.
PEAK_QUICK_SHARE = 0.45
PEAK_QUICK_MEAN_DAYS = 4.0
PEAK_LATER_GAMMA = (2.0, 15.0)  # shape, scale (days)
PEAK_WIDTH_MEDIAN_DAYS = 8.0
BUMP_SHARE_OF_ACTIVITIES = 0.7  # share of all activities that come from interest bumps (the rest: background)
BACKGROUND_SIGMA = 0.5  # lognormal spread of the background rate across leads
INTEREST_ACTIVITY_ELASTICITY = 1.2  # d log(expected bump events) / d interest
INTEREST_LEVEL_EDGES = np.array([-0.5, 0.5])  # low / mid / high interest
HIGH_INTENT_MULT_BY_INTEREST = (0.6, 1.0, 1.6)  # high-intent weight in the bump mix at each level

# Dirty-row kinds per table.
DIRTY_LEAD_KINDS = (
    "duplicate_id",
    "missing_date",
    "absurd_date",
    "future_date",
    "unknown_budget",
    "null_id",
)
DIRTY_ACCOUNT_KINDS = ("negative_revenue",)
# An unknown industry, lead source or activity type is no defect: validation keeps it as the picklist's "Other".
# The dirty kinds are values validation must refuse: a budget band it cannot parse, a 1900 placeholder date.
DIRTY_ACTIVITY_KINDS = ("orphan", "absurd_date")
# A closed-before-created opportunity cannot point at a clean lead without changing that lead's label, so it
# points at a lead id that does not exist: it is both kinds of dirty and the kind name says so.
DIRTY_OPPORTUNITY_KINDS = ("orphan", "closed_before_created_orphan")
UNKNOWN_BUDGET = "$1M+"  # not a band the web form offers (schema.BUDGET_BANDS)
PLACEHOLDER_DATE = pd.Timestamp("1900-01-01")


# ------------------------------------------------------------------------------------------------------------
# Job-title catalogue: (title, seniority, department, language). Expanded once at import, sampled per lead.
# ------------------------------------------------------------------------------------------------------------

# fmt: off
# Department names with their relative frequency in titles.
_DEPT_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "sales": (("Sales", 1.0), ("Business Development", 0.3)),
    "marketing": (("Marketing", 1.0), ("Demand Generation", 0.3), ("Growth", 0.3)),
    "revenue_operations": (("Revenue Operations", 1.0), ("Sales Operations", 1.0), ("RevOps", 0.4)),
    "it": (("IT", 1.0), ("Information Technology", 0.3)),
    "engineering": (("Engineering", 1.0), ("Data", 0.4)),
    "operations": (("Operations", 1.0), ("Business Operations", 0.3)),
    "finance": (("Finance", 1.0),),
    "hr": (("HR", 1.0), ("Human Resources", 0.6), ("People", 0.4)),
}
# Title templates per seniority with their relative frequency.
_TEMPLATES: dict[str, tuple[tuple[str, float], ...]] = {
    "vp": (("VP {d}", 1.0), ("VP of {d}", 0.8), ("Vice President, {d}", 0.6), ("Vice President of {d}", 0.5),
           ("SVP {d}", 0.3), ("SVP of {d}", 0.2), ("EVP, {d}", 0.1), ("VP, {d}", 0.4)),
    "director": (("Director of {d}", 1.0), ("{d} Director", 0.8), ("Sr. Director, {d}", 0.3),
                 ("Senior Director of {d}", 0.3), ("Head of {d}", 0.8), ("Global Head of {d}", 0.1)),
    "manager": (("{d} Manager", 1.0), ("Manager, {d}", 0.4), ("Senior {d} Manager", 0.4), ("{d} Team Lead", 0.3)),
    "intern": (("{d} Intern", 1.0), ("Intern - {d}", 0.2), ("{d} Trainee", 0.2)),
}
_SENIOR_PREFIXES = (("Senior", 1.0), ("Sr.", 0.5), ("Lead", 0.3))
_IC_ROLES: dict[str, tuple[str, ...]] = {
    "sales": ("Account Executive", "Sales Development Representative", "SDR",
              "Business Development Representative", "Sales Representative", "Inside Sales Rep",
              "Account Manager"),
    "marketing": ("Marketing Specialist", "Marketing Coordinator", "Demand Generation Specialist",
                  "Content Marketer", "Growth Marketer", "Marketing Analyst"),
    "revenue_operations": ("Sales Operations Analyst", "RevOps Analyst", "CRM Administrator",
                           "Salesforce Admin"),
    "it": ("IT Specialist", "Systems Administrator", "IT Analyst", "Network Engineer"),
    "engineering": ("Software Engineer", "Data Engineer", "Developer", "Data Scientist",
                    "Full Stack Developer"),
    "operations": ("Operations Analyst", "Operations Coordinator", "Business Analyst"),
    "finance": ("Accountant", "Financial Analyst"),
    "hr": ("Recruiter", "HR Generalist", "Talent Acquisition Specialist"),
}
_C_LEVEL: dict[str, tuple[str, ...]] = {
    "general_management": ("CEO", "Chief Executive Officer", "Founder & CEO", "Co-Founder", "Founder",
                           "President", "Managing Director", "Owner", "Co-founder & CEO"),
    "sales": ("CRO", "Chief Revenue Officer", "Chief Sales Officer"),
    "marketing": ("CMO", "Chief Marketing Officer", "Chief Growth Officer"),
    "it": ("CIO", "Chief Information Officer"),
    "engineering": ("CTO", "Chief Technology Officer", "Co-Founder & CTO"),
    "operations": ("COO", "Chief Operating Officer"),
    "finance": ("CFO", "Chief Financial Officer"),
    "hr": ("CHRO", "Chief People Officer"),
}
# Typos: real, but much rarer than the spelling they mangle.
_TYPO_TITLES: tuple[tuple[str, str, str, str], ...] = (
    ("Maketing Manager", "manager", "marketing", "en"), ("Vise President Sales", "vp", "sales", "en"),
    ("Dirctor of Sales", "director", "sales", "en"), ("Sales Manger", "manager", "sales", "en"),
    ("Cheif Marketing Officer", "c_level", "marketing", "en"),
    ("Sofware Engineer", "ic", "engineering", "en"),
    ("Acount Executive", "ic", "sales", "en"), ("Markting Director", "director", "marketing", "en"),
    ("VP Saels", "vp", "sales", "en"), ("Head of Markteing", "director", "marketing", "en"),
    ("IT Manger", "manager", "it", "en"), ("Vise President, Marketing", "vp", "marketing", "en"),
)
_TYPO_WEIGHT = 0.05
# Titles in the local language of non-English markets.
_LOCAL_TITLES: tuple[tuple[str, str, str, str], ...] = (
    # German
    ("Leiter Vertrieb", "director", "sales", "de"), ("Vertriebsleiter", "director", "sales", "de"),
    ("Geschäftsführer", "c_level", "general_management", "de"),
    ("Geschäftsführerin", "c_level", "general_management", "de"),
    ("Leiterin Marketing", "director", "marketing", "de"), ("Marketingleiter", "director", "marketing", "de"),
    ("Vertriebsmitarbeiter", "ic", "sales", "de"), ("Key Account Manager", "ic", "sales", "de"),
    ("IT-Leiter", "director", "it", "de"), ("Softwareentwickler", "ic", "engineering", "de"),
    ("Werkstudent Marketing", "intern", "marketing", "de"), ("Teamleiter Vertrieb", "manager", "sales", "de"),
    ("Marketing Managerin", "manager", "marketing", "de"), ("Leiter Finanzen", "director", "finance", "de"),
    ("Personalreferentin", "ic", "hr", "de"), ("Bereichsleiter IT", "director", "it", "de"),
    ("Vertriebsinnendienst", "ic", "sales", "de"), ("Praktikant Vertrieb", "intern", "sales", "de"),
    # French
    ("Directeur Commercial", "director", "sales", "fr"),
    ("Directrice Marketing", "director", "marketing", "fr"),
    ("Responsable Marketing", "manager", "marketing", "fr"),
    ("Chef de projet", "manager", "operations", "fr"),
    ("Ingénieur logiciel", "ic", "engineering", "fr"), ("Président Directeur Général", "c_level",
                                                          "general_management", "fr"),
    ("PDG", "c_level", "general_management", "fr"), ("Stagiaire Marketing", "intern", "marketing", "fr"),
    ("Commercial", "ic", "sales", "fr"), ("Directeur des Systèmes d'Information", "director", "it", "fr"),
    ("DSI", "director", "it", "fr"), ("Responsable des ventes", "manager", "sales", "fr"),
    ("Chargée de marketing", "ic", "marketing", "fr"), ("Directeur Financier", "director", "finance", "fr"),
    # Spanish
    ("Gerente de Ventas", "manager", "sales", "es"), ("Director de Marketing", "director", "marketing", "es"),
    ("Director General", "c_level", "general_management", "es"), ("Jefe de Ventas", "manager", "sales", "es"),
    ("Ejecutivo de Cuentas", "ic", "sales", "es"), ("Becario", "intern", "marketing", "es"),
    ("Responsable de Marketing", "manager", "marketing", "es"),
    ("Director Comercial", "director", "sales", "es"),
    ("Ingeniero de Software", "ic", "engineering", "es"), ("Gerente de TI", "manager", "it", "es"),
    # Portuguese
    ("Gerente Comercial", "manager", "sales", "pt"), ("Diretor de Vendas", "director", "sales", "pt"),
    ("Analista de Marketing", "ic", "marketing", "pt"),
    ("Diretora de Marketing", "director", "marketing", "pt"),
    ("Sócio Fundador", "c_level", "general_management", "pt"), ("Estagiário", "intern", "sales", "pt"),
    # Dutch
    ("Directeur", "c_level", "general_management", "nl"), ("Verkoopmanager", "manager", "sales", "nl"),
    ("Marketingmanager", "manager", "marketing", "nl"), ("Accountmanager", "ic", "sales", "nl"),
    ("Hoofd Verkoop", "director", "sales", "nl"),
    # Swedish
    ("VD", "c_level", "general_management", "sv"), ("Säljchef", "manager", "sales", "sv"),
    ("Marknadschef", "manager", "marketing", "sv"), ("Säljare", "ic", "sales", "sv"),
    # Japanese
    ("営業部長", "director", "sales", "ja"), ("マーケティング担当", "ic", "marketing", "ja"),
    ("代表取締役社長", "c_level", "general_management", "ja"), ("営業担当", "ic", "sales", "ja"),
    ("情報システム部 部長", "director", "it", "ja"), ("マーケティング部 課長", "manager", "marketing", "ja"),
)


# fmt: on


def _english_titles() -> list[tuple[str, str, str, str, float]]:
    """Programmatic English titles (with relative frequency) so every (seniority, department) has several."""
    out: list[tuple[str, str, str, str, float]] = []
    for dept, names in _DEPT_NAMES.items():
        for name, name_weight in names:
            for seniority, templates in _TEMPLATES.items():
                out.extend((t.format(d=name), seniority, dept, "en", w * name_weight) for t, w in templates)
        for role in _IC_ROLES[dept]:
            out.append((role, "ic", dept, "en", 1.0))
            out.extend((f"{prefix} {role}", "senior_ic", dept, "en", w) for prefix, w in _SENIOR_PREFIXES)
    extras = [
        ("Intern", "intern", "operations"),
        ("Working Student", "intern", "engineering"),
        ("IT Manager", "manager", "it"),
        ("Office Manager", "manager", "operations"),
        ("Director of Operations", "director", "operations"),
        ("Principal Software Engineer", "senior_ic", "engineering"),
        ("Staff Engineer", "senior_ic", "engineering"),
        ("Enterprise Account Executive", "senior_ic", "sales"),
        ("Marketing Operations Manager", "manager", "revenue_operations"),
        ("General Manager", "director", "general_management"),
        ("Managing Partner", "c_level", "general_management"),
        ("Controller", "manager", "finance"),
    ]
    out += [(title, seniority, dept, "en", 0.5) for title, seniority, dept in extras]
    for dept, titles in _C_LEVEL.items():  # the first spelling is the common one
        out.extend(
            (t, "c_level", dept, "en", 1.0 if i == 0 else 0.5 if i == 1 else 0.3)
            for i, t in enumerate(titles)
        )
    return out


def _title_variants(title: str) -> tuple[str, ...]:
    """Case and punctuation noise as people type it (the first entry is the clean title)."""
    return (
        title,
        title.lower(),
        title.upper(),
        f"{title} ",
        f" {title}",
        title.replace(" ", "  ", 1),
        title.replace(",", "").replace(".", ""),
        f"{title}.",
    )


_TITLE_VARIANT_SHARE = np.array([0.84, 0.05, 0.03, 0.02, 0.01, 0.015, 0.02, 0.015])
_TITLE_MISSING = 0.03

_CATALOGUE = (
    _english_titles() + [(*t, _TYPO_WEIGHT) for t in _TYPO_TITLES] + [(*t, 1.0) for t in _LOCAL_TITLES]
)
_LANGUAGES = ("en", "de", "fr", "es", "pt", "nl", "sv", "ja")
_CAT_SEN = np.array([SENIORITIES.index(t[1]) for t in _CATALOGUE])
_CAT_DEP = np.array([DEPARTMENTS.index(t[2]) for t in _CATALOGUE])
_CAT_LANG = np.array([_LANGUAGES.index(t[3]) for t in _CATALOGUE])


def _catalogue_index() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index for weighted sampling within a (seniority, department, language) group.

    Returns (catalogue order sorted by group, the sorted unique group keys, and a global cumulative weight
    that runs from g to g + 1 inside the g-th group, its last entry exactly g + 1).
    """
    key = (_CAT_SEN * len(DEPARTMENTS) + _CAT_DEP) * len(_LANGUAGES) + _CAT_LANG
    order = np.argsort(key, kind="stable")
    groups, group_of = np.unique(key[order], return_inverse=True)
    weight = np.array([t[4] for t in _CATALOGUE])[order]
    cum = np.empty_like(weight)
    for g in range(len(groups)):
        rows = np.flatnonzero(group_of == g)
        cum[rows] = np.cumsum(weight[rows]) / weight[rows].sum()
        cum[rows[-1]] = 1.0
    return order, groups, cum + group_of


_CAT_ORDER, _CAT_GROUPS, _CAT_CUM = _catalogue_index()
_EN_KEYS = {(s, d) for s, d, lang in zip(_CAT_SEN, _CAT_DEP, _CAT_LANG, strict=True) if lang == 0}
assert all((s, d) in _EN_KEYS for s in range(6) for d in range(8)), "catalogue misses an English title"
assert all((6, d) in _EN_KEYS for d in range(len(DEPARTMENTS)) if DEPARTMENT_SHARE_C_LEVEL[d] > 0)

# fmt: off
_NAME_PREFIXES = (
    "Acme", "Blue", "Nordic", "Apex", "Vertex", "Summit", "Pioneer", "Bright", "Silver", "Iron", "Quantum",
    "Green", "Atlas", "Harbor", "Northwind", "Crescent", "Evergreen", "Falcon", "Granite", "Horizon",
    "Keystone", "Lumen", "Meridian", "Nova", "Orion", "Pinnacle", "Redwood", "Sterling", "Titan", "Union",
    "Vista", "Zenith", "Alpine", "Beacon", "Cedar", "Delta", "Echo", "Fusion", "Global", "Helix", "Ionic",
    "Juniper", "Kinetic", "Lakeside", "Metro", "Nexus", "Omni", "Prime", "Quest", "Riverside", "Sapphire",
    "Tandem", "Unity", "Vector", "Westfield", "Aurora", "Bluebird", "Cobalt", "Dynamo", "Elm", "Firefly",
    "Golden Gate", "Highland", "Insight", "Jade", "Kestrel", "Lighthouse", "Maple", "Northstar", "Oakridge",
    "Polaris", "Radiant", "Solstice", "Trident",
)
_INDUSTRY_WORDS: tuple[tuple[str, ...], ...] = (
    ("Software", "Labs", "Systems", "Technologies", "Digital", "Cloud", "Analytics", "AI"),
    ("Capital", "Financial", "Bank", "Partners", "Insurance", "Wealth", "Payments"),
    ("Health", "Medical", "Care", "Biotech", "Pharma", "Clinics"),
    ("Manufacturing", "Industries", "Components", "Machinery", "Plastics", "Metals"),
    ("Retail", "Stores", "Brands", "Market", "Outfitters", "Goods"),
    ("Academy", "Learning", "University", "Education", "Schools"),
    ("Telecom", "Networks", "Communications", "Wireless", "Fiber"),
    ("Agency", "Authority", "Council", "Public Services", "County"),
    ("Media", "Studios", "Publishing", "Broadcasting", "Entertainment"),
    ("Logistics", "Freight", "Shipping", "Transport", "Supply Chain"),
    ("Energy", "Power", "Solar", "Utilities", "Renewables", "Oil & Gas"),
    ("Consulting", "Advisors", "Group", "Associates", "Partners", "Solutions"),
)


# fmt: on


# ------------------------------------------------------------------------------------------------------------
# Small vectorised helpers
# ------------------------------------------------------------------------------------------------------------


def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """Categorical draw (int codes) from probabilities `p` (normalised here)."""
    p = np.asarray(p, dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _grouped_choice(rng: np.random.Generator, probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One categorical draw per row, row i using the probability vector ``probs[group[i]]``.

    Inverse-CDF with a per-group cumulative table: O(n * k) work, no (n, k) temporary.
    """
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(group))
    out = np.zeros(len(group), dtype=np.int8)
    for k in range(probs.shape[1] - 1):
        out += u >= cum[group, k]
    return out


def _strings(
    values: Sequence[str], codes: np.ndarray, missing: np.ndarray | None = None
) -> pd.arrays.ArrowStringArray:
    """A pandas string array of ``values[codes]`` (NA where `missing`), without a Python object per row."""
    dictionary = pa.array(list(values), type=pa.string())
    return pd.array(dictionary.take(pa.array(np.asarray(codes, dtype=np.int64), mask=missing)), dtype=STRING)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pd.arrays.ArrowStringArray:
    """Identifiers like ``L0000001``: prefix + zero-padded number (widened if a number has more digits)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    width = max(width, len(str(int(numbers.max())))) if len(numbers) else width
    padded = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pd.array(pc.binary_join_element_wise(prefix, padded, ""), dtype=STRING)


def _timestamps(export_at: pd.Timestamp, days: np.ndarray) -> np.ndarray:
    """datetime64[us] for float days relative to the export instant (NaN -> NaT)."""
    micro = np.round(np.asarray(days, dtype=float) * SECONDS_PER_DAY * 1e6)
    out = np.full(micro.shape, np.datetime64("NaT"), dtype=f"datetime64[{TIME_UNIT}]")
    ok = np.isfinite(micro)
    out[ok] = np.datetime64(export_at.as_unit(TIME_UNIT)) + micro[ok].astype(np.int64).astype(
        f"timedelta64[{TIME_UNIT}]"
    )
    return out


def _days(export_at: pd.Timestamp, stamps: pd.Series | np.ndarray) -> np.ndarray:
    """Float days relative to `export_at` (NaT -> NaN); inverse of `_timestamps`."""
    delta = pd.to_datetime(pd.Series(stamps)).to_numpy(dtype="datetime64[us]") - np.datetime64(
        export_at.as_unit("us")
    )
    out = delta.astype(np.float64) / (SECONDS_PER_DAY * 1e6)
    out[np.isnat(delta)] = np.nan
    return out


def _business_time(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Move event times to a plausible time of day on the same calendar day (people act in office hours)."""
    tod = np.where(
        rng.random(len(days)) < 0.85,
        np.clip(rng.normal(0.56, 0.11, len(days)), 0.25, 0.95),
        rng.random(len(days)),
    )
    return np.floor(days) + tod


def _mask(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    return rng.random(n) < share


# ------------------------------------------------------------------------------------------------------------
# Generation steps
# ------------------------------------------------------------------------------------------------------------


def _accounts(rng: np.random.Generator, n_acc: int) -> dict[str, np.ndarray]:
    """True firmographics and the hidden account-level fit / interest of every account."""
    industry = _choice(rng, INDUSTRY_SHARE, n_acc)
    # Heavy-tailed size: lognormal with median 100, clipped to [1, 200k].
    employees = np.clip(np.round(np.exp(np.log(100) + 1.9 * rng.standard_normal(n_acc))), 1, 200_000).astype(
        np.int64
    )
    revenue_per_employee = INDUSTRY_REVENUE_PER_EMPLOYEE[industry] * np.exp(0.5 * rng.standard_normal(n_acc))
    revenue = np.round(employees * revenue_per_employee, -3)
    country_share = np.array([c[1] for c in COUNTRIES])
    country = _choice(rng, country_share, n_acc)
    # Skewed to recent years; large companies tend to be older.
    age = rng.exponential(6 + 7 * np.log10(employees + 1), n_acc)
    age = np.where(age > 124, rng.uniform(0, 124, n_acc), age)  # redraw instead of piling up at 1900
    founded = (2024 - np.floor(age)).astype(np.int64)
    english = np.isin(country, [i for i, c in enumerate(COUNTRIES) if c[0] in ENGLISH_MARKETS])
    log_size = np.log10(employees)
    # ICP fit: industry, a sweet spot around 500 employees, English-speaking markets, and an unobserved part.
    fit = (
        INDUSTRY_FIT[industry]
        + 0.35
        - 0.35 * ((log_size - 2.7) / 0.8) ** 2
        + 0.15 * english
        + 0.35 * rng.standard_normal(n_acc)
    )
    return {
        "industry": industry,
        "employees": employees,
        "revenue": revenue,
        "country": country,
        "founded": founded,
        "fit": fit,
        "interest": rng.standard_normal(n_acc),
    }


FIRST_NAMES = ("Alex", "Maria", "James", "Aisha", "Chen", "Sofia", "Liam", "Priya", "Noah", "Emma", "Mateo", "Yuki",
               "Olivia", "Omar", "Hannah", "Lucas", "Fatima", "Ethan", "Ingrid", "Rafael", "Grace", "Kenji", "Zoe",
               "Daniel", "Amara", "Felix", "Nina", "Samuel", "Leila", "Henrik")
LAST_NAMES = ("Smith", "Garcia", "Müller", "Okafor", "Wang", "Rossi", "Johnson", "Patel", "Kim", "Dubois", "Silva",
              "Tanaka", "Brown", "Haddad", "Novak", "Andersen", "Khan", "Murphy", "Schmidt", "Costa", "Lee", "Nowak",
              "Fischer", "Martin", "Jensen", "Lopez", "Ito", "Walsh", "Meyer", "Clarke")


def _contacts(rng: np.random.Generator, account_id: pd.Series, accounts: pd.DataFrame) -> pd.DataFrame:
    """First and last name, email at the company's domain, phone: what a rep needs to reach the lead."""
    n = len(account_id)
    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
    last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
    company = accounts.set_index("account_id")["company_name"].reindex(account_id.to_numpy())
    domain = company.astype("string").str.lower().str.replace(r"[^a-z0-9]+", "", regex=True).fillna("example")
    local = pd.Series(first).str.lower() + "." + pd.Series(last).str.lower().str.replace("ü", "ue")
    email = local.to_numpy(dtype=object) + "@" + domain.to_numpy(dtype=object) + ".example.com"
    phone = np.char.add("+1 555 ", np.char.zfill(rng.integers(0, 10_000_000, n).astype(str), 7))
    missing = rng.random(n)
    return pd.DataFrame({
        "first_name": pd.array(first, dtype=STRING),
        "last_name": pd.array(last, dtype=STRING),
        "email": pd.array(np.where(missing < 0.04, None, email), dtype=STRING),
        "phone": pd.array(np.where(missing > 0.85, None, phone.astype(object)), dtype=STRING),
    }, index=account_id.index)


def _company_names(
    rng: np.random.Generator, industry: np.ndarray, country: np.ndarray
) -> pd.arrays.ArrowStringArray:
    """Plausible names: prefix + industry word + (often) the country's legal form."""
    n = len(industry)
    prefix = pa.array(_NAME_PREFIXES).take(pa.array(rng.integers(0, len(_NAME_PREFIXES), n)))
    words = [w for ws in _INDUSTRY_WORDS for w in ws]
    offsets = np.cumsum([0] + [len(ws) for ws in _INDUSTRY_WORDS])[:-1]
    lengths = np.array([len(ws) for ws in _INDUSTRY_WORDS])
    word = pa.array(words).take(
        pa.array(offsets[industry] + (rng.random(n) * lengths[industry]).astype(np.int64))
    )
    legal_forms = [f for c in COUNTRIES for f in c[3]] + [""]
    loffsets = np.cumsum([0] + [len(c[3]) for c in COUNTRIES])[:-1]
    llengths = np.array([len(c[3]) for c in COUNTRIES])
    legal_idx = loffsets[country] + (rng.random(n) * llengths[country]).astype(np.int64)
    legal_idx[rng.random(n) < 0.35] = len(legal_forms) - 1  # legal form often omitted
    legal = pa.array(legal_forms).take(pa.array(legal_idx))
    name = pc.utf8_trim_whitespace(pc.binary_join_element_wise(prefix, word, legal, " "))
    return pd.array(name, dtype=STRING)


def _titles(
    rng: np.random.Generator, seniority: np.ndarray, department: np.ndarray, language: np.ndarray
) -> pd.arrays.ArrowStringArray:
    """A free-text title for each lead's true (seniority, department), in its language when one exists."""
    n = len(seniority)
    key = (seniority * len(DEPARTMENTS) + department) * len(_LANGUAGES) + language
    # Fall back to English (language code 0) where the language has no title for this persona.
    group = np.searchsorted(_CAT_GROUPS, key)
    found = (group < len(_CAT_GROUPS)) & (_CAT_GROUPS[np.minimum(group, len(_CAT_GROUPS) - 1)] == key)
    group = np.where(found, group, np.searchsorted(_CAT_GROUPS, key - language))
    entry = _CAT_ORDER[np.searchsorted(_CAT_CUM, group + rng.random(n), side="right")]
    variant = _choice(rng, _TITLE_VARIANT_SHARE, n)
    n_var = len(_TITLE_VARIANT_SHARE)
    flat = [v for t in _CATALOGUE for v in _title_variants(t[0])]
    return _strings(flat, entry * n_var + variant, missing=_mask(rng, n, _TITLE_MISSING))


def _band(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Index of the band each value falls in, for ascending band lower edges (first edge ignored)."""
    return np.searchsorted(np.asarray(edges[1:], dtype=float), values, side="right")


def _timing_columns(employees: np.ndarray) -> dict[str, np.ndarray]:
    """Per-lead timing distribution parameters (days), as stored in truth and read by the oracle."""
    factor = np.clip((employees / 100.0) ** 0.1, *CYCLE_FACTOR_RANGE)
    ones = np.ones_like(factor)
    return {
        "opp_lag_min_days": OPP_LAG_DAYS[0] * ones,
        "opp_lag_max_days": OPP_LAG_DAYS[1] * factor,
        "late_opp_share": LATE_OPP_SHARE * ones,
        "late_opp_lag_min_days": LATE_OPP_LAG_DAYS[0] * ones,
        "late_opp_lag_max_days": LATE_OPP_LAG_DAYS[1] * factor,
        "close_lag_min_days": CLOSE_LAG_DAYS[0] * factor,
        "close_lag_max_days": CLOSE_LAG_DAYS[1] * factor,
    }


def simulate_outcomes(truth: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the two-step conversion outcome for every lead in `truth` (one independent realisation).

    Returns lead_id, opp_at (NaT when the lead never becomes an opportunity; may lie after the export),
    close_at (NaT likewise) and won. The generator uses this same function for the export, so tests can
    resample outcomes from the hidden state to check the oracle.
    """
    n = len(truth)
    peak = truth["peak_at"].to_numpy(dtype="datetime64[us]")
    becomes = rng.random(n) < truth["p_opp"].to_numpy(dtype=float)
    opp_lag = rng.uniform(
        truth["opp_lag_min_days"].to_numpy(float), truth["opp_lag_max_days"].to_numpy(float)
    )
    late_lag = rng.uniform(
        truth["late_opp_lag_min_days"].to_numpy(float), truth["late_opp_lag_max_days"].to_numpy(float)
    )
    opp_lag = np.where(rng.random(n) < truth["late_opp_share"].to_numpy(float), late_lag, opp_lag)
    close_lag = rng.uniform(
        truth["close_lag_min_days"].to_numpy(float), truth["close_lag_max_days"].to_numpy(float)
    )
    won = rng.random(n) < truth["p_win"].to_numpy(dtype=float)
    # Whole seconds, as a CRM stores them.
    opp_at = peak + np.round(opp_lag * SECONDS_PER_DAY).astype("timedelta64[s]")
    close_at = opp_at + np.round(close_lag * SECONDS_PER_DAY).astype("timedelta64[s]")
    opp_at[~becomes] = np.datetime64("NaT")
    close_at[~becomes] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "lead_id": truth["lead_id"].to_numpy(),
            "opp_at": opp_at,
            "close_at": close_at,
            "won": pd.array(becomes & won, dtype="boolean"),
        }
    )


def _activities(
    rng: np.random.Generator,
    created: np.ndarray,
    peak: np.ndarray,
    width: np.ndarray,
    mass: np.ndarray,
    background: np.ndarray,
    persona: np.ndarray,
    interest: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson engagement events from each lead's hidden interest curve.

    Intensity(t) = background + mass * Normal(t; peak, width) on [created, export). Returns (lead index,
    time in days relative to export, type code), sorted by time.
    """
    n = len(created)
    horizon = -created  # days from creation to the export
    n_bg = rng.poisson(background * horizon)
    # Bump events: draw the full bump, keep what falls inside [created, export) -- thinning a Poisson process
    # by a window is again a Poisson process with the truncated intensity.
    n_bump_all = rng.poisson(mass)
    lead_bg = np.repeat(np.arange(n, dtype=np.int64), n_bg)
    t_bg = created[lead_bg] + rng.random(len(lead_bg)) * horizon[lead_bg]
    lead_bump = np.repeat(np.arange(n, dtype=np.int64), n_bump_all)
    t_bump = peak[lead_bump] + width[lead_bump] * rng.standard_normal(len(lead_bump))
    keep = (t_bump >= created[lead_bump]) & (t_bump < 0)
    lead_bump, t_bump = lead_bump[keep], t_bump[keep]

    lead = np.concatenate([lead_bg, lead_bump])
    raw = np.concatenate([t_bg, t_bump])
    is_bump = np.concatenate([np.zeros(len(lead_bg), bool), np.ones(len(lead_bump), bool)])
    del lead_bg, t_bg, lead_bump, t_bump
    # Mix table rows: (background, bump at low / mid / high interest) x 3 personas. The more interested a
    # lead, the more its bump leans to high-intent events (pricing, demo, trial, meeting).
    high = np.isin(schema.ACTIVITY_TYPES, schema.HIGH_INTENT_ACTIVITIES)
    mixes = np.vstack(
        [_BG_MIX * _PERSONA_MULT]
        + [_BUMP_MIX * np.where(high, mult, 1.0) * _PERSONA_MULT for mult in HIGH_INTENT_MULT_BY_INTEREST]
    )
    level = 1 + np.searchsorted(INTEREST_LEVEL_EDGES, interest)  # 1..3 for bump events
    kind = _grouped_choice(rng, mixes, persona[lead] + 3 * np.where(is_bump, level[lead], 0))
    del is_bump
    when = _business_time(rng, raw)
    # Office-hours shift must not move an event before the lead existed; keep the raw time then.
    when = np.where(when < created[lead], raw, when)
    del raw
    when = np.minimum(when, -1.0 / SECONDS_PER_DAY)
    # Whole seconds, never before the (whole-second) creation time nor at/after the export instant.
    sec = np.maximum(np.floor(when * SECONDS_PER_DAY), np.round(created * SECONDS_PER_DAY)[lead])
    order = np.argsort(sec, kind="stable")
    return lead[order], sec[order] / SECONDS_PER_DAY, kind[order]


def _n_dirty(share: float, n_rows: int, n_kinds: int, n_leads: int) -> int:
    """Dirty rows per kind: about `share` of the table in all, at least one of each kind on real-size data."""
    if share <= 0:
        return 0
    per_kind = int(round(share * n_rows / n_kinds))
    return max(per_kind, 1) if n_leads >= 1000 else per_kind


def _append_dirty(
    clean: pd.DataFrame, parts: list[tuple[str, pd.DataFrame]], table: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Append dirty rows (shuffled among themselves) after the clean rows; return table and manifest."""
    parts = [(kind, frame) for kind, frame in parts if len(frame)]
    if not parts:
        return clean, pd.DataFrame(
            {
                "table": pd.array([], dtype=STRING),
                "row": np.array([], np.int64),
                "kind": pd.array([], dtype=STRING),
            }
        )
    extra = pd.concat([frame for _, frame in parts], ignore_index=True)
    kinds = np.concatenate([np.full(len(frame), i) for i, (_, frame) in enumerate(parts)])
    order = rng.permutation(len(extra))
    extra = extra.iloc[order].reset_index(drop=True)
    out = pd.concat([clean, extra], ignore_index=True)
    for col in clean.columns:  # concat can loosen dtypes (e.g. an all-NA column); restore the clean ones
        if out[col].dtype != clean[col].dtype:
            out[col] = out[col].astype(clean[col].dtype)
    manifest = pd.DataFrame(
        {
            "table": pd.array([table] * len(extra), dtype=STRING),
            "row": np.arange(len(clean), len(out), dtype=np.int64),
            "kind": _strings([k for k, _ in parts], kinds[order]),
        }
    )
    return out, manifest


def generate_demo_crm(config: DemoConfig) -> DemoCRM:
    """Generate the demo CRM export described in the module docstring (deterministic for `config.seed`)."""
    if config.n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    if config.history_days <= 8:
        raise ValueError("history_days must exceed 8 (leads are created up to 7 days before the export)")
    rng = np.random.default_rng(config.seed)
    export_at = pd.Timestamp(config.export_date).normalize().as_unit(TIME_UNIT)
    n = config.n_leads

    # --- accounts and the leads-per-account split (heavy-tailed, bigger companies have more leads) ---------
    n_acc = max(1, min(n, int(round(n / 4))))
    acc = _accounts(rng, n_acc)
    weight = np.sqrt(acc["employees"]) * np.exp(rng.standard_normal(n_acc))
    per_account = 1 + rng.multinomial(n - n_acc, weight / weight.sum())
    account = rng.permutation(np.repeat(np.arange(n_acc), per_account))

    # --- lead creation times: volume grows linearly by 60% over the window; ids follow creation order -------
    growth = 0.6
    v = rng.random(n)
    u = (np.sqrt(1 + 2 * growth * v * (1 + growth / 2)) - 1) / growth  # inverse CDF of density ~ 1 + growth*u
    first, last = -float(config.history_days), -7.0
    created = _business_time(rng, first + (last - first) * u)
    created = np.clip(created, first, last - 1.0 / SECONDS_PER_DAY)
    created = np.round(np.sort(created) * SECONDS_PER_DAY) / SECONDS_PER_DAY
    employees = acc["employees"][account]
    country = acc["country"][account]

    # --- persona behind the title ---------------------------------------------------------------------------
    small = employees < 20
    seniority = _grouped_choice(
        rng, np.vstack([SENIORITY_SHARE, SENIORITY_SHARE_SMALL]), small.astype(np.int64)
    )
    c_level = seniority == SENIORITIES.index("c_level")
    department = _grouped_choice(
        rng, np.vstack([DEPARTMENT_SHARE, DEPARTMENT_SHARE_C_LEVEL]), c_level.astype(np.int64)
    )
    country_lang = np.array([_LANGUAGES.index(c[2]) for c in COUNTRIES])[country]
    language = np.where((country_lang > 0) & (rng.random(n) < LOCAL_TITLE_SHARE), country_lang, 0)
    job_title = _titles(rng, seniority.astype(np.int64), department.astype(np.int64), language)
    authority = rng.random(n) < AUTHORITY_BY_SENIORITY[seniority]
    persona = np.select([seniority <= 2, seniority <= 4], [0, 1], 2)
    source = _choice(rng, LEAD_SOURCE_SHARE, n)

    # --- hidden interest and BANT ---------------------------------------------------------------------------
    fit = acc["fit"][account]
    interest = 0.55 * acc["interest"][account] + 0.835 * rng.standard_normal(n) + LEAD_SOURCE_INTEREST[source]
    budget_usd = 25_000 * (employees / 100.0) ** 0.35 * np.exp(0.9 * rng.standard_normal(n))
    budget_ok = budget_usd >= BUDGET_OK_USD
    timeline_months = 6.0 * np.exp(-0.5 * interest + 0.9 * rng.standard_normal(n))
    timeline_ok = timeline_months <= TIMELINE_OK_MONTHS
    use_case = _choice(rng, USE_CASE_SHARE, n)
    need = rng.random(n) < expit(
        -0.6 + 1.0 * DEPARTMENT_RELEVANCE[department] + 0.5 * interest + USE_CASE_NEED[use_case] + 0.3 * fit
    )

    # --- interest curve -------------------------------------------------------------------------------------
    # Peak soon after creation for about half the leads (they arrive while evaluating), weeks to months later
    # for the rest (they come back when a project starts).
    quick = rng.random(n) < PEAK_QUICK_SHARE
    peak_after = np.where(quick, rng.exponential(PEAK_QUICK_MEAN_DAYS, n), rng.gamma(*PEAK_LATER_GAMMA, n))
    width = np.clip(np.exp(np.log(PEAK_WIDTH_MEDIAN_DAYS) + 0.5 * rng.standard_normal(n)), 1.5, 60.0)
    # Expected events of the whole bump (before scaling): the count is the observable face of interest.
    raw_mass = np.exp(INTEREST_ACTIVITY_ELASTICITY * interest)
    # "Chattiness": newsletter opens and visits unrelated to interest, the noise around the interest signal.
    raw_background = np.exp(BACKGROUND_SIGMA * rng.standard_normal(n)) / 90.0
    peak = created + peak_after
    horizon = -created
    inside = ndtr((-peak) / width) - ndtr((created - peak) / width)  # bump mass inside [created, export)
    bump_scale = BUMP_SHARE_OF_ACTIVITIES * config.activities_per_lead * n / np.sum(raw_mass * inside)
    bg_scale = (
        (1 - BUMP_SHARE_OF_ACTIVITIES) * config.activities_per_lead * n / np.sum(raw_background * horizon)
    )
    mass, background = raw_mass * bump_scale, raw_background * bg_scale

    # --- conversion probabilities ---------------------------------------------------------------------------
    drivers = {
        "interest": interest,
        "fit": fit,
        "authority": authority,
        "budget": budget_ok,
        "timeline": timeline_ok,
        "need": need,
    }
    p_opp = expit(
        OPP_INTERCEPT
        + sum(w * drivers[k] for k, w in OPP_WEIGHTS.items())
        + OPP_NOISE * rng.standard_normal(n)
    )
    p_win = expit(
        WIN_INTERCEPT
        + sum(w * drivers[k] for k, w in WIN_WEIGHTS.items())
        + WIN_NOISE * rng.standard_normal(n)
    )

    lead_numbers = np.arange(1, n + 1)
    lead_id = _ids("L", lead_numbers, 7)
    truth = pd.DataFrame(
        {
            "lead_id": lead_id,
            "account_id": _ids("A", account + 1, 6),
            "created_at": _timestamps(export_at, created),
            "seniority": _strings(SENIORITIES, seniority),
            "department": _strings(DEPARTMENTS, department),
            "authority": pd.array(authority, dtype="boolean"),
            "budget_usd": np.round(budget_usd, -2),
            "budget_ok": pd.array(budget_ok, dtype="boolean"),
            "timeline_months": timeline_months,
            "timeline_ok": pd.array(timeline_ok, dtype="boolean"),
            "use_case": _strings(schema.USE_CASES, use_case),
            "need": pd.array(need, dtype="boolean"),
            "fit": fit,
            "interest": interest,
            "interest_mass": mass,
            "peak_at": _timestamps(export_at, np.round(peak * SECONDS_PER_DAY) / SECONDS_PER_DAY),
            "peak_width_days": width,
            "background_per_day": background,
            "p_opp": p_opp,
            "p_win": p_win,
            "p_convert": p_opp * p_win,
            **_timing_columns(employees.astype(float)),
        }
    )
    outcome = simulate_outcomes(truth, rng)
    truth["opp_at"] = outcome["opp_at"].to_numpy()
    truth["close_at"] = outcome["close_at"].to_numpy()
    truth["won"] = outcome["won"].array
    truth["export_at"] = np.full(n, np.datetime64(export_at), dtype=f"datetime64[{TIME_UNIT}]")

    # --- qualification call: more likely for interested, fitting leads; held around the interest peak -------
    p_call = expit(-1.9 + 1.0 * interest + 0.4 * fit + 0.3 * authority)
    call_day = created + np.maximum(peak_after + 1.0 + 0.5 * width * rng.standard_normal(n), 0.05)
    has_call = (rng.random(n) < p_call) & (call_day < 0)
    call_day = np.where(has_call, np.floor(call_day * 1440) / 1440, np.nan)  # whole minutes
    call_day = np.maximum(call_day, created)

    def confirmed(flag: np.ndarray) -> pd.arrays.BooleanArray:
        noisy = flag ^ (rng.random(n) < 0.07)  # 7% of calls record the wrong answer
        return pd.arrays.BooleanArray(noisy, ~has_call)

    # --- web form answers: noisy reflections of the truth, present only for form-driven sources -------------
    has_form = rng.random(n) < LEAD_SOURCE_FORM[source]
    answered = [has_form & (rng.random(n) < 0.92) for _ in range(3)]
    budget_answer = _band(
        budget_usd * np.exp(0.4 * rng.standard_normal(n)), list(schema.BUDGET_BANDS.values())
    )
    timeline_answer = _band(
        timeline_months * np.exp(0.4 * rng.standard_normal(n)), [0.0, 1.0, 3.5, 7.0, 13.0]
    )
    use_case_answer = np.where(rng.random(n) < 0.8, use_case, _choice(rng, USE_CASE_SHARE, n))
    for answer, k in (
        (budget_answer, len(schema.BUDGET_BANDS)),
        (timeline_answer, len(schema.TIMELINE_ANSWERS)),
    ):
        careless = rng.random(n) < 0.1  # some people click any answer
        answer[careless] = rng.integers(0, k, careless.sum())

    leads = pd.DataFrame(
        {
            "lead_id": lead_id,
            "account_id": truth["account_id"].array,
            "created_at": truth["created_at"].to_numpy(),
            "job_title": job_title,
            "lead_source": _strings(schema.LEAD_SOURCES, source, missing=_mask(rng, n, 0.02)),
            "form_budget": _strings(tuple(schema.BUDGET_BANDS), budget_answer, missing=~answered[0]),
            "form_timeline": _strings(tuple(schema.TIMELINE_ANSWERS), timeline_answer, missing=~answered[1]),
            "form_use_case": _strings(schema.USE_CASES, use_case_answer, missing=~answered[2]),
            "call_date": _timestamps(export_at, call_day),
            "bant_budget_confirmed": confirmed(budget_ok),
            "bant_authority_confirmed": confirmed(authority),
            "bant_need_confirmed": confirmed(need),
            "bant_timeline_confirmed": confirmed(timeline_ok),
        }
    )

    # --- accounts table (observed values, with realistic gaps) ----------------------------------------------
    accounts = pd.DataFrame(
        {
            "account_id": _ids("A", np.arange(1, n_acc + 1), 6),
            "company_name": _company_names(rng, acc["industry"], acc["country"]),
            "industry": _strings(schema.INDUSTRIES, acc["industry"], missing=_mask(rng, n_acc, 0.03)),
            "employees": pd.arrays.IntegerArray(acc["employees"], _mask(rng, n_acc, 0.06)),
            "annual_revenue": np.where(_mask(rng, n_acc, 0.12), np.nan, acc["revenue"]),
            "country": _strings([c[0] for c in COUNTRIES], acc["country"], missing=_mask(rng, n_acc, 0.02)),
            "founded_year": pd.arrays.IntegerArray(acc["founded"], _mask(rng, n_acc, 0.15)),
        }
    )

    # --- activities -----------------------------------------------------------------------------------------
    act_lead, act_day, act_kind = _activities(rng, created, peak, width, mass, background, persona, interest)
    n_act = len(act_lead)
    activities = pd.DataFrame(
        {
            "activity_id": _ids("ACT", np.arange(1, n_act + 1), 8),
            "lead_id": pd.array(pa.array(lead_id).take(pa.array(act_lead)), dtype=STRING),
            "occurred_at": _timestamps(export_at, act_day),
            "activity_type": _strings(schema.ACTIVITY_TYPES, act_kind),
        }
    )
    del act_lead, act_day, act_kind

    # --- opportunities: those opened before the export; open if not closed by then --------------------------
    opp_day = _days(export_at, truth["opp_at"])
    close_day = _days(export_at, truth["close_at"])
    has_opp = np.isfinite(opp_day) & (opp_day < 0)
    idx = np.flatnonzero(has_opp)
    idx = idx[np.argsort(opp_day[idx], kind="stable")]  # opportunity ids follow creation order
    closed = close_day[idx] < 0
    won = truth["won"].to_numpy(dtype=bool)[idx]
    stage = np.where(closed, np.where(won, 0, 1), 2)  # codes into schema.OPPORTUNITY_STAGES
    amount = 20_000 * (employees[idx] / 100.0) ** 0.4 * np.exp(0.6 * rng.standard_normal(len(idx)))
    opportunities = pd.DataFrame(
        {
            "opportunity_id": _ids("OPP", np.arange(1, len(idx) + 1), 7),
            "lead_id": pd.array(lead_id[idx], dtype=STRING),
            "account_id": pd.array(truth["account_id"].array[idx], dtype=STRING),
            "created_at": truth["opp_at"].to_numpy()[idx],
            "closed_at": np.where(closed, truth["close_at"].to_numpy()[idx], np.datetime64("NaT")).astype(
                f"datetime64[{TIME_UNIT}]"
            ),
            "stage": _strings(schema.OPPORTUNITY_STAGES, stage),
            "amount": np.where(_mask(rng, len(idx), 0.03), np.nan, np.round(amount, -2)),
        }
    )

    # --- contact fields: their own random stream, so every draw above is what it was before they existed --------
    leads = leads.join(_contacts(np.random.default_rng([config.seed, 1]), leads["account_id"], accounts))

    # --- dirty rows -----------------------------------------------------------------------------------------
    tables = {"accounts": accounts, "leads": leads, "activities": activities, "opportunities": opportunities}
    tables, dirty = _inject_dirty(rng, tables, config, export_at)

    return DemoCRM(
        accounts=tables["accounts"],
        leads=tables["leads"],
        activities=tables["activities"],
        opportunities=tables["opportunities"],
        truth=truth,
        dirty=dirty,
    )


def _inject_dirty(
    rng: np.random.Generator, tables: dict[str, pd.DataFrame], config: DemoConfig, export_at: pd.Timestamp
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Append extra dirty rows to every table; each has exactly the defect its manifest kind names.

    Dirty rows are copies of random clean rows with a fresh id and one defect, so no clean row depends on
    them.
    """
    share, n_leads = config.dirty_share, config.n_leads
    leads, accounts = tables["leads"], tables["accounts"]
    activities, opportunities = tables["activities"], tables["opportunities"]
    n_clean_leads = len(leads)

    def sample(frame: pd.DataFrame, k: int, among: np.ndarray | None = None) -> pd.DataFrame:
        pool = np.arange(len(frame)) if among is None else among
        if k == 0 or len(pool) == 0:
            return frame.iloc[:0].copy()
        return frame.iloc[rng.choice(pool, size=k)].reset_index(drop=True)

    # leads
    k = _n_dirty(share, len(leads), len(DIRTY_LEAD_KINDS), n_leads)
    next_lead = n_clean_leads + 1
    parts: list[tuple[str, pd.DataFrame]] = []
    for kind in DIRTY_LEAD_KINDS:
        rows = sample(leads, k)
        if kind != "duplicate_id":  # everything but the exact duplicate gets a fresh id
            rows["lead_id"] = _ids("L", np.arange(next_lead, next_lead + len(rows)), 7)
            next_lead += len(rows)
        if kind in ("missing_date", "absurd_date", "future_date"):
            # No call either: a call dated before a broken created_at would be a second defect.
            rows["call_date"] = pd.Series(pd.NaT, index=rows.index, dtype=leads["call_date"].dtype)
            for col in schema.BANT_CONFIRMED_COLUMNS:
                rows[col] = pd.array([pd.NA] * len(rows), dtype="boolean")
        if kind == "missing_date":
            rows["created_at"] = pd.NaT
        elif kind == "absurd_date":
            rows["created_at"] = PLACEHOLDER_DATE
        elif kind == "future_date":
            rows["created_at"] = _timestamps(export_at, np.round(rng.uniform(1, 60, len(rows)) * 1440) / 1440)
        elif kind == "unknown_budget":
            rows["form_budget"] = UNKNOWN_BUDGET
        elif kind == "null_id":
            rows["lead_id"] = pd.NA
        parts.append((kind, rows))
    leads, m_leads = _append_dirty(leads, parts, "leads", rng)
    orphan_lead_base = next_lead + 1000  # ids beyond every lead row, clean or dirty

    # accounts: an extra account no lead uses, with negative revenue
    k = _n_dirty(share, len(accounts), 1, n_leads)
    rows = sample(accounts, k)
    rows["account_id"] = _ids("A", np.arange(len(accounts) + 1, len(accounts) + 1 + len(rows)), 6)
    rows["annual_revenue"] = -np.round(rng.lognormal(np.log(5e6), 1.0, len(rows)), -3)
    accounts, m_accounts = _append_dirty(accounts, [("negative_revenue", rows)], "accounts", rng)

    # activities
    k = _n_dirty(share, len(activities), len(DIRTY_ACTIVITY_KINDS), n_leads)
    orphan = sample(activities, k)
    orphan["lead_id"] = _ids("L", orphan_lead_base + rng.integers(0, 10 * max(k, 1), len(orphan)), 7)
    absurd = sample(activities, k)
    absurd["occurred_at"] = PLACEHOLDER_DATE
    next_act = len(activities) + 1
    for rows in (orphan, absurd):
        rows["activity_id"] = _ids("ACT", np.arange(next_act, next_act + len(rows)), 8)
        next_act += len(rows)
    activities, m_acts = _append_dirty(
        activities, [("orphan", orphan), ("absurd_date", absurd)], "activities", rng
    )

    # opportunities: both point at lead ids that do not exist, so no clean lead's label changes
    k = _n_dirty(share, len(opportunities), len(DIRTY_OPPORTUNITY_KINDS), n_leads)
    orphan = sample(opportunities, k)
    closed_pool = np.flatnonzero(opportunities["closed_at"].notna().to_numpy())
    backwards = sample(opportunities, k, among=closed_pool if len(closed_pool) else None)
    if len(backwards):
        gap = np.round(rng.uniform(1, 60, len(backwards)) * 1440) / 1440
        backwards["created_at"] = backwards["created_at"].to_numpy()
        backwards["closed_at"] = (backwards["created_at"] - pd.to_timedelta(gap, unit="D")).to_numpy()
        backwards["stage"] = backwards["stage"].where(backwards["stage"] != "open", "closed_lost")
    next_opp = len(opportunities) + 1
    for rows in (orphan, backwards):
        rows["opportunity_id"] = _ids("OPP", np.arange(next_opp, next_opp + len(rows)), 7)
        rows["lead_id"] = _ids("L", orphan_lead_base + rng.integers(0, 10 * max(k, 1), len(rows)), 7)
        next_opp += len(rows)
    opportunities, m_opps = _append_dirty(
        opportunities, [("orphan", orphan), ("closed_before_created_orphan", backwards)], "opportunities", rng
    )

    dirty = pd.concat([m_accounts, m_leads, m_acts, m_opps], ignore_index=True)
    return {
        "accounts": accounts,
        "leads": leads,
        "activities": activities,
        "opportunities": opportunities,
    }, dirty


# ------------------------------------------------------------------------------------------------------------
# The oracle
# ------------------------------------------------------------------------------------------------------------


def _ramp_integral(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """G(y) = integral from -inf to y of the U(lo, hi) CDF: 0 below lo, quadratic on [lo, hi], then linear."""
    span = hi - lo
    inside = (np.clip(y, lo, hi) - lo) ** 2 / (2 * span)
    return inside + np.maximum(y - hi, 0.0)


def _opening_probabilities(
    peak: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, end: float
) -> tuple[np.ndarray, np.ndarray]:
    """For t_opp = peak + U(a, b) and close = t_opp + U(c, d), times in days relative to as_of (= 0).

    Returns (P(t_opp < 0), P(t_opp >= 0 and close < end)). The second is
    1/(b-a) * integral over x in [max(0, peak+a), peak+b] of F_D(end - x) dx, with F_D the U(c, d) CDF,
    which the ramp integral G gives in closed form: (G(end - x_lo) - G(end - x_hi)) / (b - a).
    """
    before = np.clip((0.0 - (peak + a)) / (b - a), 0.0, 1.0)
    x_lo = np.maximum(0.0, peak + a)
    x_hi = peak + b
    window = np.where(
        x_hi > x_lo, (_ramp_integral(end - x_lo, c, d) - _ramp_integral(end - x_hi, c, d)) / (b - a), 0.0
    )
    return before, window


def driver_logits(truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The logits of p_opp and p_win from the lead's drivers alone, without the lead-level noise."""
    drivers = {"interest": truth["interest"], "fit": truth["fit"], "authority": truth["authority"],
               "budget": truth["budget_ok"], "timeline": truth["timeline_ok"], "need": truth["need"]}
    drivers = {k: pd.to_numeric(v).to_numpy(dtype=float) for k, v in drivers.items()}
    opp = OPP_INTERCEPT + sum(w * drivers[k] for k, w in OPP_WEIGHTS.items())
    win = WIN_INTERCEPT + sum(w * drivers[k] for k, w in WIN_WEIGHTS.items())
    return opp, win


def marginal_oracle_probability(
    truth: pd.DataFrame,
    opportunities: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    censor_at: pd.Timestamp | None = None,
    nodes: int = 9,
) -> pd.Series:
    """`oracle_probability` averaged over the lead-level logit noise of p_opp and p_win (OPP_NOISE, WIN_NOISE):
    the Bayes-optimal probability given all of a lead's hidden state but that noise, which no column carries.

    The noise is drawn once per lead, independently of everything else, so no model can read it; this oracle is
    the best any model can do. Gauss-Hermite quadrature over both normal noises (``nodes``² evaluations).
    """
    x, w = np.polynomial.hermite_e.hermegauss(nodes)  # nodes and weights for exp(-x^2 / 2)
    w = w / w.sum()
    opp, win = driver_logits(truth)
    total = None
    for xi, wi in zip(x, w, strict=True):
        for xj, wj in zip(x, w, strict=True):
            t = truth.assign(p_opp=expit(opp + OPP_NOISE * xi), p_win=expit(win + WIN_NOISE * xj))
            p = oracle_probability(t, opportunities, as_of, horizon_days, censor_at) * (wi * wj)
            total = p if total is None else total + p
    return total.rename("marginal_oracle_probability")


def oracle_probability(
    truth: pd.DataFrame,
    opportunities: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    censor_at: pd.Timestamp | None = None,
) -> pd.Series:
    """Bayes-optimal P(label = 1) for every lead eligible at `as_of`, index lead_id.

    Label (as featurize defines it): closed_won with as_of <= closed_at < as_of + horizon. Eligible:
    created before `as_of` and no opportunity closed before `as_of`. The posterior conditions on the lead's
    hidden state and on what is observable at `as_of` about its own opportunity:

    * opened before `as_of`, still open: p_win * P(close in window | close >= as_of, opened at t_opp);
    * no opportunity yet: p_opp * p_win * P(t_opp >= as_of, close in window) / (1 - p_opp * P(t_opp < as_of)).

    Both timing probabilities are exact, in closed form (opp_lag is a two-uniform mixture, close_lag an
    independent uniform). Closes after the export are not in the data, so the window is cut at `censor_at`
    (default: truth's export_at column). Opportunity rows of leads outside `truth` (dirty orphans) are
    ignored. Never uses the realised outcome columns of `truth` (opp_at, close_at, won).
    """
    as_of = pd.Timestamp(as_of).as_unit(TIME_UNIT)
    if censor_at is None and "export_at" in truth.columns and len(truth):
        censor_at = pd.Timestamp(truth["export_at"].iloc[0])
    end = float(horizon_days)
    if censor_at is not None:
        end = min(end, (pd.Timestamp(censor_at) - as_of) / pd.Timedelta(days=1))

    created = _days(as_of, truth["created_at"])
    eligible = created < 0
    lead_ids = truth["lead_id"].astype(STRING)

    opps = opportunities[opportunities["lead_id"].isin(lead_ids)]
    opps = opps.sort_values("created_at").drop_duplicates("lead_id", keep="first")
    opened = pd.Series(_days(as_of, opps["created_at"]), index=opps["lead_id"].astype(STRING).to_numpy())
    closed = pd.Series(_days(as_of, opps["closed_at"]), index=opened.index)
    opened = opened.reindex(lead_ids.to_numpy()).to_numpy()
    closed = closed.reindex(lead_ids.to_numpy()).to_numpy()
    has_open_opp = opened < 0  # NaN (no row) compares False
    eligible &= ~(has_open_opp & (closed < 0))  # an opportunity closed before as_of makes the lead ineligible

    p_opp = truth["p_opp"].to_numpy(float)
    p_win = truth["p_win"].to_numpy(float)
    a_early, b_early = truth["opp_lag_min_days"].to_numpy(float), truth["opp_lag_max_days"].to_numpy(float)
    a_late, b_late = (
        truth["late_opp_lag_min_days"].to_numpy(float),
        truth["late_opp_lag_max_days"].to_numpy(float),
    )
    late = truth["late_opp_share"].to_numpy(float)
    c, d = truth["close_lag_min_days"].to_numpy(float), truth["close_lag_max_days"].to_numpy(float)
    peak = _days(as_of, truth["peak_at"])

    prob = np.zeros(len(truth))
    if end > 0:
        # Case A: open opportunity, known t_opp = opened (< 0). Close lag D ~ U(c, d) conditioned on opened +
        # D >= 0.
        with np.errstate(invalid="ignore", divide="ignore"):
            lo = np.maximum(c, -opened)
            window = np.clip(np.minimum(d, end - opened) - lo, 0.0, None)
            case_a = p_win * np.where(d > lo, window / (d - lo), 0.0)
        # Case B: no opportunity before as_of. t_opp = peak + lag, lag a mixture of uniforms; close = t_opp +
        # U(c, d).
        q_before = np.zeros(len(truth))  # P(t_opp < as_of)
        q_window = np.zeros(len(truth))  # P(t_opp >= as_of and close < as_of + window)
        for share, (a, b) in ((1.0 - late, (a_early, b_early)), (late, (a_late, b_late))):
            before, window = _opening_probabilities(peak, a, b, c, d, end)
            q_before += share * before
            q_window += share * window
        case_b = p_opp * p_win * q_window / (1.0 - p_opp * q_before)
        prob = np.where(has_open_opp, case_a, case_b)
    prob = np.clip(prob, 0.0, 1.0)
    return pd.Series(
        prob[eligible],
        index=pd.Index(lead_ids.to_numpy()[eligible], name="lead_id"),
        name="oracle_probability",
    )
