"""Texts the system stores (reasons, notes, notifications, decisions) as message ids with parameters, rendered
in the language of whoever reads them.

A stored text is JSON: ``{"id": "dedup.same_value", "params": {"field": {"t": "phone"}, "value": "+7 912…"}}``.
Its template is looked up in CATALOG (id → gettext_lazy template, singular and plural) and filled with its
parameters, each rendered first: a nested message, a translatable word (``{"t": msgid, "c": context}`` —
e.g. a field's verbose name), a record (``{"record": [model label, pk, its name]}``), a list (joined), or a
plain value. Plain strings stored before this scheme render as they are.

A record inside a sentence may need a grammatical case in some language ("объединена с клиентом №12"): the
template names it after the parameter, ``%(survivor__ins)s`` (gen, dat, acc, ins, pre — dedup.records.CASES),
in the English text too, since gettext's format check wants the same names in both. English ignores it. A
sentence that starts with a record starts with a capital letter.

`Message` is what services build: a ``str`` (rendered in the language active when it was made, so code that
joins or logs it keeps working) that also carries its data for storing (`stored()`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import re

from django.utils import translation
from django.utils.text import capfirst
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext, pgettext

from dedup.records import CASES, label_of


@dataclass(frozen=True)
class Template:
    singular: Promise | str
    plural: Promise | str | None = None
    count: str = "count"  # the parameter that chooses the plural form


CATALOG: dict[str, Template] = {}


def register(message_id: str, text) -> str:
    """Add a template to the catalog (at import time of the module that uses it); return the id.

    ``text`` is ``gettext_lazy("…")``, or ``ngettext_lazy("… %(count)d …", "…", "count")`` whose third argument
    names the parameter that chooses the form (so makemessages extracts both forms as one plural entry).
    """
    kw = getattr(text, "_kw", {}) or {}
    if "singular" in kw and "plural" in kw:
        number = kw.get("number")
        CATALOG[message_id] = Template(kw["singular"], kw["plural"], number if isinstance(number, str) else "count")
    else:
        CATALOG[message_id] = Template(text)
    return message_id


def _msgid(value: Promise) -> dict:
    """Return a lazy translation as its message id (and context), so it is translated when read."""
    args = getattr(value, "_args", ())
    if len(args) == 1 and isinstance(args[0], str):
        return {"t": args[0]}
    if len(args) == 2 and all(isinstance(arg, str) for arg in args):
        return {"t": args[1], "c": args[0]}
    with translation.override("en"):
        return {"t": str(value)}


def encode(value):
    """Return a parameter as JSON that `render_value` turns back into text in the reader's language."""
    if isinstance(value, Message):
        return value.data
    if isinstance(value, Promise):
        return _msgid(value)
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        return {key: encode(item) for key, item in value.items()}
    if hasattr(value, "_meta") and getattr(value, "pk", None) is not None:
        return record_ref(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def record_ref(record) -> dict:
    """Return a reference to a record that renders as "customer #12 Ivan Petrov" in the reader's language."""
    return {"record": [record._meta.label_lower, record.pk, str(record)]}


def render_value(value, case: str = "") -> str:
    """Return a stored parameter (or a stored text) as text in the active language (a record in ``case``)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(render_value(item) for item in value)
    if isinstance(value, Mapping):
        if "id" in value or "msg" in value:
            return _render_message(value)
        if "t" in value:
            return pgettext(value["c"], value["t"]) if value.get("c") else gettext(value["t"])
        if "record" in value:
            return label_of(*value["record"][:3], case=case)
        if "join" in value:
            return str(value.get("sep", " ")).join(render_value(item) for item in value["join"])
        return ""
    return str(value)


_PLACEHOLDER = re.compile(r"%\((\w+?)(?:__(" + "|".join(CASES) + r"))?\)")


def _params(data: Mapping, text: str = "") -> dict:
    """Render a message's parameters for its template ``text``; numbers stay numbers (for %(count)d), and a
    placeholder with a case (``%(survivor__ins)s``) gets its record in that case."""
    raw = data.get("params") or {}
    params = {
        key: item if isinstance(item, (int, float)) and not isinstance(item, bool) else render_value(item)
        for key, item in raw.items()
    }
    for name, case in _PLACEHOLDER.findall(text):
        if case and name in raw:
            params[f"{name}__{case}"] = render_value(raw[name], case)
    return params


def _fill(text: str, data: Mapping, params: dict) -> str:
    """Fill a template; a sentence (or a text starting with a record) that starts with a parameter starts with a
    capital letter."""
    try:
        filled = text % params if params or "%(" in text else text
    except (KeyError, ValueError, TypeError):
        return text
    first = _PLACEHOLDER.match(text)
    if first is None:
        return filled
    value = (data.get("params") or {}).get(first.group(1))
    if text.rstrip().endswith((".", "!", "?")) or (isinstance(value, Mapping) and "record" in value):
        return capfirst(filled)
    return filled


def _render_msgid(data: Mapping) -> str:
    number = None
    if data.get("plural"):
        number = (data.get("params") or {}).get(data.get("n") or "count", 0)
        text = ngettext(data["msg"], data["plural"], int(number or 0))
    elif data.get("c"):
        text = pgettext(data["c"], data["msg"])
    else:
        text = gettext(data["msg"])
    params = _params(data, text)
    if number is not None:
        params[data.get("n") or "count"] = number
    return _fill(text, data, params)


def _render_message(data: Mapping) -> str:
    if "msg" in data:
        return _render_msgid(data)
    template = CATALOG.get(data["id"])
    raw = data.get("params") or {}
    if template is None:  # an id this version no longer knows: show what there is rather than fail
        return " ".join([data["id"], *(str(value) for value in _params(data).values())])
    number = None
    if template.plural is not None:
        number = raw.get(template.count, 0)
        text = ngettext(str_msgid(template.singular), str_msgid(template.plural), int(number or 0))
    else:
        text = gettext(str_msgid(template.singular))
    params = _params(data, text)
    if number is not None:
        params[template.count] = number
    return _fill(text, data, params)


def str_msgid(value) -> str:
    """Return a catalog template's message id (the English source text)."""
    if isinstance(value, Promise):
        return _msgid(value)["t"]
    return value


def render(stored) -> str:
    """Return a stored text in the active language: a message, a list of them (one per line), or old plain text."""
    if stored is None or stored == "":
        return ""
    if isinstance(stored, list):
        return "\n".join(render(item) for item in stored)
    if isinstance(stored, Mapping):
        return render_value(stored)
    return str(stored)


def text_of(data, plain: str = "") -> str:
    """Return a stored text in the reader's language: its message data when it has some, else its plain text
    (what rows written before the message ids have)."""
    return render(data) if data else (plain or "")


def says(data, text: str, *, max_length: int | None = None) -> bool:
    """Return whether ``text`` is the message ``data`` in one of the site's languages (cut to ``max_length``), so a
    text someone edited is told apart from one merely shown in another language."""
    from django.conf import settings

    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            rendered = render(data)
        if (rendered[:max_length] if max_length else rendered) == text:
            return True
    return False


def _message_restored(cls, text: str, data: dict) -> "Message":
    """Rebuild a pickled message (a cached rule preview holds some) as it was: its text and its data."""
    instance = str.__new__(cls, text)
    instance.data = data
    return instance


class Message(str):
    """A text built from a catalog message: a str in the active language that also keeps its id and parameters."""

    data: dict

    def __reduce__(self):
        # str's own pickling would call __new__ with the rendered text as the message id (a KeyError on reading
        # a cached rule preview back).
        return _message_restored, (type(self), str(self), self.data)

    def __new__(cls, message_id: str, **params):
        if message_id not in CATALOG:
            raise KeyError(f"Unknown message id {message_id!r}")
        data = {"id": message_id, "params": {key: encode(value) for key, value in params.items()}}
        instance = super().__new__(cls, _render_message(data))
        instance.data = data
        return instance

    @classmethod
    def of(cls, text: Promise, **params) -> "Message":
        """Return a message whose id is a gettext message id: ``Message.of(gettext_lazy("A new chat."))``,
        ``Message.of(ngettext_lazy("%(count)d lead", "%(count)d leads", "count"), count=2)``."""
        kw = getattr(text, "_kw", {}) or {}
        if "singular" in kw and "plural" in kw:
            number = kw.get("number")
            data = {"msg": kw["singular"], "plural": kw["plural"], "n": number if isinstance(number, str) else "count"}
        else:
            data = {"msg": _msgid(text)["t"], **({"c": _msgid(text)["c"]} if "c" in _msgid(text) else {})}
        data["params"] = {key: encode(value) for key, value in params.items()}
        instance = str.__new__(cls, _render_message(data))
        instance.data = data
        return instance

    @classmethod
    def join(cls, parts, sep: str = " ") -> "Message | str":
        """Join texts (messages or plain) into one text that is stored, and so rendered, part by part."""
        parts = [part for part in parts if part]
        if len(parts) == 1 and isinstance(parts[0], Message):
            return parts[0]
        instance = str.__new__(JoinedMessage, sep.join(render(part) for part in parts))
        instance.data = {"join": [stored(part) for part in parts], "sep": sep}
        return instance

    def stored(self):
        return self.data


class JoinedMessage(Message):
    """Texts joined with a separator (see Message.join)."""

    def __new__(cls, *args, **kwargs):  # built by Message.join only
        raise TypeError("Use Message.join")


def message_data(text) -> dict | None:
    """Return a message's data to store beside its text, or None for plain text (stored as it is)."""
    return text.data if isinstance(text, Message) else None


def stored(text):
    """Return what to store for a text: a message's data (as is when it is stored data already), or plain text."""
    if isinstance(text, Message):
        return text.data
    if isinstance(text, Mapping):
        return text
    return str(text) if text is not None else ""


# --- The catalog of duplicate control ---------------------------------------------------------------------------
# (Imports of gettext_lazy here, not at the top, keep the machinery above free of catalog entries.)
from django.utils.translation import gettext_lazy as _  # noqa: E402
from django.utils.translation import ngettext_lazy  # noqa: E402

SAME_VALUE = register("dedup.same_value", _("same %(field)s %(value)s"))
SIMILAR = register("dedup.similar", _("%(field)s %(score)s%% similar"))
WITHIN_HOURS = register(
    "dedup.within_hours", ngettext_lazy("placed within %(count)d hour", "placed within %(count)d hours", "count")
)
# A veto held: the pair is never a duplicate (dedup.engine.decide.veto_reason).
VETO_DIFFERENT = register("dedup.veto_different", _("different %(field)s"))
# A scored match: its probability and the fields that speak for it ("87% match: company name: the same, ...").
SCORED_MATCH = register("dedup.scored_match", _("%(percent)s%% match: %(why)s"))
MERGE_NOTE = register(
    "dedup.merge_note",
    ngettext_lazy(
        "Merged %(count)d record into this one: %(records)s.",
        "Merged %(count)d records into this one: %(records)s.",
        "count",
    ),
)
MERGE_FINISHED = register(
    "dedup.merge_finished",
    ngettext_lazy(
        "Merge finished: %(count)d record merged into %(record__dat)s.",
        "Merge finished: %(count)d records merged into %(record__dat)s.",
        "count",
    ),
)
MERGE_FAILED = register("dedup.merge_failed", _("The merge was not done: %(reason)s"))
AUTO_MERGED = register(
    "dedup.auto_merged",
    ngettext_lazy(
        "Duplicates merged automatically: %(count)d record merged into %(record__dat)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        "Duplicates merged automatically: %(count)d records merged into %(record__dat)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        "count",
    ),
)
UNDO_FINISHED = register("dedup.undo_finished", _("Undo finished: %(records)s are separate records again."))
UNDO_FAILED = register("dedup.undo_failed", _("The merge was not undone: %(reason)s"))
KEY_RANGE_ALL = register("dedup.key_range_all", _("all keys"))
KEY_RANGE = register("dedup.key_range", _("keys from %(from)s to %(to)s"))
KEY_RANGE_FROM = register("dedup.key_range_from", _("keys from %(from)s"))
KEY_RANGE_TO = register("dedup.key_range_to", _("keys up to %(to)s"))
# The scan's scored pass: one chunk reading every record (dedup/engine/scan_scored.py).
KEY_RANGE_SCORED = register("dedup.key_range_scored", _("scored matching of all records"))


def key_range_text(key_range) -> str:
    """Return a scan chunk's key range ({"from": …, "to": …}, either end open) in words."""
    if not isinstance(key_range, Mapping):
        return render({"id": KEY_RANGE_ALL})
    if key_range.get("scored"):
        return render({"id": KEY_RANGE_SCORED})
    start, end = key_range.get("from"), key_range.get("to")
    if start is None and end is None:
        return render({"id": KEY_RANGE_ALL})
    if end is None:
        return render({"id": KEY_RANGE_FROM, "params": {"from": start}})
    if start is None:
        return render({"id": KEY_RANGE_TO, "params": {"to": end}})
    return render({"id": KEY_RANGE, "params": {"from": start, "to": end}})


# The default rules (dedup/migrations/0002_default_rules.py) are stored with these English names; while a rule
# keeps its default name, it is shown in the reader's language.
DEFAULT_RULE_NAMES = {
    str_msgid(name): name
    for name in (
        _("Same phone"),
        _("Same email"),
        _("Same full name and company"),
        _("Same messenger"),
        _("Same name"),
        _("Same tax ID"),
        _("Same customer and service"),
        _("Same customer and items"),
        _("Same customer and total"),
        _("Same phone and items"),
        _("Same phone and total"),
        _("Same email and items"),
        _("Same email and total"),
    )
}


def rule_name(name: str) -> str:
    """Return a rule's name in the reader's language when it is a default rule's name, else as the admin typed it."""
    return str(DEFAULT_RULE_NAMES[name]) if name in DEFAULT_RULE_NAMES else name
