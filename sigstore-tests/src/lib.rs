//! Test-only crate: sigstore-rs as an implementation nobody here wrote, checking what
//! trustbridge reads and writes in Cosign's formats. See tests/.

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, verify_constraints};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
pub use trustbridge_e2e::bridge::*;

pub async fn verify(registry_port: u16, image: &str, pem: &[u8]) -> Result<(), String> {
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
        .build()
        .map_err(|e| e.to_string())?;
    let image: OciReference = image.parse().map_err(|e| format!("{e:?}"))?;
    let _ = registry_port;
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &image)
        .await
        .map_err(|e| e.to_string())?;
    if layers.is_empty() {
        return Err("no signature layers".into());
    }
    let verifier = PublicKeyVerifier::try_from(pem).map_err(|e| e.to_string())?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).map_err(|e| format!("{e:?}"))
}
