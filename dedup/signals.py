"""Signals other apps send to duplicate control."""
from django.dispatch import Signal

# Sent after rows of a registered entity were written in bulk (bulk_create / update), which bypasses
# post_save. Arguments: model (the entity's model), pks (the ids written), and optionally created=True when
# every one of them is a new record (the index then has no old keys to delete). The match-key index listens.
records_bulk_saved = Signal()
