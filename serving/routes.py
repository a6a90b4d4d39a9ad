"""The routes beside BentoML's POST APIs, in a small Starlette app the service mounts at / (`@bentoml.asgi_app`):
GET /metadata, the OpenAPI document /docs.json (ours, see serving/openapi.py; it takes precedence over BentoML's),
GET /docs (redirected to BentoML's Swagger UI at /) and the WebSocket /stream/ws; GET /stream/ws without the
upgrade is 426, and a WebSocket to any other path is refused with 404. (An unknown HTTP path is BentoML's router's
404, which serving/errors.py words as NOT_FOUND.)

    app = make_routes(metadata=service_metadata, openapi=openapi_document)   # each: () -> dict
"""
from __future__ import annotations

from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .errors import NOT_FOUND
from .stream_ws import refuse, stream_ws

UPGRADE = "/stream/ws is a WebSocket: connect with ws:// (or wss://) and the Upgrade header"


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

    async def unknown_websocket(ws: WebSocket) -> None:
        await refuse(ws, 404, NOT_FOUND)

    return Starlette(routes=[
        Route("/metadata", metadata_route, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs.json", openapi_route, methods=["GET"]),
        WebSocketRoute("/stream/ws", stream_ws),
        Route("/stream/ws", upgrade_required, methods=["GET"]),
        WebSocketRoute("/{path:path}", unknown_websocket),
    ])
