//! Fargate's table of valid task cpu / memory pairs.

/// The task cpu values Fargate offers (units; 1024 = 1 vCPU).
pub(crate) const FARGATE_CPU_VALUES: [u64; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];

/// The memory sizes (MiB) Fargate allows with a task cpu value.
enum MemoryChoices {
    List(&'static [u64]),
    Steps { min: u64, max: u64, step: u64 },
}

fn memory_choices(cpu: u64) -> Option<MemoryChoices> {
    use MemoryChoices::{List, Steps};
    Some(match cpu {
        256 => List(&[512, 1024, 2048]),
        512 => Steps {
            min: 1024,
            max: 4096,
            step: 1024,
        },
        1024 => Steps {
            min: 2048,
            max: 8192,
            step: 1024,
        },
        2048 => Steps {
            min: 4096,
            max: 16384,
            step: 1024,
        },
        4096 => Steps {
            min: 8192,
            max: 30720,
            step: 1024,
        },
        8192 => Steps {
            min: 16384,
            max: 61440,
            step: 4096,
        },
        16384 => Steps {
            min: 32768,
            max: 122880,
            step: 8192,
        },
        _ => return None,
    })
}

/// Checks a task cpu / memory pair against the table. The error names the field at fault: `cpu` when
/// the cpu value is not offered at all, else `memory`.
pub(crate) fn check_task_size(cpu: u64, memory: u64) -> Result<(), (&'static str, String)> {
    let Some(choices) = memory_choices(cpu) else {
        let valid = FARGATE_CPU_VALUES.map(|v| v.to_string()).join(", ");
        return Err((
            "cpu",
            format!("{cpu} is not a Fargate cpu value (valid: {valid})"),
        ));
    };
    let (ok, valid) = match choices {
        MemoryChoices::List(list) => (
            list.contains(&memory),
            list.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        MemoryChoices::Steps { min, max, step } => (
            (min..=max).contains(&memory) && (memory - min) % step == 0,
            format!("{min}-{max} in steps of {step}"),
        ),
    };
    if ok {
        Ok(())
    } else {
        Err((
            "memory",
            format!("{memory} MiB is not valid with cpu {cpu} on Fargate (valid: {valid})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_edge_of_the_table() {
        let ok = [
            (256, 512),
            (256, 1024),
            (256, 2048),
            (512, 1024),
            (512, 4096),
            (1024, 2048),
            (1024, 8192),
            (2048, 4096),
            (2048, 16384),
            (4096, 8192),
            (4096, 30720),
            (8192, 16384),
            (8192, 20480),
            (8192, 61440),
            (16384, 32768),
            (16384, 40960),
            (16384, 122880),
        ];
        for (cpu, memory) in ok {
            assert_eq!(
                check_task_size(cpu, memory),
                Ok(()),
                "cpu {cpu} memory {memory}"
            );
        }
        let bad = [
            (256, 256),
            (256, 1536),
            (256, 3072),
            (512, 512),
            (512, 5120),
            (1024, 1024),
            (1024, 9216),
            (2048, 17408),
            (4096, 31744),
            (8192, 15360),
            (8192, 17408),
            (8192, 65536),
            (16384, 36864),
            (16384, 131072),
        ];
        for (cpu, memory) in bad {
            assert!(
                matches!(check_task_size(cpu, memory), Err(("memory", _))),
                "cpu {cpu} memory {memory}"
            );
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            check_task_size(256, 4096),
            Err((
                "memory",
                "4096 MiB is not valid with cpu 256 on Fargate (valid: 512, 1024, 2048)".to_owned()
            ))
        );
        assert_eq!(
            check_task_size(8192, 20000),
            Err(("memory", "20000 MiB is not valid with cpu 8192 on Fargate (valid: 16384-61440 in steps of 4096)".to_owned()))
        );
        assert_eq!(
            check_task_size(128, 512),
            Err((
                "cpu",
                "128 is not a Fargate cpu value (valid: 256, 512, 1024, 2048, 4096, 8192, 16384)"
                    .to_owned()
            ))
        );
    }
}
