"""Signals other apps send to duplicate control, and the signals duplicate control listens to.

``records_bulk_saved`` (defined here): rows of a registered entity were written without save(), so without
post_save (dedup.db's bulk inserts, QuerySet.update, bulk_create). Sent by the writer, inside its transaction
so the keys are current when it commits (the CRM's import and demo data per batch; the intake for a new lead
once its contacts exist, and for contacts added to a record), or after the commit (merges and their undo).
Arguments:
- ``model``: the entity's model; ``pks``: the ids written.
- ``created=True``: every one of them is a new record (the index has no old keys to delete, the review queue
  no group to refresh). With it, optionally ``records``: the instances themselves, so the index writes their
  keys from them instead of reading them back; and ``related``: {pk: {relation name: rows}}, the rows of the
  to-many relations the matched fields read (phones, emails, messengers) that the writer just made, given to
  the readers through ``registry.attach_related``. A relation not given is read from the database.
- ``fields`` (without created): the names of the only fields or relations that changed (``["phones"]``), so
  the index rewrites just the keys read from them.
Receivers: the match-key index (dedup.engine.index.upkeep) and the review queue (dedup.review.queue).

Django's own signals duplicate control connects to (dedup.engine.index.upkeep.connect), per sender, never for
every model (a delete receiver turns Django's fast bulk deletes of a model into row-by-row deletes):
- ``post_save`` / ``post_delete`` of each registered entity's model and of the models its fields read through
  (a phone rewrites its owner's phone keys, a stage its deals' stage keys);
- ``post_save`` / ``post_delete`` of Rule and Condition: the index's kinds are synced with the rules.
"""
from django.dispatch import Signal

records_bulk_saved = Signal()
