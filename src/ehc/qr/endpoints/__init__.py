"""The QR domain's HTTP routers (thin: parse, authorise, call ``qr.service``, shape the answer).

- ``codes``: residents draw dynamic codes, window staff print static ones, terminals verify.
- ``lists``: the public signed trust and revocation lists offline terminals cache.
- ``second_factor``: card PINs and texted codes for printed codes.
- ``uses``: offline uses uploaded in batches, and the monitoring of card uses.
"""

from . import codes, lists, second_factor, uses

routers = (codes.router, uses.router, lists.router, second_factor.router)
