"""Read one spreadsheet cell into a value, the same way for the command-line import and the admin's import.

Every rule about what a cell means lives here, and both importers call these functions: a file means the same
whichever door it comes through. The functions take plain text (or the number, date or boolean a spreadsheet
cell already holds), know nothing of the database, and raise ``CellError`` with a message for people.

* yes/no: ``1 true yes y x + да д`` and ``0 false no n - нет н`` in any letter case;
* numbers in both decimal styles: ``1234.50``, ``1 234,50``, ``1.234,50``, ``1,234.50``, ``1'234.50``;
* dates day first: ``2024-03-01``, ``01.03.2024``, ``01/03/2024`` (and a spreadsheet's own date cells);
* several values in a cell: phones, emails and messenger handles separated by ``;`` or ``,``; tags by ``;``
  only (a tag name may hold a comma);
* messenger handles: ``@ivan``, ``ivan``, ``123456`` (a chat id), ``tg:@ivan``, ``whatsapp:+7 912 …``,
  ``telegram:@ivan#123456`` (what the export writes), ``telegram:#123456``, ``https://t.me/ivan``;
  duplicates in one cell are found with ``dedup.engine.normalize.handle_key``;
* a cell the export protected against formula injection (``'=1+2``, ``'+7 912…``) is read without the quote.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from dedup.engine.normalize import handle_key, phone_e164

TRUE_TEXTS = frozenset({"1", "true", "yes", "y", "x", "+", "да", "д"})
FALSE_TEXTS = frozenset({"0", "false", "no", "n", "-", "нет", "н"})

#: What phones, emails and messenger handles in one cell are separated by.
CONTACT_SEPARATORS = ";,"
#: What tags in one cell are separated by (a tag name may hold a comma).
TAG_SEPARATORS = ";"
#: What the export joins several values with.
JOINER = "; "

#: A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

_DATE = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"|(?P<day2>\d{1,2})(?P<sep>[./])(?P<month2>\d{1,2})(?P=sep)(?P<year2>\d{4})"
)
_NUMBER_SPACES = re.compile(r"[\s\u00a0\u202f']")
_CHAT_ID = re.compile(r"[-+]?\d+")
_HANDLE_LINK = re.compile(
    r"(?:https?://)?(?:www\.)?(?P<host>t\.me|telegram\.me|telegram\.dog|wa\.me)/@?(?P<body>[^/?#\s]+)/?",
    re.IGNORECASE,
)
_LINK_CHANNELS = {"t.me": "telegram", "telegram.me": "telegram", "telegram.dog": "telegram", "wa.me": "whatsapp"}
_CHANNEL_ALIASES = {"tg": "telegram", "wa": "whatsapp", "wapp": "whatsapp"}
_HEADER_SEPARATORS = re.compile(r"[\s\-]+")


class CellError(ValueError):
    """A cell that cannot be read; the message says why, for the person who wrote the file."""


# --- Text ----------------------------------------------------------------------------------------------------


def cell_text(value: object) -> str:
    """Return a cell as trimmed text; spreadsheets give 1234.0 where the user typed 1234.

    A leading quote that the export put before a formula character (``'=A1``, ``'+7 912…``) is removed, so
    that an exported file imports back unchanged.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_TRIGGERS:
        return text[1:].strip()
    return text


