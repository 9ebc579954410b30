//! Start order of a task's containers: a topological sort in levels, or the cycle that prevents one.

/// Groups `count` nodes into levels such that every node comes after all of its dependencies.
/// `edges` are `(dependent, dependency)` pairs of node indexes. Within a level nodes keep index order,
/// so the result is deterministic and follows the definition's order where dependencies allow.
///
/// On a cycle, returns its nodes starting from the lowest index: `[a, b]` means a depends on b, which
/// depends on a.
pub(crate) fn levels(count: usize, edges: &[(usize, usize)]) -> Result<Vec<Vec<usize>>, Vec<usize>> {
    let mut placed = vec![false; count];
    let mut remaining = count;
    let mut levels = Vec::new();
    while remaining > 0 {
        let ready: Vec<usize> = (0..count)
            .filter(|&node| !placed[node])
            .filter(|&node| edges.iter().all(|&(from, to)| from != node || placed.get(to).copied().unwrap_or(true)))
            .collect();
        if ready.is_empty() {
            return Err(find_cycle(&placed, edges));
        }
        for &node in &ready {
            placed[node] = true;
        }
        remaining -= ready.len();
        levels.push(ready);
    }
    Ok(levels)
}

/// Every unplaced node has an unplaced dependency (else it would have been ready), so walking
/// dependencies from any unplaced node must revisit a node; the walk from there on is a cycle.
fn find_cycle(placed: &[bool], edges: &[(usize, usize)]) -> Vec<usize> {
    let Some(start) = placed.iter().position(|&done| !done) else {
        return Vec::new();
    };
    let mut walk = vec![start];
    let mut node = start;
    loop {
        let next = edges.iter().find(|&&(from, to)| from == node && !placed.get(to).copied().unwrap_or(true));
        let Some(&(_, next)) = next else {
            return Vec::new(); // unreachable for a graph levels() gave up on
        };
        if let Some(seen) = walk.iter().position(|&n| n == next) {
            let mut cycle = walk.split_off(seen);
            // Rotate so the report starts at the container listed first in the definition.
            if let Some(lowest) = cycle.iter().enumerate().min_by_key(|(_, &n)| n).map(|(i, _)| i) {
                cycle.rotate_left(lowest);
            }
            return cycle;
        }
        walk.push(next);
        node = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_nodes_share_level_zero() {
        assert_eq!(levels(3, &[]), Ok(vec![vec![0, 1, 2]]));
        assert_eq!(levels(0, &[]), Ok(vec![]));
    }

    #[test]
    fn chain_and_diamond() {
        // 2 -> 1 -> 0
        assert_eq!(levels(3, &[(2, 1), (1, 0)]), Ok(vec![vec![0], vec![1], vec![2]]));
        // 3 depends on 1 and 2, which both depend on 0.
        assert_eq!(levels(4, &[(3, 1), (3, 2), (1, 0), (2, 0)]), Ok(vec![vec![0], vec![1, 2], vec![3]]));
    }

    #[test]
    fn cycles_are_reported_from_the_lowest_node() {
        assert_eq!(levels(2, &[(0, 1), (1, 0)]), Err(vec![0, 1]));
        // 0 depends on the cycle 2 -> 3 -> 1 -> 2 without being part of it.
        assert_eq!(levels(4, &[(0, 2), (2, 3), (3, 1), (1, 2)]), Err(vec![1, 2, 3]));
    }
}
