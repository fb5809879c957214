//! From configured names to NodeIds: parsing browse paths and NodeId
//! strings, and resolving paths with TranslateBrowsePathsToNodeIds one level
//! at a time, so a BrowseName given without a namespace matches that name in
//! whichever namespace the server put it (indexes differ between servers).

use opcua::client::Session;
use opcua::types::{
    BrowsePath, NodeId, ObjectId, QualifiedName, ReferenceTypeId, RelativePath, RelativePathElement,
};
use std::collections::HashMap;
use std::str::FromStr;

/// One BrowseName of a path: its name and, when qualified with
/// `nsu=<uri>;`, its namespace URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PathElement {
    pub ns_uri: Option<String>,
    pub name: String,
}

/// Why a configured name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("browse path `{0}` has an empty element")]
    EmptyElement(String),
    #[error("browse path element `{0}` has `nsu=` without `;`")]
    Unterminated(String),
}

/// Splits `Monitoring/nsu=http://x/;MachineTool/OperationMode` into
/// elements. URIs contain slashes, so a `nsu=` prefix is read up to its `;`.
pub(crate) fn parse_browse_path(path: &str) -> Result<Vec<PathElement>, PathError> {
    let mut out = Vec::new();
    let mut rest = path.trim().trim_start_matches('/');
    while !rest.is_empty() {
        let (ns_uri, after) = match rest.strip_prefix("nsu=") {
            Some(q) => {
                let semi = q
                    .find(';')
                    .ok_or_else(|| PathError::Unterminated(rest.to_owned()))?;
                (Some(q[..semi].to_owned()), &q[semi + 1..])
            }
            None => (None, rest),
        };
        let end = after.find('/').unwrap_or(after.len());
        let name = &after[..end];
        if name.is_empty() {
            return Err(PathError::EmptyElement(path.to_owned()));
        }
        out.push(PathElement {
            ns_uri,
            name: name.to_owned(),
        });
        rest = after.get(end + 1..).unwrap_or("");
        if after[end..].starts_with('/') && rest.is_empty() {
            return Err(PathError::EmptyElement(path.to_owned()));
        }
    }
    if out.is_empty() {
        return Err(PathError::EmptyElement(path.to_owned()));
    }
    Ok(out)
}

/// Whether `s` is written as a NodeId rather than a browse path.
pub(crate) fn looks_like_node_id(s: &str) -> bool {
    let s = s.trim();
    let body = match s.strip_prefix("nsu=") {
        Some(q) => match q.find(';') {
            Some(i) => &q[i + 1..],
            None => return false,
        },
        None => match s.strip_prefix("ns=") {
            Some(q) => match q.find(';') {
                Some(i) => &q[i + 1..],
                None => return false,
            },
            None => s,
        },
    };
    ["i=", "s=", "g=", "b="].iter().any(|p| body.starts_with(p))
}

/// Parses a NodeId, mapping `nsu=<uri>;` to the server's index for `uri`.
pub(crate) fn parse_node_id(s: &str, namespaces: &[String]) -> Result<NodeId, &'static str> {
    let s = s.trim();
    if let Some(q) = s.strip_prefix("nsu=") {
        let semi = q.find(';').ok_or("bad_node_id")?;
        let idx = namespaces
            .iter()
            .position(|u| u == &q[..semi])
            .ok_or("unknown_namespace")?;
        return NodeId::from_str(&format!("ns={idx};{}", &q[semi + 1..]))
            .map_err(|_| "bad_node_id");
    }
    NodeId::from_str(s).map_err(|_| "bad_node_id")
}

/// A path to resolve: where it starts and its elements.
#[derive(Debug, Clone)]
pub(crate) struct PathJob {
    pub start: NodeId,
    pub elements: Vec<PathElement>,
}

/// Namespace indexes to try for an element: its own when qualified,
/// otherwise every namespace of the server.
fn candidates(e: &PathElement, namespaces: &[String]) -> Result<Vec<u16>, &'static str> {
    match &e.ns_uri {
        Some(uri) => {
            let i = namespaces
                .iter()
                .position(|u| u == uri)
                .ok_or("unknown_namespace")?;
            Ok(vec![i as u16])
        }
        None => Ok((0..namespaces.len().max(1) as u16).collect()),
    }
}

fn one_step(start: &NodeId, ns: u16, name: &str) -> BrowsePath {
    BrowsePath {
        starting_node: start.clone(),
        relative_path: RelativePath {
            elements: Some(vec![RelativePathElement {
                reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                is_inverse: false,
                include_subtypes: true,
                target_name: QualifiedName::new(ns, name),
            }]),
        },
    }
}

