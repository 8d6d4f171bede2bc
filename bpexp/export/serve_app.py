"""The app ``bpexp serve`` runs: MLflow's own scoring server, with one-line error bodies.

``uvicorn --factory bpexp.export.serve_app:create_app`` builds it in each worker
from the local model directory named by ``BPEXP_SERVE_MODEL``. Everything a
client sees on success is MLflow's (``/invocations`` with every request format
MLflow accepts, ``/ping``, ``/health``, ``/version``): the app is
``mlflow.pyfunc.scoring_server.init(model)`` wrapped in :class:`OneLineErrors`,
which only touches ``/invocations`` answers with a 4xx JSON body (see
:mod:`bpexp.export.serve_errors`). A ``stack_trace`` MLflow put in a body goes
to the server's log instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

from bpexp.export.serve_errors import ServedModel, normalise_error

MODEL_ENV = "BPEXP_SERVE_MODEL"  # the local model directory to serve

_log = logging.getLogger(__name__)


def create_app():
    """The ASGI app for the model directory in ``$BPEXP_SERVE_MODEL`` (uvicorn's ``--factory`` target)."""
    from mlflow.pyfunc import scoring_server

    path = os.environ.get(MODEL_ENV)
    if not path:
        raise RuntimeError(f"{MODEL_ENV} is not set: start the server with bpexp serve")
    pyfunc = scoring_server.load_model_with_mlflow_config(path)
    return OneLineErrors(scoring_server.init(pyfunc), ServedModel.from_pyfunc(pyfunc))


class OneLineErrors:
    """ASGI middleware: a 4xx JSON answer of ``/invocations`` becomes :func:`normalise_error`'s.

    The request body is read once and replayed to the inner app; the answer is
    held back until complete (MLflow builds it whole anyway), and rewritten only
    when its status is 4xx and its body a JSON object with a ``message``.
    """

    def __init__(self, app, served: ServedModel):
        self.app = app
        self.served = served

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        if more is not None:  # the client went away before sending the whole body
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start, parts = None, []

        async def hold(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._answer(start, b"".join(parts), body, scope, send)

        await self.app(scope, replay, hold)

    async def _answer(self, start, answer: bytes, body: bytes, scope, send) -> None:
        status = start["status"]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if 400 <= status < 500:
            answer = await asyncio.to_thread(self._rewrite, answer, body, _header(scope, b"content-type"))
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    def _rewrite(self, answer: bytes, body: bytes, content_type: str | None) -> bytes:
        try:
            parsed = json.loads(answer)
        except ValueError:
            return answer  # MLflow's plain-text answers (an unsupported content type) are one line already
        if not isinstance(parsed, dict) or "message" not in parsed:
            return answer
        try:
            fixed, found = normalise_error(parsed, body, content_type, self.served)
        except Exception:  # noqa: BLE001 - never lose the answer: MLflow's, without the stack trace
            _log.exception("could not rewrite an error answer; sending MLflow's")
            fixed, found = {k: v for k, v in parsed.items() if k != "stack_trace"}, False
            fixed["message"] = " ".join(str(fixed["message"]).split())[:500]
        if parsed.get("stack_trace") and not found:
            # bpexp's checks found nothing: the trace may be the only clue, and it belongs in the log.
            _log.warning("request refused: %s\n%s", fixed["message"], parsed["stack_trace"])
        return json.dumps(fixed).encode()


async def _read_body(receive) -> tuple[bytes, object]:
    """The whole request body, and None; or what was read and the disconnect message."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), None


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
