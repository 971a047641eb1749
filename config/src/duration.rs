//! `#[serde(with = "duration")]`: a [`Duration`] written as a human-readable string
//! (`"7d"`, `"36h"`, `"90s"`, `"1h 30m"`), parsed with [`humantime::parse_duration`] and
//! written with [`humantime::format_duration`] (e.g. `7days`, `1s`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*value))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with a unit, such as \"7d\", \"36h\", \"90s\" or \"1h 30m\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            humantime::parse_duration(v.trim()).map_err(|e| {
                E::custom(format_args!(
                    "invalid duration {v:?}: {e} (examples: \"7d\", \"36h\", \"90s\", \"1h 30m\")"
                ))
            })
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}
