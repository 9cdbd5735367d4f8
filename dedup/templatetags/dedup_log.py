"""The History page's text of an admin log entry: duplicate control's in the reader's language (dedup.audit)."""
from django import template

from dedup.audit import log_text

register = template.Library()


@register.filter
def log_message(entry) -> str:
    """Return a LogEntry's message: ours rendered in the active language, any other as Django shows it."""
    text = log_text(entry.change_message)
    return text if text is not None else entry.get_change_message()
