"""Free-text job titles -> (seniority, department).

CRM exports carry whatever a lead typed into a form or a rep pasted from a profile: abbreviations
("Sr. Dir. of IT"), any word order ("Sales VP"), typos ("Maketing Maneger"), several languages
("Leiter Vertrieb", "Directrice Marketing", "Gerente de Ventas") and junk ("-", "n/a", "asdf"). This
module turns such a title into two categorical features that the conversion model and the BANT
"authority" gate can use.

How a title is parsed
---------------------
1. Normalise: Unicode NFKD with accents dropped ("Geschäftsführer" == "Geschaftsfuhrer"), case-folded
   ("ß" -> "ss"), dotted abbreviations closed up ("V.P." -> "vp"), everything that is not a letter or a
   digit becomes a space (emoji, "&", "/", "-", brackets, commas).
2. Tokens are mapped to *canonical concepts* ("mgr", "gerente", "responsable" -> ``manager``). A token
   that is not in the vocabulary is tried as a German/Dutch compound ("Vertriebsleiter" -> sales +
   head) and then as a typo of a vocabulary word (edit distance 1, or 2 for words of 9+ letters).
   Vocabulary: English, German, French, Spanish, Portuguese, Italian, Dutch, a little Swedish, and
   Japanese (unsegmented, so matched by substring: "営業部長" -> sales + director).
3. Multi-word phrases are folded on the canonical tokens ("vice president" -> ``vp``,
   "customer success" -> ``customer_success``), so foreign phrasings that translate word by word
   ("gerente general", "recursos humanos") are covered by the same phrase table.
4. Seniority is the highest rank among the concepts, adjusted by modifiers (see below). Department is
   the strongest function keyword; CEO/founder/owner-type titles without a function are ``executive``.

Choices where titles are genuinely ambiguous (kept here so the behaviour is reviewable)
--------------------------------------------------------------------------------------
* "Managing Director", "Geschäftsführer", "Gérant", "Director General", "Gerente General", "PDG",
  "Executive Director" -> c_level: in Europe/LatAm these run the company (a GmbH's MD *is* its CEO);
  in nonprofits the Executive Director is the top job. Banks use MD/ED as ranks, which is still senior.
* "General Manager" (English) -> vp, department executive: usually runs a business unit, not the firm.
* Down-modifiers lower the *next* ranked word by one level: "Assistant/Associate VP" (AVP) -> director,
  "Associate Director" -> manager, "Deputy CEO" -> vp, "Assistant Manager" -> senior_ic,
  "Directeur Adjoint" / "Subdirector" -> manager.
* "Head of X", "Leiter X", "Hoofd X" -> director; "Bereichsleiter" / "Division Head" -> vp (above
  Abteilungsleiter in German hierarchies); "Abteilungsleiter" -> director.
  "Team Lead"/"Teamleiter"/"Group Head"/"Project Lead"/"Projektleiter" -> manager.
* "Jefe" / "Chef" / "Capo" / "Responsable" / "Responsabile" / "Gestor" -> manager (Spanish and French
  hierarchies put Director above Gerente/Jefe/Chef; "chef de projet" is a project manager).
* Any "... Manager" is manager, including Product/Project Manager (the keyword convention B2B data
  vendors use), except "Account Manager" / "Key Account Manager": a quota-carrying ic sales role.
  "Account Executive" is ic whatever the segment ("Enterprise Account Executive" too).
* A bare "Directeur"/"Director" -> director: a Dutch SME's "Directeur" may be its owner, but the
  word alone cannot tell.
* "Lead X" / "X Lead" -> senior_ic, "Staff Engineer" and "Principal X" -> senior_ic, "Senior X"
  raises an individual contributor to senior_ic (a Senior Director stays a director). Roman III/IV
  -> senior_ic; I/II -> ic. "Staff Accountant" stays ic (staff means junior in accounting).
* A bare "Principal" -> director (the rank below partner in consulting/VC); a bare "Partner",
  "Managing/Senior/Founding Partner" -> c_level executive; "Business/Channel/Alliance Partner" and
  "Partner Manager" are not.
* "Chief X Officer" -> c_level; "Chief" without "Officer" (Chief Architect, Chief of Staff) -> director.
* "General Counsel" -> vp, legal. "Controller" -> manager, finance (US usage; German "Controller" is
  an analyst - noted, not modelled). "DSI"/"DRH"/"DAF" (French) -> director of IT/HR/finance.
* Interns: intern/trainee/student words win unless the title also has director-or-above
  ("Head of Internships" stays a director).
* A title with only a function ("Sales") has unknown seniority; a title with only a rank ("Director")
  has unknown department. "other" is a recognised function outside the list (administrative,
  secretarial, research, education, healthcare).
* Procurement/purchasing/compras/Einkauf -> finance (sits under the CFO in most B2B org charts);
  supply chain/logistics -> operations. Project/programme management -> operations (PMO), as are
  office management and business analysts. "Data" titles -> engineering (data protection -> legal).
* Department ties: the strongest keyword wins ("Software Sales" -> sales, "Sales Engineer" -> sales,
  "IT Recruiter" -> hr); equal strength -> the first one ("VP Sales & Marketing" -> sales).
* Typos: only tokens of 5+ letters, only against vocabulary words of 5+ letters, same first letter,
  a unique best match, distance 1 (2 when both words have 9+ letters); "vise"/"vce" before
  "president" is fixed in context. Short words are never corrected (too many false hits).

Performance: :func:`parse_titles` factorises the Series, normalises each distinct raw value once,
parses each distinct normalised title once (memoised), and maps the results back with array takes.
Work per title is bounded, whatever the input: only the first ``_MAX_TITLE_CHARS`` (1,000) characters
are read (a word cut by that limit is dropped; real titles are far shorter, Salesforce caps them at
128), and a token longer than any vocabulary word could match is never sent to the typo or compound
search (the deletion neighbourhood of the typo search grows with the cube of a word's length: a
1,600-letter word took 39 s and 2 GB before this cap; a 20 MB title now parses in milliseconds).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["DEPARTMENTS", "SENIORITY_LEVELS", "UNKNOWN", "parse_title", "parse_titles"]

SENIORITY_LEVELS: dict[str, int] = {
    "intern": 0,
    "ic": 1,
    "senior_ic": 2,
    "manager": 3,
    "director": 4,
    "vp": 5,
    "c_level": 6,
}
DEPARTMENTS: tuple[str, ...] = (
    "sales",
    "marketing",
    "it",
    "engineering",
    "product",
    "finance",
    "operations",
    "hr",
    "customer_success",
    "legal",
    "executive",
    "other",
)
UNKNOWN = "unknown"
DECISION_MAKER_MIN_LEVEL = SENIORITY_LEVELS["director"]


def _words(text: str) -> frozenset[str]:
    """Space-separated word list -> set; keeps the long vocabularies below readable."""
    return frozenset(text.split())


_LEVEL_NAMES: dict[int, str] = {v: k for k, v in SENIORITY_LEVELS.items()}
_INTERN, _IC, _SENIOR_IC, _MANAGER, _DIRECTOR, _VP, _C_LEVEL = range(7)

# ---------------------------------------------------------------------------------------------------
# Vocabulary. Surface forms are written accent-free and lower case, as the normaliser produces them.
# ---------------------------------------------------------------------------------------------------

# canonical concept(s) -> surface forms. A key with a space expands to several concepts
# ("dsi" is the director of IT). Every concept name is also a surface form of itself.
_SURFACES: dict[str, str] = {
    # --- ranks -------------------------------------------------------------------------------------
    "intern": "intern interns internship trainee trainees student students werkstudent werkstudentin "
    "praktikant praktikantin azubi auszubildender auszubildende apprentice apprenticeship stagiaire "
    "stagiair stagiaire stagista tirocinante becario becaria practicante pasante estagiario estagiaria "
    "alternant alternante",
    "ceo": "ceo pdg ceos vorstandsvorsitzender vd",
    "cto": "cto",
    "cfo": "cfo",
    "cmo": "cmo",
    "cro": "cro",
    "cio": "cio",
    "coo": "coo",
    "ciso": "ciso",
    "cdo": "cdo",
    "cpo": "cpo",
    "cco": "cco",
    "chro": "chro cpeo",
    "clo": "clo",
    "c_level": "cso cxo cao csuite",
    "founder": "founder founders cofounder cofounders fondateur fondatrice cofondateur cofondatrice "
    "fundador fundadora cofundador cofundadora fondatore fondatrice grunder grunderin mitgrunder "
    "mitgrunderin oprichter medeoprichter grundare",
    "owner": "owner owners coowner inhaber inhaberin eigenaar agare titolare dueno duena propietario "
    "propietaria proprietario proprietaria proprietaire",
    "president": "president presidente presidenta prasident presidentin pres",
    "vp": "vp vps svp evp vicepresident vicepresidente vizeprasident vizeprasidentin",
    "assistant vp": "avp",
    "managing_director": "geschaftsfuhrer geschaftsfuhrerin geschaeftsfuehrer geschaeftsfuehrerin "
    "geschaftsfuhrung geschaeftsfuehrung gf gerant gerante zaakvoerder",
    "director_general": "dg",
    "board": "vorstand vorstandin vorstandsmitglied",
    "chairman": "chairman chairwoman chairperson chair vorsitzender",
    "general_manager": "bedrijfsleider",
    "director": "director directors dir directeur directrice directora direktor direktorin diretor "
    "diretora direttore direttrice",
    "director it": "dsi",
    "director hr": "drh",
    "director finance": "daf",
    "head": "head heads leiter leiterin leitung hoofd",
    "manager": "manager managers mgr mngr managerin gerente gerenta responsable responsabile gestor "
    "gestora jefe jefa chef cheffe chefe capo supervisor supervisora leidinggevende",
    "deputy manager": "subgerente",
    "deputy director": "subdirector subdirectora sousdirecteur",
    "lead": "lead leader leads leider",
    "team_lead": "teamlead teamleader",
    "chief": "chief",
    "officer": "officer officers",
    "senior": "senior sr snr",
    "junior": "junior jr jnr",
    "staff": "staff",
    "principal": "principal",
    "partner": "partner partners socio socia associe associee vennoot gesellschafter gesellschafterin",
    "assistant": "assistant assistants assistente assistent assistentin assistenz asistente asst",
    "associate": "associate associates assoc",
    "deputy": "deputy stellvertretender stellvertretende stv vice vize",
    "adjoint": "adjoint adjointe adjunto adjunta aggiunto",
    "numeral_high": "iii iv",
    # individual-contributor role nouns
    "engineer": "engineer engineers eng engr ingenieur ingenieure ingenieurin ingeniero ingeniera "
    "ingegnere engenheiro engenheira ingenjor",
    "developer": "developer developers dev devs entwickler entwicklerin developpeur developpeuse "
    "desarrollador desarrolladora desenvolvedor desenvolvedora sviluppatore sviluppatrice "
    "ontwikkelaar utvecklare programmer programador programadora coder",
    "analyst": "analyst analysts analista analyste",
    "coordinator": "coordinator coord coordinador coordinadora coordenador coordenadora koordinator "
    "koordinatorin coordinatore coordinatrice coordinateur coordinatrice",
    "specialist": "specialist specialists spezialist spezialistin especialista specialiste specialista "
    "referent referentin sachbearbeiter sachbearbeiterin expert experte expertin",
    "consultant": "consultant consultants consultante consultor consultora consulente berater "
    "beraterin konsult adviseur advisor adviser asesor asesora conseiller conseillere",
    "representative": "representative representatives rep reps representante",
    "executive": "executive executives exec ejecutivo ejecutiva executivo executiva",
    "administrator": "administrator admin administrador administradora amministratore",
    "employee": "employee generalist trainer trainers instructor coach mitarbeiter mitarbeiterin medewerker medewerkster impiegato impiegata "
    "angestellter angestellte kaufmann kauffrau charge chargee",
    "technician": "technician tecnico tecnica technicien techniker",
    "agent": "agent agents clerk operator",
    "scientist": "scientist scientists researcher",
    "designer": "designer designers",
    "architect": "architect architects",
    "tester": "tester testers",
    # --- department keywords --------------------------------------------------------------------
    "sales": "sales sale selling vertrieb verkauf ventas vendas vendite verkoop vente ventes "
    "presales revops salesops forsaljning salj",
    # A role noun that names its function counts as both: "Accountant" is an ic in finance.
    # French/Spanish "commercial" and German "Innendienst" are nouns for a salesperson.
    "sales employee": "salesperson salesman saleswoman vendedor vendedora vendeur vendeuse verkaufer "
    "verkauferin verkoper saljare commercial commerciale comercial commercieel aussendienst innendienst",
    "marketing employee": "marketeer marketer copywriter",
    "finance employee": "accountant accountants bookkeeper auditor buchhalter buchhalterin contador "
    "contadora contabile comptable boekhouder cpa",
    "purchasing employee": "purchaser buyer buyers einkaufer einkauferin acheteur acheteuse inkoper",
    "hr employee": "recruiter recruiters",
    "legal employee": "counsel attorney attorneys lawyer lawyers paralegal jurist juriste "
    "rechtsanwalt rechtsanwaltin abogado abogada avocat avocate avvocato advogado advogada",
    "other employee": "receptionist secretary teacher professor nurse physician doctor",
    "it administrator": "sysadmin",
    "customer_success manager": "csm",
    "revenue": "revenue",
    "account": "account accounts cuentas contas comptes",
    "sdr": "sdr sdrs",
    "bdr": "bdr bdrs",
    "account_executive": "ae",
    "channel": "channel alliances alliance partnerships",
    "business": "business biz",
    "marketing": "marketing mktg mkt mercadotecnia mercadeo seo sem ppc abm marknad marknadsforing",
    "growth": "growth",
    "brand": "brand branding",
    "content": "content",
    "communications": "communications communication comms pr kommunikation comunicacion comunicazione",
    "demand": "demand",
    "generation": "generation gen",
    "events": "events event",
    "it": "it ti edv informatik informatique informatica helpdesk cybersecurity erp",
    "information": "information informacion informacao",
    "technology": "technology technologies tech tecnologia technologie",
    "infrastructure": "infrastructure infrastruktur infraestructura",
    "security": "security infosec",
    "systems": "systems system sistemas sistemi systemes network networks",
    "engineering": "engineering rnd",
    "software": "software",
    "development": "development entwicklung desarrollo sviluppo desenvolvimento developpement",
    "devops": "devops sre qa frontend backend fullstack ml ai",
    "technical": "technical technique technisch technischer technische",
    "research": "research",
    "product": "product products produkt produit producto produto prodotto ux ui",
    "finance": "finance finances financial finanz finanzen finanzas financas finanza financiero "
    "financiera financeiro financeira financier financiere finanzas financieel financien "
    "accounting bookkeeping treasury tax audit payroll controlling buchhaltung rechnungswesen "
    "contabilidad contabilidade comptabilite amministrazione billing ekonomi",
    "controller": "controller controllers comptroller",
    "purchasing": "purchasing procurement sourcing einkauf compras acquisti achats inkoop inkop",
    "operations": "operations operation ops operating operaciones operacoes operazioni betrieb "
    "logistics logistik logistica logistique warehouse fulfillment facilities facility production "
    "produktion manufacturing",
    "supply": "supply",
    "chain": "chain",
    "project": "project projects program programs programme projekt projet projets proyecto "
    "proyectos projeto projetos progetto progetti pmo",
    "hr": "hr rh rrhh hrbp people talent recruiting recruitment personnel personeelszaken",
    "human": "human humanos humaines umane",
    "resources": "resources recursos ressources risorse",
    "customer": "customer customers client clients kunden cliente clientes klanten",
    "success": "success",
    "support": "support suporte soporte",
    "service": "service services servicio servicios servico servizio",
    "customer_success": "kundendienst kundenservice klantenservice atendimento cx onboarding",
    "care": "care",
    "experience": "experience",
    "legal": "legal legale juridico juridica juridique recht compliance",
    "general": "general generale generales algemeen geral",
    "other": "administrative",
    "office": "office ufficio",
    "data": "data",
    # --- phrase parts that are not concepts on their own -----------------------------------------
    "managing": "managing",
    "member": "member members mitglied",
    "team": "team teams equipe equipo squad",
    "group": "group gruppe gruppen",
    "department": "department abteilung afdeling",
    "division": "division bereich",
    "co": "co",
    "working": "working",
    "c": "c",
    "level": "level suite",
    "non": "non",
    "founding": "founding",
    "equity": "equity",
    "creative": "creative",
}

# Tokens dropped before phrase matching (those in _TO_WORDS only after "assistant to the CEO" is
# handled).
_STOPWORDS: frozenset[str] = _words(
    "of and the for to at in on a an de des du d la le les l del el los las y e et und der die das fur "
    "von vom im di da do dos della dei degli van voor het en een al au aux con with"
)

# Phrases over canonical tokens (stopwords already removed) -> replacement concept tokens.
# Longest match wins. Values may keep a department word ("product owner" keeps "product").
_PHRASES: dict[str, str] = {
    "deputy president": "vp",  # "vice" is a surface form of the down-modifier "deputy"
    "chief executive officer": "ceo",
    "chief executive": "ceo",
    "chief technology officer": "cto",
    "chief technical officer": "cto",
    "chief information officer": "cio",
    "chief information security officer": "ciso",
    "chief security officer": "ciso",
    "chief data officer": "cdo",
    "chief digital officer": "cdo",
    "chief operations officer": "coo",  # "operating" is a surface form of "operations"
    "chief staff": "chief_of_staff",  # "of" is a stopword
    "president director general": "ceo",  # "Président-Directeur Général" spelled out
    "c level": "c_level",  # also "C-Suite": "suite" is a surface form of "level"
    "co founder": "founder",
    "co owner": "owner",
    "founding partner": "senior_partner",
    "managing partner": "senior_partner",
    "senior partner": "senior_partner",
    "equity partner": "senior_partner",
    "business partner": "business_partner",  # HR/Finance Business Partner: a role, not a stake
    "channel partner": "channel",
    "managing director": "managing_director",
    "general manager": "general_manager",
    "manager general": "director_general",  # "gerente general" runs the company in LatAm
    "director general": "director_general",
    "general director": "director_general",  # "algemeen directeur"
    "executive director": "executive_director",
    "director executive": "executive_director",  # "diretor executivo", "director ejecutivo"
    "non executive director": "board",
    "member board": "board",
    "board member": "board",
    "board director": "board",  # "Board of Directors"
    "executive chairman": "chairman",
    "general legal": "general_counsel",  # "counsel" expands to legal + employee
    "team lead": "team_lead",
    "lead team": "team_lead",
    "team head": "team_lead",  # "Teamleiter"
    "head team": "team_lead",
    "manager team": "team_lead",  # "chef d'équipe", "jefe de equipo"
    "group head": "team_lead",
    "group lead": "team_lead",
    "project head": "project team_lead",  # "Projektleiter"
    "project lead": "project team_lead",
    "division head": "division_head",  # "Bereichsleiter"
    "head division": "division_head",
    "department head": "head",  # "Abteilungsleiter"
    "head department": "head",
    "working intern": "intern",  # "student" is a surface form of "intern"
    "product owner": "product role_owner",
    "process owner": "role_owner",
    "service owner": "role_owner",
    "account owner": "sales role_owner",
    "data owner": "role_owner",
    "product marketing": "marketing",
    "account executive": "account_executive",
    "account manager": "account_manager",  # a quota-carrying ic, not a people manager
    "executive account": "account_executive",  # "ejecutivo de cuentas", "executivo de contas"
    "business analyst": "operations analyst",
    "data protection": "legal",
    "data privacy": "legal",
    "verkstallande director": "ceo",  # Swedish "verkställande direktör" (VD)
    "executive assistant": "assistant other",
    "business development": "sales",
    "business developer": "sales",
    "development business": "sales",
    "customer success": "customer_success",
    "customer service": "customer_success",
    "service customer": "customer_success",  # "servicio al cliente", "service client"
    "customer support": "customer_success",
    "customer care": "customer_success",
    "customer experience": "customer_success",
    "atencion customer": "customer_success",  # "atención al cliente"
    "information technology": "it",
    "technology information": "it",  # "tecnologia da informacao"
    "systems information": "it",  # "systèmes d'information", "sistemas de información"
    "systems informativi": "it",
    "information security": "it",
    "human resources": "hr",
    "resources human": "hr",  # "recursos humanos", "ressources humaines", "risorse umane"
    "supply chain": "operations",
    "demand generation": "marketing",
    "lead generation": "marketing",  # not a "lead" rank
    "research development": "engineering",
    "software development": "software",
    "member technical staff": "employee technical",
    "account payable": "finance",
    "account receivable": "finance",
    "systems administrator": "it administrator",
    "administrator delegato": "ceo",  # "amministratore delegato"
    "administrator unico": "ceo",
    "social media": "marketing",
}

# German/Dutch compounds: prefix (after dropping a linking "s"/"n") + a head noun from this set.
_COMPOUND_HEADS: frozenset[str] = _words(
    "leiter leiterin leitung mitarbeiter mitarbeiterin entwickler entwicklerin referent "
    "referentin berater beraterin manager managerin ingenieur ingenieurin assistent "
    "assistentin assistenz direktor direktorin spezialist spezialistin koordinator "
    "koordinatorin sachbearbeiter sachbearbeiterin leider hoofd medewerker medewerkster "
    "lead engineer developer kaufmann kauffrau praktikant praktikantin werkstudent "
    "werkstudentin innendienst aussendienst chef"
)
# Longest first, so "leiterin" is tried before "leiter".
_COMPOUND_HEAD_SIZES: tuple[int, ...] = tuple(sorted({len(h) for h in _COMPOUND_HEADS}, reverse=True))
# Prefixes that only occur inside compounds ("Personal" alone is English "personal").
_COMPOUND_ONLY_PREFIXES: dict[str, tuple[str, ...]] = {
    "personal": ("hr",),
    "finanz": ("finance",),
    "kunden": ("customer_success",),
    "klanten": ("customer_success",),
    "innen": ("sales",),
    "aussen": ("sales",),
    "web": ("software",),
    "qualitats": ("operations",),
}

# Words that look like typos of vocabulary words but are ordinary words in titles.
# Found by running a few hundred common title and English words through the corrector.
_NEVER_CORRECT: frozenset[str] = _words(
    "internal external international council counter master mentor member scales tales grand "
    "lower power owned owning sealed reader header heater dealer senator senor seniority "
    "developing engaged supplier planner planning manages managed directs directed serves served "
    "servant marker marking market markets printer painter partnering customs producer producers "
    "productive directory directories direction directions directive socialist consulate analysis "
    "analyses context contest salem saleh vents evens bland stiff stuff employer employers employed "
    "principle principles fiance taster advocate advocates protection projection projections "
    "profession professions"
)

# Nouns after "staff" that make it the engineering rank ("Staff Engineer"), not "Staff Accountant".
_STAFF_RANK_NOUNS: frozenset[str] = frozenset(
    {"engineer", "developer", "scientist", "architect", "designer", "software", "devops", "product"}
)
# Concepts after which "to/of <boss>" describes whom they support ("other" covers secretaries).
_ASSISTANT_WORDS: frozenset[str] = frozenset({"assistant", "other", "office"})
_TO_WORDS: frozenset[str] = frozenset({"to", "of", "du", "de", "del", "der", "des", "da", "di", "van", "for"})
# Words that only occur in a boss's title; dropped after "assistant to" with the ranked ones.
_BOSS_WORDS: frozenset[str] = frozenset({"chief", "officer", "managing", "deputy", "general", "executive"})
_LINK = "<to>"  # placeholder for a dropped _TO_WORDS stopword; normalised tokens never contain "<"

# Seniority of each concept. Concepts not listed carry no rank.
_RANK: dict[str, int] = {
    "intern": _INTERN,
    **dict.fromkeys(
        ("ceo", "cto", "cfo", "cmo", "cro", "cio", "coo", "ciso", "cdo", "cpo", "cco", "chro", "clo",
         "c_level", "founder", "owner", "president", "managing_director", "director_general",
         "executive_director", "board", "chairman", "senior_partner"),
        _C_LEVEL,
    ),
    "partner_owner": _C_LEVEL,
    "chief_officer": _C_LEVEL,
    **dict.fromkeys(("vp", "general_manager", "division_head", "general_counsel"), _VP),
    **dict.fromkeys(("director", "head", "chief_of_staff", "chief_rank", "principal_alone"), _DIRECTOR),
    **dict.fromkeys(("manager", "team_lead", "controller"), _MANAGER),
    **dict.fromkeys(("lead", "numeral_high", "staff_rank", "principal_rank"), _SENIOR_IC),
    **dict.fromkeys(
        ("engineer", "developer", "analyst", "coordinator", "specialist", "consultant", "representative",
         "executive", "administrator", "employee", "technician", "agent", "scientist", "designer",
         "architect", "tester", "sdr", "bdr", "account_executive", "account_manager", "role_owner", "junior",
         "business_partner", "partner_role", "officer"),
        _IC,
    ),
}
# Concepts that lower the next ranked (manager-or-above) concept by one level; if nothing ranked
# follows, the value is the rank the word has on its own ("Sales Assistant" is an ic).
_DOWN_MODIFIERS: dict[str, int | None] = {"assistant": _IC, "associate": _IC, "deputy": None}

# Department keywords: concept -> (department, strength). Strength 3 names a function, 2 is a
# broad area that usually loses to a named function ("Software Sales"), 1 is a role noun that hints
# at a function ("Sales Engineer" is sales), 0 is the executive fallback.
_DEPARTMENT: dict[str, tuple[str, int]] = {
    **dict.fromkeys(
        ("sales", "revenue", "sdr", "bdr", "account_executive", "account_manager", "cro", "cco"), ("sales", 3)
    ),
    "account": ("sales", 2),
    "channel": ("sales", 2),
    "business": ("sales", 1),
    "partner_role": ("sales", 1),  # Partner Manager, Partner Success: partnerships sit in sales
    **dict.fromkeys(("marketing", "cmo", "brand", "demand"), ("marketing", 3)),
    **dict.fromkeys(("growth", "content", "communications"), ("marketing", 2)),
    "events": ("marketing", 1),
    **dict.fromkeys(("cio", "ciso", "cdo"), ("it", 3)),
    **dict.fromkeys(("it", "infrastructure", "security", "systems", "information"), ("it", 2)),
    "technology": ("it", 1),
    **dict.fromkeys(("engineering", "cto", "developer"), ("engineering", 3)),
    **dict.fromkeys(("software", "devops", "data"), ("engineering", 2)),
    **dict.fromkeys(
        ("engineer", "development", "technical", "architect", "scientist", "tester"), ("engineering", 1)
    ),
    **dict.fromkeys(("product", "cpo"), ("product", 3)),
    "designer": ("product", 1),
    **dict.fromkeys(("finance", "cfo", "controller", "purchasing"), ("finance", 3)),
    **dict.fromkeys(("operations", "coo"), ("operations", 3)),
    **dict.fromkeys(("project", "office"), ("operations", 1)),  # PMO, office/facilities management
    **dict.fromkeys(("hr", "chro"), ("hr", 3)),
    "customer_success": ("customer_success", 3),
    **dict.fromkeys(("support", "success"), ("customer_success", 2)),  # "Head of Success"
    **dict.fromkeys(("service", "customer"), ("customer_success", 1)),
    **dict.fromkeys(("legal", "clo", "general_counsel"), ("legal", 3)),
    "other": ("other", 1),
    "research": ("other", 1),
    **dict.fromkeys(
        ("ceo", "founder", "owner", "president", "managing_director", "director_general",
         "executive_director", "board", "chairman", "general_manager", "chief_of_staff", "c_level",
         "senior_partner", "partner_owner", "principal_alone", "chief_officer"),
        ("executive", 0),
    ),
}


def _build_aliases() -> dict[str, tuple[str, ...]]:
    aliases: dict[str, tuple[str, ...]] = {}
    for concepts, surfaces in _SURFACES.items():
        target = tuple(concepts.split())
        for surface in surfaces.split():
            aliases.setdefault(surface, target)
        if len(target) == 1:
            aliases.setdefault(target[0], target)  # a concept name is a surface form of itself
    return aliases


_ALIASES: dict[str, tuple[str, ...]] = _build_aliases()
# Token length caps (exact, not heuristic): a typo is within two letters of a vocabulary word's length,
# a compound is a known prefix, a linking "s"/"n" and a head. Longer tokens cannot match either search.
_LONGEST_WORD = max(len(w) for w in (*_ALIASES, *_COMPOUND_ONLY_PREFIXES))
_MAX_TYPO_TOKEN = _LONGEST_WORD + 2
_MAX_COMPOUND_TOKEN = 2 * _LONGEST_WORD + 1
_PHRASE_TABLE: dict[tuple[str, ...], tuple[str, ...]] = {
    tuple(k.split()): tuple(v.split()) for k, v in _PHRASES.items()
}
_MAX_PHRASE = max(len(k) for k in _PHRASE_TABLE)

# Whole (normalised) titles that are placeholders. Most would parse to unknown anyway; listing them
# documents intent and keeps e.g. "Other" from becoming the department "other".
_JUNK: frozenset[str] = frozenset(
    {"n a", "na", "none", "null", "nil", "nan", "unknown", "test", "tbd", "tba", "x", "xx", "xxx",
     "asdf", "asd", "qwerty", "other", "others", "self", "me", "no", "yes", "not applicable",
     "not provided", "not specified", "no title"}
)

# Japanese titles are not split into words ("営業部長" = sales + department head), so they are scanned
# for these substrings instead; the demo CRM generates them for Japanese accounts. Kept apart from
# _ALIASES so the typo matcher never sees them.
_CJK_SURFACES: dict[str, str] = {
    "代表取締役社長": "ceo",
    "代表取締役": "ceo",
    "社長": "ceo",
    "取締役": "board",
    "執行役員": "vp",
    "本部長": "division_head",
    "部長": "director",
    "次長": "deputy director",
    "課長": "manager",
    "係長": "team_lead",
    "主任": "senior",
    "担当": "employee",
    "社員": "employee",
    "インターン": "intern",
    "営業": "sales",
    "マーケティング": "marketing",
    "情報システム": "it",
    "人事": "hr",
    "経理": "finance",
    "財務": "finance",
    "購買": "purchasing",
    "開発": "development",
    "エンジニア": "engineer",
    "法務": "legal",
    "カスタマーサクセス": "customer_success",
    "サポート": "support",
    "製品": "product",
    "プロダクト": "product",
}


# ---------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------

_DOTTED = re.compile(r"\b(?:[a-z]\.){2,}")  # "v.p." "i.t." "c.e.o."
_R_AND_D = re.compile(r"\br\s*&\s*d\b")
_NON_WORD = re.compile(r"[\W_]+")
_MAX_TITLE_CHARS = 1_000  # longer input is junk or an attack; read only this much (see module doc)


def _normalise(title: object) -> str:
    """Accent-free, case-folded, punctuation-free, single-spaced; "" for missing values."""
    if title is None or title is pd.NA or (isinstance(title, float) and title != title):
        return ""
    text = str(title)
    if len(text) > _MAX_TITLE_CHARS:
        end = _MAX_TITLE_CHARS
        # Drop a word the limit cut in two: its first letters could read as another word.
        while end and text[end].isalnum() and text[end - 1].isalnum():
            end -= 1
        text = text[:end]
    if not text.isascii():
        # NFKD splits "é" into "e" + a combining accent and maps full-width/ligature forms to ASCII.
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.casefold()
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _R_AND_D.sub(" rnd ", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


# Keys go through the same normaliser as titles (NFKD drops the dakuten: "ジ" -> "シ").
_CJK: dict[str, tuple[str, ...]] = {_normalise(k): tuple(v.split()) for k, v in _CJK_SURFACES.items()}
_CJK_MAX = max(len(k) for k in _CJK)


def _scan_cjk(token: str) -> tuple[str, ...]:
    """Concepts found in an unsegmented Japanese token, longest match first at each position."""
    out: list[str] = []
    i = 0
    while i < len(token):
        for size in range(min(_CJK_MAX, len(token) - i), 0, -1):
            concepts = _CJK.get(token[i : i + size])
            if concepts is not None:
                out.extend(concepts)
                i += size
                break
        else:
            i += 1
    return tuple(out)


# ---------------------------------------------------------------------------------------------------
# Token canonicalisation: exact alias -> Japanese scan -> compound split -> typo match
# ---------------------------------------------------------------------------------------------------


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (a transposition costs 1), cut off above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _max_typo_distance(word: str) -> int:
    # Two edits only on long words: on 8-letter words they already reach real words
    # ("analysis" -> "analysts").
    return 2 if len(word) >= 9 else 1


def _deletes(word: str, depth: int) -> set[str]:
    """Strings reachable from ``word`` by deleting up to ``depth`` characters (SymSpell).

    The first letter is never deleted: matches must share it, and two words that do can always be
    aligned first letter to first letter, so those deletions would only add work.
    """
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(1, len(w))}
        out |= frontier
    return out


@lru_cache(maxsize=1)
def _typo_index() -> dict[str, tuple[str, ...]]:
    """Deletion neighbourhood -> vocabulary words. Built on first use so importing stays cheap.

    Two words within edit distance d share a string reachable by <= d deletions from each, so a
    query only looks up its own deletions instead of comparing against the whole vocabulary.
    """
    index: dict[str, set[str]] = {}
    for word in _ALIASES:
        if len(word) >= 5 and word.isalpha():
            for d in _deletes(word, _max_typo_distance(word)):
                index.setdefault(d, set()).add(word)
    return {k: tuple(sorted(v)) for k, v in index.items()}


def _correct_typo(token: str) -> str | None:
    """The vocabulary word ``token`` is a typo of, or None when there is no unique close match."""
    if not 5 <= len(token) <= _MAX_TYPO_TOKEN or not token.isalpha() or token in _NEVER_CORRECT:
        return None
    index = _typo_index()
    limit = _max_typo_distance(token)
    candidates = {w for d in _deletes(token, limit) for w in index.get(d, ())}
    best: dict[tuple[str, ...], int] = {}
    best_word: dict[tuple[str, ...], str] = {}
    for word in candidates:
        # Same first letter: real typos rarely hit it, and it removes most accidental neighbours.
        if word[0] != token[0]:
            continue
        allowed = min(limit, _max_typo_distance(word))
        dist = _osa_distance(token, word, allowed)
        if dist <= allowed:
            target = _ALIASES[word]
            if dist < best.get(target, allowed + 1):
                best[target] = dist
                best_word[target] = word
    if not best:
        return None
    top = min(best.values())
    winners = [t for t, d in best.items() if d == top]
    # Two different concepts equally close: guessing would be a coin flip, so leave the token alone.
    return best_word[winners[0]] if len(winners) == 1 else None


def _split_compound(token: str) -> tuple[str, ...] | None:
    """German/Dutch compounds: "vertriebsleiter" -> sales + head, "afdelingshoofd" -> department + head."""
    if not 6 <= len(token) <= _MAX_COMPOUND_TOKEN:
        return None
    for size in _COMPOUND_HEAD_SIZES:
        head = token[-size:]
        if head not in _COMPOUND_HEADS or len(token) - size < 2:
            continue
        prefix = token[:-size]
        for candidate in (prefix, prefix[:-1] if prefix[-1] in "sn" else None):
            if not candidate:
                continue
            if candidate in _COMPOUND_ONLY_PREFIXES:
                return _COMPOUND_ONLY_PREFIXES[candidate] + _ALIASES[head]
            if candidate in _ALIASES and len(candidate) >= 2:
                return _ALIASES[candidate] + _ALIASES[head]
    return None


@lru_cache(maxsize=1 << 16)
def _canonical_token(token: str) -> tuple[str, ...]:
    """Concept tokens for one normalised token; unknown words are kept as-is (they break phrases)."""
    if token in _ALIASES:
        return _ALIASES[token]
    if not token.isascii() and any("\u3040" <= c <= "\u9fff" for c in token):  # kana and kanji
        return _scan_cjk(token)
    compound = _split_compound(token)
    if compound is not None:
        return compound
    fixed = _correct_typo(token)
    if fixed is not None:
        return _ALIASES[fixed]
    return (token,)


def _apply_phrases(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for size in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            replacement = _PHRASE_TABLE.get(tuple(tokens[i : i + size]))
            if replacement is not None:
                out.extend(replacement)
                i += size
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def _concepts(normalised: str) -> list[str]:
    raw = normalised.split()
    # "vise president", "vce president": short words are not typo-corrected in general, but next
    # to "president" a near-miss of "vice" is unambiguous.
    for i in range(len(raw) - 1):
        if (
            raw[i] not in _ALIASES
            and 3 <= len(raw[i]) <= 5
            and _canonical_token(raw[i + 1]) == ("president",)
            and _osa_distance(raw[i], "vice", 1) <= 1
        ):
            raw[i] = "vice"
    tokens: list[str] = []
    for tok in raw:
        if tok in _STOPWORDS:
            tokens.append(_LINK if tok in _TO_WORDS else "")
        else:
            tokens.extend(_canonical_token(tok))
    # "Executive Assistant to the CEO", "Assistant to the Director of Marketing": after an
    # assistant's "to/of" come the boss's rank words, which are not the lead's; the function stays.
    if _LINK in tokens:
        k = tokens.index(_LINK)
        if any(t in _ASSISTANT_WORDS for t in tokens[:k]):
            boss = tokens[k:]
            tokens = tokens[:k] + [t for t in boss if _RANK.get(t, -1) < _MANAGER and t not in _BOSS_WORDS]
    return _apply_phrases([t for t in tokens if t and t != _LINK])


# ---------------------------------------------------------------------------------------------------
# Seniority and department from concepts
# ---------------------------------------------------------------------------------------------------


def _resolve_context(concepts: list[str]) -> list[str]:
    """Replace words whose meaning depends on the rest of the title by unambiguous concepts."""
    others_ranked = any(_RANK.get(c, -1) >= _IC for c in concepts)
    has_chief, has_officer = "chief" in concepts, "officer" in concepts
    out: list[str] = []
    for i, concept in enumerate(concepts):
        if concept == "partner":
            # A bare "Partner" (of a firm, or next to "Founder") is an owner; after a function
            # ("Talent Acquisition Partner") or next to a lower rank ("Partner Manager") it is a role.
            function_before = any(_DEPARTMENT.get(c, ("", 0))[1] > 0 for c in concepts[:i])
            lower_rank = any(_IC <= _RANK.get(c, -1) < _C_LEVEL for c in concepts)
            out.append("partner_role" if lower_rank or function_before else "partner_owner")
        elif concept == "principal":
            out.append("principal_rank" if others_ranked else "principal_alone")
        elif concept == "chief":
            out.append("chief_officer" if has_officer else "chief_rank")
        elif concept == "officer":
            if not has_chief:
                out.append("officer")  # "Compliance Officer", "Marketing Officer" (UK): an ic
        elif concept == "staff":
            nxt = concepts[i + 1] if i + 1 < len(concepts) else ""
            if nxt in _STAFF_RANK_NOUNS:
                out.append("staff_rank")
        else:
            out.append(concept)
    return out


def _seniority(concepts: list[str]) -> int | None:
    """Highest rank among the concepts after modifiers, or None when the title names no rank."""
    ranks: list[int] = []
    pending_down: str | None = None
    intern = senior = junior = False
    for concept in concepts:
        if concept == "intern":
            intern = True
        elif concept == "senior":
            senior = True
        elif concept == "junior":
            junior = True
        elif concept in _DOWN_MODIFIERS:
            if pending_down is not None and _DOWN_MODIFIERS[pending_down] is not None:
                ranks.append(_DOWN_MODIFIERS[pending_down])  # two in a row: the first was a noun
            pending_down = concept
        elif concept == "adjoint":
            # Post-positive deputy ("Directeur Adjoint"): lowers the preceding rank.
            if ranks and ranks[-1] >= _MANAGER:
                ranks[-1] -= 1
        elif (rank := _RANK.get(concept)) is not None:
            if pending_down is not None and rank >= _MANAGER:
                rank -= 1
                pending_down = None
            ranks.append(rank)
    if pending_down is not None and _DOWN_MODIFIERS[pending_down] is not None:
        ranks.append(_DOWN_MODIFIERS[pending_down])  # "Sales Assistant": nothing ranked followed

    level = max(ranks) if ranks else None
    if senior and (level is None or level <= _IC):
        level = _SENIOR_IC
    if junior and (level is None or level == _SENIOR_IC):
        level = _IC
    if intern and (level is None or level < _DIRECTOR):
        level = _INTERN
    return level


def _department(concepts: list[str]) -> str | None:
    """Strongest department keyword; the first one among equals. Executive keywords have strength 0."""
    best: str | None = None
    best_strength = -1
    for concept in concepts:
        entry = _DEPARTMENT.get(concept)
        if entry is not None and entry[1] > best_strength:
            best, best_strength = entry
    return best


@lru_cache(maxsize=1 << 16)
def _parse_normalised(normalised: str) -> tuple[str, str]:
    if not normalised or normalised in _JUNK:
        return UNKNOWN, UNKNOWN
    concepts = _resolve_context(_concepts(normalised))
    level = _seniority(concepts)
    department = _department(concepts)
    return (_LEVEL_NAMES[level] if level is not None else UNKNOWN, department or UNKNOWN)


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def parse_title(title: str | None) -> tuple[str, str]:
    """(seniority, department) of one free-text title; "unknown" for either part it cannot tell.

    Seniority is a key of :data:`SENIORITY_LEVELS`, department one of :data:`DEPARTMENTS`.
    """
    return _parse_normalised(_normalise(title))


def parse_titles(titles: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`parse_title` for a Series of titles, indexed like ``titles``.

    Columns: ``seniority`` (string), ``seniority_level`` (float, NaN when unknown), ``department``
    (string) and ``is_decision_maker`` (bool, director and above). Python work is per distinct value:
    titles repeat heavily in CRM data, so a million rows cost one factorise plus a few array takes.
    The input is not modified.
    """
    codes, uniques = pd.factorize(titles, use_na_sentinel=True)
    # One extra slot, left "unknown", for missing values: code -1 indexes the last element.
    seniority_idx = np.full(len(uniques) + 1, _SENIORITY_INDEX[UNKNOWN], dtype=np.int8)
    department_idx = np.full(len(uniques) + 1, _DEPARTMENT_INDEX[UNKNOWN], dtype=np.int8)
    # Distinct raw values can still share a normal form ("VP Sales" / "vp, sales"): parse it once.
    by_normal_form: dict[str, tuple[int, int]] = {}
    for i, raw in enumerate(uniques):
        normal_form = _normalise(raw)
        parsed = by_normal_form.get(normal_form)
        if parsed is None:
            seniority, department = _parse_normalised(normal_form)
            parsed = by_normal_form[normal_form] = (
                _SENIORITY_INDEX[seniority],
                _DEPARTMENT_INDEX[department],
            )
        seniority_idx[i], department_idx[i] = parsed

    row_seniority = seniority_idx[codes]
    row_level = _LEVEL_BY_INDEX[row_seniority]
    return pd.DataFrame(
        {
            "seniority": _string_column(_SENIORITY_LABELS, row_seniority),
            "seniority_level": row_level,
            "department": _string_column(_DEPARTMENT_LABELS, department_idx[codes]),
            "is_decision_maker": row_level >= DECISION_MAKER_MIN_LEVEL,  # NaN compares False
        },
        index=titles.index,
    )


_SENIORITY_LABELS: tuple[str, ...] = (*SENIORITY_LEVELS, UNKNOWN)
_SENIORITY_INDEX: dict[str, int] = {label: i for i, label in enumerate(_SENIORITY_LABELS)}
_LEVEL_BY_INDEX: np.ndarray = np.array([*map(float, SENIORITY_LEVELS.values()), np.nan])
_DEPARTMENT_LABELS: tuple[str, ...] = (*DEPARTMENTS, UNKNOWN)
_DEPARTMENT_INDEX: dict[str, int] = {label: i for i, label in enumerate(_DEPARTMENT_LABELS)}


def _string_column(labels: tuple[str, ...], idx: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A "string" array of ``labels[idx]``; Arrow's take is ~5x faster than boxing Python objects."""
    return pd.array(pa.array(labels, pa.large_string()).take(pa.array(idx)), dtype="string")
