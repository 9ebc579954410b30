//! logConfiguration: berth's only driver is a local json-file log.

use super::{non_empty, Problems};
use crate::model::LogConfiguration;

/// logConfiguration.options berth's json-file driver understands (the Docker json-file rotation options).
pub(crate) const LOG_OPTIONS: [&str; 2] = ["max-size", "max-file"];

pub(super) fn check_log_configuration(path: &str, log: &LogConfiguration, out: &mut Problems) {
    match log.log_driver.as_deref() {
        None => out.push(format!("{path}.logDriver"), "required"),
        Some("json-file") => check_log_options(path, log, out),
        // Another driver's options (awslogs-group, ...) would only repeat the same complaint.
        Some(driver) => out.unsupported(
            format!("{path}.logDriver"),
            &format!("berth keeps container output in local json-file logs only (got {driver:?}; use \"json-file\")"),
        ),
    }
    if non_empty(&log.secret_options) {
        out.unsupported(
            format!("{path}.secretOptions"),
            "berth has no Secrets Manager or SSM Parameter Store access",
        );
    }
}

fn check_log_options(path: &str, log: &LogConfiguration, out: &mut Problems) {
    for (key, value) in log.options.iter().flatten() {
        let at = format!("{path}.options.{key}");
        match key.as_str() {
            "max-size" => {
                if parse_log_size(value).is_none() {
                    out.push(
                        at,
                        format!("must be a size like 10m, 512k or 1g (got {value:?})"),
                    );
                }
            }
            "max-file" => {
                if value.parse::<u32>().map_or(true, |n| n == 0) {
                    out.push(
                        at,
                        format!("must be a positive whole number (got {value:?})"),
                    );
                }
            }
            _ => out.unsupported(
                at,
                &format!("the json-file driver takes only {}", LOG_OPTIONS.join(", ")),
            ),
        }
    }
}

/// Docker's json-file max-size: a positive number with an optional k, m or g suffix (powers of 1024).
pub(crate) fn parse_log_size(text: &str) -> Option<u64> {
    let (number, multiplier) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (text.get(..at)?, 1u64 << 10),
        (at, 'm' | 'M') => (text.get(..at)?, 1 << 20),
        (at, 'g' | 'G') => (text.get(..at)?, 1 << 30),
        _ => (text, 1),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number
        .parse::<u64>()
        .ok()?
        .checked_mul(multiplier)
        .filter(|&bytes| bytes > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sizes() {
        assert_eq!(parse_log_size("10m"), Some(10 << 20));
        assert_eq!(parse_log_size("512k"), Some(512 << 10));
        assert_eq!(parse_log_size("1G"), Some(1 << 30));
        assert_eq!(parse_log_size("100"), Some(100));
        assert_eq!(parse_log_size("0"), None);
        assert_eq!(parse_log_size("m"), None);
        assert_eq!(parse_log_size("-1m"), None);
        assert_eq!(parse_log_size(""), None);
    }
}
