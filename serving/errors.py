"""The 4xx answers BentoML has no exception for. BentoML 1.4 sends a 4xx's message to the client but replaces a
5xx's with a generic one, so every refusal a client can act on is a 4xx."""
from http import HTTPStatus

from bentoml.exceptions import BentoMLException


class PayloadTooLarge(BentoMLException):
    """413: the request is over one of the server's limits (the message names it)."""

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Conflict(BentoMLException):
    """409: the route does not work in this server's configuration (HTTP stream sessions with several workers)."""

    error_code = HTTPStatus.CONFLICT


class TooManyRequests(BentoMLException):
    """429: all stream sessions are open."""

    error_code = HTTPStatus.TOO_MANY_REQUESTS
