//! What a source topic is called on the target: the route's rename policy.
//!
//! - `identity`: the same name (MirrorMaker 2's `IdentityReplicationPolicy`).
//! - `prefix`: `<source-alias><separator><topic>`, e.g. `a.orders` (MirrorMaker 2's
//!   `DefaultReplicationPolicy`, separator `replication.policy.separator`, default `.`).
//! - a template such as `agg.{source}.{topic}`: `{source}` is the source cluster's alias (its
//!   name in the config), `{topic}` the source topic name.
//!
//! Every name produced is checked against Kafka's topic name rules (1 to 249 of
//! `[a-zA-Z0-9._-]`, not `.` or `..`).
//!
//! Cycles (MirrorMaker 2's `isCycle`): a route whose names carry the source alias as a
//! segment in front of the topic (`prefix`, or a template with `{source}` before `{topic}`)
//! skips source topics that already carry the alias of its source or its target cluster as
//! such a segment: those came from the target, or went around and came back. So `a -> b` and
//! `b -> a` with `prefix` (active/active) never copy a record back, whereas identity names
//! would go around forever. Like MirrorMaker 2, this also skips a local topic whose name
//! happens to start with `<alias><separator>`.
//!
//! No I/O here. References: KIP-382 (MirrorMaker 2.0, "Remote topics" and "Cycle detection"),
//! Kafka's `connect/mirror-client/.../DefaultReplicationPolicy.java`,
//! `clients/.../internals/Topic.java` (legal names).

/// Kafka's maximum topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// How a route names target topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenamePolicy {
    /// Same name on the target.
    Identity,
    /// `<source-alias><separator><topic>`.
    Prefix { separator: String },
    /// `{source}` and `{topic}` replaced; `separator` is what splits the alias from the rest
    /// for cycle detection.
    Template { template: String, separator: String },
}

impl RenamePolicy {
    /// Parses `rename.policy`, `rename.template` and `rename.separator`.
    pub fn parse(policy: &str, template: Option<&str>, separator: &str) -> Result<RenamePolicy, String> {
        if separator.is_empty() || !separator.chars().all(legal_char) {
            return Err(format!(
                "rename.separator '{separator}' must be 1 or more of a-z A-Z 0-9 . _ -"
            ));
        }
        let separator = separator.to_string();
        match (policy, template) {
            ("identity", None) => Ok(RenamePolicy::Identity),
            ("prefix", None) => Ok(RenamePolicy::Prefix { separator }),
            ("template", Some(t)) => {
                if !t.contains("{topic}") {
                    return Err(format!("rename.template '{t}' must contain {{topic}}"));
                }
                let literal = t.replace("{source}", "").replace("{topic}", "");
                if let Some(c) = literal.chars().find(|&c| !legal_char(c)) {
                    return Err(format!("rename.template '{t}': '{c}' is not legal in a topic name"));
                }
                Ok(RenamePolicy::Template {
                    template: t.to_string(),
                    separator,
                })
            }
            ("template", None) => Err("rename.policy \"template\" needs rename.template".to_string()),
            ("identity" | "prefix", Some(_)) => Err("rename.template needs rename.policy = \"template\"".to_string()),
            (other, _) => Err(format!(
                "rename.policy '{other}' must be \"identity\", \"prefix\" or \"template\""
            )),
        }
    }

    /// True when every name this policy gives carries the source alias as a segment in front
    /// of the topic, so [`TopicRename::skips`] stops any cycle through the route.
    pub fn breaks_cycles(&self) -> bool {
        match self {
            RenamePolicy::Identity => false,
            RenamePolicy::Prefix { .. } => true,
            RenamePolicy::Template { template, separator } => template
                .find("{source}")
                .zip(template.find("{topic}"))
                .is_some_and(|(s, t)| {
                    s < t && template.ends_with("{topic}") && template[s..t] == format!("{{source}}{separator}")
                }),
        }
    }
}

/// A route's rename policy bound to its source and target cluster aliases.
#[derive(Debug, Clone)]
pub struct TopicRename {
    policy: RenamePolicy,
    source: String,
    target: String,
}

impl TopicRename {
    pub fn new(policy: RenamePolicy, source_alias: &str, target_alias: &str) -> TopicRename {
        TopicRename {
            policy,
            source: source_alias.to_string(),
            target: target_alias.to_string(),
        }
    }

    /// The identity policy (names unchanged).
    pub fn identity() -> TopicRename {
        TopicRename::new(RenamePolicy::Identity, "", "")
    }

