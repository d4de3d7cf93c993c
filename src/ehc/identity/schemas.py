"""Identity has no wire models of its own: the doors that take documents, names and phones define
theirs and parse them with ``identity.service``."""
