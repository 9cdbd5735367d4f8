"""A JSON parser that refuses bodies over INTAKE_MAX_BODY_BYTES before reading them whole."""
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "payload_too_large"


def max_body_bytes() -> int:
    return int(getattr(settings, "INTAKE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


class LimitedJSONParser(JSONParser):
    """Parse JSON bodies of at most INTAKE_MAX_BODY_BYTES; larger ones get 413 with the limit named."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared_length = int(declared) if declared else 0
        except ValueError:
            declared_length = 0
        if declared_length > limit:
            raise PayloadTooLarge(self._message(limit))
        # Read one byte more than allowed: a body without a (truthful) Content-Length is still bounded.
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(self._message(limit))
        from io import BytesIO

        return super().parse(BytesIO(body), media_type, parser_context)

    @staticmethod
    def _message(limit: int) -> str:
        return _("The request body is larger than %(limit)d bytes.") % {"limit": limit}
