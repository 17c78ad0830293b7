//! The needs graph: topological order, ancestors and waves, in time linear in the edges
//! (ancestors as bit sets: n²/64 words). One implementation serves validation and planning.

/// A fixed-size set of step indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set for indices below `n`.
    pub fn new(n: usize) -> Self {
        BitSet { words: vec![0; n.div_ceil(64)] }
    }

    /// Add `i`.
    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// True when `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Add every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// The members of both sets, ascending.
    pub fn iter_and<'a>(&'a self, other: &'a BitSet) -> impl Iterator<Item = usize> + 'a {
        self.words.iter().zip(&other.words).enumerate().flat_map(|(w, (&a, &b))| {
            let bits = a & b;
            (0..64).filter(move |i| bits & (1 << i) != 0).map(move |i| w * 64 + i)
        })
    }

    /// True when no index is in the set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| w * 64 + b))
    }
}

/// A directed graph of `needs`: `needs[i]` are the nodes `i` waits for.
#[derive(Debug, Clone)]
pub struct Graph {
    needs: Vec<Vec<usize>>,
}

impl Graph {
    /// A graph from each node's needs (indices must be below `needs.len()`).
    pub fn new(needs: Vec<Vec<usize>>) -> Self {
        Graph { needs }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.needs.len()
    }

    /// True without nodes.
    pub fn is_empty(&self) -> bool {
        self.needs.is_empty()
    }

    /// Nodes ordered so that every node comes after its needs, ties broken by index
    /// (declaration order). Nodes on or behind a cycle are left out.
    pub fn topo_order(&self) -> Vec<usize> {
        let n = self.needs.len();
        let mut waiting: Vec<usize> = self.needs.iter().map(Vec::len).collect();
        // Dependents in one flat array (compressed rows): `dependents[start[j]..start[j + 1]]`
        // are the nodes that need `j`. One allocation instead of one per node.
        let mut start = vec![0usize; n + 1];
        for needs in &self.needs {
            for &j in needs {
                start[j + 1] += 1;
            }
        }
        for j in 0..n {
            start[j + 1] += start[j];
        }
        let mut fill = start.clone();
        let mut dependents = vec![0usize; start[n]];
        for (i, needs) in self.needs.iter().enumerate() {
            for &j in needs {
                dependents[fill[j]] = i;
                fill[j] += 1;
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(std::cmp::Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &d in &dependents[start[i]..start[i + 1]] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push(std::cmp::Reverse(d));
                }
            }
        }
        order
    }

    /// Every node's ancestors (transitive needs); `None` for nodes on or behind a cycle.
    pub fn ancestors(&self) -> Vec<Option<BitSet>> {
        self.ancestors_in(&self.topo_order())
    }

    /// [`Graph::ancestors`] with the graph's [`Graph::topo_order`] already at hand.
    pub fn ancestors_in(&self, topo_order: &[usize]) -> Vec<Option<BitSet>> {
        let n = self.needs.len();
        let mut out: Vec<Option<BitSet>> = vec![None; n];
        for &i in topo_order {
            let mut set = BitSet::new(n);
            for &j in &self.needs[i] {
                set.insert(j);
                if let Some(a) = &out[j] {
                    set.union_with(a);
                }
            }
            out[i] = Some(set);
        }
        out
    }

    /// The nodes `i` needs (its edges), as given.
    pub fn needs_of(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    /// The strongly connected components, each in no particular order (Tarjan's algorithm,
    /// iterative, so a chain of thousands of steps does not grow the call stack). A node on
    /// no cycle is a component of its own.
    pub fn strongly_connected(&self) -> Vec<Vec<usize>> {
        const UNSEEN: usize = usize::MAX;
        let n = self.needs.len();
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut components = Vec::new();
        let mut next = 0;
        // The depth-first path: each node with the position of the next edge to follow.
        let mut path: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if index[root] != UNSEEN {
                continue;
            }
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            path.push((root, 0));
            while let Some(top) = path.last_mut() {
                let v = top.0;
                if let Some(&w) = self.needs[v].get(top.1) {
                    top.1 += 1;
                    if index[w] == UNSEEN {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        path.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                path.pop();
                if let Some(&(parent, _)) = path.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
        components
    }

    /// Wave of each node (0-based): 0 without needs, else one more than its latest need.
    /// Nodes on or behind a cycle get 0.
    pub fn waves(&self) -> Vec<usize> {
        self.waves_in(&self.topo_order())
    }

    /// [`Graph::waves`] with the graph's [`Graph::topo_order`] already at hand.
    pub fn waves_in(&self, topo_order: &[usize]) -> Vec<usize> {
        let mut wave = vec![0; self.needs.len()];
        for &i in topo_order {
            wave[i] = self.needs[i].iter().map(|&j| wave[j] + 1).max().unwrap_or(0);
        }
        wave
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_and_waves_of_a_diamond() {
        // 0 <- 1, 0 <- 2, {1,2} <- 3
        let g = Graph::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(g.topo_order(), vec![0, 1, 2, 3]);
        assert_eq!(g.waves(), vec![0, 1, 1, 2]);
        let a = g.ancestors();
        let of3: Vec<usize> = a[3].as_ref().map(|s| s.iter().collect()).unwrap_or_default();
        assert_eq!(of3, vec![0, 1, 2]);
    }

    #[test]
    fn cycles_are_left_out() {
        // 1 <-> 2, 3 needs 2
        let g = Graph::new(vec![vec![], vec![2], vec![1], vec![2]]);
        assert_eq!(g.topo_order(), vec![0]);
        assert!(g.ancestors()[3].is_none());
    }

    /// Sorted components of more than one node.
    fn cycles_of(g: &Graph) -> Vec<Vec<usize>> {
        let mut sccs: Vec<Vec<usize>> = g.strongly_connected().into_iter().filter(|c| c.len() > 1).collect();
        for c in &mut sccs {
            c.sort_unstable();
        }
        sccs.sort();
        sccs
    }

    #[test]
    fn strongly_connected_components() {
        // 1 <-> 2, 3 needs 2; 4 -> 5 -> 6 -> 4; 6 needs 6 (a self-loop is no cycle of two);
        // 7 -> 1 (behind a cycle, not on it).
        let g = Graph::new(vec![vec![], vec![2], vec![1], vec![2], vec![5], vec![6], vec![4, 6], vec![1]]);
        assert_eq!(cycles_of(&g), vec![vec![1, 2], vec![4, 5, 6]]);
        let all: usize = g.strongly_connected().iter().map(Vec::len).sum();
        assert_eq!(all, 8, "every node is in exactly one component");
        assert!(cycles_of(&Graph::new(vec![vec![], vec![0], vec![0], vec![1, 2]])).is_empty());
    }

    #[test]
    fn strongly_connected_on_a_long_chain_does_not_recurse() {
        // 0 <- 1 <- ... <- 199_999, and 0 needs the last: one cycle through every node.
        let n = 200_000;
        let mut needs: Vec<Vec<usize>> =
            (0..n).map(|i| if i == 0 { vec![n - 1] } else { vec![i - 1] }).collect();
        let g = Graph::new(std::mem::take(&mut needs));
        let sccs = g.strongly_connected();
        assert_eq!(sccs.len(), 1);
        assert_eq!(sccs[0].len(), n);
    }

    #[test]
    fn bitset_iterates_members() {
        let mut s = BitSet::new(130);
        for i in [0, 63, 64, 129] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        assert!(!s.contains(1));
    }
}
