"""Stand-ins for the outside parties of the payments domain: a medical-insurance service and a bank.

Each runs as its own process (``ehc sandbox insurance`` / ``ehc sandbox bank``) with its own SQLite
database and SM2 key in its data directory, and speaks HTTP only. They know nothing of the platform:
they import ``ehc.crypto``, the standard library and third-party libraries, never a domain, the kit,
the database layer or the settings (an import-linter contract keeps it so), and no domain imports
them. The platform reaches them over HTTP, exactly as it would reach a real insurer or bank.

See docs/sandboxes.md for the API, the insurance policy and the faults they can be told to make.
"""