/// Resolves every job, one level per round trip (shared prefixes are asked
/// once), in chunks of at most `max_per_call` browse paths. A job that fails
/// does not affect the others. `Err` of the whole call only when the
/// session fails.
pub(crate) async fn resolve_paths(
    session: &Session,
    namespaces: &[String],
    jobs: &[PathJob],
    max_per_call: usize,
    mut on_request: impl FnMut(),
) -> Result<Vec<Result<NodeId, &'static str>>, opcua::types::Error> {
    let mut results: Vec<Result<NodeId, &'static str>> =
        jobs.iter().map(|j| Ok(j.start.clone())).collect();
    let depth = jobs.iter().map(|j| j.elements.len()).max().unwrap_or(0);
    for level in 0..depth {
        // Distinct (node, element) steps at this level.
        let mut steps: HashMap<(NodeId, PathElement), Result<NodeId, &'static str>> =
            HashMap::new();
        for (job, res) in jobs.iter().zip(&results) {
            if let (Some(e), Ok(at)) = (job.elements.get(level), res) {
                steps
                    .entry((at.clone(), e.clone()))
                    .or_insert(Err("no_match"));
            }
        }
        // One browse path per step and candidate namespace, as (step,
        // namespace): the browse paths themselves are built per request, so
        // only one chunk of them exists at a time.
        let mut keys: Vec<(NodeId, PathElement)> = Vec::with_capacity(steps.len());
        let mut asks: Vec<(usize, u16)> = Vec::new();
        for (key, verdict) in steps.iter_mut() {
            match candidates(&key.1, namespaces) {
                Ok(nss) => {
                    asks.extend(nss.into_iter().map(|ns| (keys.len(), ns)));
                    keys.push(key.clone());
                }
                Err(reason) => *verdict = Err(reason),
            }
        }
        for chunk in asks.chunks(max_per_call.max(1)) {
            let paths: Vec<BrowsePath> = chunk
                .iter()
                .map(|&(k, ns)| one_step(&keys[k].0, ns, &keys[k].1.name))
                .collect();
            on_request();
            let answers = session.translate_browse_paths_to_node_ids(&paths).await?;
            drop(paths);
            for (&(k, _), answer) in chunk.iter().zip(answers) {
                let verdict = steps.get_mut(&keys[k]).expect("asked steps are known");
                if verdict.is_ok() {
                    continue; // an earlier namespace already matched
                }
                if answer.status_code.is_good() {
                    if let Some(t) = answer.targets.as_ref().and_then(|t| t.first()) {
                        *verdict = Ok(t.target_id.node_id.clone());
                    }
                }
            }
        }
        for (job, res) in jobs.iter().zip(results.iter_mut()) {
            let next = match (job.elements.get(level), &*res) {
                (Some(e), Ok(at)) => steps.get(&(at.clone(), e.clone())).cloned(),
                _ => None,
            };
            if let Some(n) = next {
                *res = n;
            }
        }
    }
    Ok(results)
}

/// The Objects folder, where root browse paths start.
pub(crate) fn objects_folder() -> NodeId {
    ObjectId::ObjectsFolder.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(ns: Option<&str>, name: &str) -> PathElement {
        PathElement {
            ns_uri: ns.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    #[test]
    fn plain_and_qualified_elements() {
        assert_eq!(
            parse_browse_path("Monitoring/MachineTool/OperationMode").unwrap(),
            vec![
                el(None, "Monitoring"),
                el(None, "MachineTool"),
                el(None, "OperationMode")
            ]
        );
        let mt = "http://opcfoundation.org/UA/MachineTool/";
        assert_eq!(
            parse_browse_path(&format!(
                "nsu={mt};Monitoring/Channel1/nsu={mt};ChannelState"
            ))
            .unwrap(),
            vec![
                el(Some(mt), "Monitoring"),
                el(None, "Channel1"),
                el(Some(mt), "ChannelState")
            ]
        );
        assert_eq!(parse_browse_path("/Machines/cnc-01").unwrap().len(), 2);
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert!(matches!(
            parse_browse_path(""),
            Err(PathError::EmptyElement(_))
        ));
        assert!(matches!(
            parse_browse_path("a//b"),
            Err(PathError::EmptyElement(_))
        ));
        assert!(matches!(
            parse_browse_path("a/b/"),
            Err(PathError::EmptyElement(_))
        ));
        assert!(matches!(
            parse_browse_path("nsu=http://x/Name"),
            Err(PathError::Unterminated(_))
        ));
    }

    #[test]
    fn node_ids_are_told_from_paths_and_nsu_is_mapped() {
        assert!(looks_like_node_id("ns=2;s=Lathe1"));
        assert!(looks_like_node_id("i=85"));
        assert!(looks_like_node_id("nsu=urn:x;s=Lathe1"));
        assert!(!looks_like_node_id("Machines/cnc-01"));
        assert!(!looks_like_node_id("nsu=urn:x;Machines"));
        let ns = vec![
            "http://opcfoundation.org/UA/".to_owned(),
            "urn:app".to_owned(),
            "urn:x".to_owned(),
        ];
        assert_eq!(
            parse_node_id("nsu=urn:x;s=Lathe1", &ns).unwrap(),
            NodeId::new(2, "Lathe1")
        );
        assert_eq!(
            parse_node_id("ns=1;i=7", &ns).unwrap(),
            NodeId::new(1, 7u32)
        );
        assert_eq!(
            parse_node_id("nsu=urn:nope;i=7", &ns),
            Err("unknown_namespace")
        );
        assert_eq!(parse_node_id("q=7", &ns), Err("bad_node_id"));
    }

    #[test]
    fn unqualified_names_try_every_namespace() {
        let ns = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(candidates(&el(None, "X"), &ns).unwrap(), vec![0, 1, 2]);
        assert_eq!(candidates(&el(Some("c"), "X"), &ns).unwrap(), vec![2]);
        assert_eq!(
            candidates(&el(Some("z"), "X"), &ns),
            Err("unknown_namespace")
        );
    }
}
