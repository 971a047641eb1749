//! TLS 1.3 configuration for both ends of a mailbox connection.
//!
//! The mailbox has a self-signed certificate, made on first start and kept in its data
//! directory. Nodes do not use the web PKI: they pin the SHA-256 of the certificate DER,
//! given in the mailbox address (`host:port#<sha256>`) or learnt on first use.

#[cfg(feature = "server")]
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
#[cfg(feature = "server")]
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::protocol::ALPN;

/// What can go wrong setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the certificate or key failed.
    #[error("certificate file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Making the certificate failed.
    #[cfg(feature = "server")]
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the configuration.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
}

/// The mailbox's certificate and key.
#[cfg(feature = "server")]
#[derive(Debug)]
pub struct ServerIdentity {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

#[cfg(feature = "server")]
impl ServerIdentity {
    /// SHA-256 of the certificate DER: what nodes pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        cert_fingerprint(&self.cert)
    }

    /// Load the certificate from `dir`, or make and save one if there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join("cert.der");
        let key_path = dir.join("key.der");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Io { path, source }
        };
        if cert_path.exists() {
            let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
            let key = std::fs::read(&key_path).map_err(io(&key_path))?;
            return Ok(Self {
                cert: CertificateDer::from(cert),
                key: PrivatePkcs8KeyDer::from(key),
            });
        }
        let made = rcgen::generate_simple_self_signed(vec!["secure-messenger-mailbox".to_owned()])?;
        let key = made.signing_key.serialize_der();
        write_private(&key_path, &key).map_err(io(&key_path))?;
        std::fs::write(&cert_path, made.cert.der()).map_err(io(&cert_path))?;
        Ok(Self {
            cert: made.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key),
        })
    }

    /// The certificate in `cert` and its key in `key` (PEM or DER files, the key PKCS#8):
    /// the front-ends of one cluster share them, so that nodes pin one fingerprint. When
    /// neither file exists, a certificate is made and written to both (PEM; the key 0600;
    /// missing directories are made, 0700), once even when front-ends start at once.
    pub fn load_or_create_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject as _;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Io { path, source }
        };
        if !cert.exists() && !key.exists() {
            let made =
                rcgen::generate_simple_self_signed(vec!["secure-messenger-mailbox".to_owned()])?;
            for dir in [key.parent(), cert.parent()].into_iter().flatten() {
                if !dir.as_os_str().is_empty() {
                    let mut builder = std::fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder.create(dir).map_err(io(dir))?;
                }
            }
            // Front-ends of one cluster may start at once: the key file is claimed whole
            // or not at all, and the one that claims it writes the certificate.
            match publish(key, made.signing_key.serialize_pem().as_bytes(), true) {
                Ok(()) => publish(cert, made.cert.pem().as_bytes(), false).map_err(io(cert))?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(key)(e)),
            }
        }
        // Another front-end may be between writing the key and the certificate.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while key.exists() && !cert.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if cert.exists() != key.exists() {
            let missing = if cert.exists() { key } else { cert };
            return Err(TlsError::Io {
                path: missing.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tls_cert and tls_key go together, and only one of them exists",
                ),
            });
        }
        let cert_bytes = std::fs::read(cert).map_err(io(cert))?;
        let key_bytes = std::fs::read(key).map_err(io(key))?;
        let pem_error = |path: &Path| {
            let path = path.to_owned();
            move |e: rustls::pki_types::pem::Error| TlsError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            }
        };
        let is_pem = |bytes: &[u8]| bytes.trim_ascii_start().starts_with(b"-----BEGIN");
        let cert_der = if is_pem(&cert_bytes) {
            CertificateDer::from_pem_slice(&cert_bytes).map_err(pem_error(cert))?
        } else {
            CertificateDer::from(cert_bytes)
        };
        let key_der = if is_pem(&key_bytes) {
            PrivatePkcs8KeyDer::from_pem_slice(&key_bytes).map_err(pem_error(key))?
        } else {
            PrivatePkcs8KeyDer::from(key_bytes)
        };
        Ok(Self {
            cert: cert_der,
            key: key_der,
        })
    }

    /// The QUIC server configuration.
    pub fn server_config(
        &self,
        max_streams: u32,
        idle_timeout: std::time::Duration,
    ) -> Result<quinn::ServerConfig, TlsError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(max_streams.into());
        // A mailbox moves small messages: small windows bound what a client can make it buffer.
        transport.stream_receive_window(quinn::VarInt::from_u32(256 * 1024));
        transport.receive_window(quinn::VarInt::from_u32(1024 * 1024));
        transport.max_concurrent_uni_streams(0u32.into());
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(idle_timeout)
                .map_err(|e| TlsError::Quic(e.to_string()))?,
        ));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

