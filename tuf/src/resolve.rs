//! Which targets a client accepts, and which role each comes from: one rule for the client's
//! `list`/`lookup` and for the Cosign bridge's choice of what to mirror.
//!
//! Roles are walked breadth-first from `targets` through the delegations present, each
//! delegation's paths intersected (by prefix) with its parent's, as notary's
//! `RestrictDelegationPathPrefixes` does; a delegated target outside its effective paths is
//! ignored. The first role (in the order asked for) that lists a name wins: notary's CLI asks
//! for `targets` (the whole tree, breadth-first), docker asks for `targets/releases` first and
//! then `targets`.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::metadata::{Delegations, FileMeta, Role, Root, Signed, Targets, TargetsIndex};

/// A targets role's body as resolution reads it: the full [`Targets`] (the client), or the
/// [`TargetsIndex`] that keeps only names and digests (validation, the bridge and the control
/// room, which read whole repositories of any size).
pub trait TargetsBody: Role {
    /// What is kept of each target.
    type Meta;
    fn delegations(&self) -> &Delegations;
    /// The targets by name.
    fn entries(&self) -> impl Iterator<Item = (&str, &Self::Meta)>;
}

impl TargetsBody for Targets {
    type Meta = FileMeta;
    fn delegations(&self) -> &Delegations {
        &self.delegations
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &FileMeta)> {
        self.targets.iter().map(|(n, m)| (n.as_str(), m))
    }
}

/// Each target's SHA-256 digest (when it lists one of 32 bytes).
impl TargetsBody for TargetsIndex {
    type Meta = Option<[u8; 32]>;
    fn delegations(&self) -> &Delegations {
        &self.delegations
    }
    fn entries(&self) -> impl Iterator<Item = (&str, &Option<[u8; 32]>)> {
        self.targets()
    }
}

/// A target and the role it resolved from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub role: String,
    pub meta: FileMeta,
}

/// docker's lookup order for image tags.
pub const DOCKER_ORDER: &[&str] = &["targets/releases", "targets"];

/// Every role reachable from `targets` among `roles`, breadth-first, with its effective paths.
pub fn walk<T: TargetsBody>(roles: &BTreeMap<String, &T>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if !roles.contains_key("targets") {
        return out;
    }
    let mut queue = VecDeque::from([("targets".to_string(), vec![String::new()])]);
    while let Some((name, paths)) = queue.pop_front() {
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        if let Some(doc) = roles.get(&name) {
            for d in &doc.delegations().roles {
                if roles.contains_key(&d.name) {
                    let restricted: Vec<String> = d
                        .paths
                        .iter()
                        .filter(|p| paths.iter().any(|pp| p.starts_with(pp.as_str())))
                        .cloned()
                        .collect();
                    queue.push_back((d.name.clone(), restricted));
                }
            }
        }
        out.push((name, paths));
    }
    out
}

/// The targets roles a fresh client trusts among `docs`, as notary's client loads them:
/// `targets` when its signatures meet the root's `targets` keys and threshold, then each
/// delegation a trusted role names, when its file meets that role's delegation keys and
/// threshold; one that does not is skipped with its whole subtree (notary's "skipping
/// delegation"). Structure is checked, expiry is not (the caller decides what an expired role
/// means). Each trusted role maps to the key IDs whose signatures verified, sorted: a role's
/// real signers, never the IDs a file merely claims.
pub fn trusted<T: TargetsBody>(
    root: &Root,
    docs: &BTreeMap<String, Signed<T>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let check = |name: &str, doc: &Signed<T>, keys, ids: &[String], threshold| {
        doc.signed.check_structure(name).ok()?;
        let mut valid = doc.verify_signatures(name, keys, ids, threshold).ok()?;
        valid.sort_unstable();
        Some(valid)
    };
    let (Some(role), Some(doc)) = (root.roles.get("targets"), docs.get("targets")) else {
        return out;
    };
    let Some(valid) = check("targets", doc, &root.keys, &role.keyids, role.threshold) else {
        return out;
    };
    out.insert("targets".to_string(), valid);
    let mut queue = VecDeque::from(["targets".to_string()]);
    while let Some(parent) = queue.pop_front() {
        let delegations = docs[&parent].signed.delegations();
        for d in &delegations.roles {
            if out.contains_key(&d.name) {
                continue;
            }
            let Some(doc) = docs.get(&d.name) else {
                continue;
            };
            if let Some(valid) = check(&d.name, doc, &delegations.keys, &d.keyids, d.threshold) {
                out.insert(d.name.clone(), valid);
                queue.push_back(d.name.clone());
            }
        }
    }
    out
}

