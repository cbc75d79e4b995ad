"""`Idempotency-Key` on every POST and PUT: the same key with the same body replays the first
answer and does nothing twice; with another body it is refused (422). Keys are scoped to the
caller's API key. A request still running under a key answers 409; a 5xx frees the key."""
import hashlib
import json
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from starter.api_errors import PROBLEM, problem
from store.models import IdempotencyRecord

IN_PROGRESS = 0
MAX_KEY_LENGTH = 200


class IdempotencyMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        super().__init__(app)
        self._sessions = sessions

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None or request.method not in ("POST", "PUT") or not request.url.path.startswith("/v1/"):
            return await call_next(request)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            return problem(422, "The request is not valid", f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters")
        authorization = request.headers.get("authorization", "")
        caller = "k:" + hashlib.sha256(authorization.encode()).hexdigest()
        body = await request.body()
        digest = hashlib.sha256(b"\n".join([request.method.encode(), request.url.path.encode(), body])).hexdigest()
        claimed = self._claim(caller, key, digest)
        if claimed is not None:
            return claimed
        response = await call_next(request)
        content = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        self._settle(caller, key, response.status_code, content)
        return Response(content, status_code=response.status_code, headers=dict(response.headers),
                        media_type=response.media_type)

    def _claim(self, caller: str, key: str, digest: str) -> Response | None:
        """Claim the key for this request, or answer from the record already there."""
        with self._sessions.begin() as session:
            inserted = session.execute(
                pg_insert(IdempotencyRecord)
                .values(caller=caller, key=key, request_hash=digest, status_code=IN_PROGRESS, response={})
                .on_conflict_do_nothing().returning(IdempotencyRecord.key)
            ).first()
            if inserted is not None:
                return None
            record = session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.caller == caller, IdempotencyRecord.key == key)
            ).one()
            if record.request_hash != digest:
                return problem(422, "Idempotency-Key reused",
                               "this Idempotency-Key was used with another request: use a new key for a new request")
            if record.status_code == IN_PROGRESS:
                return problem(409, "In progress", "a request with this Idempotency-Key is still running; ask again")
            return Response(json.dumps(record.response), status_code=record.status_code,
                            media_type=PROBLEM if record.status_code >= 400 else "application/json",
                            headers={"Idempotent-Replayed": "true"})

    def _settle(self, caller: str, key: str, status: int, content: bytes) -> None:
        with self._sessions.begin() as session:
            where = (IdempotencyRecord.caller == caller, IdempotencyRecord.key == key)
            if status >= 500:  # not an answer: the key is free for a retry
                session.execute(delete(IdempotencyRecord).where(*where))
                return
            session.execute(update(IdempotencyRecord).where(*where).values(
                status_code=status, response=json.loads(content) if content else {}))