#[cfg(feature = "server")]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Write `bytes` to `path` if it does not exist, all at once: into a file of its own first
/// (a random name beside it), then linked to `path` (`AlreadyExists` if another process
/// was first). `private` files are 0600.
#[cfg(feature = "server")]
fn publish(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    // Processes in separate containers may share a pid: the name is random, and a taken
    // one is tried again.
    let (temp, mut file) = loop {
        let temp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        match options.open(&temp) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    };
    let linked = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    linked
}

/// SHA-256 of a certificate's DER.
pub fn cert_fingerprint(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Pins the server certificate by SHA-256, or learns it on first use.
///
/// The handshake signature is still checked against the certificate's key, so a peer must
/// hold the pinned certificate's private key.
#[derive(Debug)]
pub struct PinVerifier {
    expected: Option<[u8; 32]>,
    seen: Mutex<Option<[u8; 32]>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// Pin `expected`, or trust on first use when `None`.
    pub fn new(expected: Option<[u8; 32]>) -> Self {
        Self {
            expected,
            seen: Mutex::new(None),
            provider: provider(),
        }
    }

    /// The fingerprint of the certificate the last handshake presented.
    pub fn seen(&self) -> Option<[u8; 32]> {
        self.seen.lock().ok().and_then(|s| *s)
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = cert_fingerprint(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(actual);
        }
        match self.expected {
            Some(expected) if expected != actual => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The QUIC client configuration for a node, with its pin verifier. With `take_pushes`
/// false the client grants the server no stream to push on (a peer that reads nothing, for
/// tests of the server).
pub fn client_config(
    verifier: Arc<PinVerifier>,
    take_pushes: bool,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Keep-alives every 2 s and a 6 s idle timeout: a mailbox that died without closing
    // the connection is noticed within seconds, and the node reconnects by itself.
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(std::time::Duration::from_secs(6))
            .map_err(|e| TlsError::Quic(e.to_string()))?,
    ));
    if !take_pushes {
        transport.max_concurrent_uni_streams(0u32.into());
    }
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    /// Front-ends started at once over the same certificate files (none there yet) make
    /// one certificate between them: the key file is claimed whole, once.
    #[test]
    fn front_ends_starting_at_once_share_one_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = dir.path().join("cluster");
        let (cert, key) = (files.join("cert.pem"), files.join("key.pem"));
        let barrier = std::sync::Barrier::new(8);
        let made: Vec<Result<[u8; 32], String>> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        ServerIdentity::load_or_create_files(&cert, &key)
                            .map(|identity| identity.fingerprint())
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            starts
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let first = made[0].clone().expect("started");
        for other in &made {
            assert_eq!(other.as_ref(), Ok(&first), "{made:?}");
        }
        let left: Vec<_> = std::fs::read_dir(&files)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 2, "no temporary files are left: {left:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the key is private");
        }
    }

    /// A certificate without its key (or a key without its certificate) is refused, naming
    /// the missing file.
    #[test]
    fn half_a_pair_is_refused_naming_the_missing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        ServerIdentity::load_or_create_files(&cert, &key).expect("made");
        std::fs::remove_file(&key).expect("remove key");
        let refused = ServerIdentity::load_or_create_files(&cert, &key)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("key.pem"), "{refused}");
        assert!(refused.contains("go together"), "{refused}");
    }
}
