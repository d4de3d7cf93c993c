"""``payments`` has no queries yet: it owns no tables (``models.py``)."""
