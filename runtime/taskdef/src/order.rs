//! Start order of a task's containers: a topological sort in levels, or the cycle that prevents one.

/// Groups `count` nodes into levels such that every node comes after all of its dependencies.
/// `edges` are `(dependent, dependency)` pairs of node indexes. Within a level nodes keep index order,
/// so the result is deterministic and follows the definition's order where dependencies allow.
///
/// On a cycle, returns its nodes starting from the lowest index: `[a, b]` means a depends on b, which
/// depends on a.
pub(crate) fn levels(
    count: usize,
    edges: &[(usize, usize)],
) -> Result<Vec<Vec<usize>>, Vec<usize>> {
    // Kahn's algorithm, one level per round: O(nodes + edges), whatever the input size.
    let mut unmet = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for &(dependent, dependency) in edges {
        if dependent < count && dependency < count {
            unmet[dependent] += 1;
            dependents[dependency].push(dependent);
        }
    }
    let mut placed = vec![false; count];
    let mut level: Vec<usize> = (0..count).filter(|&node| unmet[node] == 0).collect();
    let mut levels = Vec::new();
    while !level.is_empty() {
        let mut next = Vec::new();
        for &node in &level {
            placed[node] = true;
            for &dependent in &dependents[node] {
                unmet[dependent] -= 1;
                if unmet[dependent] == 0 {
                    next.push(dependent);
                }
            }
        }
        next.sort_unstable();
        levels.push(std::mem::replace(&mut level, next));
    }
    if placed.iter().all(|&done| done) {
        Ok(levels)
    } else {
        Err(find_cycle(&placed, edges))
    }
}

/// Every unplaced node has an unplaced dependency (else it would have been placed), so walking
/// dependencies from any unplaced node must revisit a node; the walk from there on is a cycle.
fn find_cycle(placed: &[bool], edges: &[(usize, usize)]) -> Vec<usize> {
    let is_open = |node: usize| placed.get(node).is_some_and(|&done| !done);
    // The first open dependency of each open node, in edge (definition) order.
    let mut next_of: Vec<Option<usize>> = vec![None; placed.len()];
    for &(dependent, dependency) in edges {
        if is_open(dependent) && is_open(dependency) {
            if let Some(slot) = next_of.get_mut(dependent) {
                slot.get_or_insert(dependency);
            }
        }
    }
    let Some(start) = placed.iter().position(|&done| !done) else {
        return Vec::new();
    };
    let mut on_walk = vec![false; placed.len()];
    let mut walk = Vec::new();
    let mut node = start;
    while !on_walk[node] {
        on_walk[node] = true;
        walk.push(node);
        match next_of[node] {
            Some(next) => node = next,
            None => return Vec::new(), // unreachable for a graph levels() gave up on
        }
    }
    let seen = walk.iter().position(|&n| n == node).unwrap_or(0);
    let mut cycle = walk.split_off(seen);
    // Rotate so the report starts at the container listed first in the definition.
    if let Some(lowest) = cycle
        .iter()
        .enumerate()
        .min_by_key(|&(_, &n)| n)
        .map(|(i, _)| i)
    {
        cycle.rotate_left(lowest);
    }
    cycle
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
        assert_eq!(
            levels(3, &[(2, 1), (1, 0)]),
            Ok(vec![vec![0], vec![1], vec![2]])
        );
        // 3 depends on 1 and 2, which both depend on 0.
        assert_eq!(
            levels(4, &[(3, 1), (3, 2), (1, 0), (2, 0)]),
            Ok(vec![vec![0], vec![1, 2], vec![3]])
        );
    }

    #[test]
    fn cycles_are_reported_from_the_lowest_node() {
        assert_eq!(levels(2, &[(0, 1), (1, 0)]), Err(vec![0, 1]));
        // 0 depends on the cycle 2 -> 3 -> 1 -> 2 without being part of it.
        assert_eq!(
            levels(4, &[(0, 2), (2, 3), (3, 1), (1, 2)]),
            Err(vec![1, 2, 3])
        );
    }

    #[test]
    fn cycle_behind_a_placed_node() {
        // 0 is placed; 1 and 2 depend on each other.
        assert_eq!(levels(3, &[(2, 1), (1, 2), (1, 0)]), Err(vec![1, 2]));
    }

    #[test]
    fn long_chain_is_linear() {
        let count = 100_000;
        let edges: Vec<(usize, usize)> = (1..count).map(|i| (i, i - 1)).collect();
        let levels = levels(count, &edges).expect("acyclic");
        assert_eq!(levels.len(), count);
        assert_eq!(levels.last(), Some(&vec![count - 1]));
    }
}
