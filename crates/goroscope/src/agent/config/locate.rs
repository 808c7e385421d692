//! Finds where a field sits in the YAML text, so an error found after parsing (a value out of
//! range, two fields that disagree) can still point at its line and column.
//!
//! The parser keeps positions only while it parses, so this parses again, walking down the
//! field path and stopping with a marker error at the wanted key or value: the YAML parser
//! stamps that error with the node's position. Flow style (`{ enabled: true }`), anchors and
//! comments are therefore handled exactly as the parser handles them.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::error::Segment;

/// The marker carried by the error that stops the walk where the wanted node is.
const FOUND: &str = "\u{1}goroscope-config-locate-found\u{1}";

/// Which part of a field to point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Spot {
    /// The key, occurrence `occurrence` (from 0) of it in its mapping: for unknown and
    /// repeated fields.
    Key {
        /// Which occurrence of a repeated key.
        occurrence: usize,
    },
    /// The value.
    Value,
}

/// The 1-based line and column of the field at `path` in YAML document `document` (from 0)
/// of `text`; `None` when the path is not in the text. For an empty path, the document.
pub(super) fn locate(
    text: &str,
    document: usize,
    path: &[Segment],
    spot: Spot,
) -> Option<(usize, usize)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text).nth(document)?;
    match (Seek { path, spot }).deserialize(deserializer) {
        Err(error) if error.to_string().contains(FOUND) => {
            error.location().map(|l| (l.line(), l.column()))
        }
        _ => None,
    }
}

/// Walks down `path`; stops with the marker error at the wanted node.
struct Seek<'p> {
    path: &'p [Segment],
    spot: Spot,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            return deserializer.deserialize_any(Here);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>().map(|_| ())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some((Segment::Key(key), rest)) => (key.as_str(), rest),
            _ => return drain_map(map),
        };
        let key_wanted = rest.is_empty() && matches!(self.spot, Spot::Key { .. });
        let mut seen = 0;
        loop {
            let stop_at_key = match self.spot {
                Spot::Key { occurrence } => key_wanted && seen == occurrence,
                Spot::Value => false,
            };
            let probe = KeyProbe {
                wanted: first,
                stop_at_key,
            };
            match map.next_key_seed(probe)? {
                None => return Ok(()),
                Some(true) if !key_wanted => {
                    map.next_value_seed(Seek {
                        path: rest,
                        spot: self.spot,
                    })?;
                }
                Some(true) => {
                    seen += 1;
                    map.next_value::<IgnoredAny>()?;
                }
                Some(false) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (wanted, rest) = match self.path.split_first() {
            Some((Segment::Index(index), rest)) => (*index, rest),
            _ => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
        };
        let mut index = 0;
        loop {
            let more = if index == wanted {
                seq.next_element_seed(Seek {
                    path: rest,
                    spot: self.spot,
                })?
                .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            index += 1;
        }
    }
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The wanted node: refuses whatever it is, with the marker (every default `visit_*` reports
/// what it expected, and this expects the marker).
struct Here;

impl Visitor<'_> for Here {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FOUND)
    }
}

/// Reads a key: whether it is the wanted one, or the marker error when it is and the key
/// itself is what is looked for.
struct KeyProbe<'a> {
    wanted: &'a str,
    stop_at_key: bool,
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        if key != self.wanted {
            Ok(false)
        } else if self.stop_at_key {
            Err(E::custom(FOUND))
        } else {
            Ok(true)
        }
    }
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.check("~")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.check("~")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>().map(|_| false)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        drain_map(map).map(|()| false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}
