"""The scenario format of `simulate` (firms, clients, catalogue, dated steps) and its date shift.

Scenario dates may be in the past; the time-skipping server's clock starts at the real now
and only moves forward. So the whole scenario is moved into the future by whole blocks of 28
years (which keep every weekday and leap year of 1901–2099 in place) and every date of the
report is moved back by the same amount.
"""
from collections import Counter
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

VERBS = (
    "subscribe", "usage", "change_plan", "switch_interval", "cancel", "reactivate", "cancel_now",
    "stop_paying", "take_over", "update_card",
)
BLOCK_YEARS = 28

# Firms and clients go into String(64) ids and String(200) names (store/models.py).
PartyId = Annotated[str, Field(min_length=1, max_length=64)]
PartyName = Annotated[str, Field(min_length=1, max_length=200)]


class ScenarioFirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: PartyId
    name: PartyName
    card: str | None = None


class ScenarioClient(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: PartyId
    name: PartyName
    firm: str
    card: str | None = None


class Step(BaseModel):
    """`{at: 2025-09-01, subscribe: {...}}` read as at + verb + arguments."""

    at: date
    verb: str
    args: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _split_verb(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "verb" in raw:
            return raw
        verbs = [k for k in raw if k != "at"]
        if len(verbs) != 1 or verbs[0] not in VERBS:
            raise ValueError(f"a step has `at` and one verb of {', '.join(VERBS)}; got {verbs}")
        args = raw[verbs[0]]
        return {"at": raw.get("at"), "verb": verbs[0], "args": args if isinstance(args, dict) else {}}


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog: list[dict[str, Any]] | None = None
    firms: list[ScenarioFirm] = []
    clients: list[ScenarioClient] = []
    steps: list[Step] = []
    until: date

    @model_validator(mode="after")
    def _parties_fit_the_store(self) -> "Scenario":
        # These would crash the run in the database; a step naming an unknown client is a
        # scenario of its own (the system refuses it and the report says so), so it stays.
        for kind, ids in (("firms", [f.id for f in self.firms]), ("clients", [c.id for c in self.clients])):
            twice = [i for i, n in Counter(ids).items() if n > 1]
            if twice:
                raise ValueError(f"{kind}: the id '{twice[0]}' is declared twice")
        firms = {f.id for f in self.firms}
        for client in self.clients:
            if client.firm not in firms:
                raise ValueError(f"clients: client '{client.id}' names firm '{client.firm}', "
                                 "which is not among `firms`")
        return self

    @model_validator(mode="after")
    def _dates_in_range(self) -> "Scenario":
        for d in [self.until, *(s.at for s in self.steps)]:
            if not date(1901, 1, 1) <= d <= date(2099, 12, 31):
                raise ValueError(f"dates must lie between 1901-01-01 and 2099-12-31, not {d}")
        if any(s.at > self.until for s in self.steps):
            raise ValueError("a step is dated after `until`")
        if [s.at for s in self.steps] != sorted(s.at for s in self.steps):
            raise ValueError("steps must be in date order")
        return self

    @property
    def first_date(self) -> date:
        return min([s.at for s in self.steps] + [self.until])


def shift_years(first: date, today: date) -> int:
    """The smallest whole number of 28-year blocks that puts `first` after `today`."""
    years = 0
    while first.replace(year=first.year + years) <= today:
        years += BLOCK_YEARS
    return years


def shift(day: date, years: int) -> date:
    # Exact for 1901–2099 (+/- 28 years keeps the leap year), and Feb 29 maps to Feb 29.
    return day.replace(year=day.year + years)
