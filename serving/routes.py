"""The routes beside BentoML's POST APIs, in a small Starlette app mounted on the service: GET /metadata, the
OpenAPI document /docs.json (ours, see serving/openapi.py; it takes precedence over BentoML's), GET /docs
(redirected to BentoML's Swagger UI at /) and the WebSocket /stream/ws."""
from __future__ import annotations

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute

from .openapi import document
from .stream_ws import stream_ws


async def _metadata(request: Request) -> JSONResponse:
    return JSONResponse(bentoml.get_current_service().metadata())


async def _docs(request: Request) -> RedirectResponse:
    return RedirectResponse("/")  # BentoML 1.4 serves its Swagger UI at / and has no /docs


async def _openapi(request: Request) -> JSONResponse:
    from .service import SETTINGS, EEG2Arm  # the service module imports this one

    return JSONResponse(document(EEG2Arm.openapi_spec.asdict(), bentoml.get_current_service().config, SETTINGS))


routes_app = Starlette(routes=[
    Route("/metadata", _metadata, methods=["GET"]),
    Route("/docs", _docs, methods=["GET"]),
    Route("/docs.json", _openapi, methods=["GET"]),
    WebSocketRoute("/stream/ws", stream_ws),
])
