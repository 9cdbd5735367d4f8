"""The error the merge engine raises when a merge or an undo cannot be done; its message is for the user."""


class MergeError(Exception):
    """A merge or undo refused before anything changed; str(error) says why, in the user's language."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return str(self.message)
