//! Task-level `cpu` and `memory`, which the ECS API types as strings with units.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text of a task-level `cpu` or `memory` value, kept as written so that messages can quote it.
///
/// ECS types both as strings (`"256"`, `"1 vCPU"`, `"2 GB"`); hand-written definitions often use JSON
/// numbers, which are accepted and stored as their decimal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSize(pub String);

impl TaskSize {
    /// CPU units (1024 per vCPU): `"256"`, `"1 vCPU"`, `"0.25 vcpu"`, `"2vCPU"`.
    pub fn cpu_units(&self) -> Result<u64, String> {
        let text = self.0.trim();
        match strip_suffix_ignore_case(text, "vcpu") {
            Some(number) => scaled_whole(number.trim_end(), 1024)
                .ok_or_else(|| format!("{:?} is not a whole number of cpu units (1 vCPU = 1024 units)", self.0)),
            None => plain_whole(text).ok_or_else(|| {
                format!("{:?} is not a cpu value (expected units like \"256\" or vCPUs like \"1 vCPU\")", self.0)
            }),
        }
    }

    /// Memory in MiB: `"512"`, `"2 GB"`, `"2GB"`, `"0.5 GB"` (ECS's GB means GiB: 1 GB = 1024 MiB).
    pub fn memory_mib(&self) -> Result<u64, String> {
        let text = self.0.trim();
        match strip_suffix_ignore_case(text, "gb") {
            Some(number) => scaled_whole(number.trim_end(), 1024).ok_or_else(|| {
                format!(
                    "{:?} is not a whole number of MiB (1 GB = 1024 MiB)",
                    self.0
                )
            }),
            None => plain_whole(text).ok_or_else(|| {
                format!(
                    "{:?} is not a memory value (expected MiB like \"512\" or GB like \"2 GB\")",
                    self.0
                )
            }),
        }
    }
}

impl From<&str> for TaskSize {
    fn from(text: &str) -> Self {
        TaskSize(text.to_owned())
    }
}

fn strip_suffix_ignore_case<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let split = text.len().checked_sub(suffix.len())?;
    let (head, tail) = (text.get(..split)?, text.get(split..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

/// A non-negative decimal integer; anything else (signs, exponents, spaces) is rejected.
fn plain_whole(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `number × scale` for a decimal like `0.25`, exactly (no floating point, so 0.1 GB is rejected rather
/// than rounded), or None when the product is not a whole number.
fn scaled_whole(number: &str, scale: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // 18 fraction digits keep 10^k inside u128 with room for the multiplication below.
    if !digits_ok(whole) || !digits_ok(fraction) || fraction.len() > 18 || whole.len() > 18 {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let denominator = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let numerator = (whole
        .checked_mul(denominator)?
        .checked_add(fraction_value)?)
    .checked_mul(u128::from(scale))?;
    if numerator % denominator != 0 {
        return None;
    }
    u64::try_from(numerator / denominator).ok()
}

impl Serialize for TaskSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TaskSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TaskSizeVisitor)
    }
}

struct TaskSizeVisitor;

impl Visitor<'_> for TaskSizeVisitor {
    type Value = TaskSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string such as \"256\", \"1 vCPU\" or \"2 GB\", or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TaskSize, E> {
        Ok(TaskSize(v.to_owned()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TaskSize, E> {
        Ok(TaskSize(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TaskSize, E> {
        Ok(TaskSize(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TaskSize, E> {
        Ok(TaskSize(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(text: &str) -> Result<u64, String> {
        TaskSize::from(text).cpu_units()
    }

    fn mem(text: &str) -> Result<u64, String> {
        TaskSize::from(text).memory_mib()
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(cpu("256"), Ok(256));
        assert_eq!(cpu(" 1024 "), Ok(1024));
        assert_eq!(cpu("1 vCPU"), Ok(1024));
        assert_eq!(cpu("0.25 vcpu"), Ok(256));
        assert_eq!(cpu(".5 VCPU"), Ok(512));
        assert_eq!(cpu("2vCPU"), Ok(2048));
        assert_eq!(cpu("16 vCPU"), Ok(16384));
        assert_eq!(cpu("0.125 vCPU"), Ok(128));
    }

    #[test]
    fn cpu_rejects() {
        assert_eq!(
            cpu("0.1 vCPU"),
            Err("\"0.1 vCPU\" is not a whole number of cpu units (1 vCPU = 1024 units)".to_owned())
        );
        assert!(cpu("").is_err());
        assert!(cpu("-256").is_err());
        assert!(cpu("256.5").is_err());
        assert!(cpu("vCPU").is_err());
        assert!(cpu("1 core").is_err());
        assert!(cpu("1e3").is_err());
        assert!(cpu("99999999999999999999999").is_err());
    }

    #[test]
    fn memory_forms() {
        assert_eq!(mem("512"), Ok(512));
        assert_eq!(mem("2 GB"), Ok(2048));
        assert_eq!(mem("2GB"), Ok(2048));
        assert_eq!(mem("0.5 gb"), Ok(512));
        assert_eq!(mem("30 GB"), Ok(30720));
    }

    #[test]
    fn memory_rejects() {
        assert_eq!(
            mem("2 GiB"),
            Err(
                "\"2 GiB\" is not a memory value (expected MiB like \"512\" or GB like \"2 GB\")"
                    .to_owned()
            )
        );
        assert!(mem("0.1 GB").is_err());
        assert!(mem("GB").is_err());
        assert!(mem(". GB").is_err());
    }

    #[test]
    fn numbers_are_accepted_as_text() {
        let size: TaskSize = serde_json::from_str("512").expect("number");
        assert_eq!(size, TaskSize::from("512"));
        let size: TaskSize = serde_json::from_str("\"1 vCPU\"").expect("string");
        assert_eq!(size.cpu_units(), Ok(1024));
        assert!(serde_json::from_str::<TaskSize>("true").is_err());
    }
}
