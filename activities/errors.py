"""Which errors an activity must not retry (R11's last paragraph, issue: no workflow stalls).

An outage (database unreachable, Stripe down) is retried until it passes. An error that the
same request will meet again however often it is retried — a constraint violated, a value
the column cannot hold — is raised as a non-retryable `ApplicationError` of type
`UNRECOVERABLE`: the workflow alerts the operator and goes on instead of waiting for ever.
"""
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DataError, IntegrityError, NoResultFound
from temporalio.exceptions import ApplicationError

UNRECOVERABLE = "Unrecoverable"
P = ParamSpec("P")
R = TypeVar("R")


def unrecoverable_errors_classified(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except NoResultFound as exc:  # a row this step needs is missing: it will not appear by itself
            raise ApplicationError(f"NoResultFound: {exc}", type=UNRECOVERABLE, non_retryable=True) from None
        except (IntegrityError, DataError) as exc:
            # The first line of the driver's message names the constraint or the column.
            detail = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
            raise ApplicationError(f"{type(exc).__name__}: {detail}", type=UNRECOVERABLE,
                                   non_retryable=True) from None
    return wrapper
