"""Interop proofs for the national algorithms behind ``ehc.crypto``.

Every check here compares our code with something independent of it: the published standard
vectors (``/work/shared/vectors/national-algorithms.json``, copied facts from GB/T 32905, 32907 and
32918), the pure-Python ``gmalg`` implementation, a from-scratch computation in this file (SM2
signature math on the GB/T 32918 example curve, RFC 2104 HMAC, SP 800-38D GCM) and the ``openssl``
command. If any of them disagree with us, a test fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import gmalg
import gmalg.bcmode
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehc.crypto import (
    DEFAULT_USER_ID,
    BlindIndex,
    KeyStore,
    KeyStoreError,
    SealBroken,
    Sealer,
    SM2PrivateKey,
    SM2PublicKey,
    hmac_sm3,
    hmac_sm3_verify,
    sm3,
)
from ehc.crypto.sm4 import ecb_encrypt_block, gcm_decrypt, gcm_encrypt

# --------------------------------------------------------------------------------------------
# Vectors
# --------------------------------------------------------------------------------------------


def _find_vectors() -> Path:
    candidates = [
        os.environ.get("EHC_VECTORS", ""),
        Path(__file__).resolve().parents[1] / "tests" / "vectors" / "national-algorithms.json",
        "/work/shared/vectors/national-algorithms.json",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError("national-algorithms.json not found; set EHC_VECTORS")


VECTORS = json.loads(_find_vectors().read_text())
CURVE = {k: int(v, 16) for k, v in VECTORS["sm2_recommended_curve"].items() if k != "default_user_id"}
ANNEX = VECTORS["sm2_gbt32918_2_annex_a_signature_example"]


def _h(name: str) -> int:
    return int(ANNEX[name], 16)


# --------------------------------------------------------------------------------------------
# Small independent helpers (test code only: production code never does curve math)
# --------------------------------------------------------------------------------------------


def ec_add(P, Q, a: int, p: int):
    """Affine point addition on y^2 = x^3 + ax + b over F_p; None is the point at infinity."""
    if P is None:
        return Q
    if Q is None:
        return P
    x1, y1 = P
    x2, y2 = Q
    if x1 == x2 and (y1 + y2) % p == 0:
        return None
    if P == Q:
        lam = (3 * x1 * x1 + a) * pow(2 * y1, -1, p) % p
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (lam * lam - x1 - x2) % p
    return x3, (lam * (x1 - x3) - y1) % p


def ec_mul(k: int, P, a: int, p: int):
    R = None
    for bit in bin(k)[2:]:
        R = ec_add(R, R, a, p)
        if bit == "1":
            R = ec_add(R, P, a, p)
    return R


def on_curve(P, a: int, b: int, p: int) -> bool:
    x, y = P
    return (y * y - (x * x * x + a * x + b)) % p == 0


def i2b(i: int) -> bytes:
    return i.to_bytes(32, "big")


def z_a(uid: bytes, a: int, b: int, gx: int, gy: int, px: int, py: int) -> bytes:
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GB/T 32918.2 section 5.5."""
    entl = (len(uid) * 8).to_bytes(2, "big")
    return sm3(entl + uid + i2b(a) + i2b(b) + i2b(gx) + i2b(gy) + i2b(px) + i2b(py))


def sm2_verify_math(e: int, r: int, s: int, P, *, a: int, p: int, n: int, G) -> bool:
    """GB/T 32918.2 section 7.1 verification, step by step."""
    if not (1 <= r < n and 1 <= s < n):
        return False
    t = (r + s) % n
    if t == 0:
        return False
    x1, _ = ec_add(ec_mul(s, G, a, p), ec_mul(t, P, a, p), a, p)
    return (e + x1) % n == r


def gmalg_sm3(data: bytes) -> bytes:
    h = gmalg.SM3()
    h.update(data)
    return h.value()


def hmac_rfc2104(key: bytes, msg: bytes, hash_fn, block: int = 64) -> bytes:
    if len(key) > block:
        key = hash_fn(key)
    key = key.ljust(block, b"\x00")
    ipad = bytes(k ^ 0x36 for k in key)
    opad = bytes(k ^ 0x5C for k in key)
    return hash_fn(opad + hash_fn(ipad + msg))


