//! The order of offers in one scheduling round: tenants by their place in
//! line (below their guarantee first, then by weighted dominant share), and
//! within a tenant its actions running the fewest tasks first. Picking the
//! next action and putting it back after it placed tasks cost
//! `O(log tenants + log actions)`, so a round does not get dearer per task
//! with the number of tenants or jobs.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A share, ordered totally (shares are finite and not negative).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Share(f64);

impl Eq for Share {}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A tenant's place in line: whether it is at or past its guarantee (those
/// below it come first), and its weighted dominant share.
pub(crate) type Line = (bool, f64);

/// Tenants and their actions in the order they are offered resources.
#[derive(Debug, Default)]
pub(crate) struct Order {
    tenants: BTreeSet<(bool, Share, u32)>,
    lines: HashMap<u32, (bool, Share)>,
    /// Per tenant: `(running, action index)`.
    actions: HashMap<u32, BTreeSet<(u32, usize)>>,
}

impl Order {
    /// Put action `i` of `tenant`, running `running` tasks, in line; the
    /// tenant's place is `line` (the same for all its actions).
    pub(crate) fn insert(&mut self, tenant: u32, line: Line, running: u32, i: usize) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.lines.entry(tenant) {
            let line = (line.0, Share(line.1));
            e.insert(line);
            self.tenants.insert((line.0, line.1, tenant));
        }
        self.actions.entry(tenant).or_default().insert((running, i));
    }

    /// The first action in line, and its tenant.
    pub(crate) fn first(&self) -> Option<(u32, usize)> {
        let &(_, _, tenant) = self.tenants.first()?;
        let &(_, i) = self.actions.get(&tenant)?.first()?;
        Some((tenant, i))
    }

    /// The share of the tenant in line after `tenant` (infinite if none).
    pub(crate) fn next_share(&self, tenant: u32) -> f64 {
        self.tenants.iter().find(|(_, _, t)| *t != tenant).map_or(f64::INFINITY, |(_, s, _)| s.0)
    }

    /// Take action `i` (running `running`) of `tenant` out of line; the
    /// tenant goes too when it has no action left.
    pub(crate) fn remove(&mut self, tenant: u32, running: u32, i: usize) {
        let Some(set) = self.actions.get_mut(&tenant) else { return };
        set.remove(&(running, i));
        if set.is_empty() {
            self.actions.remove(&tenant);
            if let Some((b, s)) = self.lines.remove(&tenant) {
                self.tenants.remove(&(b, s, tenant));
            }
        }
    }

    /// `tenant`'s place in line is now `line` (its actions stay as they are).
    pub(crate) fn reline(&mut self, tenant: u32, line: Line) {
        if let Some(old) = self.lines.get_mut(&tenant) {
            self.tenants.remove(&(old.0, old.1, tenant));
            *old = (line.0, Share(line.1));
            self.tenants.insert((old.0, old.1, tenant));
        }
    }

    /// Action `i` of `tenant` placed tasks: it runs `now_running` (was
    /// `was_running`), and its tenant's place is `line`.
    pub(crate) fn update(&mut self, tenant: u32, line: Line, was_running: u32, now_running: u32, i: usize) {
        if let Some(set) = self.actions.get_mut(&tenant) {
            set.remove(&(was_running, i));
            set.insert((now_running, i));
        }
        self.reline(tenant, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_below_their_guarantee_then_by_share_then_actions_running_fewest() {
        let mut o = Order::default();
        o.insert(1, (true, 0.5), 3, 10);
        o.insert(1, (true, 0.5), 1, 11);
        o.insert(2, (true, 0.2), 0, 20);
        o.insert(3, (false, 0.9), 0, 30);
        assert_eq!(o.first(), Some((3, 30)), "below its guarantee: first whatever its share");
        assert_eq!(o.next_share(3), 0.2);
        o.update(3, (true, 0.95), 0, 4, 30);
        assert_eq!(o.first(), Some((2, 20)));
        o.remove(2, 0, 20);
        assert_eq!(o.first(), Some((1, 11)), "the tenant's action running fewest");
        o.update(1, (true, 0.6), 1, 5, 11);
        assert_eq!(o.first(), Some((1, 10)));
        assert_eq!(o.next_share(1), 0.95);
        o.remove(1, 3, 10);
        o.remove(1, 5, 11);
        o.remove(3, 4, 30);
        assert_eq!((o.first(), o.next_share(1)), (None, f64::INFINITY));
    }
}
