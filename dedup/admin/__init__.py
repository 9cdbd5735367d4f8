"""The admin screens of duplicate control: the card's badge and list, the compare screen, the review queue, the
merge history and notifications, the rules, the learned scoring weights. Importing this package registers their
ModelAdmins."""
from . import merge_history, queue, rules, scoring, value_settings  # noqa: F401  (importing registers the admins)
from .rules import ConditionInline, RuleAdmin  # noqa: F401