def ref_gcm(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes, cipher=None) -> tuple[bytes, bytes]:
    """NIST SP 800-38D GCM with gmalg's pure-Python SM4 block cipher and a bit-by-bit GHASH."""
    assert len(nonce) == 12
    block = (cipher or gmalg.SM4)(key).encrypt
    H = int.from_bytes(block(b"\x00" * 16), "big")

    def gmul(X: int, Y: int) -> int:
        R = 0xE1 << 120
        Z, V = 0, Y
        for i in range(127, -1, -1):
            if (X >> i) & 1:
                Z ^= V
            V = (V >> 1) ^ R if V & 1 else V >> 1
        return Z

    def ghash(data: bytes) -> int:
        Y = 0
        for i in range(0, len(data), 16):
            Y = gmul(Y ^ int.from_bytes(data[i : i + 16], "big"), H)
        return Y

    def pad16(data: bytes) -> bytes:
        return data + b"\x00" * (-len(data) % 16)

    j0 = nonce + b"\x00\x00\x00\x01"
    ctr = int.from_bytes(j0, "big")
    out = bytearray()
    for i in range(0, len(plaintext), 16):
        ctr = (ctr & ~0xFFFFFFFF) | ((ctr + 1) & 0xFFFFFFFF)  # inc32
        ks = block(ctr.to_bytes(16, "big"))
        out += bytes(x ^ y for x, y in zip(plaintext[i : i + 16], ks))
    ciphertext = bytes(out)
    lengths = (len(aad) * 8).to_bytes(8, "big") + (len(ciphertext) * 8).to_bytes(8, "big")
    S = ghash(pad16(aad) + pad16(ciphertext) + lengths)
    tag = (int.from_bytes(block(j0), "big") ^ S).to_bytes(16, "big")
    return ciphertext, tag


def der_to_raw(sig: bytes) -> tuple[bytes, bytes]:
    r, s = decode_dss_signature(sig)
    return i2b(r), i2b(s)


def raw_to_der(r: bytes, s: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def private_scalar(key: SM2PrivateKey) -> int:
    """The private scalar, for handing the same key to gmalg (test-only reach into the wrapper)."""
    return key._key.private_numbers().private_value


# --------------------------------------------------------------------------------------------
# SM3 and HMAC-SM3
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["sm3"], ids=lambda v: f"len{len(v['message_ascii'])}")
def test_sm3_standard_vectors(vector):
    message = vector["message_ascii"].encode("ascii")
    assert sm3(message).hex() == vector["digest"]
    # The independent implementations agree with the same standard values.
    assert gmalg_sm3(message).hex() == vector["digest"]
    assert hashlib.new("sm3", message).hexdigest() == vector["digest"]


def test_sm3_agrees_with_gmalg_across_block_boundaries():
    for length in (0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000):
        data = bytes((i * 7 + length) % 256 for i in range(length))
        assert sm3(data) == gmalg_sm3(data), length


@pytest.mark.parametrize(
    "key",
    [b"", b"k", b"\x0b" * 20, b"Jefe", bytes(range(64)), bytes(range(65)), b"\xaa" * 131],
    ids=["empty", "1B", "20B", "jefe", "block", "block+1", "long"],
)
def test_hmac_sm3_matches_rfc2104_over_gmalg_and_hashlib(key):
    msg = b"what do ya want for nothing?" * 3
    expected = hmac_rfc2104(key, msg, gmalg_sm3)
    assert hmac_rfc2104(key, msg, lambda d: hashlib.new("sm3", d).digest()) == expected
    assert hmac_sm3(key, msg) == expected
    assert hmac_sm3_verify(key, msg, expected)
    assert not hmac_sm3_verify(key, msg, flip_bit(expected, 31))
    assert not hmac_sm3_verify(key, msg + b"x", expected)
    assert not hmac_sm3_verify(key, msg, expected[:16])


# --------------------------------------------------------------------------------------------
# SM4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["sm4"], ids=lambda v: v["mode"])
def test_sm4_standard_block_vector(vector):
    key, pt = bytes.fromhex(vector["key"]), bytes.fromhex(vector["plaintext"])
    assert ecb_encrypt_block(key, pt).hex() == vector["ciphertext"]
    assert gmalg.SM4(key).encrypt(pt).hex() == vector["ciphertext"]


