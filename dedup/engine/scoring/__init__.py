"""Scored matching (Fellegi–Sunter): every candidate pair gets a match probability and a "why" per field.

- ``comparisons``: per field type (text, person name, company name, date, number, identifier, phone, email,
  address) the comparison levels, placeholders and garbage read as missing;
- ``names``: first-name variants and nicknames (data/first_names.txt) and a phonetic key;
- ``model``: m, u and the prior; u by random sampling, m by EM over blocked pairs, managers' labels folded in;
  term-frequency adjustment;
- ``blocking``: candidate pairs from several keys with bounded blocks;
- ``clustering``: groups by average linkage inside connected components (no chaining through one weak link);
- ``explain``: each field's contribution as message ids, rendered in the reader's language;
- ``matcher``: all of it end to end on records in memory (no ORM), with a schema guessed from the columns.
"""
