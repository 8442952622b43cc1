//! Which source topics a route replicates, and what they are called on the target.
//!
//! Patterns are Java-style regexes matched against the *whole* topic name, as Kafka's own
//! `topics.regex`/MirrorMaker 2's `topics` do. Internal topics (`__consumer_offsets`,
//! `__transaction_state`, anything starting with `__`) are never selected.

use regex::Regex;

/// Include and exclude patterns of a route.
#[derive(Debug, Clone)]
pub struct TopicFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    include_src: Vec<String>,
}

impl TopicFilter {
    /// Compiles the patterns; each must match the whole topic name.
    pub fn new(include: &[String], exclude: &[String]) -> Result<TopicFilter, regex::Error> {
        let compile = |p: &String| Regex::new(&format!("^(?:{p})$"));
        Ok(TopicFilter {
            include: include.iter().map(compile).collect::<Result<_, _>>()?,
            exclude: exclude.iter().map(compile).collect::<Result<_, _>>()?,
            include_src: include.to_vec(),
        })
    }

    /// True when the route replicates `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        !topic.starts_with("__")
            && self.include.iter().any(|r| r.is_match(topic))
            && !self.exclude.iter().any(|r| r.is_match(topic))
    }

    /// True when an exclude pattern matches `topic`.
    pub fn excludes(&self, topic: &str) -> bool {
        self.exclude.iter().any(|r| r.is_match(topic))
    }

    /// How many include patterns there are.
    pub fn include_count(&self) -> usize {
        self.include_src.len()
    }

    /// Include patterns that are plain topic names (no regex syntax): those must exist.
    pub fn literal_topics(&self) -> impl Iterator<Item = &str> {
        self.include_src
            .iter()
            .filter(|p| p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map(String::as_str)
    }

    /// The matching topics among `topics`, sorted.
    pub fn select<'a>(&self, topics: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut out: Vec<String> = topics.into_iter().filter(|t| self.matches(t)).cloned().collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> TopicFilter {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        TopicFilter::new(&s(inc), &s(exc)).unwrap()
    }

    #[test]
    fn whole_name_match_and_exclude() {
        let filter = f(&["orders.*", "metrics"], &["orders\\.tmp"]);
        assert!(filter.matches("orders"));
        assert!(filter.matches("orders.eu"));
        assert!(!filter.matches("orders.tmp"));
        assert!(filter.excludes("orders.tmp") && !filter.excludes("orders"));
        assert!(filter.matches("metrics"));
        assert!(!filter.matches("metrics2"), "patterns match the whole name");
        assert!(!filter.matches("__consumer_offsets"));
        assert!(!f(&[".*"], &[]).matches("__transaction_state"));
    }

    #[test]
    fn literal_topics_are_plain_names() {
        let filter = f(&["orders", "logs-.*", "a_b-c"], &[]);
        assert_eq!(filter.literal_topics().collect::<Vec<_>>(), vec!["orders", "a_b-c"]);
    }
}