/// A resolved target borrowed from the parsed roles ([`resolve_refs`]).
#[derive(Debug)]
pub struct ResolvedRef<'a, M = FileMeta> {
    pub name: &'a str,
    pub role: &'a str,
    pub meta: &'a M,
}

// By hand: derived, they would ask `M: Copy` of the borrowed metadata.
impl<M> Clone for ResolvedRef<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for ResolvedRef<'_, M> {}

/// The targets a client asking for `start` (each with its subtree) accepts, first role wins;
/// and the targets ignored for lying outside their delegation's paths.
pub fn resolve(roles: &BTreeMap<String, &Targets>, start: &[&str]) -> (Vec<Resolved>, Vec<String>) {
    let (refs, ignored) = resolve_refs(roles, start);
    let out = refs
        .into_iter()
        .map(|r| Resolved {
            name: r.name.to_string(),
            role: r.role.to_string(),
            meta: r.meta.clone(),
        })
        .collect();
    (out, ignored)
}

/// As [`resolve`], borrowing names, roles and file metadata from `roles` instead of copying
/// them (a 100k-target repository's copies are tens of MiB).
pub fn resolve_refs<'a, T: TargetsBody>(
    roles: &'a BTreeMap<String, &'a T>,
    start: &[&str],
) -> (Vec<ResolvedRef<'a, T::Meta>>, Vec<String>) {
    let order = walk(roles);
    let under = |role: &str, s: &str| role == s || role.starts_with(&format!("{s}/"));
    let mut picked: Vec<&(String, Vec<String>)> = Vec::new();
    for s in start {
        for r in &order {
            if under(&r.0, s) && !picked.iter().any(|p| p.0 == r.0) {
                picked.push(r);
            }
        }
    }
    let mut out: Vec<ResolvedRef<'a, T::Meta>> = Vec::new();
    // Names already resolved: a set, not a scan of `out` (a scan made a 100k-target
    // repository cost 5·10⁹ string comparisons, about 30 s of CPU per summary).
    let mut seen: HashSet<&str> = HashSet::new();
    let mut ignored = Vec::new();
    for (role_name, allowed) in picked {
        let Some((role, doc)) = roles.get_key_value(role_name) else {
            continue;
        };
        for (name, meta) in doc.entries() {
            if !allowed.iter().any(|p| name.starts_with(p.as_str())) {
                ignored.push(format!(
                    "{role}: target {name:?} is outside the delegation's paths {allowed:?}"
                ));
                continue;
            }
            if seen.insert(name) {
                out.push(ResolvedRef {
                    name,
                    role: role.as_str(),
                    meta,
                });
            }
        }
    }
    (out, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GoTime;
    use crate::metadata::{DelegationRole, Delegations};

    fn t(names: &[&str], delegations: &[(&str, &[&str])]) -> Targets {
        Targets {
            type_: "Targets".into(),
            delegations: Delegations {
                keys: Default::default(),
                roles: delegations
                    .iter()
                    .map(|(n, p)| DelegationRole {
                        keyids: vec![],
                        name: n.to_string(),
                        paths: p.iter().map(|s| s.to_string()).collect(),
                        path_hash_prefixes: None,
                        threshold: 1,
                    })
                    .collect(),
            },
            expires: GoTime::now(),
            targets: names
                .iter()
                .map(|n| (n.to_string(), FileMeta::from_bytes(n.as_bytes())))
                .collect(),
            version: 1,
        }
    }

    #[test]
    fn docker_order_and_path_restriction() {
        let top = t(
            &["v1", "only-top"],
            &[("targets/releases", &[""]), ("targets/team", &["app/"])],
        );
        let rel = t(&["v1", "v2"], &[]);
        let team = t(
            &["app/x", "other"],
            &[("targets/team/sub", &["app/y", "elsewhere/"])],
        );
        let sub = t(&["app/y1", "elsewhere/z"], &[]);
        let roles: BTreeMap<String, &Targets> = [
            ("targets", &top),
            ("targets/releases", &rel),
            ("targets/team", &team),
            ("targets/team/sub", &sub),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (docker, ignored) = resolve(&roles, DOCKER_ORDER);
        let role_of =
            |list: &[Resolved], n: &str| list.iter().find(|r| r.name == n).map(|r| r.role.clone());
        assert_eq!(role_of(&docker, "v1").as_deref(), Some("targets/releases"));
        assert_eq!(
            role_of(&docker, "app/y1").as_deref(),
            Some("targets/team/sub")
        );
        assert_eq!(role_of(&docker, "other"), None);
        // The child's "elsewhere/" is not under the parent's "app/": restricted away.
        assert_eq!(role_of(&docker, "elsewhere/z"), None);
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        let (notary, _) = resolve(&roles, &["targets"]);
        assert_eq!(role_of(&notary, "v1").as_deref(), Some("targets"));
    }
}