def test_sm4_million_iterations_vector():
    # GB/T 32907 annex A example 2: encrypt the example block 1,000,000 times with the same key.
    key = bytes.fromhex(VECTORS["sm4"][0]["key"])
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    block = bytes.fromhex(VECTORS["sm4"][0]["plaintext"])
    for _ in range(1_000_000):
        block = enc.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"


def test_sm4_ecb_and_cbc_agree_with_gmalg():
    for i in range(8):
        key, iv = os.urandom(16), os.urandom(16)
        data = os.urandom(16 * (i + 1))
        assert ecb_encrypt_block(key, data[:16]) == gmalg.SM4(key).encrypt(data[:16])
        ours = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
        theirs = gmalg.bcmode.BlockCipherModeCBC(gmalg.SM4(key), iv)
        assert ours.update(data) + ours.finalize() == theirs.encrypt(data)


def test_reference_gcm_is_real_gcm():
    # Guard the in-test GCM: with AES as the block cipher it must reproduce `cryptography`'s AES-GCM,
    # so a mistake in the reference cannot silently agree with a mistake in SM4-GCM.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    class _AES:
        def __init__(self, key):
            self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

        def encrypt(self, block):
            return self._enc.update(block)

    for length in (0, 5, 16, 37):
        key, nonce, aad, pt = os.urandom(16), os.urandom(12), b"ctx", os.urandom(length)
        ct, tag = ref_gcm(key, nonce, pt, aad, cipher=_AES)
        assert ct + tag == AESGCM(key).encrypt(nonce, pt, aad)


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 20, 33, 64])
@pytest.mark.parametrize("aad", [b"", b"person.name", b"x" * 40])
def test_sm4_gcm_agrees_with_independent_gcm(length, aad):
    key, pt = os.urandom(16), os.urandom(length)
    # ours -> reference
    blob = gcm_encrypt(key, pt, aad)
    nonce, body, tag = blob[:12], blob[12:-16], blob[-16:]
    assert len(blob) == 12 + length + 16
    assert ref_gcm(key, nonce, pt, aad) == (body, tag)
    # reference -> ours
    nonce = os.urandom(12)
    ct, tag = ref_gcm(key, nonce, pt, aad)
    assert gcm_decrypt(key, nonce + ct + tag, aad) == pt


def test_sm4_gcm_round_trip_and_refusals():
    key, aad, pt = os.urandom(16), b"person.document", "110101199003074477".encode()
    blob = gcm_encrypt(key, pt, aad)
    assert gcm_decrypt(key, blob, aad) == pt
    assert gcm_encrypt(key, pt, aad) != blob  # fresh nonce every call
    assert pt not in blob

    nonce_len, tag_len = 12, 16
    tampered = {
        "nonce": flip_bit(blob, 0),
        "ciphertext": flip_bit(blob, nonce_len + 3, 5),
        "tag": flip_bit(blob, len(blob) - 1, 7),
        "truncated tag": blob[:-1],
        "dropped byte": blob[: nonce_len + 2] + blob[nonce_len + 3 :],
        "too short": blob[: nonce_len + tag_len - 1],
        "empty": b"",
    }
    for what, bad in tampered.items():
        with pytest.raises(SealBroken):
            gcm_decrypt(key, bad, aad)
            pytest.fail(f"{what}: opened")
    with pytest.raises(SealBroken):
        gcm_decrypt(key, blob, b"person.name")  # wrong associated data
    with pytest.raises(SealBroken):
        gcm_decrypt(key, blob, b"")  # associated data dropped
    with pytest.raises(SealBroken):
        gcm_decrypt(os.urandom(16), blob, aad)  # wrong key
    with pytest.raises(SealBroken):
        gcm_decrypt(flip_bit(key, 15), blob, aad)  # key one bit off


# --------------------------------------------------------------------------------------------
# SM2: the GB/T 32918.2 annex example (example curve, fixed nonce), all in plain integers
# --------------------------------------------------------------------------------------------


