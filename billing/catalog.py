"""The plan catalogue (R1): data an operator edits, validated before anything uses it."""
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from billing.intervals import Interval, Line, Product, lines_occupied
from billing.money import Cents

DEFAULT_CATALOG_PATH = Path(__file__).with_name("default_catalog.yaml")

# Limits: refuse at load what the store or Stripe could not hold, not when a client subscribes.
MAX_CODE_LENGTH = 64  # plan codes are stored in String(64) columns (store/models.py)
MAX_TEXT_LENGTH = 200  # a plan name goes into notice subjects; a feature is one short line
MAX_FEATURES = 50  # a plan page lists its features; more is a mistake in the file
MAX_AMOUNT = 99_999_999  # cents: Stripe's largest EUR amount is 999,999.99, a bigger price is never charged
MAX_QUOTA = 2_147_483_647  # quotas are stored in PostgreSQL `integer` columns

Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]
Quota = Annotated[int, Field(ge=0, le=MAX_QUOTA, strict=True)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_LENGTH)]


class CatalogError(ValueError):
    """The catalogue file is unusable; the message names the plan and the field."""


class UnknownPlan(LookupError):
    def __init__(self, code: str) -> None:
        super().__init__(f"there is no plan '{code}' in the catalogue")
        self.code = code


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=MAX_CODE_LENGTH, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    product: Product
    name: Text
    features: Annotated[tuple[Text, ...], Field(max_length=MAX_FEATURES)] = ()
    prices: dict[Interval, Amount]
    quota: dict[Interval, Quota]
    overage: Amount = 0

    @model_validator(mode="after")
    def _intervals_agree(self) -> "Plan":
        if not self.prices:
            raise ValueError("prices: the plan offers no interval (give monthly and/or annual)")
        missing = [i.value for i in self.prices if i not in self.quota]
        if missing:
            raise ValueError(f"quota: missing interval {', '.join(missing)} (0 means not metered)")
        extra = [i.value for i in self.quota if i not in self.prices]
        if extra:
            raise ValueError(f"quota: interval {', '.join(extra)} has no price")
        return self

    @property
    def lines(self) -> tuple[Line, ...]:
        return lines_occupied(self.product)

    def offers(self, interval: Interval) -> bool:
        return interval in self.prices

    def price(self, interval: Interval) -> Cents:
        return self.prices[interval]

    def quota_for(self, interval: Interval) -> int:
        return self.quota[interval]


class Catalog:
    def __init__(self, plans: list[Plan]) -> None:
        self._plans = {p.code: p for p in plans}

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._plans.values())

    def plan(self, code: str) -> Plan:
        try:
            return self._plans[code]
        except KeyError:
            raise UnknownPlan(code) from None


def parse_catalog(data: Any) -> Catalog:
    """Validate raw catalogue data (a list of plans); raise CatalogError naming plan and field."""
    if not isinstance(data, list) or not data:
        raise CatalogError("the catalogue must be a non-empty list of plans")
    plans: list[Plan] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data):
        label = _plan_label(raw, index)
        try:
            plan = Plan.model_validate(raw)
        except ValidationError as exc:
            raise CatalogError(f"{label}: {_describe(exc)}") from None
        if plan.code in seen:
            raise CatalogError(f"{label}: code: duplicate of plan #{seen[plan.code] + 1}")
        seen[plan.code] = index
        plans.append(plan)
    return Catalog(plans)


def load_catalog(path: Path | str = DEFAULT_CATALOG_PATH) -> Catalog:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read catalogue {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalogue {path} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "plans" in data:
        data = data["plans"]
    return parse_catalog(data)


def _plan_label(raw: Any, index: int) -> str:
    code = raw.get("code") if isinstance(raw, dict) else None
    return f"plan '{code}' (#{index + 1})" if code else f"plan #{index + 1}"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "plan"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)
