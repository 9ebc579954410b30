//! cgroup arithmetic: how ECS cpu units and MiB become cgroup values.

use serde::Serialize;

/// cpu.cfs_period_us / the period of cgroup v2 cpu.max, as the ECS agent uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses a CFS quota below 1 ms.
const MIN_CPU_QUOTA_US: u64 = 1_000;

/// cgroup v1 cpu.shares bounds (the kernel's MIN_SHARES / MAX_SHARES).
pub const MIN_CPU_SHARES: u64 = 2;
pub const MAX_CPU_SHARES: u64 = 262_144;

const MIB: u64 = 1024 * 1024;

/// The task cgroup's cpu control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaskCpu {
    /// A hard cap from task cpu: v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max `"<quota> <period>"`.
    Quota { quota_us: u64, period_us: u64 },
    /// No task cpu: a relative weight from the containers' cpu (v1 cpu.shares, v2 cpu.weight).
    Shares { shares: u64, weight: u64 },
}

/// Task cpu units → CFS quota: vCPUs × period (1024 units = 1 vCPU = a full period), rounded down as
/// the ECS agent does, but never below the kernel's minimum.
pub fn cpu_quota_us(task_cpu_units: u64) -> u64 {
    let quota = u128::from(task_cpu_units) * u128::from(CPU_PERIOD_US) / 1024;
    u64::try_from(quota)
        .unwrap_or(u64::MAX)
        .max(MIN_CPU_QUOTA_US)
}

/// Container cpu units → cpu.shares, clamped to what the kernel accepts (the ECS agent passes 2 for a
/// container with cpu 0 or 1, or no cpu at all).
pub fn cpu_shares(container_cpu_units: u64) -> u64 {
    container_cpu_units.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// Task shares without task cpu: Σ max(container cpu, 2), capped at the kernel maximum.
pub fn task_cpu_shares(container_cpu_units: impl IntoIterator<Item = u64>) -> u64 {
    let total = container_cpu_units
        .into_iter()
        .map(|cpu| cpu.max(MIN_CPU_SHARES))
        .fold(0u64, u64::saturating_add);
    total.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// cgroup v1 cpu.shares → cgroup v2 cpu.weight, the conversion the OCI runtimes (runc, crun, youki) use:
/// maps [2, 262144] linearly onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

pub fn mib_to_bytes(mib: u64) -> u64 {
    mib.saturating_mul(MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota() {
        assert_eq!(cpu_quota_us(256), 25_000);
        assert_eq!(cpu_quota_us(512), 50_000);
        assert_eq!(cpu_quota_us(1024), 100_000);
        assert_eq!(cpu_quota_us(16384), 1_600_000);
        assert_eq!(cpu_quota_us(128), 12_500);
        // 100 units = 9765.625 µs, rounded down.
        assert_eq!(cpu_quota_us(100), 9_765);
        assert_eq!(cpu_quota_us(1), 1_000);
    }

    #[test]
    fn shares() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(512), 512);
        assert_eq!(cpu_shares(1_000_000), 262_144);
        assert_eq!(task_cpu_shares([0, 0]), 4);
        assert_eq!(task_cpu_shares([256, 1]), 258);
        assert_eq!(task_cpu_shares([200_000, 200_000]), 262_144);
        assert_eq!(task_cpu_shares([]), 2);
    }

    #[test]
    fn weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(256), 10);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(0), 1);
    }

    #[test]
    fn bytes() {
        assert_eq!(mib_to_bytes(512), 536_870_912);
        assert_eq!(mib_to_bytes(u64::MAX), u64::MAX);
    }
}