def test_sm2_annex_example_za_e_and_signature():
    p, a, b, n = _h("p"), _h("a"), _h("b"), _h("n")
    G = (_h("gx"), _h("gy"))
    d, k = _h("d"), _h("k")
    P = (_h("px"), _h("py"))
    assert on_curve(G, a, b, p) and on_curve(P, a, b, p)
    assert ec_mul(d, G, a, p) == P  # the annex key pair is consistent
    assert ec_mul(n, G, a, p) is None  # n is the order of G

    uid, msg = ANNEX["uid"].encode(), ANNEX["msg"].encode()
    za = z_a(uid, a, b, *G, *P)
    assert za.hex().upper() == ANNEX["za"]
    e_bytes = sm3(za + msg)
    assert e_bytes.hex().upper() == ANNEX["e"]
    e = int.from_bytes(e_bytes, "big")

    x1, _ = ec_mul(k, G, a, p)
    r = (e + x1) % n
    s = pow(1 + d, -1, n) * (k - r * d) % n
    assert (r, s) == (_h("r"), _h("s"))

    assert sm2_verify_math(e, r, s, P, a=a, p=p, n=n, G=G)
    assert not sm2_verify_math(e + 1, r, s, P, a=a, p=p, n=n, G=G)
    assert not sm2_verify_math(e, r, s ^ 1, P, a=a, p=p, n=n, G=G)
    # The same Z_A with the default id is a different value: the user id matters.
    assert z_a(DEFAULT_USER_ID, a, b, *G, *P) != za


def test_sm2_annex_example_reproduced_by_gmalg_core():
    # gmalg's SM2 core, put on the annex example curve and fed the annex nonce, gives the same r, s.
    from gmalg import ellipticcurve
    from gmalg.sm2 import SM2Core

    p, a, b, n = _h("p"), _h("a"), _h("b"), _h("n")
    ecdlp = ellipticcurve.ECDLP(p, a, b, (_h("gx"), _h("gy")), n)
    core = SM2Core(ecdlp, gmalg.SM3(), rnd_fn=lambda bits: _h("k"))
    P = (_h("px"), _h("py"))
    uid, msg = ANNEX["uid"].encode(), ANNEX["msg"].encode()
    assert core.entity_info(uid, P).hex().upper() == ANNEX["za"]
    assert core.sign(msg, _h("d"), uid, P) == (_h("r"), _h("s"))
    assert core.verify(msg, _h("r"), _h("s"), uid, P)


# --------------------------------------------------------------------------------------------
# SM2 on the recommended curve: ours against gmalg and against the math in this file
# --------------------------------------------------------------------------------------------


def test_recommended_curve_parameters_match_the_key_we_generate():
    p, a, b, n = CURVE["p"], CURVE["a"], CURVE["b"], CURVE["n"]
    G = (CURVE["gx"], CURVE["gy"])
    assert on_curve(G, a, b, p)
    key = SM2PrivateKey.generate()
    point = key.public_key.point
    assert len(point) == 65 and point[0] == 4
    P = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    assert ec_mul(private_scalar(key), G, a, p) == P
    assert VECTORS["sm2_recommended_curve"]["default_user_id"].encode() == DEFAULT_USER_ID


def test_our_signature_is_over_sm3_of_za_with_default_user_id():
    """Verify a signature of ours with nothing but the equations of GB/T 32918.2 in this file."""
    p, a, b, n = CURVE["p"], CURVE["a"], CURVE["b"], CURVE["n"]
    G = (CURVE["gx"], CURVE["gy"])
    key = SM2PrivateKey.generate()
    point = key.public_key.point
    P = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    msg = "电子健康卡 ehc:v1".encode()
    r, s = decode_dss_signature(key.sign(msg))

    e = int.from_bytes(sm3(z_a(DEFAULT_USER_ID, a, b, *G, *P) + msg), "big")
    assert sm2_verify_math(e, r, s, P, a=a, p=p, n=n, G=G)
    # Hashing the message without Z_A, or with another id, does not verify.
    assert not sm2_verify_math(int.from_bytes(sm3(msg), "big"), r, s, P, a=a, p=p, n=n, G=G)
    e_empty = int.from_bytes(sm3(z_a(b"", a, b, *G, *P) + msg), "big")
    assert not sm2_verify_math(e_empty, r, s, P, a=a, p=p, n=n, G=G)


def _gmalg_for(key: SM2PrivateKey, uid: bytes = DEFAULT_USER_ID) -> gmalg.SM2:
    return gmalg.SM2(sk=i2b(private_scalar(key)), uid=uid, pk=key.public_key.point)


