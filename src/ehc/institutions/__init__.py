"""Institutions: hospitals, community health centres, clinics and pharmacies that use the card."""
