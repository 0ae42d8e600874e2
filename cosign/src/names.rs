//! Where Cosign's artefacts live: tags next to the image, and the registry and repository an
//! image name (or a notary GUN, which is one) stands for.

/// The legacy signature tag for an image digest: `sha256-<hex>.sig` in the same repository.
pub fn sig_tag(digest_hex: &str) -> String {
    format!("sha256-{digest_hex}.sig")
}

/// The referrers tag schema's fallback index for an image digest: `sha256-<hex>`.
pub fn fallback_tag(digest_hex: &str) -> String {
    format!("sha256-{digest_hex}")
}

/// `registry.example:5000/team/app` → (`registry.example:5000`, `team/app`); a name without a
/// registry host (a first part with no `.` or `:` and not `localhost`) is Docker Hub's:
/// `docker.io`, with `library/` before single names. So `alpine`, `library/alpine` and
/// `docker.io/library/alpine` are one repository.
pub fn split_repository(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ if name.contains('/') => ("docker.io".into(), name.to_string()),
        _ => ("docker.io".into(), format!("library/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_name_their_registry() {
        assert_eq!(
            split_repository("127.0.0.1:5000/library/app"),
            ("127.0.0.1:5000".into(), "library/app".into())
        );
        for one in ["alpine", "library/alpine", "docker.io/library/alpine"] {
            assert_eq!(
                split_repository(one),
                ("docker.io".into(), "library/alpine".into()),
                "{one}"
            );
        }
        assert_eq!(
            split_repository("team/app"),
            ("docker.io".into(), "team/app".into())
        );
        assert_eq!(sig_tag("ab"), "sha256-ab.sig");
        assert_eq!(fallback_tag("ab"), "sha256-ab");
    }
}