def test_sm2_gmalg_signs_we_verify():
    key = SM2PrivateKey.generate()
    g = _gmalg_for(key)
    for msg in (b"", b"abc", os.urandom(100), "张三".encode()):
        der = raw_to_der(*g.sign(msg))
        assert key.public_key.verify(der, msg)
        assert not key.public_key.verify(der, msg + b"!")
        assert not key.public_key.verify(flip_bit(der, len(der) - 1), msg)
    # Signed by gmalg under a different user id: we (default id) refuse it.
    other = _gmalg_for(key, uid=b"ALICE123@YAHOO.COM")
    assert not key.public_key.verify(raw_to_der(*other.sign(b"abc")), b"abc")


def test_sm2_we_sign_gmalg_verifies():
    key = SM2PrivateKey.generate()
    verifier = gmalg.SM2(uid=DEFAULT_USER_ID, pk=key.public_key.point)  # public key only
    for msg in (b"", b"abc", os.urandom(100), "张三".encode()):
        der = key.sign(msg)
        r, s = der_to_raw(der)
        assert verifier.verify(msg, r, s)
        assert not verifier.verify(msg + b"!", r, s)
        assert not verifier.verify(msg, flip_bit(r, 31), s)
        assert not verifier.verify(msg, r, flip_bit(s, 0))
    r, s = der_to_raw(key.sign(b"abc"))
    assert not gmalg.SM2(uid=b"ALICE123@YAHOO.COM", pk=key.public_key.point).verify(b"abc", r, s)


_PROPERTY_KEY = SM2PrivateKey.generate()


@settings(max_examples=15, deadline=None)
@given(msg=st.binary(max_size=300))
def test_sm2_both_ways_property(msg):
    key = _PROPERTY_KEY
    g = _gmalg_for(key)
    r, s = der_to_raw(key.sign(msg))
    assert g.verify(msg, r, s)
    assert key.public_key.verify(raw_to_der(*g.sign(msg)), msg)


def test_sm2_rejects_malformed_and_foreign_signatures():
    key, other = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    msg = b"payload"
    der = key.sign(msg)
    assert key.public_key.verify(der, msg)
    assert der != key.sign(msg)  # random nonce: two signatures of one message differ
    r, s = decode_dss_signature(der)
    n = CURVE["n"]
    bad = {
        "other key": other.sign(msg),
        "trailing byte": der + b"\x00",
        "truncated": der[:-1],
        "empty": b"",
        "r+n": encode_dss_signature(r + n, s),
        "s+n": encode_dss_signature(r, s + n),
        "r=0": encode_dss_signature(0, s),
        "raw r||s": i2b(r) + i2b(s),
    }
    for what, sig in bad.items():
        assert not key.public_key.verify(sig, msg), what
    # Every single bit of the signature matters.
    for i in range(len(der)):
        assert not key.public_key.verify(flip_bit(der, i, i % 8), msg), i


def test_sm2_key_round_trips_and_point_validation():
    key = SM2PrivateKey.generate()
    again = SM2PrivateKey.from_pem(key.to_pem())
    assert again.public_key == key.public_key
    assert SM2PublicKey.from_pem(key.public_key.to_pem()) == key.public_key
    assert SM2PublicKey.from_point(key.public_key.point) == key.public_key
    assert key.public_key.fingerprint == sm3(key.public_key.point).hex()
    assert again.public_key.verify(key.sign(b"m"), b"m")
    with pytest.raises(ValueError):
        SM2PublicKey.from_point(b"\x04" + b"\x01" * 64)  # not on the curve


# --------------------------------------------------------------------------------------------
# SM2 against the openssl command
# --------------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DISTID = "distid:" + DEFAULT_USER_ID.decode()


def _openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not Path(OPENSSL).exists():
        pytest.fail("the openssl command is required for the SM2 interop proof")
    return subprocess.run([OPENSSL, *args], capture_output=True, check=check, timeout=30)


