"""What the duplicate-control commands share: the entity argument and a progress bar on the command's stderr."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from dedup import registry
from dedup.registry import EntitySpec


def entity_spec(entity: str) -> EntitySpec:
    """Return the registered entity with this key, or stop the command naming the ones there are."""
    try:
        return registry.get(entity)
    except KeyError:
        known = ", ".join(sorted(spec.key for spec in registry.all_specs()))
        raise CommandError(f"Unknown entity {entity!r}; choose one of: {known}.") from None


def progress_bar(command: BaseCommand, *, total: int, unit: str, desc: str, disable: bool) -> tqdm:
    """Return a tqdm bar drawn on the command's stderr (so stdout stays the command's result)."""
    return tqdm(
        total=total, unit=unit, unit_scale=True, desc=desc, file=_Stream(command.stderr), disable=disable,
        dynamic_ncols=True,
    )


class _Stream:
    """The command's stderr as tqdm wants it: written as is (no line ending added), flushed."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text):
        self.wrapper.write(text, ending="")

    def flush(self):
        self.wrapper.flush()
