//! THE DANGEROUS PART: certificate verifiers that skip chain building.
//!
//! Shoal devices use self-signed certificates; there is no certificate authority, so the
//! usual WebPKI checks cannot apply. Trust comes from the device ID instead: after the
//! handshake, the peer's ID is the SHA-256 of the certificate it presented, and the caller
//! compares it with the config before sending a single byte of folder data.
//!
//! What these verifiers still do, and must keep doing:
//! - check the handshake signature (`CertificateVerify`) against the presented
//!   certificate's public key with the ring provider's algorithms, so a peer cannot
//!   present someone else's certificate without holding its private key;
//! - require exactly the presented end-entity certificate (intermediates are ignored,
//!   never trusted).
//!
//! What they deliberately skip: chain building, names and validity dates (Syncthing does
//! the same; a device ID pins one exact certificate, which is stronger than a name).
//! Any certificate is accepted *at the TLS layer* so that a stranger can be recorded as a
//! pending device; [`crate::net`] closes that connection right after the handshake.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;

/// Accepts any presented certificate, but verifies TLS 1.3 handshake signatures.
#[derive(Debug)]
pub struct PinnedByDeviceId {
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedByDeviceId {
    pub fn new(provider: &Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self {
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

fn tls12_refused() -> Result<HandshakeSignatureValid, Error> {
    // Only TLS 1.3 is ever configured; reaching this is a bug or an attack.
    Err(Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOffered,
    ))
}

impl ServerCertVerifier for PinnedByDeviceId {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for PinnedByDeviceId {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
