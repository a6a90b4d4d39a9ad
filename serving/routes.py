"""The routes beside BentoML's POST APIs, in a small Starlette app the service mounts at / (`@bentoml.asgi_app`):
GET /metadata, the OpenAPI document /docs.json (ours, see serving/openapi.py; it takes precedence over BentoML's),
GET /docs (redirected to BentoML's Swagger UI at /) and the WebSocket /stream/ws (WEBSOCKETS); GET /stream/ws
without the upgrade is 426. (An unknown HTTP path is BentoML's router's 404, which serving/errors.py words as
NOT_FOUND.)

    app = make_routes(metadata=service_metadata, openapi=openapi_document)   # each: () -> dict
"""
from __future__ import annotations

from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from .stream_ws import stream_ws

UPGRADE = "/stream/ws is a WebSocket: connect with ws:// (or wss://) and the Upgrade header"
WEBSOCKETS = frozenset({"/stream/ws"})


def make_routes(metadata: Callable[[], dict[str, Any]], openapi: Callable[[], dict[str, Any]]) -> Starlette:
    async def metadata_route(request: Request) -> Response:
        return JSONResponse(metadata())

    async def openapi_route(request: Request) -> Response:
        return JSONResponse(openapi())

    async def docs(request: Request) -> Response:
        return RedirectResponse("/")  # BentoML 1.4 serves its Swagger UI at / and has no /docs

    async def upgrade_required(request: Request) -> Response:
        return JSONResponse({"error": UPGRADE}, status_code=426,
                            headers={"upgrade": "websocket", "connection": "upgrade"})

    return Starlette(routes=[
        Route("/metadata", metadata_route, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs.json", openapi_route, methods=["GET"]),
        WebSocketRoute("/stream/ws", stream_ws),
        Route("/stream/ws", upgrade_required, methods=["GET"]),
    ])
