"""Signals other apps send to duplicate control."""
from django.dispatch import Signal

# Sent after rows of a registered entity were written in bulk (bulk_create / update), which bypasses
# post_save. Arguments: model (the entity's model), pks (the ids written), and optionally created=True when
# every one of them is a new record (the index then has no old keys to delete, the review queue no group to
# refresh) and, with created, records: the instances themselves, with every to-many relation a matched field
# reads attached under registry.LOADED_RELATED_ATTR, so the index need not read them back; or fields: the
# names of the only fields or relations that changed ("phones"), so the index rewrites just the keys read
# from them. The match-key index and the review queue listen.
records_bulk_saved = Signal()