@pytest.fixture
def ossl(tmp_path):
    key = SM2PrivateKey.generate()
    (tmp_path / "priv.pem").write_bytes(key.to_pem())
    (tmp_path / "pub.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "msg").write_bytes("健康卡 QR payload 0001".encode())
    return key, tmp_path


def _ossl_verify(pub: Path, msg: Path, sig: Path, *opts: str) -> bool:
    res = _openssl(
        "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(pub),
        "-in", str(msg), "-sigfile", str(sig), *opts, check=False,
    )
    return res.returncode == 0 and b"Verified Successfully" in res.stdout


def _ossl_sign(priv: Path, msg: Path, out: Path, *opts: str) -> bytes:
    _openssl(
        "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(priv),
        "-in", str(msg), "-out", str(out), *opts,
    )
    return out.read_bytes()


def test_openssl_verifies_our_signature(ossl):
    key, d = ossl
    (d / "sig").write_bytes(key.sign((d / "msg").read_bytes()))
    assert _ossl_verify(d / "pub.pem", d / "msg", d / "sig", "-pkeyopt", DISTID)
    # The `dgst` front end with -sigopt agrees.
    res = _openssl(
        "dgst", "-sm3", "-verify", str(d / "pub.pem"), "-sigopt", DISTID,
        "-signature", str(d / "sig"), str(d / "msg"), check=False,
    )
    assert res.returncode == 0 and b"Verified OK" in res.stdout
    # Without the distid OpenSSL 3 uses an empty id and must refuse: the id really is in Z_A.
    assert not _ossl_verify(d / "pub.pem", d / "msg", d / "sig")
    # A tampered message is refused.
    (d / "msg2").write_bytes((d / "msg").read_bytes() + b"!")
    assert not _ossl_verify(d / "pub.pem", d / "msg2", d / "sig", "-pkeyopt", DISTID)


def test_we_verify_openssl_signature(ossl):
    key, d = ossl
    msg = (d / "msg").read_bytes()
    sig = _ossl_sign(d / "priv.pem", d / "msg", d / "sig", "-pkeyopt", DISTID)
    assert key.public_key.verify(sig, msg)
    assert not key.public_key.verify(sig, msg + b"!")
    assert not key.public_key.verify(flip_bit(sig, len(sig) - 2), msg)
    # Signed with OpenSSL's default (empty) id: the signature is valid for OpenSSL, not for us.
    empty = _ossl_sign(d / "priv.pem", d / "msg", d / "sig_empty")
    assert _ossl_verify(d / "pub.pem", d / "msg", d / "sig_empty")
    assert not key.public_key.verify(empty, msg)


def test_openssl_generated_key_loads_and_interoperates(tmp_path):
    _openssl("genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "k.pem"))
    _openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "k.pub"))
    key = SM2PrivateKey.from_pem((tmp_path / "k.pem").read_bytes())
    assert SM2PublicKey.from_pem((tmp_path / "k.pub").read_bytes()) == key.public_key
    (tmp_path / "msg").write_bytes(b"from an openssl key")
    (tmp_path / "sig").write_bytes(key.sign(b"from an openssl key"))
    assert _ossl_verify(tmp_path / "k.pub", tmp_path / "msg", tmp_path / "sig", "-pkeyopt", DISTID)
    # And the public point OpenSSL prints is ours.
    text = _openssl("pkey", "-pubin", "-in", str(tmp_path / "k.pub"), "-text", "-noout").stdout
    hex_point = "".join(re.findall(r"^\s+([0-9a-f:]+)$", text.decode(), re.M)).replace(":", "")
    assert bytes.fromhex(hex_point) == key.public_key.point


def test_openssl_sm3_agrees():
    data = os.urandom(1000)
    res = subprocess.run([OPENSSL, "dgst", "-sm3", "-r"], input=data, capture_output=True, check=True)
    assert res.stdout.split()[0].decode() == sm3(data).hex()


# --------------------------------------------------------------------------------------------
# Key store
# --------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keystore_init_creates_every_kind_with_private_files(tmp_path):
    directory = tmp_path / "keys"
    store = KeyStore.init(directory)
    assert store.exists
    kinds = sorted(info.kind for info in store.infos())
    assert kinds == ["index", "qr", "qrref", "root", "sealing"]
    assert _mode(directory) == 0o700
    assert _mode(directory / "keystore.json") == 0o600
    for info in store.infos():
        path = directory / info.filename
        assert path.is_file() and _mode(path) == 0o600, info
        assert info.status == "active" and info.not_after is None
    for kind in ("root", "qr"):
        info = store.active(kind)
        assert info.fingerprint == store.public_key(info.id).fingerprint
        assert (directory / info.filename).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(store.secret(store.active("sealing").id)) == 16
    assert len(store.secret(store.active("index").id)) == 32
    assert store.active("root").id != store.active("qr").id


