"""``payments`` has no API of its own yet (``endpoints.py``), so nobody to authorise here."""
