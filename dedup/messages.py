"""Texts the system stores (reasons, notes, notifications, decisions) as message ids with parameters, rendered
in the language of whoever reads them.

A stored text is JSON: ``{"id": "dedup.same_value", "params": {"field": {"t": "phone"}, "value": "+7 912…"}}``.
Its template is looked up in CATALOG (id → gettext_lazy template, singular and plural) and filled with its
parameters, each rendered first: a nested message, a translatable word (``{"t": msgid, "c": context}`` —
e.g. a field's verbose name), a record (``{"record": [model label, pk, its name]}``), a list (joined), or a
plain value. Plain strings stored before this scheme render as they are.

`Message` is what services build: a ``str`` (rendered in the language active when it was made, so code that
joins or logs it keeps working) that also carries its data for storing (`stored()`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.apps import apps
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext, pgettext


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


def render_value(value) -> str:
    """Return a stored parameter (or a stored text) as text in the active language."""
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
            return _render_record(*value["record"])
        if "join" in value:
            return str(value.get("sep", " ")).join(render_value(item) for item in value["join"])
        return ""
    return str(value)


def _render_record(label: str, pk, name: str = "") -> str:
    try:
        verbose = apps.get_model(label)._meta.verbose_name
    except (LookupError, ValueError):
        verbose = label
    shown = gettext("%(model)s #%(pk)s") % {"model": verbose, "pk": pk}
    return f"{shown} {name}" if name and name != shown else shown


def _params(data: Mapping) -> dict:
    """Render a message's parameters; numbers stay numbers (for %(count)d)."""
    return {
        key: item if isinstance(item, (int, float)) and not isinstance(item, bool) else render_value(item)
        for key, item in (data.get("params") or {}).items()
    }


def _render_msgid(data: Mapping) -> str:
    params = _params(data)
    if data.get("plural"):
        number = (data.get("params") or {}).get(data.get("n") or "count", 0)
        params[data.get("n") or "count"] = number
        text = ngettext(data["msg"], data["plural"], int(number or 0))
    elif data.get("c"):
        text = pgettext(data["c"], data["msg"])
    else:
        text = gettext(data["msg"])
    try:
        return text % params if params else text
    except (KeyError, ValueError, TypeError):
        return text


def _render_message(data: Mapping) -> str:
    if "msg" in data:
        return _render_msgid(data)
    template = CATALOG.get(data["id"])
    params = _params(data)
    raw = data.get("params") or {}
    if template is None:  # an id this version no longer knows: show what there is rather than fail
        return " ".join([data["id"], *params.values()])
    if template.plural is not None:
        number = raw.get(template.count, 0)
        text = ngettext(str_msgid(template.singular), str_msgid(template.plural), int(number or 0))
        params[template.count] = number
    else:
        text = gettext(str_msgid(template.singular))
    try:
        return text % params if params or "%(" in text else text
    except (KeyError, ValueError, TypeError):
        return text


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


class Message(str):
    """A text built from a catalog message: a str in the active language that also keeps its id and parameters."""

    data: dict

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
        "Merge finished: %(count)d record merged into %(record)s.",
        "Merge finished: %(count)d records merged into %(record)s.",
        "count",
    ),
)
MERGE_FAILED = register("dedup.merge_failed", _("The merge was not done: %(reason)s"))
AUTO_MERGED = register(
    "dedup.auto_merged",
    ngettext_lazy(
        "Duplicates merged automatically: %(count)d record merged into %(record)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        "Duplicates merged automatically: %(count)d records merged into %(record)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        "count",
    ),
)
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
    )
}


def rule_name(name: str) -> str:
    """Return a rule's name in the reader's language when it is a default rule's name, else as the admin typed it."""
    return str(DEFAULT_RULE_NAMES[name]) if name in DEFAULT_RULE_NAMES else name
