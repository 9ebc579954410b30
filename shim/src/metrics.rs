//! libcgroups statistics as containerd's metrics messages: `io.containerd.cgroups.v1.Metrics`
//! on cgroup v1/hybrid hosts, `io.containerd.cgroups.v2.Metrics` on unified hosts — the
//! types `ctr task metrics` and the CRI plugin decode.

use std::collections::HashMap;

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use libcgroups::stats::Stats;

use crate::error::{Error, Result};

/// Type URLs written out: protobuf's reflection would build (and keep) descriptors.
pub const V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";

/// `memory_events` (the cgroup's memory.events, cgroup v2 only) selects the v2 message.
pub fn to_any(stats: &Stats, memory_events: Option<&HashMap<String, u64>>) -> Result<Any> {
    match memory_events {
        Some(events) => pack(V2_METRICS, &to_v2(stats, events)),
        None => pack(V1_METRICS, &to_v1(stats)),
    }
}

fn pack<M: Message>(type_url: &str, m: &M) -> Result<Any> {
    Ok(Any {
        type_url: type_url.to_string(),
        value: m
            .write_to_bytes()
            .map_err(|e| Error::Other(format!("encoding metrics: {e}")))?,
        ..Default::default()
    })
}

fn get(map: &HashMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

pub fn to_v1(s: &Stats) -> v1::Metrics {
    let m = &s.memory.stats;
    let entry = |d: &libcgroups::stats::MemoryData| v1::MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    };
    let memory = v1::MemoryStat {
        cache: get(m, "cache"),
        rss: get(m, "rss"),
        rss_huge: get(m, "rss_huge"),
        mapped_file: get(m, "mapped_file"),
        dirty: get(m, "dirty"),
        writeback: get(m, "writeback"),
        pg_pg_in: get(m, "pgpgin"),
        pg_pg_out: get(m, "pgpgout"),
        pg_fault: get(m, "pgfault"),
        pg_maj_fault: get(m, "pgmajfault"),
        inactive_anon: get(m, "inactive_anon"),
        active_anon: get(m, "active_anon"),
        inactive_file: get(m, "inactive_file"),
        active_file: get(m, "active_file"),
        unevictable: get(m, "unevictable"),
        hierarchical_memory_limit: get(m, "hierarchical_memory_limit"),
        hierarchical_swap_limit: get(m, "hierarchical_memsw_limit"),
        total_cache: get(m, "total_cache"),
        total_rss: get(m, "total_rss"),
        total_rss_huge: get(m, "total_rss_huge"),
        total_mapped_file: get(m, "total_mapped_file"),
        total_dirty: get(m, "total_dirty"),
        total_writeback: get(m, "total_writeback"),
        total_pg_pg_in: get(m, "total_pgpgin"),
        total_pg_pg_out: get(m, "total_pgpgout"),
        total_pg_fault: get(m, "total_pgfault"),
        total_pg_maj_fault: get(m, "total_pgmajfault"),
        total_inactive_anon: get(m, "total_inactive_anon"),
        total_active_anon: get(m, "total_active_anon"),
        total_inactive_file: get(m, "total_inactive_file"),
        total_active_file: get(m, "total_active_file"),
        total_unevictable: get(m, "total_unevictable"),
        usage: Some(entry(&s.memory.memory)).into(),
        swap: Some(entry(&s.memory.memswap)).into(),
        kernel: Some(entry(&s.memory.kernel)).into(),
        kernel_tcp: Some(entry(&s.memory.kernel_tcp)).into(),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    let cpu = v1::CPUStat {
        usage: Some(v1::CPUUsage {
            total: u.usage_total,
            kernel: u.usage_kernel,
            user: u.usage_user,
            per_cpu: u.per_core_usage_total.clone(),
            ..Default::default()
        })
        .into(),
        throttling: Some(v1::Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let blk = |v: &[libcgroups::stats::BlkioDeviceStat]| -> Vec<v1::BlkIOEntry> {
        v.iter()
            .map(|d| v1::BlkIOEntry {
                op: d.op_type.clone().unwrap_or_default(),
                major: d.major,
                minor: d.minor,
                value: d.value,
                ..Default::default()
            })
            .collect()
    };
    let b = &s.blkio;
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max_usage,
                failcnt: h.fail_count,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: Some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(cpu).into(),
        memory: Some(memory).into(),
        blkio: Some(v1::BlkIOStat {
            io_service_bytes_recursive: blk(&b.service_bytes),
            io_serviced_recursive: blk(&b.serviced),
            io_queued_recursive: blk(&b.queued),
            io_service_time_recursive: blk(&b.service_time),
            io_wait_time_recursive: blk(&b.wait_time),
            io_merged_recursive: blk(&b.merged),
            io_time_recursive: blk(&b.time),
            sectors_recursive: blk(&b.sectors),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

pub fn to_v2(s: &Stats, events: &HashMap<String, u64>) -> v2::Metrics {
    let m = &s.memory.stats;
    let memory = v2::MemoryStat {
        anon: get(m, "anon"),
        file: get(m, "file"),
        kernel_stack: get(m, "kernel_stack"),
        slab: get(m, "slab"),
        sock: get(m, "sock"),
        shmem: get(m, "shmem"),
        file_mapped: get(m, "file_mapped"),
        file_dirty: get(m, "file_dirty"),
        file_writeback: get(m, "file_writeback"),
        anon_thp: get(m, "anon_thp"),
        inactive_anon: get(m, "inactive_anon"),
        active_anon: get(m, "active_anon"),
        inactive_file: get(m, "inactive_file"),
        active_file: get(m, "active_file"),
        unevictable: get(m, "unevictable"),
        slab_reclaimable: get(m, "slab_reclaimable"),
        slab_unreclaimable: get(m, "slab_unreclaimable"),
        pgfault: get(m, "pgfault"),
        pgmajfault: get(m, "pgmajfault"),
        workingset_refault: get(m, "workingset_refault"),
        workingset_activate: get(m, "workingset_activate"),
        workingset_nodereclaim: get(m, "workingset_nodereclaim"),
        pgrefill: get(m, "pgrefill"),
        pgscan: get(m, "pgscan"),
        pgsteal: get(m, "pgsteal"),
        pgactivate: get(m, "pgactivate"),
        pgdeactivate: get(m, "pgdeactivate"),
        pglazyfree: get(m, "pglazyfree"),
        pglazyfreed: get(m, "pglazyfreed"),
        thp_fault_alloc: get(m, "thp_fault_alloc"),
        thp_collapse_alloc: get(m, "thp_collapse_alloc"),
        usage: s.memory.memory.usage,
        usage_limit: s.memory.memory.limit,
        max_usage: s.memory.memory.max_usage,
        swap_usage: s.memory.memswap.usage,
        swap_limit: s.memory.memswap.limit,
        swap_max_usage: s.memory.memswap.max_usage,
        ..Default::default()
    };
    // libcgroups reports cgroup v2 CPU times in microseconds, as cpu.stat has them.
    let u = &s.cpu.usage;
    let cpu = v2::CPUStat {
        usage_usec: u.usage_total,
        user_usec: u.usage_user,
        system_usec: u.usage_kernel,
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: s.cpu.throttling.throttled_time,
        ..Default::default()
    };
    v2::Metrics {
        pids: Some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(cpu).into(),
        memory: Some(memory).into(),
        memory_events: Some(v2::MemoryEvents {
            low: get(events, "low"),
            high: get(events, "high"),
            max: get(events, "max"),
            oom: get(events, "oom"),
            oom_kill: get(events, "oom_kill"),
            oom_group_kill: get(events, "oom_group_kill"),
            ..Default::default()
        })
        .into(),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v2::HugeTlbStat {
                current: h.usage,
                max: h.max_usage,
                pagesize: size.clone(),
                failcnt: h.fail_count,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_urls_are_what_containerd_decodes() {
        use containerd_shim_protos::protobuf::MessageFull;
        assert_eq!(V1_METRICS, v1::Metrics::descriptor().full_name());
        assert_eq!(V2_METRICS, v2::Metrics::descriptor().full_name());
        let s = Stats::default();
        assert_eq!(
            to_any(&s, None).map(|a| a.type_url).ok().as_deref(),
            Some("io.containerd.cgroups.v1.Metrics")
        );
        assert_eq!(
            to_any(&s, Some(&HashMap::new()))
                .map(|a| a.type_url)
                .ok()
                .as_deref(),
            Some("io.containerd.cgroups.v2.Metrics")
        );
    }

    #[test]
    fn v1_numbers_carry_over() {
        let mut s = Stats::default();
        s.memory.memory.usage = 4096;
        s.memory.memory.limit = 1 << 20;
        s.pids.current = 3;
        s.cpu.usage.usage_total = 42;
        let m = to_v1(&s);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 1 << 20);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage.total, 42);
    }
}
