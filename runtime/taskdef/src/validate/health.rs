//! healthCheck: command form and ECS's ranges.

use super::Problems;
use crate::model::HealthCheck;

/// ECS health check limits (seconds, except retries) as (min, max, default).
pub(crate) const HEALTH_INTERVAL: (i64, i64, i64) = (5, 300, 30);
pub(crate) const HEALTH_TIMEOUT: (i64, i64, i64) = (2, 60, 5);
pub(crate) const HEALTH_RETRIES: (i64, i64, i64) = (1, 10, 3);
pub(crate) const HEALTH_START_PERIOD: (i64, i64, i64) = (0, 300, 0);

pub(super) fn check_health_check(path: &str, health: &HealthCheck, out: &mut Problems) {
    let command = health.command.as_deref().unwrap_or_default();
    match command.first().map(String::as_str) {
        None => out.push(format!("{path}.command"), "required"),
        Some(kind @ ("CMD" | "CMD-SHELL")) if command.len() < 2 => out.push(
            format!("{path}.command"),
            format!("needs the command to run after {kind:?}"),
        ),
        Some("CMD" | "CMD-SHELL") => {}
        Some(other) => out.push(
            format!("{path}.command[0]"),
            format!("must be CMD or CMD-SHELL (got {other:?})"),
        ),
    }
    let fields = [
        ("interval", health.interval, HEALTH_INTERVAL),
        ("timeout", health.timeout, HEALTH_TIMEOUT),
        ("retries", health.retries, HEALTH_RETRIES),
        ("startPeriod", health.start_period, HEALTH_START_PERIOD),
    ];
    for (field, value, (min, max, _default)) in fields {
        if let Some(value) = value {
            out.range(format!("{path}.{field}"), value, min, max);
        }
    }
}