def test_keystore_reload_gives_the_same_keys(tmp_path):
    store = KeyStore.init(tmp_path / "keys")
    again = KeyStore(tmp_path / "keys")
    assert [i.id for i in again.infos()] == [i.id for i in store.infos()]
    for kind in ("root", "qr"):
        kid = store.active(kind).id
        assert again.public_key(kid) == store.public_key(kid)
        assert store.public_key(kid).verify(again.signing_key(kid).sign(b"m"), b"m")
    for kind in ("sealing", "index"):
        kid = store.active(kind).id
        assert again.secret(kid) == store.secret(kid)
    sealed = Sealer(store).seal("李四", "person.name")
    assert Sealer(again).open(sealed, "person.name") == "李四"


def test_keystore_init_on_existing_store_overwrites_nothing(tmp_path):
    directory = tmp_path / "keys"
    store = KeyStore.init(directory)
    store.rotate("sealing")
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    again = KeyStore.init(directory)
    assert [(i.id, i.status) for i in again.infos()] == [(i.id, i.status) for i in store.infos()]
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == files


def test_keystore_rotate_sealing_keeps_old_values_readable(tmp_path):
    store = KeyStore.init(tmp_path / "keys")
    sealer = Sealer(store)
    old_id = store.active("sealing").id
    old = sealer.seal("王五", "person.name")
    assert Sealer.key_id_of(old) == old_id

    new_info = store.rotate("sealing")
    assert new_info.id != old_id and store.active("sealing").id == new_info.id
    assert {i.id: i.status for i in store.infos("sealing")} == {old_id: "retired", new_info.id: "active"}
    new = sealer.seal("王五", "person.name")
    assert Sealer.key_id_of(new) == new_info.id
    assert sealer.open(old, "person.name") == "王五"
    assert sealer.open(new, "person.name") == "王五"
    # The rotation is on disk: a fresh process opens both.
    reloaded = Sealer(KeyStore(tmp_path / "keys"))
    assert reloaded.open(old, "person.name") == reloaded.open(new, "person.name") == "王五"
    assert Sealer.key_id_of(reloaded.seal("x", "c")) == new_info.id


def test_keystore_rotate_qr_retires_with_not_after(tmp_path):
    store = KeyStore.init(tmp_path / "keys")
    old = store.active("qr")
    signature = store.signing_key(old.id).sign(b"code")
    before = datetime.now(timezone.utc)
    new = store.rotate("qr", overlap=timedelta(days=3))
    assert store.active("qr").id == new.id != old.id
    retired = next(i for i in store.infos("qr") if i.id == old.id)
    assert retired.status == "retired"
    not_after = datetime.fromisoformat(retired.not_after)
    assert before + timedelta(days=3) - timedelta(seconds=5) <= not_after
    assert not_after <= datetime.now(timezone.utc) + timedelta(days=3)
    assert new.not_after is None
    # The retired key still verifies the codes it signed, also after a reload.
    reloaded = KeyStore(tmp_path / "keys")
    assert reloaded.public_key(old.id).verify(signature, b"code")
    assert next(i for i in reloaded.infos("qr") if i.id == old.id).not_after == retired.not_after
    assert reloaded.active("qr").id == new.id


@pytest.mark.parametrize("kind", ["root", "index"])
def test_keystore_refuses_to_rotate_anchor_and_index_keys(tmp_path, kind):
    store = KeyStore.init(tmp_path / "keys")
    before = [(i.id, i.status) for i in store.infos()]
    with pytest.raises(KeyStoreError):
        store.rotate(kind)
    assert [(i.id, i.status) for i in KeyStore(tmp_path / "keys").infos()] == before


def test_keystore_unknown_keys_are_errors(tmp_path):
    store = KeyStore.init(tmp_path / "keys")
    with pytest.raises(KeyStoreError):
        store.signing_key("Qnope00")
    with pytest.raises(KeyStoreError):
        store.secret("Snope00")
    with pytest.raises(KeyStoreError):
        KeyStore(tmp_path / "empty").active("qr")


