"""Who acts (R15): a firm, through its API key, or the platform operator.

The service layer asks `visible_firm` before touching a client: a firm sees only the clients
it manages, and another firm's client is answered exactly like one that does not exist.
"""
from dataclasses import dataclass

from billing.rules import Refused


class NotFound(Refused):
    """Nothing by that id for this caller (whether it does not exist or is another firm's)."""


@dataclass(frozen=True)
class Actor:
    firm_id: str | None  # None: the platform operator

    @property
    def label(self) -> str:
        return "operator" if self.firm_id is None else f"firm:{self.firm_id}"

    def may_see(self, firm_id: str) -> bool:
        return self.firm_id is None or self.firm_id == firm_id


OPERATOR = Actor(firm_id=None)


def firm(firm_id: str) -> Actor:
    return Actor(firm_id=firm_id)
