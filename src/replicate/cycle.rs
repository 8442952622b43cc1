//! Replication cycles: a chain of routes that would copy a topic back to the cluster it came
//! from (A -> B and B -> A, or longer). With identity names such a chain would copy every
//! record around forever. Routes whose plain topic names prove they never share a topic do
//! not count; patterns that could match the same topic do. A chain with a route that
//! prefixes names with its source alias (`rename.policy = "prefix"`, or a template
//! `...{source}<sep>{topic}`) is no cycle: that route skips names that carry its source's or
//! target's alias (MirrorMaker 2's active/active). A chain that renames otherwise
//! (`agg.{topic}`) is one: names would grow around it forever.
//!
//! Used by config load ([`crate::config::Config::validate`]) and by routes added at run
//! time ([`crate::Running::add_route`]).

use super::rename::RenamePolicy;
use super::TopicFilter;

/// One route as the cycle search sees it.
pub struct RouteEdge<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub target: &'a str,
    /// `None` when the patterns do not compile (validated elsewhere).
    pub filter: Option<TopicFilter>,
    /// How the route names topics on its target.
    pub rename: RenamePolicy,
}

/// Whether the routes of a cycle can copy the same topic.
enum Overlap {
    /// This topic is selected by every route.
    Topic(String),
    /// Only patterns: a shared topic cannot be ruled out.
    Unknown,
    /// The plain topic names of some route are selected by no other route of the cycle.
    Disjoint,
}

fn cycle_overlap(cycle: &[usize], routes: &[RouteEdge<'_>]) -> Overlap {
    let filters: Vec<&TopicFilter> = cycle.iter().filter_map(|&i| routes[i].filter.as_ref()).collect();
    // A route whose includes are all plain names selects only those topics.
    let literal_only = filters.iter().find(|f| f.literal_topics().count() == f.include_count());
    match literal_only {
        None => Overlap::Unknown,
        Some(f) => f
            .literal_topics()
            .find(|t| filters.iter().all(|g| g.matches(t)))
            .map_or(Overlap::Disjoint, |t| Overlap::Topic(t.to_string())),
    }
}

/// The first replication cycle among `routes`, described for the operator.
pub fn replication_cycle(routes: &[RouteEdge<'_>]) -> Option<String> {
    let mut clusters: Vec<&str> = routes.iter().flat_map(|r| [r.source, r.target]).collect();
    clusters.sort_unstable();
    clusters.dedup();
    for start in 0..routes.len() {
        let mut path = vec![start];
        if let Some(cycle) = extend_cycle(routes, clusters.len(), &mut path) {
            let hops: Vec<String> = cycle
                .iter()
                .map(|&i| {
                    let r = &routes[i];
                    format!("route '{}' ({} -> {})", r.name, r.source, r.target)
                })
                .collect();
            let what = match cycle_overlap(&cycle, routes) {
                Overlap::Topic(t) => format!("topic '{t}' would be copied"),
                _ => "their topic patterns could select the same topic, which would be copied".to_string(),
            };
            return Some(format!(
                "replication cycle: {}; {what} back to cluster '{}' and around again",
                hops.join(", then "),
                routes[start].source
            ));
        }
    }
    None
}

/// Depth-first search for routes continuing `path` back to its first route's source.
fn extend_cycle(routes: &[RouteEdge<'_>], clusters: usize, path: &mut Vec<usize>) -> Option<Vec<usize>> {
    let first = &routes[path[0]];
    let last = &routes[*path.last()?];
    if last.target == first.source {
        if path.iter().any(|&i| routes[i].rename.breaks_cycles()) {
            return None; // a prefixing route skips names that went around (rename.rs)
        }
        let renames = path.iter().any(|&i| routes[i].rename != RenamePolicy::Identity);
        return match cycle_overlap(path, routes) {
            Overlap::Disjoint if !renames => None,
            _ => Some(path.clone()),
        };
    }
    if path.len() >= clusters {
        return None;
    }
    for next in 0..routes.len() {
        if path.contains(&next) || routes[next].source != last.target {
            continue;
        }
        path.push(next);
        if let Some(cycle) = extend_cycle(routes, clusters, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge<'a>(name: &'a str, source: &'a str, target: &'a str, topics: &[&str]) -> RouteEdge<'a> {
        let include: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        RouteEdge {
            name,
            source,
            target,
            filter: TopicFilter::new(&include, &[]).ok(),
            rename: RenamePolicy::Identity,
        }
    }

    #[test]
    fn two_way_routes_sharing_a_topic_are_a_cycle() {
        let routes = [edge("ab", "a", "b", &["orders"]), edge("ba", "b", "a", &["orders.*"])];
        let text = replication_cycle(&routes).expect("cycle");
        assert!(text.contains("route 'ab' (a -> b), then route 'ba' (b -> a)"), "{text}");
        assert!(
            text.contains("topic 'orders' would be copied back to cluster 'a'"),
            "{text}"
        );
    }

    #[test]
    fn disjoint_topics_or_chains_are_no_cycle() {
        let routes = [edge("ab", "a", "b", &["orders"]), edge("ba", "b", "a", &["payments"])];
        assert_eq!(replication_cycle(&routes), None);
        let chain = [edge("ab", "a", "b", &[".*"]), edge("bc", "b", "c", &[".*"])];
        assert_eq!(replication_cycle(&chain), None);
    }
}