def formula_escape(value: object) -> object:
    """Return text a spreadsheet will show as text: a leading ``= + - @ tab CR`` gets a ``'`` before it.

    Anything that is not text (numbers, dates, booleans) is returned as it is: a number stays a number.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def check_length(text: str, max_length: int | None) -> str:
    if max_length is not None and len(text) > max_length:
        raise CellError(_("longer than %(max)s characters") % {"max": max_length})
    return text


def normalise_header(title: object) -> str:
    """Return the column a header names: ``" E-mail "`` -> ``e_mail``, ``"Company name"`` -> ``company_name``."""
    return _HEADER_SEPARATORS.sub("_", cell_text(title).casefold()).strip("_")


def split_list(value: object, separators: str = CONTACT_SEPARATORS) -> list[str]:
    """Return the non-empty values of a cell holding several, in order, without repeats."""
    text = cell_text(value)
    if not text:
        return []
    pattern = "[" + re.escape(separators) + "]"
    return list(dict.fromkeys(part.strip() for part in re.split(pattern, text) if part.strip()))


# --- Values --------------------------------------------------------------------------------------------------


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = cell_text(value).casefold()
    if text in TRUE_TEXTS:
        return True
    if text in FALSE_TEXTS:
        return False
    raise CellError(_("%(value)r is neither yes nor no") % {"value": cell_text(value)})


def parse_decimal(
    value: object, *, max_digits: int | None = None, decimal_places: int | None = None, negative: bool = False
) -> Decimal:
    """Read a number written either way: the separator that comes last is the decimal one.

    ``1.234,50`` and ``1,234.50`` are both 1234.50; a single comma is decimal (``12,5``), as is a single dot.
    """
    if isinstance(value, bool):
        raise CellError(_("%(value)r is not a number") % {"value": value})
    if isinstance(value, (int, float, Decimal)):
        raw = text = str(value)
    else:
        raw = cell_text(value)
        text = _NUMBER_SPACES.sub("", raw)
        if "," in text and "." in text:
            if text.rfind(",") > text.rfind("."):
                text = text.replace(".", "").replace(",", ".")
            else:
                text = text.replace(",", "")
        elif text.count(",") == 1:
            text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise CellError(_("%(value)r is not a number") % {"value": raw})
    if number < 0 and not negative:
        raise CellError(_("%(value)r is negative") % {"value": raw})
    if decimal_places is not None and -number.as_tuple().exponent > decimal_places:
        raise CellError(
            _("%(value)r has more than %(places)s decimal places") % {"value": raw, "places": decimal_places}
        )
    if max_digits is not None and abs(number) >= Decimal(10) ** (max_digits - (decimal_places or 0)):
        raise CellError(_("%(value)r is too large") % {"value": raw})
    return number


def parse_date(value: object) -> date:
    """Read YYYY-MM-DD, DD.MM.YYYY or DD/MM/YYYY (day first, as in the CRM's markets), or a date cell."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raw = cell_text(value)
    match = _DATE.fullmatch(raw)
    if match:
        try:
            return date(
                int(match["year"] or match["year2"]),
                int(match["month"] or match["month2"]),
                int(match["day"] or match["day2"]),
            )
        except ValueError:
            pass
    raise CellError(_("%(value)r is not a date; write it as YYYY-MM-DD or DD.MM.YYYY") % {"value": raw})


def choice_parser(choices: Iterable[tuple[str, object]]) -> Callable[[object], str]:
    """Return a parser accepting a choice's stored value or its label in any of the product's languages."""
    choices = list(choices)
    mapping: dict[str, str] = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for stored, label in choices:
                mapping[str(stored).casefold()] = stored
                mapping[str(label).casefold()] = stored
    allowed = ", ".join(str(stored) for stored, _label in choices)

    def parse_choice(value: object) -> str:
        text = cell_text(value)
        try:
            return mapping[text.casefold()]
        except KeyError:
            raise CellError(_("%(value)r is not one of: %(choices)s") % {"value": text, "choices": allowed}) from None

    return parse_choice


# --- Contacts ------------------------------------------------------------------------------------------------


def parse_phones(value: object, *, max_length: int | None = None) -> list[tuple[str, str]]:
    """Return (number as typed, E.164 or "") for each phone of a cell; one number written twice counts once.

    A number libphonenumber cannot read is kept as typed, with no E.164: it is simply not matched.
    """
    phones: dict[str, tuple[str, str]] = {}
    for number in split_list(value):
        check_length(number, max_length)
        e164 = phone_e164(number) or ""
        phones.setdefault(e164 or number, (number, e164))
    return list(phones.values())


def parse_emails(value: object, *, max_length: int | None = None) -> list[str]:
    """Return the addresses of a cell as typed; one address in two letter cases counts once."""
    emails: dict[str, str] = {}
    for address in split_list(value):
        check_length(address, max_length)
        emails.setdefault(address.casefold(), address)
    return list(emails.values())


@dataclass(frozen=True)
class Handle:
    channel: str
    username: str = ""
    chat_id: str = ""

    def key(self) -> str:
        """The handle as duplicate control reads it: no '@', no letter case, channel aliases folded."""
        body = f"@{self.username}" if self.username else f"#{self.chat_id}"
        return handle_key(f"{self.channel}:{body}") or f"{self.channel}:{body.casefold()}"

    def render(self) -> str:
        """The handle as the export writes it, which parse_handle reads back."""
        text = f"{self.channel}:"
        if self.username:
            text += f"@{self.username}"
        if self.chat_id:
            text += f"#{self.chat_id}"
        return text


def _channel_of(prefix: str, channels: dict[str, str]) -> str | None:
    name = prefix.strip().casefold()
    return channels.get(_CHANNEL_ALIASES.get(name, name))


def parse_handle(
    value: object, *, channels: dict[str, str], default_channel: str, max_length: int | None = None
) -> Handle:
    """Read one messenger handle. ``channels`` maps a folded channel name or label to its stored value."""
    text = cell_text(value)
    channel = default_channel
    link = _HANDLE_LINK.fullmatch(text)
    if link:
        channel = channels.get(_LINK_CHANNELS[link["host"].lower()], default_channel)
        body = link["body"]
        handle = Handle(channel, chat_id=body) if _CHAT_ID.fullmatch(body) else Handle(channel, username=body)
    else:
        prefix, colon, rest = text.partition(":")
        if colon and (named := _channel_of(prefix, channels)) is not None:
            channel, text = named, rest.strip()
        username, _hash, chat_id = text.partition("#")
        username, chat_id = username.strip(), chat_id.strip()
        if not chat_id and not username.startswith("@") and _CHAT_ID.fullmatch(username):
            username, chat_id = "", username  # digits alone are a chat id (or a WhatsApp number)
        handle = Handle(channel, username=username.lstrip("@").strip(), chat_id=chat_id)
    if not handle.username and not handle.chat_id:
        raise CellError(_("%(value)r has neither a username nor a chat ID") % {"value": cell_text(value)})
    check_length(handle.username, max_length)
    check_length(handle.chat_id, max_length)
    return handle


def parse_handles(
    value: object, *, channels: dict[str, str], default_channel: str, max_length: int | None = None
) -> list[Handle]:
    """Return the handles of a cell; one handle written twice (``@Ivan``, ``tg:ivan``) counts once."""
    handles: dict[str, Handle] = {}
    for text in split_list(value):
        handle = parse_handle(text, channels=channels, default_channel=default_channel, max_length=max_length)
        handles.setdefault(handle.key(), handle)
    return list(handles.values())


def parse_tags(value: object, *, max_length: int | None = None) -> list[str]:
    return [check_length(name, max_length) for name in split_list(value, TAG_SEPARATORS)]
