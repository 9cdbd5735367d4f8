"""The intake's JSON parser: every client mistake is a 400 or 413 with a JSON body, never a 500.

Checked in this order, each before the next step can hurt:
- size: the declared Content-Length, then at most INTAKE_MAX_BODY_BYTES + 1 bytes read, so a 10 MB body is a
  413 at once. (It is not a subclass of DRF's JSONParser on purpose: DRF reads `request.body` whole for those,
  which Django refuses above DATA_UPLOAD_MAX_MEMORY_SIZE with its HTML 400 page.)
- encoding: UTF-8 only;
- nesting: brackets outside strings are counted before `json.loads` sees the text, so 1,000 nested arrays
  are a 400 naming the limit, not a RecursionError;
- content: NUL characters (PostgreSQL cannot store them) and lone surrogates such as "\\ud800" (not text,
  they cannot be encoded to UTF-8) are refused in any key or value, and the answer names the field.
"""
from __future__ import annotations

import codecs
import json
import re
from itertools import accumulate

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import renderers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Deeper than any lead needs (custom fields a few levels deep), far below Python's recursion limit.
DEFAULT_MAX_JSON_DEPTH = 32

# A JSON string literal, escapes included: what is inside one is text, not structure.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# NUL, and UTF-16 surrogates left alone (a valid pair is decoded to one character by json.loads).
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "payload_too_large"


def max_body_bytes() -> int:
    return int(getattr(settings, "INTAKE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def max_json_depth() -> int:
    return int(getattr(settings, "INTAKE_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH))


def json_depth(text: str) -> int:
    """Return how deep arrays and objects nest in a JSON text, without parsing it (brackets in strings ignored)."""
    steps = (_DEPTH_STEP[bracket] for bracket in _BRACKETS.findall(_STRING.sub("", text)))
    return max(accumulate(steps), default=0)


def _field_path(path: tuple) -> str:
    """Return "custom_fields.note" for a value's place in the body; bad characters of keys shown as U+FFFD."""
    return ".".join(_FORBIDDEN.sub("\ufffd", str(part)) for part in path) or "non_field_errors"


def forbidden_text(value, path: tuple = ()) -> str | None:
    """Return the path of the first key or string holding a NUL or a lone surrogate, or None."""
    # Iterative, so a value nested to the depth limit never costs recursion.
    pending = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            if _FORBIDDEN.search(item):
                return _field_path(where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _FORBIDDEN.search(key):
                    return _field_path((*where, key))
                pending.append(((*where, key), child))
        elif isinstance(item, list):
            pending.extend(((*where, index), child) for index, child in enumerate(item))
    return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class LimitedJSONParser(BaseParser):
    """Parse JSON bodies within the size and depth limits whose strings are text; refuse the rest clearly."""

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = max_body_bytes()
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared_length = int(declared) if declared else 0
        except ValueError:
            declared_length = 0
        if declared_length > limit:
            raise PayloadTooLarge(self._too_large(limit))
        # Read one byte more than allowed: a body without a (truthful) Content-Length is still bounded.
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(self._too_large(limit))

        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(body, encoding)
        except (UnicodeDecodeError, LookupError) as error:
            raise ParseError(_("The request body is not valid UTF-8 text: %(error)s") % {"error": error}) from None
        depth_limit = max_json_depth()
        if json_depth(text) > depth_limit:
            raise ParseError(
                _("JSON nested deeper than %(limit)d levels is not accepted.") % {"limit": depth_limit}
            )
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as error:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": error}) from None
        where = forbidden_text(data)
        if where is not None:
            raise ParseError(
                {where: [_("Text may not contain NUL characters or unpaired UTF-16 surrogates.")]}
            )
        return data

    @staticmethod
    def _too_large(limit: int) -> str:
        return _("The request body is larger than %(limit)d bytes.") % {"limit": limit}
