"""Fields the system writes as message ids (dedup.messages) beside their text: a lead's or a task's title.

The text field keeps the words as written; the data field the message, rendered in the reader's language. Once
someone changes the text (the form, the API, code), the message no longer says it and is dropped.
"""
from __future__ import annotations


def stored_text(data, plain: str) -> str:
    """Return the text in the reader's language: the message when there is one, else the text as typed."""
    if not data:
        return plain
    from dedup.messages import text_of

    return text_of(data, plain)


def stored_text_keep(instance, text_field: str, data_field: str, save_kwargs: dict) -> None:
    """Before a save: drop the message when the text no longer is what it says (in any of the site's languages)."""
    data = getattr(instance, data_field)
    if not data:
        return
    from dedup.messages import says

    update_fields = save_kwargs.get("update_fields")
    if update_fields is not None and text_field not in update_fields:
        return
    if not says(data, getattr(instance, text_field), max_length=instance._meta.get_field(text_field).max_length):
        setattr(instance, data_field, None)
        if update_fields is not None:
            save_kwargs["update_fields"] = [*update_fields, data_field]


class StoredTitleMixin:
    """A model whose `title` the system may write as a message (`title_data`): shown in the reader's language,
    dropped once someone changes the title. The model declares both fields."""

    def __str__(self):
        return self.display_title

    @property
    def display_title(self) -> str:
        """The title in the reader's language (one the system wrote) or as typed."""
        return stored_text(self.title_data, self.title)

    def save(self, *args, **kwargs):
        stored_text_keep(self, "title", "title_data", kwargs)
        super().save(*args, **kwargs)
