"""Identity: documents (CV02.01.101), names and phones, and real-name verification.

Everything here is pure: no database, no HTTP. Services parse what residents type with these
functions before sealing it or computing a blind index from it. Import ``ehc.identity.service``, its
public face.
"""