    /// The target topic name of `topic`, or why it is not a legal Kafka topic name.
    pub fn target_topic(&self, topic: &str) -> Result<String, String> {
        let name = match &self.policy {
            RenamePolicy::Identity => topic.to_string(),
            RenamePolicy::Prefix { separator } => format!("{}{separator}{topic}", self.source),
            RenamePolicy::Template { template, .. } => {
                template.replace("{source}", &self.source).replace("{topic}", topic)
            }
        };
        check_topic_name(&name).map_err(|why| format!("target topic name for '{topic}' is illegal: {why}"))?;
        Ok(name)
    }

    /// True when the route must not replicate `topic` because its name shows it came from
    /// the target cluster or already went through the source (see the module docs). Only
    /// for policies that [`RenamePolicy::breaks_cycles`].
    pub fn skips(&self, topic: &str) -> bool {
        let separator = match &self.policy {
            RenamePolicy::Prefix { separator } => separator,
            RenamePolicy::Template { separator, .. } if self.policy.breaks_cycles() => separator,
            _ => return false,
        };
        let mut segments: Vec<&str> = topic.split(separator.as_str()).collect();
        segments.pop(); // the topic's own last segment is never an alias
        segments.iter().any(|s| *s == self.source || *s == self.target)
    }
}

fn legal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("'{name}' is not a topic name"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "'{name}' is {} characters long, more than {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    match name.chars().find(|&c| !legal_char(c)) {
        Some(c) => Err(format!("'{name}' contains '{c}' (only a-z A-Z 0-9 . _ - are legal)")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename(policy: &str, template: Option<&str>) -> TopicRename {
        TopicRename::new(RenamePolicy::parse(policy, template, ".").unwrap(), "a", "c")
    }

    #[test]
    fn identity_prefix_and_template_names() {
        assert_eq!(rename("identity", None).target_topic("orders").unwrap(), "orders");
        assert_eq!(rename("prefix", None).target_topic("orders").unwrap(), "a.orders");
        let t = rename("template", Some("agg.{source}.{topic}"));
        assert_eq!(t.target_topic("orders").unwrap(), "agg.a.orders");
        let dash = TopicRename::new(RenamePolicy::parse("prefix", None, "-").unwrap(), "eu", "us");
        assert_eq!(dash.target_topic("orders").unwrap(), "eu-orders");
    }

    #[test]
    fn illegal_target_names_are_refused() {
        let long = "x".repeat(248);
        assert_eq!(rename("identity", None).target_topic(&long).unwrap(), long);
        let err = rename("prefix", None).target_topic(&long).unwrap_err();
        assert!(err.contains("250 characters long, more than 249"), "{err}");
        let odd = TopicRename::new(RenamePolicy::Prefix { separator: ".".into() }, "a b", "c");
        assert!(odd.target_topic("t").unwrap_err().contains("contains ' '"));
        assert!(check_topic_name("..").is_err() && check_topic_name("").is_err());
        assert!(check_topic_name("a.b_c-D9").is_ok());
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(RenamePolicy::parse("mirror", None, ".")
            .unwrap_err()
            .contains("must be"));
        assert!(RenamePolicy::parse("template", None, ".").is_err());
        assert!(RenamePolicy::parse("template", Some("agg.{source}"), ".").is_err());
        assert!(RenamePolicy::parse("template", Some("a/{topic}"), ".")
            .unwrap_err()
            .contains("'/'"));
        assert!(RenamePolicy::parse("prefix", Some("{topic}"), ".").is_err());
        assert!(RenamePolicy::parse("prefix", None, "").is_err());
        assert!(RenamePolicy::parse("prefix", None, "/").is_err());
    }

    #[test]
    fn which_policies_break_cycles() {
        let p = |policy, template| RenamePolicy::parse(policy, template, ".").unwrap().breaks_cycles();
        assert!(!p("identity", None));
        assert!(p("prefix", None));
        assert!(p("template", Some("agg.{source}.{topic}")));
        assert!(!p("template", Some("agg.{topic}")), "no alias: agg.agg.agg... forever");
        assert!(!p("template", Some("{topic}.{source}")), "alias after the topic");
    }

    #[test]
    fn prefix_routes_skip_topics_from_the_target_or_back_home() {
        let a_to_c = rename("prefix", None);
        assert!(!a_to_c.skips("orders"));
        assert!(!a_to_c.skips("b.orders"), "from a third cluster: copied as a.b.orders");
        assert!(a_to_c.skips("c.orders"), "came from the target");
        assert!(a_to_c.skips("b.a.orders"), "went a -> b -> here: around once");
        assert!(!a_to_c.skips("orders.a"), "the last segment is the topic's own");
        assert!(!rename("identity", None).skips("c.orders"));
        assert!(rename("template", Some("agg.{source}.{topic}")).skips("agg.c.orders"));
        assert!(!rename("template", Some("agg.{topic}")).skips("agg.c.orders"));
    }
}
