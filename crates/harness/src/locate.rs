//! Where in a YAML text a value lives, for errors found after parsing.
//!
//! serde_yaml attaches the line and column of the node being deserialized to any error raised
//! while deserializing it. To locate `methods.bild.alpha[2]` we deserialize the text with a seed
//! that walks down that path, ignoring everything else, and fails on purpose at the target node:
//! the error's location is the node's. A path that does not exist points at its deepest existing
//! parent.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => write!(f, "{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// `a.b[2].c` for display.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        if matches!(seg, Seg::Key(_)) && !s.is_empty() {
            s.push('.');
        }
        s.push_str(&seg.to_string());
    }
    s
}

/// 1-based (line, column) of the node at `path` in `src` (or of its deepest existing parent).
pub fn locate(src: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(src);
    match (Nav { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

const HERE: &str = "__speccascade_locate__";

struct Nav<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Nav<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nav<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match &key {
                serde_yaml::Value::String(s) => s == want,
                serde_yaml::Value::Number(n) => n.to_string() == *want,
                serde_yaml::Value::Bool(b) => b.to_string() == *want,
                _ => false,
            };
            if matches {
                return map.next_value_seed(Nav { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(HERE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let mut i = 0;
        loop {
            if i == *want {
                return match seq.next_element_seed(Nav { path: rest })? {
                    Some(()) => Ok(()),
                    None => Err(de::Error::custom(HERE)),
                };
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(HERE));
            }
            i += 1;
        }
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_nodes() {
        let src = "a: 1\nb:\n  c: [10, 20, 30]\n  d:\n    - x: 1\n      y: 2\n";
        assert_eq!(locate(src, &[Seg::Key("a".into())]), Some((1, 4)));
        assert_eq!(locate(src, &[Seg::Key("b".into()), Seg::Key("c".into()), Seg::Index(2)]), Some((3, 15)));
        let y = [Seg::Key("b".into()), Seg::Key("d".into()), Seg::Index(0), Seg::Key("y".into())];
        assert_eq!(locate(src, &y), Some((6, 10)));
        // A missing key points at its parent mapping.
        assert_eq!(locate(src, &[Seg::Key("b".into()), Seg::Key("zz".into())]).map(|l| l.0), Some(3));
        assert_eq!(path_string(&y), "b.d[0].y");
    }
}
