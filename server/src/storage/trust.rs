//! A GUN's DCT trust as the control room stores it (`trust_tags`, `trust_roles`), held
//! compactly between its computation and its write.
//!
//! The rows of a 100k-tag repository as owned strings (tag, 64-character digest, role,
//! signers: four allocations each) were about 30 MiB at once, the largest part of the summary
//! that follows a big publish. Here the tags and digests share one buffer and the role, its
//! signers and its expiry are kept once per role: about 90 bytes per tag.

use time::OffsetDateTime;

/// What a fresh DCT client resolves one tag to (see [`crate::mirror::mirror_set`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    pub tag: String,
    pub digest_hex: String,
    pub role: String,
    pub signers: String,
    /// When the role the tag resolves from expires.
    pub expires: Option<OffsetDateTime>,
}

/// One tag's row, borrowed from a [`TrustState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedRef<'a> {
    pub tag: &'a str,
    pub digest_hex: &'a str,
    pub role: &'a str,
    pub signers: &'a str,
    pub expires: Option<OffsetDateTime>,
}

/// A GUN's DCT trust as a whole: its tags, and when each signed role the server cannot renew
/// (`root`, `targets`, delegations) expires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustState {
    /// Each tag followed by its digest.
    text: String,
    tags: Vec<Tag>,
    /// (role, signers, expiry) of the tags, each once.
    groups: Vec<Group>,
    pub roles: Vec<(String, OffsetDateTime)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tag {
    start: usize,
    tag_len: u32,
    digest_len: u32,
    group: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    role: String,
    signers: String,
    expires: Option<OffsetDateTime>,
}

impl TrustState {
    /// Room for `tags` tags, with `roles`' expiries.
    pub fn with_capacity(tags: usize, roles: Vec<(String, OffsetDateTime)>) -> Self {
        TrustState {
            text: String::with_capacity(tags * 80),
            tags: Vec::with_capacity(tags),
            groups: Vec::new(),
            roles,
        }
    }

    /// Add a tag. Tags of one role come with the same `role`, `signers` and `expires`, which
    /// are stored once.
    pub fn push(
        &mut self,
        tag: &str,
        digest_hex: &str,
        role: &str,
        signers: &str,
        expires: Option<OffsetDateTime>,
    ) {
        let found = self
            .groups
            .iter()
            .rposition(|g| g.role == role && g.signers == signers && g.expires == expires);
        let group = found.unwrap_or_else(|| {
            self.groups.push(Group {
                role: role.to_string(),
                signers: signers.to_string(),
                expires,
            });
            self.groups.len() - 1
        });
        let start = self.text.len();
        self.text.push_str(tag);
        self.text.push_str(digest_hex);
        self.tags.push(Tag {
            start,
            tag_len: len32(tag),
            digest_len: len32(digest_hex),
            group: len32_of(group),
        });
    }

    /// The tags, in the order they were added.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = TrustedRef<'_>> {
        self.tags.iter().map(|t| {
            let g = &self.groups[t.group as usize];
            let digest_at = t.start + t.tag_len as usize;
            TrustedRef {
                tag: &self.text[t.start..digest_at],
                digest_hex: &self.text[digest_at..digest_at + t.digest_len as usize],
                role: &g.role,
                signers: &g.signers,
                expires: g.expires,
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.tags.shrink_to_fit();
    }
}

impl FromIterator<Trusted> for TrustState {
    fn from_iter<I: IntoIterator<Item = Trusted>>(items: I) -> Self {
        let mut state = TrustState::default();
        for t in items {
            state.push(&t.tag, &t.digest_hex, &t.role, &t.signers, t.expires);
        }
        state
    }
}

/// Tag names, digests and signer lists are bounded far below 4 GiB by the upload limit.
fn len32(s: &str) -> u32 {
    u32::try_from(s.len()).unwrap_or(u32::MAX)
}

fn len32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_every_row_as_added_with_shared_roles() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let rows: Vec<Trusted> = (0..1000)
            .map(|i| Trusted {
                tag: format!("v{i}"),
                digest_hex: format!("{i:064x}"),
                role: ["targets", "targets/releases"][i % 2].into(),
                signers: ["k1", "k1,k2"][i % 2].into(),
                expires: (i % 2 == 0).then_some(t0),
            })
            .collect();
        let state: TrustState = rows.iter().cloned().collect();
        assert_eq!(state.groups.len(), 2);
        let back: Vec<Trusted> = state
            .tags()
            .map(|r| Trusted {
                tag: r.tag.into(),
                digest_hex: r.digest_hex.into(),
                role: r.role.into(),
                signers: r.signers.into(),
                expires: r.expires,
            })
            .collect();
        assert_eq!(back, rows);
    }
}
