"""SendGrid Event Webhook signatures: ECDSA P-256 over SHA-256 of (timestamp + raw body).

The sandbox signs with a private key; the receiver verifies with the public key exactly as
SendGrid documents it (base64 DER signature, base64 DER SubjectPublicKeyInfo public key).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the webhook signing key must be an EC private key")
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key in the form SendGrid's settings endpoint returns it (base64 DER SPKI)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, raw_body: bytes) -> str:
    signature = key.sign(timestamp.encode("utf-8") + raw_body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: str, timestamp: str, raw_body: bytes, signature: str) -> bool:
    """True only for a valid signature; malformed input is False, never an exception."""
    try:
        der = base64.b64decode(public_key)
        key = serialization.load_der_public_key(der)
        sig = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(sig, timestamp.encode("utf-8") + raw_body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
