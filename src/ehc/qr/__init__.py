"""QR codes of the health card (docs/qr-format.md).

- ``codec/``: the pure format (payload, Base45, TLV, care-step codes), which the offline verifier
  ``ehc.terminal`` uses too.
- ``service.py``: issuing and verifying on the platform, card uses, signed lists, second factors;
  the module other domains import.
- ``endpoints/``: the HTTP routers.
"""
