"""Synthetic AWS Nitro PKIs and attestation documents for tests, plus two real documents.

The synthetic chains mirror AWS's: a P-384 root, intermediates with decreasing path
lengths, and a leaf with basicConstraints CA:FALSE and digitalSignature but no SAN and no
authority key identifier. Documents are COSE_Sign1 (ES384) over a CBOR payload, built and
signed here exactly as the NSM does, so that tests can break one thing at a time.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from provenance.attestation import AttestationPolicy

#: The time at which synthetic documents are made.
AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Issued:
    """A key and the certificate for it."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class NitroPki:
    """A root, intermediates in cabundle order (the first is issued by the root), a leaf."""

    root: Issued
    intermediates: tuple[Issued, ...]
    leaf: Issued

    def cabundle(self) -> list[bytes]:
        return [self.root.der, *(item.der for item in self.intermediates)]

    def policy(self, **overrides: Any) -> AttestationPolicy:
        """A policy that pins this PKI's root."""
        return AttestationPolicy(nitro_roots=(self.root.der,), **overrides)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: datetime,
    not_after: datetime,
    key_usage: str | None = None,
    unknown_critical_extension: bool = False,
) -> Issued:
    """Issue a P-384 certificate; ``issuer=None`` makes it self-signed.

    ``key_usage`` is ``"ca"``, ``"leaf"`` or ``"none"`` (omit the extension); by default
    it follows ``ca``. ``unknown_critical_extension`` adds a critical private extension
    that no verifier understands.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    signer = issuer.key if issuer is not None else key
    issuer_name = issuer.cert.subject if issuer is not None else _name(common_name)
    usage = key_usage or ("ca" if ca else "leaf")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if usage != "none":
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=usage == "leaf",
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=usage == "ca",
                crl_sign=usage == "ca",
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if unknown_critical_extension:
        private = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
        builder = builder.add_extension(
            x509.UnrecognizedExtension(private, b"\x05\x00"), critical=True
        )
    if ca:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
    return Issued(key, builder.sign(signer, hashes.SHA384()))


def make_pki(
    *,
    intermediates: int = 2,
    leaf_not_before: datetime = AT - timedelta(minutes=1),
    leaf_not_after: datetime = AT + timedelta(hours=3),
    first_intermediate_not_before: datetime = AT - timedelta(days=5),
) -> NitroPki:
    """A chain shaped like AWS's: root -> ``intermediates`` CAs -> leaf."""
    root = issue(
        "test.nitro-enclaves",
        None,
        ca=True,
        not_before=AT - timedelta(days=3650),
        not_after=AT + timedelta(days=3650),
    )
    chain: list[Issued] = []
    issuer = root
    for position in range(intermediates):
        issuer = issue(
            f"intermediate-{position + 1}.test.nitro-enclaves",
            issuer,
            ca=True,
            path_length=intermediates - position - 1,
            not_before=first_intermediate_not_before if position == 0 else AT - timedelta(days=1),
            not_after=AT + timedelta(days=20),
        )
        chain.append(issuer)
    leaf = issue(
        "i-0123456789abcdef0-enc0123456789abcdef.test",
        issuer,
        ca=False,
        not_before=leaf_not_before,
        not_after=leaf_not_after,
    )
    return NitroPki(root, tuple(chain), leaf)


def default_pcrs() -> dict[int, bytes]:
    """PCRs like a production enclave's: 0-4 and 8 set, the rest zero (SHA-384 sized)."""
    pcrs = {index: bytes(48) for index in range(16)}
    for index in (0, 1, 2, 3, 4, 8):
        pcrs[index] = bytes([index + 1]) * 48
    return pcrs


