//! TLS configuration: TLS 1.3 only, the ring provider only, ALPN `shoal/1`, both sides
//! present certificates, verified by [`super::danger`].

use super::danger::PinnedByDeviceId;
use crate::identity::{DeviceId, Identity};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// The ALPN protocol name of Shoal's wire protocol, version 1.
pub const ALPN: &[u8] = b"shoal/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS setup failed: {0}")]
    Setup(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    // AES-GCM first: with AES-NI it is the fastest suite here (DEPENDENCIES.md).
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    Arc::new(p)
}

/// The configs a device listens and dials with.
pub struct TlsConfigs {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

pub fn configs(identity: &Identity) -> Result<TlsConfigs, TlsError> {
    let provider = provider();
    let verifier = PinnedByDeviceId::new(&provider);
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    // No session tickets or resumption: every connection proves its certificate again.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConfigs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// The peer's device ID from its presented certificate.
pub fn peer_id(certs: Option<&[CertificateDer<'_>]>) -> Option<DeviceId> {
    certs
        .and_then(|c| c.first())
        .map(|c| DeviceId::from_cert_der(c))
}
