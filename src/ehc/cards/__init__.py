"""The card registry: one electronic health card per person, its lifecycle and family bindings."""
