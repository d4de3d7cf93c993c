"""Institution apps: the hospital systems that call the platform's signed machine API.

``signing`` (the canonical form) imports nothing but the crypto layer; the server's caller
identification and ``ehc.client`` reach it through ``service``, the domain's public face.
"""
