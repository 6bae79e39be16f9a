"""`leadscore promote`: move the `champion` alias to the challenger only if it passes the declared rule.

The rule (params `promote:`), evaluated on the same held-out rows for both versions:
  * auc_gain: challenger AUC >= champion AUC + min_auc_gain;
  * ece: challenger ECE <= champion ECE + max_ece_increase;
  * significance: paired-bootstrap p-value of the AUC difference <= max_p_value.
Every failed condition is named; nothing moves unless all pass. Never promote blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import tracking
from pipeline.compare import compare_versions
from pipeline.params import PromoteParams
from pipeline.tracking import CHALLENGER, CHAMPION


class PromotionError(RuntimeError):
    """The registry has no champion or no challenger to compare."""


@dataclass(frozen=True)
class RuleCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    promoted: bool
    champion_version: str
    challenger_version: str
    conditions: tuple[RuleCheck, ...]
    dry_run: bool = False

    @property
    def failed(self) -> list[RuleCheck]:
        return [c for c in self.conditions if not c.passed]

    def message(self) -> str:
        if self.dry_run and not self.failed:
            head = f"dry run: version {self.challenger_version} passes the rule and would become {CHAMPION}"
        else:
            head = (f"promoted version {self.challenger_version} to {CHAMPION} (was {self.champion_version})"
                    if self.promoted else
                    f"refused to promote version {self.challenger_version} over {CHAMPION} {self.champion_version}: "
                    f"failed {', '.join(c.name for c in self.failed)}")
        return "\n".join([head] + [f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.conditions])


def evaluate_rule(champion: dict, challenger: dict, p_value: float, rule: PromoteParams) -> tuple[RuleCheck, ...]:
    """The rule's conditions from both versions' held-out metrics ({roc_auc, ece}) and the paired p-value."""
    need_auc = champion["roc_auc"] + rule.min_auc_gain
    max_ece = champion["ece"] + rule.max_ece_increase
    return (
        RuleCheck("auc_gain", challenger["roc_auc"] >= need_auc,
                  f"challenger AUC {challenger['roc_auc']:.4f} vs required >= {need_auc:.4f} "
                  f"(champion {champion['roc_auc']:.4f} + {rule.min_auc_gain})"),
        RuleCheck("ece", challenger["ece"] <= max_ece,
                  f"challenger ECE {challenger['ece']:.4f} vs allowed <= {max_ece:.4f} "
                  f"(champion {champion['ece']:.4f} + {rule.max_ece_increase})"),
        RuleCheck("significance", p_value <= rule.max_p_value,
                  f"paired bootstrap p = {p_value:.3g} vs required <= {rule.max_p_value}"),
    )


def promote(registered_model: str, features_path: Path, rule: PromoteParams, dry_run: bool = False) -> Decision:
    tracking.configure()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    versions = {}
    for alias in (CHAMPION, CHALLENGER):
        try:
            versions[alias] = client.get_model_version_by_alias(registered_model, alias).version
        except MlflowException:
            raise PromotionError(f"registered model {registered_model!r} has no {alias!r} version: nothing to promote"
                                 + (" (train a new version first)" if alias == CHALLENGER else "")) from None
    if versions[CHAMPION] == versions[CHALLENGER]:
        raise PromotionError(f"{registered_model}: champion and challenger are the same version {versions[CHAMPION]}")
    result = compare_versions(f"models:/{registered_model}/{versions[CHAMPION]}",
                     f"models:/{registered_model}/{versions[CHALLENGER]}", features_path, n_boot=rule.n_bootstrap)
    by_metric = result.table.set_index("metric")
    champion = {"roc_auc": by_metric.loc["roc_auc", "a"], "ece": by_metric.loc["ece", "a"]}
    challenger = {"roc_auc": by_metric.loc["roc_auc", "b"], "ece": by_metric.loc["ece", "b"]}
    conditions = evaluate_rule(champion, challenger, result.paired_auc["p_value"], rule)
    ok = all(c.passed for c in conditions)
    if ok and not dry_run:
        client.set_registered_model_alias(registered_model, CHAMPION, versions[CHALLENGER])
        client.delete_registered_model_alias(registered_model, CHALLENGER)
        client.set_model_version_tag(registered_model, versions[CHALLENGER], "promoted_over", versions[CHAMPION])
    return Decision(ok and not dry_run, versions[CHAMPION], versions[CHALLENGER], conditions, dry_run)
