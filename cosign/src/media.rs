//! Media types and annotation keys (OCI image spec, cosign, Sigstore bundle spec).

/// OCI image manifest: the `.sig` manifest, the bundle's artifact manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index: the referrers answer and the fallback index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config (the `.sig` manifest's config; any JSON will do, verifiers ignore it).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI 1.1's empty descriptor (an artifact manifest's config, blob `{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// What a registry may answer for an image: OCI and Docker v2, manifests and indexes.
pub const IMAGE_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A `.sig` layer: one simple-signing payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation with the base64 ASN.1 DER signature over the payload bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// cosign v3's bundle (layer media type and the artifact manifest's `artifactType`).
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of an in-toto statement.
pub const INTOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// cosign's predicate for `cosign sign` in the bundle layout.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Our annotation on the bundle manifest (and its index entry): `sha256:<hex>` of the
/// statement, which identifies a job's bundle for idempotent delivery and for revocation.
pub const STATEMENT_ANNOTATION: &str = "dev.trustbridge/statement-digest";
