//! The DAG of a run as an SVG laid out by waves (the steps of a wave can run together once
//! the waves before are done), drawn by the page template from the numbers computed here:
//! every label goes through the template's autoescape. Linear in steps and edges.
//!
//! A minimal layout of the console's own, behind [`layout`]: a shared SVG renderer in
//! `runbook_core::render` can replace it without the page changing.

use std::collections::HashMap;

use serde::Serialize;

const NODE_W: u32 = 170;
const NODE_H: u32 = 28;
const GAP_X: u32 = 40;
const GAP_Y: u32 = 12;
const MARGIN: u32 = 10;
/// Characters of a label drawn in a box (the whole name is its tooltip).
const LABEL: usize = 22;

/// A box.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub x: u32,
    pub y: u32,
    pub label: String,
    pub name: String,
    /// The step's state word (a CSS class).
    pub status: &'static str,
}

/// A line from one box's right edge to another's left edge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

/// The drawing.
#[derive(Debug, Clone, Serialize)]
pub struct Drawing {
    pub width: u32,
    pub height: u32,
    pub node_w: u32,
    pub node_h: u32,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// One step to draw: its name, the names it needs (those not drawn are ignored), its state.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub needs: Vec<String>,
    pub status: &'static str,
}

/// Lay `steps` out by waves: a step's wave is one more than the highest wave of what it
/// needs (`runbook_core::graph::Graph::waves`, the planner's waves).
pub fn layout(steps: &[Step]) -> Drawing {
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let needs: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| s.needs.iter().filter_map(|n| index.get(n.as_str()).copied()).collect())
        .collect();
    let graph = runbook_core::graph::Graph::new(needs.clone());
    let waves = graph.waves();
    let mut rows_in_wave: Vec<u32> = Vec::new();
    let mut place = Vec::with_capacity(steps.len());
    for &w in &waves {
        if rows_in_wave.len() <= w {
            rows_in_wave.resize(w + 1, 0);
        }
        place.push((w as u32, rows_in_wave[w]));
        rows_in_wave[w] += 1;
    }
    let at = |(w, r): (u32, u32)| (MARGIN + w * (NODE_W + GAP_X), MARGIN + r * (NODE_H + GAP_Y));
    let labels =
        runbook_core::shown::labels(&steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), LABEL);
    let nodes = steps
        .iter()
        .zip(&place)
        .zip(labels)
        .map(|((s, &p), label)| {
            let (x, y) = at(p);
            Node { x, y, label, name: s.name.clone(), status: s.status }
        })
        .collect();
    let mut edges = Vec::new();
    for (i, ns) in needs.iter().enumerate() {
        let (x2, y2) = at(place[i]);
        for &n in ns {
            let (x1, y1) = at(place[n]);
            edges.push(Edge { x1: x1 + NODE_W, y1: y1 + NODE_H / 2, x2, y2: y2 + NODE_H / 2 });
        }
    }
    let columns = rows_in_wave.len() as u32;
    let rows = rows_in_wave.iter().copied().max().unwrap_or(0);
    Drawing {
        width: 2 * MARGIN + columns * (NODE_W + GAP_X),
        height: 2 * MARGIN + rows * (NODE_H + GAP_Y),
        node_w: NODE_W,
        node_h: NODE_H,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, needs: &[&str]) -> Step {
        Step { name: name.into(), needs: needs.iter().map(|n| n.to_string()).collect(), status: "pending" }
    }

    #[test]
    fn waves_are_columns_and_edges_follow_needs() {
        let d =
            layout(&[step("a", &[]), step("b", &["a"]), step("c", &["a"]), step("d", &["b", "c", "gone"])]);
        let x: Vec<u32> = d.nodes.iter().map(|n| n.x).collect();
        assert_eq!(x[1], x[2]);
        assert!(x[0] < x[1] && x[1] < x[3]);
        assert_eq!(d.edges.len(), 4);
    }

    proptest::proptest! {
        /// Random DAGs (each step needs some earlier ones): one box per step, one line per
        /// need, every line going right (a step's wave is after those it needs), boxes
        /// inside the drawing and never on top of each other.
        #[test]
        fn every_dag_is_laid_out_by_waves(needs in proptest::collection::vec(proptest::collection::vec(0usize..1000, 0..4), 1..200)) {
            let steps: Vec<Step> = needs
                .iter()
                .enumerate()
                .map(|(i, ns)| Step {
                    name: format!("s{i}"),
                    needs: if i == 0 { Vec::new() } else { ns.iter().map(|n| format!("s{}", n % i)).collect() },
                    status: "pending",
                })
                .collect();
            let d = layout(&steps);
            proptest::prop_assert_eq!(d.nodes.len(), steps.len());
            proptest::prop_assert_eq!(d.edges.len(), steps.iter().map(|s| s.needs.len()).sum::<usize>());
            for e in &d.edges {
                proptest::prop_assert!(e.x1 < e.x2);
            }
            let mut seen = std::collections::HashSet::new();
            for n in &d.nodes {
                proptest::prop_assert!(n.x + d.node_w <= d.width && n.y + d.node_h <= d.height);
                proptest::prop_assert!(seen.insert((n.x, n.y)));
            }
        }
    }
}
