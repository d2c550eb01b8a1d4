//! The in-memory YAML document of a workflow: a plain tree whose mappings keep their keys in
//! order in a vector.
//!
//! Why not `serde_norway::Value`? Its mappings are hash maps (a table and a bucket vector per
//! mapping, 168 bytes per entry); a workflow is hundreds of thousands of mappings of two to
//! six keys, which a linear scan searches faster than a hash, at a third of the memory. On a
//! 10,000-job workflow that was a third of `augment`'s time in allocation, page faults and
//! frees. Parsing still goes through `serde_norway` (libyaml): this type only replaces the
//! tree it builds. Unknown keys, key order, anchors (expanded) and tags survive, and so does
//! the spelling of floats (see [`parse`]).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use serde_norway::Value;

/// One YAML node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// A float with its spelling in the document (empty when made here).
    Float(f64, String),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
    /// `!tag value`, the tag without its `!`.
    Tagged(Box<(String, Node)>),
}

/// A YAML mapping: entries in document order, keys unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Map(Vec<(Node, Node)>);

impl Map {
    pub(crate) fn new() -> Map {
        Map(Vec::new())
    }

    /// The value of string key `k`.
    pub(crate) fn get(&self, k: &str) -> Option<&Node> {
        self.0
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, k: &str) -> Option<&mut Node> {
        self.0
            .iter_mut()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v)
    }

    /// Sets `k` to `v`, in place if present, else at the end.
    pub(crate) fn insert(&mut self, k: &str, v: Node) {
        match self.get_mut(k) {
            Some(old) => *old = v,
            None => self.0.push((Node::Str(k.to_string()), v)),
        }
    }

    /// The value of `k`, inserted at the end by `f` if absent.
    pub(crate) fn entry(&mut self, k: &str, f: impl FnOnce() -> Node) -> &mut Node {
        let at = match self.0.iter().position(|(key, _)| key.as_str() == Some(k)) {
            Some(i) => i,
            None => {
                self.0.push((Node::Str(k.to_string()), f()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Builds a mapping of string keys.
impl<const N: usize> From<[(&str, Node); N]> for Map {
    fn from(entries: [(&str, Node); N]) -> Map {
        Map(entries
            .into_iter()
            .map(|(k, v)| (Node::Str(k.to_string()), v))
            .collect())
    }
}

impl Node {
    pub(crate) fn str(s: &str) -> Node {
        Node::Str(s.to_string())
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_map(&self) -> Option<&Map> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn as_seq(&self) -> Option<&Vec<Node>> {
        match self {
            Node::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        match self {
            Node::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// A scalar as the text it stands for (numbers and booleans spelled out), as Pegasus
    /// passes arguments and profile values.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::UInt(u) => Some(u.to_string()),
            Node::Float(_, raw) if !raw.is_empty() => Some(raw.clone()),
            Node::Float(..) => serde_norway::to_string(&self.to_value())
                .ok()
                .map(|s| s.trim().to_string()),
            Node::Null => Some(String::new()),
            _ => None,
        }
    }

    /// The same document as a `serde_norway` value (for what the fast emitter leaves to it).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Number((*i).into()),
            Node::UInt(u) => Value::Number((*u).into()),
            Node::Float(f, _) => Value::Number((*f).into()),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(s) => Value::Sequence(s.iter().map(Node::to_value).collect()),
            Node::Map(m) => Value::Mapping(
                m.iter()
                    .map(|(k, v)| (k.to_value(), v.to_value()))
                    .collect(),
            ),
            Node::Tagged(t) => Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                tag: serde_norway::value::Tag::new(t.0.clone()),
                value: t.1.to_value(),
            })),
        }
    }
}

/// Parses a YAML document (errors carry libyaml's line and column).
///
/// `serde_norway` reads YAML 1.2, where a plain `1e-3` is a float; Pegasus reads YAML 1.1
/// (PyYAML), where it is the string "1e-3", and so writes it plain. Re-spelling such a float
/// (`0.001`) would change a job's arguments, so a document with floats is read a second time,
/// guided by the first tree, to take each float's text as written.
pub(crate) fn parse(text: &str) -> Result<Node, serde_norway::Error> {
    // Limits first, in linear time: the parser would take seconds on some inputs of a few MB.
    super::limits::check(text).map_err(<serde_norway::Error as de::Error>::custom)?;
    // A large block-style workflow is parsed in parts on every core (`split.rs`).
    if let Some(node) = super::split::parse(text) {
        return Ok(node);
    }
    let node: Node = serde_norway::from_str(text)?;
    if !node.has_float() {
        return Ok(node);
    }
    de::DeserializeSeed::deserialize(Guide(node), serde_norway::Deserializer::from_str(text))
}

impl Node {
    pub(super) fn has_float(&self) -> bool {
        match self {
            Node::Float(..) => true,
            Node::Seq(s) => s.iter().any(Node::has_float),
            Node::Map(m) => m.iter().any(|(k, v)| k.has_float() || v.has_float()),
            Node::Tagged(t) => t.1.has_float(),
            _ => false,
        }
    }
}

/// The second reading of [`parse`]: walks the events in step with the tree of the first and
/// takes the raw text of each float.
struct Guide(Node);

impl<'de> de::DeserializeSeed<'de> for Guide {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        match self.0 {
            Node::Float(f, _) => Ok(Node::Float(f, String::deserialize(d)?)),
            Node::Seq(items) if items.iter().any(Node::has_float) => {
                d.deserialize_seq(Guide(Node::Seq(items)))
            }
            Node::Map(m) if m.iter().any(|(k, v)| k.has_float() || v.has_float()) => {
                d.deserialize_map(Guide(Node::Map(m)))
            }
            other => {
                de::IgnoredAny::deserialize(d)?;
                Ok(other)
            }
        }
    }
}

impl<'de> de::Visitor<'de> for Guide {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the document read the first time")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let Node::Seq(items) = self.0 else {
            return Err(de::Error::custom("the document changed between readings"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(
                seq.next_element_seed(Guide(item))?
                    .ok_or_else(|| de::Error::custom("the document changed between readings"))?,
            );
        }
        Ok(Node::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Node::Map(Map(entries)) = self.0 else {
            return Err(de::Error::custom("the document changed between readings"));
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let k = map
                .next_key_seed(Guide(k))?
                .ok_or_else(|| de::Error::custom("the document changed between readings"))?;
            out.push((k, map.next_value_seed(Guide(v))?));
        }
        Ok(Node::Map(Map(out)))
    }
}

struct NodeVisitor;

impl<'de> de::Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node, E> {
        Ok(Node::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Node, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::UInt(u),
        })
    }
    fn visit_f64<E>(self, f: f64) -> Result<Node, E> {
        Ok(Node::Float(f, String::new()))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            v.push(item);
        }
        Ok(Node::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        // Duplicate keys are an error, as in YAML; small mappings are checked by a scan, large
        // ones (rare in workflows) by their string keys in a hash set.
        let mut large: Option<std::collections::HashSet<String>> = None;
        while let Some(k) = map.next_key::<Node>()? {
            let dup = match (&mut large, &k) {
                (Some(seen), Node::Str(s)) => !seen.insert(s.clone()),
                _ => entries.iter().any(|(old, _)| *old == k),
            };
            if dup {
                return Err(de::Error::custom(format!(
                    "duplicate entry with key {}",
                    match &k {
                        Node::Str(s) => format!("{s:?}"),
                        other => format!("{other:?}"),
                    }
                )));
            }
            let v = map.next_value()?;
            entries.push((k, v));
            if entries.len() == 32
                && large.is_none()
                && entries.iter().all(|(k, _)| k.as_str().is_some())
            {
                large = Some(
                    entries
                        .iter()
                        .filter_map(|(k, _)| k.as_str().map(str::to_string))
                        .collect(),
                );
            }
        }
        Ok(Node::Map(Map(entries)))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (tag, contents) = data.variant::<String>()?;
        let value = contents.newtype_variant::<Node>()?;
        Ok(Node::Tagged(Box::new((tag, value))))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}
