"""Identity runs no queries (it owns no tables; see ``models``)."""
