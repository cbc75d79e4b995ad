"""Every failure as `application/problem+json` (RFC 9457), with a `detail` a person reads and,
for validation, the fields at fault. Nothing here is a traceback."""
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

from billing.rules import Refused
from starter.access import NotFound
from starter.service import NoAnswer

PROBLEM = "application/problem+json"
log = logging.getLogger("billing.api")


class Unauthorized(Exception):
    pass


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
                        status_code=status, media_type=PROBLEM,
                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


# Exceptions whose message is the sentence to give, and the status they answer with. A
# NotFound is also a Refused: handlers are looked up by the exception's own class first.
ANSWERED: list[tuple[type[Exception], int, str]] = [
    (Unauthorized, 401, "Unauthorized"), (NotFound, 404, "Not found"), (Refused, 422, "Refused"),
    (NoAnswer, 503, "No answer in time"),
]


def _answer_with(status: int, title: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return problem(status, title, str(exc))
    return handler


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                   "message": str(e["msg"]).removeprefix("Value error, ")} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, "The request is not valid", detail, errors=errors)

    for exc_type, status, title in ANSWERED:
        app.add_exception_handler(exc_type, _answer_with(status, title))

    @app.exception_handler(RPCError)
    async def temporal_down(_: Request, exc: RPCError) -> JSONResponse:
        log.error("Temporal call failed: %s", exc)
        return problem(503, "Service unavailable", "the workflow service cannot be reached; try again shortly")

    @app.exception_handler(HTTPException)
    async def http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(500, "Internal error", "something went wrong on our side; it is logged")
