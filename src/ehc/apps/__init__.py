"""Institution apps: the hospital systems that call the platform's signed machine API.

``signing`` (the canonical form, shared by the server and ``ehc.client``) imports nothing but the
crypto layer, so the client can use it without the server's dependencies.
"""
