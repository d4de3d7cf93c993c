"""Statistics for the health authority: an analytical store fed by the domains' events, with no
personal data, and the console's queries over it (docs/statistics.md)."""
