//! The untyped tree that the layers are merged in before one typed deserialization.
//!
//! Each node remembers whether an environment variable set it, so an error found while
//! deserializing can name the variable instead of the file.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// One value of the merged configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// Non-negative integers.
    Uint(u64),
    /// Negative integers.
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (the YAML parser refuses duplicates).
    Map(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    /// The environment variable that set this value; `None` for the YAML document.
    pub env: Option<String>,
}

impl Node {
    pub fn new(value: Value) -> Self {
        Node { value, env: None }
    }

    pub fn from_env(var: &str, text: &str) -> Self {
        Node {
            value: Value::Str(text.to_owned()),
            env: Some(var.to_owned()),
        }
    }

    /// Sets `section.key` to `node`, creating the section when it is absent or null.
    ///
    /// A section that is some other scalar is left alone: deserializing it then reports
    /// the file's mistake, which is the one the user has to fix.
    pub fn set(&mut self, section: &str, key: &str, node: Node) {
        let var = node.env.clone();
        if self.value == Value::Null {
            self.value = Value::Map(Vec::new());
        }
        let Value::Map(sections) = &mut self.value else {
            return;
        };
        let index = match sections.iter().position(|(name, _)| name == section) {
            Some(index) => index,
            None => {
                sections.push((section.to_owned(), Node::new(Value::Null)));
                sections.len() - 1
            }
        };
        let section_node = &mut sections[index].1;
        if section_node.value == Value::Null {
            *section_node = Node {
                value: Value::Map(Vec::new()),
                env: var,
            };
        }
        let Value::Map(entries) = &mut section_node.value else {
            return;
        };
        match entries.iter_mut().find(|(name, _)| name == key) {
            Some((_, existing)) => *existing = node,
            None => entries.push((key.to_owned(), node)),
        }
    }

    /// A short description of the value's kind, for type errors.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Uint(_) | Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::new(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::new(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::new(Value::Bool(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::new(Value::Uint(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::new(match u64::try_from(v) {
            Ok(u) => Value::Uint(u),
            Err(_) => Value::Int(v),
        }))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v)
            .map(|u| Node::new(Value::Uint(u)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        if let Ok(u) = u64::try_from(v) {
            return Ok(Node::new(Value::Uint(u)));
        }
        i64::try_from(v)
            .map(|i| Node::new(Value::Int(i)))
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::new(Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::new(Value::Seq(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::new(Value::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_creates_sections_and_replaces_keys() {
        let mut root = Node::new(Value::Null);
        root.set("storage", "fsync", Node::from_env("A", "never"));
        root.set("storage", "fsync", Node::from_env("B", "always"));
        root.set("log", "level", Node::from_env("C", "debug"));
        let Value::Map(sections) = &root.value else {
            panic!("root is not a map");
        };
        assert_eq!(sections.len(), 2);
        let Value::Map(storage) = &sections[0].1.value else {
            panic!("storage is not a map");
        };
        assert_eq!(storage.len(), 1);
        assert_eq!(storage[0].1, Node::from_env("B", "always"));
    }
}