def payload_fields(
    pki: NitroPki,
    *,
    public_key: bytes | None,
    nonce: bytes | None = None,
    user_data: bytes | None = None,
    timestamp: datetime = AT,
    pcrs: dict[int, bytes] | None = None,
) -> dict[str, Any]:
    """The attestation document's fields, in the NSM's order, ready to be changed by a test."""
    return {
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "digest": "SHA384",
        "timestamp": int((timestamp - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000),
        "pcrs": pcrs if pcrs is not None else default_pcrs(),
        "certificate": pki.leaf.der,
        "cabundle": pki.cabundle(),
        "public_key": public_key,
        "user_data": user_data,
        "nonce": nonce,
    }


def es384_raw_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """An ECDSA P-384 SHA-384 signature as COSE writes it: r || s, 48 bytes each."""
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def sign_document(
    pki: NitroPki,
    fields: dict[str, Any],
    *,
    protected: dict[int, Any] | None = None,
    tagged: bool = False,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Encode ``fields`` and sign them as a COSE_Sign1 with the leaf key (or ``signing_key``)."""
    protected_bytes = cbor2.dumps(protected if protected is not None else {1: -35})
    payload = cbor2.dumps(fields)
    to_be_signed = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    signature = es384_raw_signature(signing_key or pki.leaf.key, to_be_signed)
    message: Any = [protected_bytes, {}, payload, signature]
    if tagged:
        message = cbor2.CBORTag(18, message)
    return cbor2.dumps(message)


def ed25519_spki(raw: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a raw Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(text: str) -> bytes:
    compact = "".join(text.split())
    return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)


#: A real attestation document (us-east-1, 2022-09-15T17:43:28.848Z) published in the tests
#: of Cape Privacy's JavaScript SDK. Its public_key is 32 bytes; its chain ends at the real
#: AWS Nitro root. The leaf certificate expired the same day.
AWS_DOCUMENT_2022 = _b64(
    """
hEShATgioFkR5qlpbW9kdWxlX2lkeCdpLTA2OTdjOTcyOWZhNTQ3YjIwLWVuYzAxODM0MjJlZGU5YTVkYzhmZGln
ZXN0ZlNIQTM4NGl0aW1lc3RhbXAbAAABg0I/nVBkcGNyc7AAWDDqQhLuiJuhtNv+dEqt7MqLGTDeYKOhzjsMefQr
IxcA/FYcPZs08FZe2etvRgmWYkwBWDC83wX+/Mqo5VvyyNbe6eebv/MeNL8oqZqhnmspw37oCyFKQUt2ByNu3yb8
t4ZU5j8CWDAci8LYR2Gw2id30H2Il5JUCWb4iTBBfCFGWewvKZZTTniUuYv0blvIMmOCXjzjB7gDWDDBBH5t68SC
QcyUTWW3KYFFTUDlu4hZ1bdBYarrivs+ph/kAD+CxgBt7SVdniSerbsEWDAZIoSOjug8cAM173U9p4Slzc7I4SNb
bbb6RsxDZaR+qL57wpaRUS0+2JFmSNcvPRIFWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAGWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHWDAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIWDBvH/Dyp6CxxOAqOlROsP8t
/7iykiuJCNRjZcDwEgk0CSFJ7DWBTI2UTvG4+1ZLRscJWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAKWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAALWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMWDAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAANWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAPWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABrY2VydGlm
aWNhdGVZAn8wggJ7MIICAaADAgECAhABg0Iu3ppdyAAAAABjI2Q/MAoGCCqGSM49BAMDMIGOMQswCQYDVQQGEwJV
UzETMBEGA1UECAwKV2FzaGluZ3RvbjEQMA4GA1UEBwwHU2VhdHRsZTEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxOTA3BgNVBAMMMGktMDY5N2M5NzI5ZmE1NDdiMjAudXMtZWFzdC0xLmF3cy5uaXRyby1lbmNsYXZlczAe
Fw0yMjA5MTUxNzQzMjRaFw0yMjA5MTUyMDQzMjdaMIGTMQswCQYDVQQGEwJVUzETMBEGA1UECAwKV2FzaGluZ3Rv
bjEQMA4GA1UEBwwHU2VhdHRsZTEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1MxPjA8BgNVBAMMNWktMDY5
N2M5NzI5ZmE1NDdiMjAtZW5jMDE4MzQyMmVkZTlhNWRjOC51cy1lYXN0LTEuYXdzMHYwEAYHKoZIzj0CAQYFK4EE
ACIDYgAEUxCo2zKGk5++iR+2jzsoTAnRG1IdLVfI8ghH61OoMdNZ4SqKrXSghwmzS2oErHxgT8cYdOFnBTsNtlTx
C8n1BTH8FtnCOa28IeUSOzAxMk1vk4lFra5GJ1kzdEJe3CqUox0wGzAMBgNVHRMBAf8EAjAAMAsGA1UdDwQEAwIG
wDAKBggqhkjOPQQDAwNoADBlAjAE4oP+nM7n1oNF1oX001XgYTzMuSWCJbzQoXuE69u7GB6t5OBWurkReKgY+9Y9
T3wCMQCEd36eCMCPnHP3HeRqSkVOmlCL9yHKsfOzFSaL9HiWyI5Ta0aIp9MiKAL/EfFHN/NoY2FidW5kbGWEWQIV
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTELMAkGA1UEBhMCVVMxDzANBgNV
BAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYDVQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMy
ODA1WhcNNDkxMDI4MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1Mx
GzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABPwCVOumCMHzaHDimtqQ
vkY4MpJzbolL//Zy2YlES1BR5TSksfbb48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTP
YwEoCWZEh8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkFR+eWw5b6cp3Pmanf
S5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYCMQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9
OYCVRaEevL8uO1XYru5xtMPWrfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/ZZAsEwggK9MIICRKADAgECAhB9OpgjXuaNNqo+EUHb80xTMAoGCCqGSM49BAMDMEkxCzAJBgNVBAYTAlVT
MQ8wDQYDVQQKDAZBbWF6b24xDDAKBgNVBAsMA0FXUzEbMBkGA1UEAwwSYXdzLm5pdHJvLWVuY2xhdmVzMB4XDTIy
MDkxMzE1MDc0NloXDTIyMTAwMzE2MDc0NVowZDELMAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UE
CwwDQVdTMTYwNAYDVQQDDC0xZjRhMzNlNGI0OGJiNDZkLnVzLWVhc3QtMS5hd3Mubml0cm8tZW5jbGF2ZXMwdjAQ
BgcqhkjOPQIBBgUrgQQAIgNiAASaN46yEVha4o9cZDEINFWumxrQr/P/PdncrJ4rlPB1WR9+C4GxI1tMkylZX713
Z0e/wkVddLJTKyjK6sgtJybrCAQQ8tzG3kbNUkOmF5XYOTbu1pCouDGSEbmGFBAKyR+jgdUwgdIwEgYDVR0TAQH/
BAgwBgEB/wIBAjAfBgNVHSMEGDAWgBSQJbUN2QVH55bDlvpync+Zqd9LljAdBgNVHQ4EFgQU5kD9577MT5Z93Otp
m1hHu0zR5ucwDgYDVR0PAQH/BAQDAgGGMGwGA1UdHwRlMGMwYaBfoF2GW2h0dHA6Ly9hd3Mtbml0cm8tZW5jbGF2
ZXMtY3JsLnMzLmFtYXpvbmF3cy5jb20vY3JsL2FiNDk2MGNjLTdkNjMtNDJiZC05ZTlmLTU5MzM4Y2I2N2Y4NC5j
cmwwCgYIKoZIzj0EAwMDZwAwZAIwGAroustRYY17G4kl3p8l9kK2XL2qn7PIq/IY71Jmyb48zn4tww0m3GBhtVn1
HxueAjAjKIsMktjVEIrAvVLvCFder+fXWryHSA1cVaKSrhD7myZPQbUCRQtdC6g4esmVYyhZAxgwggMUMIICmqAD
AgECAhBAYP8m6/EePCMiFz2io6fXMAoGCCqGSM49BAMDMGQxCzAJBgNVBAYTAlVTMQ8wDQYDVQQKDAZBbWF6b24x
DDAKBgNVBAsMA0FXUzE2MDQGA1UEAwwtMWY0YTMzZTRiNDhiYjQ2ZC51cy1lYXN0LTEuYXdzLm5pdHJvLWVuY2xh
dmVzMB4XDTIyMDkxNTA4NDQwMFoXDTIyMDkyMTAwNDM1OVowgYkxPDA6BgNVBAMMM2RmZWI2MGVjYmFjNzJmNzku
em9uYWwudXMtZWFzdC0xLmF3cy5uaXRyby1lbmNsYXZlczEMMAoGA1UECwwDQVdTMQ8wDQYDVQQKDAZBbWF6b24x
CzAJBgNVBAYTAlVTMQswCQYDVQQIDAJXQTEQMA4GA1UEBwwHU2VhdHRsZTB2MBAGByqGSM49AgEGBSuBBAAiA2IA
BHiwdr2zI7ZIKAIh4Uw6LkHjpX6S0CaAgpG5wMcr25GQJiviEaPKVvzxvPcMHXA/sACgEtiG3dVHF0RNR1/9alsS
3XMGJYzFUaTbEZ5Cm3QC/CosvuNU8KGIiKCnJ3P2g6OB6jCB5zASBgNVHRMBAf8ECDAGAQH/AgEBMB8GA1UdIwQY
MBaAFOZA/ee+zE+WfdzraZtYR7tM0ebnMB0GA1UdDgQWBBQi6uc0nF+lutGWig/UpJzkKLbNIzAOBgNVHQ8BAf8E
BAMCAYYwgYAGA1UdHwR5MHcwdaBzoHGGb2h0dHA6Ly9jcmwtdXMtZWFzdC0xLWF3cy1uaXRyby1lbmNsYXZlcy5z
My51cy1lYXN0LTEuYW1hem9uYXdzLmNvbS9jcmwvYzA0YzY0YjUtNjZlNy00ZGQ5LThiYTQtMWVmNTZkMDIxZjg2
LmNybDAKBggqhkjOPQQDAwNoADBlAjEAl3Q9S1U80wNCWuBOnZyWhIQfcoTS70Yo+ZKrb6lUphnTQux1zJ6o0eEm
ip7Ce71AAjACwD3aDvPR47f5iXjZVFplXYKQUGH0Uvsmc9FBg5Lsy6bbcnQgtQ77yE3Q0jdcnftZAoMwggJ/MIIC
BaADAgECAhUAsis7FRBJoOKDVpjp0HSskN978+4wCgYIKoZIzj0EAwMwgYkxPDA6BgNVBAMMM2RmZWI2MGVjYmFj
NzJmNzkuem9uYWwudXMtZWFzdC0xLmF3cy5uaXRyby1lbmNsYXZlczEMMAoGA1UECwwDQVdTMQ8wDQYDVQQKDAZB
bWF6b24xCzAJBgNVBAYTAlVTMQswCQYDVQQIDAJXQTEQMA4GA1UEBwwHU2VhdHRsZTAeFw0yMjA5MTUxNTI2MDha
Fw0yMjA5MTYxNTI2MDhaMIGOMQswCQYDVQQGEwJVUzETMBEGA1UECAwKV2FzaGluZ3RvbjEQMA4GA1UEBwwHU2Vh
dHRsZTEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1MxOTA3BgNVBAMMMGktMDY5N2M5NzI5ZmE1NDdiMjAu
dXMtZWFzdC0xLmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABHSdTN7EkWmIgHSd4+Qo
tMOF/tytJUlbbMrjulUbrJaeBBYZxzJ1k9pPu+4i5d3EdNbM/g6RFAOtfadNVT7n5YWquJQh+sdQiSjkYAqD8DNl
G6hHm8hnQ2wBzNqJM6Y5r6MmMCQwEgYDVR0TAQH/BAgwBgEB/wIBADAOBgNVHQ8BAf8EBAMCAgQwCgYIKoZIzj0E
AwMDaAAwZQIwfH2ZgIPwSfhhi01I6kbLL9LT77JvP1/Ed1QSlB0l89ZHfI+sVFXPwCdAOYNtjtSCAjEAhfXuA7eR
n5cx/6ibnrQwnWGlNubruXit7wdQRRbf6lmbt6+4OUr2cb1phCqRug6VanB1YmxpY19rZXlYIBXbHGetyfzpH32j
I8cItuY58Fha+KSgkRJ/Lf3P6vgIaXVzZXJfZGF0YVj6eyJmdW5jX2NoZWNrc3VtIjoiWm5NZVhNOGlab0RkWEpp
aDBhMVN0NlRKaHBoQVF0Qm5MWTh4VXhNTE5LZz0iLCJmdW5jX2hhc2giOiJabk1lWE04aVpvRGRYSmloMGExU3Q2
VEpocGhBUXRCbkxZOHhVeE1MTktnPSIsImtleV9jaGVja3N1bSI6Ii8vUG10WHl1VWJ1T2xFaUFPUWdKRmJBUCtL
ajVQb2NBUTRCUU01VVo1LzA9Iiwia2V5X3BvbGljeV9oYXNoIjoiLy9QbXRYeXVVYnVPbEVpQU9RZ0pGYkFQK0tq
NVBvY0FRNEJRTTVVWjUvMD0ifWVub25jZUxHtfuml5y/flZ+JilYYMrVmWmfbHTwkU7wzVRoZrQHZB8EY53mJzYm
fPlDrj1BGTpi1xnsEW09RHn9qfiXisfVB6npKo8caHCUqouU0hd9e7UmVqGjK9hEyrgPi12OFB/pCOkf2eDGC1e+
n7rivg
"""
)


#: A real attestation document (ap-southeast-2, 2026-02-06T08:24:18.452Z) published in the
#: tests of the epsilon-data nitro-verify package. It has no public_key (null).
AWS_DOCUMENT_2026 = _b64(
    """
hEShATgioFkScb9pbW9kdWxlX2lkeCdpLTA3NjFhNGNiY2M3NjMyYWVmLWVuYzAxOWMzMjBjYjMyZjZiN2FmZGln
ZXN0ZlNIQTM4NGl0aW1lc3RhbXAbAAABnDINTRRkcGNyc7AAWDBhZYVTaWVKWHva1Z+lMvQw1976OOz1furG0px+
h6MrYhiRhi0E+2RCP2ux4WJvwCYBWDBLTVs2YbPvwSkgkAyA4Sbkzng8Ui3mwCoqW/evOiuTJ7hndvGI5L4cHEBK
Ep29pJMCWDClDyFJUtHMFosE2lTbGxY6huX/7+wiO3tkDfiLZlw9t0XppoZafbJlN0I5/SZKVSIDWDAljxczR2XD
vm4+0cNAbS8jgUb1Caz6tJzoTcxwb074s7sK4ZaCodvp8XUFWplSjngEWDD9OSnTlG1TSJbpcEpTkTbDK58zG3np
1HsN38tMiOimcccNLRKT94PgfhSMBIBy3aYFWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAGWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAHWDAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIWDAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAJWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAKWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAALWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMWDAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAANWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAPWDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABrY2VydGlm
aWNhdGVZAogwggKEMIICC6ADAgECAhABnDIMsy9regAAAABphaUyMAoGCCqGSM49BAMDMIGTMQswCQYDVQQGEwJV
UzETMBEGA1UECAwKV2FzaGluZ3RvbjEQMA4GA1UEBwwHU2VhdHRsZTEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxPjA8BgNVBAMMNWktMDc2MWE0Y2JjYzc2MzJhZWYuYXAtc291dGhlYXN0LTIuYXdzLm5pdHJvLWVuY2xh
dmVzMB4XDTI2MDIwNjA4MjQxNVoXDTI2MDIwNjExMjQxOFowgZgxCzAJBgNVBAYTAlVTMRMwEQYDVQQIDApXYXNo
aW5ndG9uMRAwDgYDVQQHDAdTZWF0dGxlMQ8wDQYDVQQKDAZBbWF6b24xDDAKBgNVBAsMA0FXUzFDMEEGA1UEAww6
aS0wNzYxYTRjYmNjNzYzMmFlZi1lbmMwMTljMzIwY2IzMmY2YjdhLmFwLXNvdXRoZWFzdC0yLmF3czB2MBAGByqG
SM49AgEGBSuBBAAiA2IABK61iHD4L4VGalm0bmNszkAjRYnGFXTKDK6lPLa4jf+KSWVWdqJ34R/+81X++GkehRrQ
VLye78W0WMdZ/jdZiEb/eqyuFyEZBN0ZVLJZy7L5xsYUw5eq+c/eU3Saq51eg6MdMBswDAYDVR0TAQH/BAIwADAL
BgNVHQ8EBAMCBsAwCgYIKoZIzj0EAwMDZwAwZAIwXz0mH6apGkkm9+AfGxMOP4US3gyTnZziZ7pKFszG34jHOwd4
fFUqarFgVghc7yjAAjADLFJbQsBIcD2Foz25RfMV0rwiSbjGCe0w9mZ/btcaPB1VixCuUP2sNMTa4dhHIt1oY2Fi
dW5kbGWEWQIVMIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTELMAkGA1UEBhMC
VVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYDVQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcN
MTkxMDI4MTMyODA1WhcNNDkxMDI4MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYD
VQQLDANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABPwCVOum
CMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQX
CEPZ3BABIeTPYwEoCWZEh8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkFR+eW
w5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYCMQCjfy+Rocm9Xue4YnwWmNJVA44f
A0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPWrfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8
Yfwr6wPLb+6NIwLz3/ZZAsYwggLCMIICSaADAgECAhAmjUSeTNpGDhYGtJbxW+zAMAoGCCqGSM49BAMDMEkxCzAJ
BgNVBAYTAlVTMQ8wDQYDVQQKDAZBbWF6b24xDDAKBgNVBAsMA0FXUzEbMBkGA1UEAwwSYXdzLm5pdHJvLWVuY2xh
dmVzMB4XDTI2MDIwNDExMzczMVoXDTI2MDIyNDEyMzczMVowaTELMAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpv
bjEMMAoGA1UECwwDQVdTMTswOQYDVQQDDDJkZmVkY2FlMGYyNTNkNDEyLmFwLXNvdXRoZWFzdC0yLmF3cy5uaXRy
by1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABDICayvKyXvHniQkuXV7ilEEBYK0viBP8iHgq5Iwgtel
0axTcQSAQg+H07yPM1KmKwMwI0FbKw4Epke/TTzgub6xM8QKYAq1buns4wYBSMA49eiKM3iWXV4jouoJDMPc8aOB
1TCB0jASBgNVHRMBAf8ECDAGAQH/AgECMB8GA1UdIwQYMBaAFJAltQ3ZBUfnlsOW+nKdz5mp30uWMB0GA1UdDgQW
BBQK8+1EMdRattEMcdWDwwGdlR0jIzAOBgNVHQ8BAf8EBAMCAYYwbAYDVR0fBGUwYzBhoF+gXYZbaHR0cDovL2F3
cy1uaXRyby1lbmNsYXZlcy1jcmwuczMuYW1hem9uYXdzLmNvbS9jcmwvYWI0OTYwY2MtN2Q2My00MmJkLTllOWYt
NTkzMzhjYjY3Zjg0LmNybDAKBggqhkjOPQQDAwNnADBkAjAoxpAVdI013rNanngptm9yzAqwJE8Lz/UqxbI+QRBm
+dTWadieP/kKC/W19KHntn0CMGJCwW/gZ60dQumxFz8tmpW7puiIRkAnZ42WnTxtt2FZA/44J1isbM7eSacyR2bb
z1kDLzCCAyswggKxoAMCAQICEQCJ79lX/6gV1kwkjZM04OTXMAoGCCqGSM49BAMDMGkxCzAJBgNVBAYTAlVTMQ8w
DQYDVQQKDAZBbWF6b24xDDAKBgNVBAsMA0FXUzE7MDkGA1UEAwwyZGZlZGNhZTBmMjUzZDQxMi5hcC1zb3V0aGVh
c3QtMi5hd3Mubml0cm8tZW5jbGF2ZXMwHhcNMjYwMjA1MjEyOTIxWhcNMjYwMjExMTQyOTIwWjCBjjFBMD8GA1UE
Aww4MTA4OGYyNTQzODc5YWQ4MS56b25hbC5hcC1zb3V0aGVhc3QtMi5hd3Mubml0cm8tZW5jbGF2ZXMxDDAKBgNV
BAsMA0FXUzEPMA0GA1UECgwGQW1hem9uMQswCQYDVQQGEwJVUzELMAkGA1UECAwCV0ExEDAOBgNVBAcMB1NlYXR0
bGUwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAAR3IcVVe7MLV8Cp3zFpYRinJmN0qoBLTzE8T+ZGnGT0G6HNZ1ScIgwK
ngFD8gXXEPepSzopTg0hNpiX7srYC6wvIiDxBvr9+6m0SzUxK48HPF2UJpqEtNytaAH1+LWzNwqjgfYwgfMwEgYD
VR0TAQH/BAgwBgEB/wIBATAfBgNVHSMEGDAWgBQK8+1EMdRattEMcdWDwwGdlR0jIzAdBgNVHQ4EFgQULdSndnVl
gtZPRrYtYB+K8NuekzgwDgYDVR0PAQH/BAQDAgGGMIGMBgNVHR8EgYQwgYEwf6B9oHuGeWh0dHA6Ly9jcmwtYXAt
c291dGhlYXN0LTItYXdzLW5pdHJvLWVuY2xhdmVzLnMzLmFwLXNvdXRoZWFzdC0yLmFtYXpvbmF3cy5jb20vY3Js
LzY2YmVkMWI5LTE4NzgtNDYxZS1hNTQ4LWI3ODMwNGM0Mzc5YS5jcmwwCgYIKoZIzj0EAwMDaAAwZQIwcTOeiBNw
Alvsvs7Bzubjr4ZWysLmQ5CP6cgtni40YzjJZaex7tH/RmfndZMIvK2fAjEAmLcryXqI50OSoF4O8coJrEQW5CFg
6BjQqlQE5Z0WfYCmjzs5FFyetviX4HA02iJIWQLMMIICyDCCAk6gAwIBAgIUfygUwUs/LNsToGEA+EyBp/ztf40w
CgYIKoZIzj0EAwMwgY4xQTA/BgNVBAMMODEwODhmMjU0Mzg3OWFkODEuem9uYWwuYXAtc291dGhlYXN0LTIuYXdz
Lm5pdHJvLWVuY2xhdmVzMQwwCgYDVQQLDANBV1MxDzANBgNVBAoMBkFtYXpvbjELMAkGA1UEBhMCVVMxCzAJBgNV
BAgMAldBMRAwDgYDVQQHDAdTZWF0dGxlMB4XDTI2MDIwNjA4MjMyNloXDTI2MDIwNzA4MjMyNlowgZMxCzAJBgNV
BAYTAlVTMRMwEQYDVQQIDApXYXNoaW5ndG9uMRAwDgYDVQQHDAdTZWF0dGxlMQ8wDQYDVQQKDAZBbWF6b24xDDAK
BgNVBAsMA0FXUzE+MDwGA1UEAww1aS0wNzYxYTRjYmNjNzYzMmFlZi5hcC1zb3V0aGVhc3QtMi5hd3Mubml0cm8t
ZW5jbGF2ZXMwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAARmtoPINDpni5ls2xPTX+jXvGSgu0gcGwjNJJ8foJHEx/Io
EG3hqvvZuNNk09Crlej6ZnMfAYIkexgTJ1TydzotNzq5qNGzbn18k8XFVd0UdX++FJZctkCP9ciZhyyZ4fujZjBk
MBIGA1UdEwEB/wQIMAYBAf8CAQAwDgYDVR0PAQH/BAQDAgIEMB0GA1UdDgQWBBRtafdjn6TTXgRTMzBCXtlMYuTb
PTAfBgNVHSMEGDAWgBQt1Kd2dWWC1k9Gti1gH4rw256TODAKBggqhkjOPQQDAwNoADBlAjABt8nRcTpSgkmJiRrT
9iU2USmvQdvC9ASe6d/BlSa8twDS9bwW4BfxfuiUq9RstwYCMQDjlji5hCjNdA5U22L2vWIscSX9rGGyQsqE6be9
z6mKcf01slqSsG1gPbUEyHME791qcHVibGljX2tlefZpdXNlcl9kYXRhWQEheyJqb2JfaWQiOiAicnNhLXNlc3Np
b24tYWUxMmE0MTUiLCAibWV0YWRhdGEiOiB7ImRlY3J5cHRlZF9jc3Zfc2l6ZSI6IDY2NywgImRlY3J5cHRlZF96
aXBfc2l6ZSI6IDMyNDEsICJlbmNyeXB0ZWRfY3N2X3NpemUiOiAxMjYwLCAiZW5jcnlwdGVkX3ppcF9zaXplIjog
NDY5Nn0sICJvdXRwdXRfaGFzaCI6ICI4OTBkYTllOGNhNTA3YzJmYmJiNGZiYzUwYjg4MjM1OGQ5NmI4ZWZjM2Vm
MjNiYjhjMDVlY2E5NjU1MTNjNzc1IiwgIm91dHB1dF9sZW5ndGgiOiAxNzAsICJ0aW1lc3RhbXAiOiAxNzcwMzY2
MjU4fWVub25jZVgggAhjv1lwVeGrhure9U+lyakGre+2h4Lbjk/q0r7ZqN//WGAiRTqCE34lOrokyDoeiFnBs8IT
o+hwU+duBxVjwOMC7jKnRWbyqF0MnO/RIfEpXcmLdHWivizUlzbgc4v/OKRNDouFSj6n2PsklNtN6YfGhRyE08j6
w91I2aAa0hdzjpI=
"""
)

AWS_DOCUMENT_2022_TIME = datetime(2022, 9, 15, 17, 43, 28, 848000, tzinfo=UTC)
AWS_DOCUMENT_2026_TIME = datetime(2026, 2, 6, 8, 24, 18, 452000, tzinfo=UTC)