# --------------------------------------------------------------------------------------------
# Sealer and blind index
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> KeyStore:
    return KeyStore.init(tmp_path_factory.mktemp("ks") / "keys")


@pytest.fixture(scope="module")
def sealer(store) -> Sealer:
    return Sealer(store)


def test_sealed_value_format(store, sealer):
    sealed = sealer.seal("张三", "person.name")
    key_id, _, body = sealed.partition(".")
    assert key_id == store.active("sealing").id == Sealer.key_id_of(sealed)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body)
    blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(blob) == 12 + len("张三".encode()) + 16
    # It is plain SM4-GCM under the key named by the id, with the context as associated data.
    nonce, ct, tag = blob[:12], blob[12:-16], blob[-16:]
    assert ref_gcm(store.secret(key_id), nonce, "张三".encode(), b"person.name") == (ct, tag)


def test_sealer_binds_the_context(sealer):
    sealed = sealer.seal("110101199003074477", "person.document")
    assert sealer.open(sealed, "person.document") == "110101199003074477"
    with pytest.raises(SealBroken):
        sealer.open(sealed, "person.phone")
    with pytest.raises(SealBroken):
        sealer.open(sealed, "")


def test_sealer_uses_a_fresh_nonce(sealer):
    a, b = sealer.seal("13800138000", "person.phone"), sealer.seal("13800138000", "person.phone")
    assert a != b
    assert sealer.open(a, "person.phone") == sealer.open(b, "person.phone") == "13800138000"
    assert "13800138000" not in a


@pytest.mark.parametrize("name", ["张三", "欧阳娜娜", "阿卜杜热合曼·买买提", "𠀀𪚥 test", "Zoë O'Brien"])
def test_sealer_round_trips_unicode_names(sealer, name):
    assert sealer.open(sealer.seal(name, "person.name"), "person.name") == name


def test_sealer_refuses_broken_values(store, sealer):
    sealed = sealer.seal("张三", "person.name")
    key_id, _, body = sealed.partition(".")
    flipped = body[:5] + ("A" if body[5] != "A" else "B") + body[6:]
    for bad in (
        f"{key_id}.{flipped}",  # tampered body
        sealed[:-1],  # truncated (also invalid base64 length)
        sealed[:-4],  # truncated on a base64 boundary
        f"{key_id}.",  # no body
        f"{key_id}.!!!!",  # garbage
        "S000000." + body,  # unknown key id
        body,  # no key id
        "",
    ):
        with pytest.raises(SealBroken):
            sealer.open(bad, "person.name")
    # Another key store (same layout, other keys) cannot open it.
    other = Sealer(KeyStore.init(Path(store.directory).parent / "other"))
    with pytest.raises(SealBroken):
        other.open(sealed, "person.name")


def test_sealer_optional_helpers(sealer):
    assert sealer.seal_optional(None, "c") is None and sealer.seal_optional("", "c") is None
    assert sealer.open_optional(None, "c") is None
    assert sealer.open_optional(sealer.seal_optional("x", "c"), "c") == "x"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(), context=st.text(min_size=1, max_size=40))
def test_sealer_round_trips_any_text(sealer, value, context):
    sealed = sealer.seal(value, context)
    assert sealer.open(sealed, context) == value


def test_blind_index(store, tmp_path):
    index = BlindIndex(store)
    a = index("person.document", "110101199003074477")
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert BlindIndex(store)("person.document", "110101199003074477") == a  # deterministic
    assert BlindIndex(KeyStore(store.directory))("person.document", "110101199003074477") == a
    assert index("person.phone", "110101199003074477") != a  # differs by context
    assert index("person.document", "110101199003074478") != a
    # It is HMAC-SM3(index key, context || 0x00 || value), computed here independently.
    key = store.secret(store.active("index").id)
    assert a == hmac_rfc2104(key, b"person.document\x00110101199003074477", gmalg_sm3).hex()
    # Another key store gives another index: without the key a guess cannot be tested.
    other = BlindIndex(KeyStore.init(tmp_path / "other"))
    assert other("person.document", "110101199003074477") != a
    assert "110101199003074477" not in a
