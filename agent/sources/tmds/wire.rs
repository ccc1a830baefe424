//! The metadata service's JSON as it arrives: every field optional, unknown fields ignored,
//! numbers as integers or floats, a value of the wrong type read as absent. Nothing outside
//! `tmds` sees a field name of the service.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON number as TMDS sent it; anything that is not a number reads as `Absent`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) enum Num {
    #[default]
    Absent,
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Num {
    /// The value as a count. Negative or non-finite values are absent; floats are truncated.
    pub(super) fn as_u64(self) -> Option<u64> {
        match self {
            Num::Unsigned(v) => Some(v),
            Num::Signed(v) => u64::try_from(v).ok(),
            Num::Float(v) if v.is_finite() && v >= 0.0 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as a signed integer; floats count only when they hold a whole number in range.
    pub(super) fn as_i64(self) -> Option<i64> {
        match self {
            Num::Unsigned(v) => i64::try_from(v).ok(),
            Num::Signed(v) => Some(v),
            Num::Float(v) if v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64 => {
                Some(v as i64)
            }
            _ => None,
        }
    }

    pub(super) fn as_f64(self) -> Option<f64> {
        match self {
            Num::Unsigned(v) => Some(v as f64),
            Num::Signed(v) => Some(v as f64),
            Num::Float(v) if v.is_finite() => Some(v),
            _ => None,
        }
    }
}

/// A JSON string as TMDS sent it; integers are kept as their decimal text, anything else is
/// absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Text(pub(super) Option<String>);

impl Text {
    pub(super) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub(super) fn to_owned_or_empty(&self) -> String {
        self.0.clone().unwrap_or_default()
    }
}

/// What a leaf field turned out to hold: the one visitor behind both [`Num`] and [`Text`].
pub(super) enum Leaf {
    Num(Num),
    Text(String),
    Other,
}

pub(super) struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Unsigned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Signed(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Leaf, E> {
        Ok(Leaf::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Leaf, E> {
        Ok(Leaf::Text(v))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_unit<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_none<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Leaf, D::Error> {
        d.deserialize_any(LeafVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(LeafVisitor)? {
            Leaf::Num(n) => n,
            Leaf::Text(_) | Leaf::Other => Num::Absent,
        })
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match d.deserialize_any(LeafVisitor)? {
            Leaf::Text(s) => Some(s),
            Leaf::Num(Num::Unsigned(v)) => Some(v.to_string()),
            Leaf::Num(Num::Signed(v)) => Some(v.to_string()),
            Leaf::Num(_) | Leaf::Other => None,
        }))
    }
}

/// An object-valued field that reads as `None` when it is `null` or has the wrong shape, so
/// one odd field never costs the whole document.
#[derive(Debug)]
pub(super) struct Lenient<T>(pub(super) Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(value).ok()))
    }
}

impl<T> Lenient<T> {
    pub(super) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct RawTask {
    pub(super) cluster: Text,
    #[serde(rename = "TaskARN")]
    pub(super) task_arn: Text,
    pub(super) family: Text,
    pub(super) revision: Text,
    pub(super) known_status: Text,
    pub(super) launch_type: Text,
    pub(super) availability_zone: Text,
    /// Only on tasks a service started, and only from newer agents.
    pub(super) service_name: Text,
    pub(super) limits: Lenient<RawLimits>,
    pub(super) containers: Lenient<Vec<Lenient<RawContainer>>>,
    pub(super) ephemeral_storage_metrics: Lenient<RawEphemeralStorage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLimits {
    /// vCPUs on the task; CPU units (1024 per vCPU) on a container.
    #[serde(rename = "CPU")]
    pub(super) cpu: Num,
    /// MiB.
    #[serde(rename = "Memory")]
    pub(super) memory: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct RawContainer {
    pub(super) docker_id: Text,
    pub(super) name: Text,
    pub(super) image: Text,
    pub(super) known_status: Text,
    #[serde(rename = "Type")]
    pub(super) kind: Text,
    pub(super) restart_count: Num,
    pub(super) exit_code: Num,
    pub(super) health: Lenient<RawHealth>,
    pub(super) networks: Lenient<Vec<Lenient<RawContainerNetwork>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawHealth {
    pub(super) status: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct RawContainerNetwork {
    pub(super) network_mode: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct RawEphemeralStorage {
    /// MiB.
    pub(super) utilized: Num,
    /// MiB.
    pub(super) reserved: Num,
}

/// One container's value in `/task/stats` (Docker's stats format).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawStats {
    pub(super) read: Text,
    pub(super) preread: Text,
    pub(super) cpu_stats: Lenient<RawCpu>,
    pub(super) precpu_stats: Lenient<RawCpu>,
    pub(super) memory_stats: Lenient<RawMemory>,
    pub(super) pids_stats: Lenient<RawPids>,
    pub(super) networks: Lenient<BTreeMap<String, Lenient<RawInterface>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCpu {
    pub(super) cpu_usage: Lenient<RawCpuUsage>,
    pub(super) online_cpus: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCpuUsage {
    /// Nanoseconds.
    pub(super) total_usage: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawMemory {
    pub(super) usage: Num,
    pub(super) limit: Num,
    pub(super) stats: Lenient<RawMemoryDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawMemoryDetail {
    /// cgroup v1 page cache.
    pub(super) cache: Num,
    /// cgroup v2 page cache.
    pub(super) file: Num,
    /// cgroup v1 (this cgroup only) and v2.
    pub(super) inactive_file: Num,
    /// cgroup v1, hierarchical: preferred when present.
    pub(super) total_inactive_file: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPids {
    pub(super) current: Num,
    pub(super) limit: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawInterface {
    pub(super) rx_bytes: Num,
    pub(super) rx_packets: Num,
    pub(super) rx_errors: Num,
    pub(super) rx_dropped: Num,
    pub(super) tx_bytes: Num,
    pub(super) tx_packets: Num,
    pub(super) tx_errors: Num,
    pub(super) tx_dropped: Num,
}
