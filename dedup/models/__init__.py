"""Duplicate control's models: rules and the match-key index (rules.py), merge jobs and notifications (merge.py)."""
