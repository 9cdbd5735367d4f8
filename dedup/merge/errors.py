"""The error the merge engine raises when a merge or an undo cannot be done; its message is for the user."""


class MergeError(Exception):
    """A merge or undo refused before anything changed; str(error) says why, in the user's language.

    Built with `MergeError.of`, its message is a stored text (dedup.messages): a failed job keeps it as an id with
    parameters and shows it in the language of whoever reads it.
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return str(self.message)

    @classmethod
    def of(cls, text, **params) -> "MergeError":
        """Return the error for a lazy message: ``MergeError.of(gettext_lazy("%(record)s is archived."), record=r)``."""
        from dedup.messages import Message

        return cls(Message.of(text, **params))
