"""The input data contract: the four CRM tables leadscore reads, defined once.

Validation suites, documentation and the demo generator all derive from this module, so a column is
described in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The two shapes of export the pipeline runs: four tables (point-in-time snapshots) or one row per lead (flat).
SNAPSHOTS, FLAT = "snapshots", "flat"
VARIANTS = (SNAPSHOTS, FLAT)
FLAT_TIME = "_time"  # flat exports: when the row happened (orders the hold-out); never a feature

ACTIVITY_TYPES: tuple[str, ...] = (
    "email_open",
    "email_click",
    "web_visit",
    "pricing_page_view",
    "content_download",
    "webinar_attended",
    "demo_request",
    "trial_signup",
    "meeting",
)
HIGH_INTENT_ACTIVITIES: tuple[str, ...] = ("pricing_page_view", "demo_request", "trial_signup", "meeting")

# Picklists fit real CRMs: a value outside a picklist's known values is kept as the list's catch-all value and
# counted (validation.json, the report), never quarantined; a profile's `values` map labels before that. The
# catch-all is spelled like its list: "Other" in the Title Case lists (industries, lead sources, use cases, as
# USE_CASES and the regions already have it), "other" among the snake_case activity types. Opportunity stage has
# no catch-all: it decides the label, so an unknown stage is still quarantined; the budget and timeline answers
# neither: they are parsed into numbers, and an answer that cannot be is quarantined like any unparseable value.
OTHER = "Other"
OTHER_ACTIVITY = "other"
ACTIVITY_TYPE_VALUES: tuple[str, ...] = (*ACTIVITY_TYPES, OTHER_ACTIVITY)  # what the contract accepts

OPPORTUNITY_STAGES: tuple[str, ...] = ("closed_won", "closed_lost", "open")

INDUSTRIES: tuple[str, ...] = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Education",
    "Telecommunications",
    "Government",
    "Media",
    "Logistics",
    "Energy",
    "Professional Services",
)
INDUSTRY_VALUES: tuple[str, ...] = (*INDUSTRIES, OTHER)  # the known industries and the catch-all

LEAD_SOURCES: tuple[str, ...] = (
    "Organic Search",
    "Paid Search",
    "Referral",
    "Event",
    "Webinar",
    "Partner",
    "Outbound",
    "Content Syndication",
    "Social",
    "Direct",
)
LEAD_SOURCE_VALUES: tuple[str, ...] = (*LEAD_SOURCES, OTHER)

# Form answers as a web form offers them; the lower bound of a budget band is used as a number.
BUDGET_BANDS: dict[str, float] = {
    "< $10k": 0.0,
    "$10k-$25k": 10_000.0,
    "$25k-$50k": 25_000.0,
    "$50k-$100k": 50_000.0,
    "$100k+": 100_000.0,
}
# Purchase timeline answers mapped to the months until the intended purchase.
TIMELINE_ANSWERS: dict[str, float] = {
    "Immediately": 0.0,
    "This quarter": 2.0,
    "Next quarter": 5.0,
    "6-12 months": 9.0,
    "Just researching": 18.0,
}
USE_CASES: tuple[str, ...] = (
    "Pipeline analytics",
    "Lead routing",
    "Forecasting",
    "Customer support",
    "Data integration",
    OTHER,  # also the catch-all of the picklist
)

BANT_CONFIRMED_COLUMNS: tuple[str, ...] = (
    "bant_budget_confirmed",
    "bant_authority_confirmed",
    "bant_need_confirmed",
    "bant_timeline_confirmed",
)

# Contact fields of a lead: carried to the hand-over files (queues, CRM import files), never features.
CONTACT_COLUMNS: dict[str, str] = {
    "first_name": "First name.",
    "last_name": "Last name.",
    "email": "Email address.",
    "phone": "Phone number (kept as text: leading zeros and + stay).",
}
# Export-time CRM state of a lead: known only at the export date, so only the scoring snapshot may read it.
EXPORT_STATE_COLUMNS: tuple[str, ...] = ("owner_id", "crm_status", "is_converted", "with_sales")

# Dates before this year are treated as absurd (typing errors such as 1900-01-01 placeholders).
MIN_PLAUSIBLE_YEAR = 1990


@dataclass(frozen=True)
class Column:
    """One column of an input table and the checks its values must pass."""

    name: str
    dtype: str  # one of: string, int, float, datetime, bool
    description: str
    required: bool = True  # the column must be present in the file
    nullable: bool = False  # a value may be missing
    min_value: float | None = None
    max_value: float | None = None
    allowed: tuple[str, ...] | None = None
    # picklists: the value (one of ``allowed``) a value outside ``allowed`` is kept as, instead of quarantining
    # the row; None: a value outside ``allowed`` is quarantined ("<col>: in allowed set")
    other: str | None = None
    unique: bool = False
    references: str | None = None  # "table.column" this value must exist in
    not_in_future: bool = False  # datetime columns: no later than the export date


@dataclass(frozen=True)
class Table:
    """An input table: its columns, its key and checks that span columns."""

    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: str
    # (later column, earlier column): the later must be >= the earlier when both are present.
    ordered_dates: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_names(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


ACCOUNTS = Table(
    name="accounts",
    description="One row per company.",
    primary_key="account_id",
    columns=(
        Column("account_id", "string", "Unique account identifier.", unique=True),
        Column("company_name", "string", "Company name.", required=False, nullable=True),
        Column("industry", "string", "Industry, one of the known industries.", nullable=True,
               allowed=INDUSTRY_VALUES, other=OTHER),
        Column("employees", "int", "Employee count.", nullable=True, min_value=1, max_value=5_000_000),
        Column(
            "annual_revenue", "float", "Annual revenue in USD.", nullable=True, min_value=0, max_value=1e13
        ),
        Column("country", "string", "ISO 3166 alpha-2 country code.", nullable=True),
        Column("founded_year", "int", "Year the company was founded.", nullable=True, min_value=1800, max_value=2100),
    ),
)

LEADS = Table(
    name="leads",
    description="One row per lead (contact).",
    primary_key="lead_id",
    columns=(
        Column("lead_id", "string", "Unique lead identifier.", unique=True),
        Column("account_id", "string", "The lead's company.", references="accounts.account_id"),
        Column("created_at", "datetime", "When the lead entered the CRM.", not_in_future=True),
        Column("job_title", "string", "Job title as typed (free text).", nullable=True),
        Column("lead_source", "string", "Marketing source.", nullable=True, allowed=LEAD_SOURCE_VALUES, other=OTHER),
        Column(
            "form_budget", "string", "Budget band from the web form.", required=False, nullable=True,
            allowed=tuple(BUDGET_BANDS),
        ),
        Column(
            "form_timeline", "string", "Purchase timeline from the web form.", required=False, nullable=True,
            allowed=tuple(TIMELINE_ANSWERS),
        ),
        Column(
            "form_use_case", "string", "Use case from the web form.", required=False, nullable=True,
            allowed=USE_CASES, other=OTHER,
        ),
        Column(
            "call_date", "datetime", "Date of the qualification call, if one happened.", required=False,
            nullable=True, not_in_future=True,
        ),
        *(
            Column(
                name, "bool", f"{name.split('_')[1].capitalize()} confirmed on the qualification call.",
                required=False, nullable=True,
            )
            for name in BANT_CONFIRMED_COLUMNS
        ),
        # Who the lead is and where it stands in the CRM, as the export shows it (the state at export time):
        # never a feature; the hand-over files carry the contact fields, the status decides the population.
        *(
            Column(name, "string", text, required=False, nullable=True)
            for name, text in CONTACT_COLUMNS.items()
        ),
        Column("owner_id", "string", "The CRM user who owns the lead now (a queue or a marketing user before "
               "the hand-over).", required=False, nullable=True),
        Column("crm_status", "string", "The lead's status in the CRM (after the profile's value map).",
               required=False, nullable=True),
        Column("is_converted", "bool", "The CRM marks the lead converted (to a contact / opportunity).",
               required=False, nullable=True),
        Column("with_sales", "bool", "Sales already works the lead: converted, or a status the profile declares "
               "as working (`working_statuses`); set at ingest, or mapped directly.", required=False, nullable=True),
    ),
    ordered_dates=(("call_date", "created_at"),),
)

ACTIVITIES = Table(
    name="activities",
    description="One row per engagement event.",
    primary_key="activity_id",
    columns=(
        Column("activity_id", "string", "Unique event identifier.", unique=True),
        Column("lead_id", "string", "The lead that engaged.", references="leads.lead_id"),
        Column("occurred_at", "datetime", "When the event happened.", not_in_future=True),
        Column("activity_type", "string", "Kind of event.", allowed=ACTIVITY_TYPE_VALUES, other=OTHER_ACTIVITY),
    ),
)

OPPORTUNITIES = Table(
    name="opportunities",
    description="Sales outcomes: one row per opportunity.",
    primary_key="opportunity_id",
    columns=(
        Column("opportunity_id", "string", "Unique opportunity identifier.", unique=True),
        Column("lead_id", "string", "The lead the opportunity came from.", references="leads.lead_id"),
        Column("account_id", "string", "The account.", required=False, nullable=True, references="accounts.account_id"),
        Column("created_at", "datetime", "When the opportunity was opened.", not_in_future=True),
        Column("closed_at", "datetime", "When it was closed; empty while open.", nullable=True, not_in_future=True),
        Column("stage", "string", "closed_won, closed_lost or open.", allowed=OPPORTUNITY_STAGES),
        Column("amount", "float", "Deal amount in USD.", nullable=True, min_value=0, max_value=1e10),
    ),
    ordered_dates=(("closed_at", "created_at"),),
)

CONTRACT: dict[str, Table] = {t.name: t for t in (ACCOUNTS, LEADS, ACTIVITIES, OPPORTUNITIES)}
# Tables in an order where every reference points at a table validated earlier.
TABLE_ORDER: tuple[str, ...] = ("accounts", "leads", "activities", "opportunities")
