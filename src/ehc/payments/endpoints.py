"""``payments`` has no API of its own yet: codes carry a channel's template through the QR endpoints."""
