"""``me`` has no queries of its own: it reaches cards and sign-ins through their domains' services."""
