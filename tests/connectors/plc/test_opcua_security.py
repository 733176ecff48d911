"""OPC UA Basic256Sha256 Sign and SignAndEncrypt with self-signed certificates from config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from defectline.config.models import OpcUaPlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import ReconnectPolicy, create_writer
from defectline.connectors.plc.readback import read_output
from defectline.connectors.plc.sim.opcua_server import OpcUaSimulator
from defectline.deploy.local.ports import free_port

FAST_RECONNECT = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2)
VALUES = {
    VerdictField.REJECT: True,
    VerdictField.CLASS_CODE: 4,
    VerdictField.CONFIDENCE: 0.5,
    VerdictField.SEQUENCE: 11,
}


def write_certificate(folder: Path, name: str, uri: str) -> tuple[Path, Path]:
    """Write a self-signed RSA 2048 certificate (DER) and key (PEM) with `uri` as URI SAN."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / f"{name}.der"
    key_path = folder / f"{name}.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_basic256sha256_write_and_read_back(
    tmp_path: Path, mode: str, opcua_map: PlcOutput
) -> None:
    server_cert, server_key = write_certificate(tmp_path, "server", "urn:defectline:plc-simulator")
    client_cert, client_key = write_certificate(tmp_path, "client", "urn:defectline:inspector")
    plc = OpcUaPlcConfig(
        name="press-opcua",
        endpoint=f"opc.tcp://127.0.0.1:{free_port()}/plc/",
        timeout_ms=2000,
        security_policy="Basic256Sha256",
        security_mode=mode,
        certificate_path=client_cert,
        private_key_path=client_key,
        server_certificate_path=server_cert if mode == "Sign" else None,
    )
    output = opcua_map
    simulator = OpcUaSimulator(
        plc,
        {"station-1": [output]},
        certificate_path=server_cert,
        private_key_path=server_key,
    )
    await simulator.start()
    try:
        async with create_writer(plc, [output], reconnect=FAST_RECONNECT) as writer:
            await writer.write(output, VALUES)
        values = await read_output(plc, output)

        unsecured = plc.model_copy(update={"security_policy": "None", "security_mode": "None"})
        with pytest.raises(Exception, match="reading from PLC"):
            await read_output(unsecured, output)
    finally:
        await simulator.stop()

    assert simulator.history["station-1"] == [11]
    assert values == VALUES


def test_security_policy_needs_certificates() -> None:
    with pytest.raises(ValidationError, match="needs certificate_path and private_key_path"):
        OpcUaPlcConfig(
            name="p",
            endpoint="opc.tcp://127.0.0.1:4840/",
            security_policy="Basic256Sha256",
            security_mode="Sign",
        )


def test_security_mode_must_fit_policy() -> None:
    with pytest.raises(ValidationError, match="does not fit security_mode"):
        OpcUaPlcConfig(name="p", endpoint="opc.tcp://127.0.0.1:4840/", security_mode="Sign")
