//! A serde `Deserializer` over the merged tree that knows where it is.
//!
//! It does three things a stock deserializer cannot: it tracks the full key path so every
//! error names it; it refuses unknown keys with the list of known ones (taken from the
//! `fields` serde passes for each struct, so the list never drifts from the code); and it
//! parses environment strings as the type the field asks for (`"9002"` as a port,
//! `"true"` as a bool), while YAML values stay strictly typed.

use std::fmt;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::error::{ConfigError, Origin};
use crate::tree::{Node, Value};

/// An error found while deserializing the tree: the reason, plus where (once known).
#[derive(Debug)]
pub(crate) struct DeError {
    /// Full key path; `None` until the leaf that raised the error fills it in.
    path: Option<String>,
    /// Outer `None`: not located yet. `Some(None)`: the value came from the document.
    /// `Some(Some(var))`: the value came from that environment variable.
    env: Option<Option<String>>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Message(String),
    UnknownKey {
        parent: String,
        known: &'static [&'static str],
    },
}

impl DeError {
    /// Fills in the location of an error raised by a visitor that did not know it.
    /// The innermost location wins, so this only sets what is still unset.
    fn at(mut self, path: &str, node: &Node) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
        }
        if self.env.is_none() {
            self.env = Some(node.env.clone());
        }
        self
    }

    /// The public error; `document` is where non-environment values came from.
    pub fn into_config_error(self, document: &Origin) -> ConfigError {
        let origin = match self.env.flatten() {
            Some(var) => Origin::Env(var),
            None => document.clone(),
        };
        let key = self.path.unwrap_or_default();
        match self.kind {
            Kind::Message(reason) => ConfigError::Invalid {
                origin,
                key,
                reason,
            },
            Kind::UnknownKey { parent, known } => ConfigError::UnknownKey {
                origin,
                key,
                parent,
                known: known.iter().map(|k| (*k).to_owned()).collect(),
            },
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Message(m) => f.write_str(m),
            Kind::UnknownKey { .. } => f.write_str("unknown key"),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: None,
            env: None,
            kind: Kind::Message(msg.to_string()),
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Deserializes one node of the tree; `path` is its full key path (empty at the root).
pub(crate) struct NodeDe<'a> {
    pub node: &'a Node,
    pub path: String,
}

impl NodeDe<'_> {
    fn is_from_env(&self) -> bool {
        self.node.env.is_some()
    }

    /// The text of an environment-set value, which is parsed as the requested type.
    fn env_text(&self) -> Option<&str> {
        match &self.node.value {
            Value::Str(s) if self.is_from_env() => Some(s.as_str()),
            _ => None,
        }
    }

    fn type_error(&self, expected: &str) -> DeError {
        de::Error::custom(format!("expected {expected}, found {}", self.node.kind()))
    }

    fn fail<T>(&self, err: DeError) -> Result<T, DeError> {
        Err(err.at(&self.path, self.node))
    }

    fn visit_any<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Uint(u) => visitor.visit_u64(*u),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                fields: None,
                path: &self.path,
                pending: None,
            }),
        }
    }

    fn visit_int<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        match self.env_text() {
            Some(text) => {
                let text = text.trim();
                if let Ok(u) = text.parse::<u64>() {
                    visitor.visit_u64(u)
                } else if let Ok(i) = text.parse::<i64>() {
                    visitor.visit_i64(i)
                } else {
                    Err(de::Error::custom(format!("{text:?} is not an integer")))
                }
            }
            None => self.visit_any(visitor),
        }
    }
}

macro_rules! int_methods {
    ($($method:ident)+) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.visit_int(visitor).or_else(|e| self.fail(e))
        })+
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit_any(visitor).or_else(|e| self.fail(e))
    }

    int_methods!(deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.env_text() {
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(de::Error::custom(format!(
                    "{text:?} is not a boolean (use true or false)"
                ))),
            },
            None => match self.node.value {
                Value::Bool(b) => visitor.visit_bool(b),
                _ => Err(self.type_error("true or false")),
            },
        };
        result.or_else(|e| self.fail(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // An environment variable cannot be unset to mean null, so it may spell it.
        let null = self.node.value == Value::Null || self.env_text() == Some("null");
        let result = if null {
            visitor.visit_none()
        } else {
            visitor.visit_some(NodeDe {
                node: self.node,
                path: self.path.clone(),
            })
        };
        result.or_else(|e| self.fail(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            // `key:` with nothing after it is an empty list.
            Value::Null => visitor.visit_seq(Items {
                items: [].iter().enumerate(),
                path: &self.path,
            }),
            _ if self.is_from_env() => Err(de::Error::custom(
                "is a list and cannot be set from the environment; set it in the config file",
            )),
            _ => Err(self.type_error("a list")),
        };
        result.or_else(|e| self.fail(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries: &[(String, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            // A section whose keys are all commented out is null: all defaults.
            Value::Null => &[],
            _ => return self.fail(self.type_error("a mapping")),
        };
        visitor
            .visit_map(Entries {
                entries: entries.iter(),
                fields: Some(fields),
                path: &self.path,
                pending: None,
            })
            .or_else(|e| self.fail(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => Err(self.type_error("a word")),
        };
        result.or_else(|e| self.fail(e))
    }

    forward_to_deserialize_any! {
        i128 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        tuple tuple_struct map identifier ignored_any
    }
}

/// Sequence items, each with its index in the path (`cluster.nodes[2]`).
struct Items<'a, I: Iterator<Item = (usize, &'a Node)>> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for Items<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((index, node)) => seed
                .deserialize(NodeDe {
                    node,
                    path: format!("{}[{index}]", self.path),
                })
                .map(Some),
            None => Ok(None),
        }
    }
}

/// Map entries; with `fields`, a key outside them is refused with the list.
struct Entries<'a, I: Iterator<Item = &'a (String, Node)>> {
    entries: I,
    fields: Option<&'static [&'static str]>,
    path: &'a str,
    pending: Option<&'a (String, Node)>,
}

impl<'de, 'a, I: Iterator<Item = &'a (String, Node)>> MapAccess<'de> for Entries<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let (key, node) = entry;
        if let Some(fields) = self.fields
            && !fields.contains(&key.as_str())
        {
            return Err(DeError {
                path: Some(join(self.path, key)),
                env: Some(node.env.clone()),
                kind: Kind::UnknownKey {
                    parent: self.path.to_owned(),
                    known: fields,
                },
            });
        }
        self.pending = Some(entry);
        let key: StrDeserializer<'_, DeError> = key.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        match self.pending.take() {
            Some((key, node)) => seed.deserialize(NodeDe {
                node,
                path: join(self.path, key),
            }),
            None => Err(de::Error::custom("value asked for before its key")),
        }
    }
}

/// Field names of a struct in declaration order, as its `Deserialize` impl declares them.
///
/// Used to know the config sections before deserializing, so that environment variables
/// of other sections can be ignored without a hand-kept list that could drift.
pub(crate) fn struct_fields<'de, T: de::Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(ProbeError(Some(fields))) => fields,
        _ => &[],
    }
}

struct FieldProbe;

#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        ProbeError(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(fields)))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
