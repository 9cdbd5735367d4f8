"""The intake API: incoming leads and messenger messages from integrations."""
