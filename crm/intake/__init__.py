"""Incoming leads and messenger messages: the API (api/), who they match (selectors), the decision and its writes
(services), the per-process configuration (config), the admin of tokens and settings (admin), phones in chat text
(messenger). The models live with the others in crm/models/intake.py."""
