//! An agent's resources split into pools, as Mesos splits them by role: what
//! it reserves for roles (statically with `weft agent --reserve`, or
//! dynamically through `weft reserve`) and the unreserved rest, with what
//! the tasks placed in each pool hold.
//!
//! A role's tenants take from the role's pool first, then from the
//! unreserved one. Another tenant's task may borrow a role's unused pool as
//! a **revocable** task, killed when the role needs the room back. See
//! `docs/architecture.md` ("Roles and reservations").

use crate::free::{Demand, Free};

/// Where on an agent a task's resources come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pool {
    /// Not reserved: offered to every tenant.
    Unreserved,
    /// Reserved for a role (its interned index).
    Reserved(u32),
}

/// Resources an agent reserves for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The role (interned index).
    pub role: u32,
    /// Task places (slots) and memory reserved.
    pub amount: Demand,
    /// Made through the API (`weft reserve`), not by the agent's flags: only
    /// these can be unreserved.
    pub dynamic: bool,
}

/// One agent's reservations and what the tasks in each pool hold.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    reservations: Vec<Reservation>,
    held: Vec<(Pool, Demand)>,
}

impl Pools {
    /// Its reservations.
    pub fn reservations(&self) -> &[Reservation] {
        &self.reservations
    }

    /// Reserve `amount` for `role` (a dynamic reservation replaces the
    /// role's earlier dynamic one) if all reservations still fit in `total`
    /// slots and memory (memory 0: the agent reports none).
    ///
    /// # Errors
    /// What would not fit.
    pub fn reserve(&mut self, r: Reservation, slots: u32, memory: u64) -> Result<(), String> {
        let mut next = self.reservations.clone();
        match next.iter_mut().find(|x| x.dynamic && r.dynamic && x.role == r.role) {
            Some(x) => x.amount = r.amount,
            None => next.push(r),
        }
        check(&next, slots, memory)?;
        self.reservations = next;
        Ok(())
    }

    /// Drop `role`'s dynamic reservation; what it reserved, if any.
    pub fn unreserve(&mut self, role: u32) -> Option<Demand> {
        let i = self.reservations.iter().position(|x| x.dynamic && x.role == role)?;
        Some(self.reservations.remove(i).amount)
    }

    /// The roles it reserves for.
    pub fn roles(&self) -> impl Iterator<Item = u32> + '_ {
        let mut roles: Vec<u32> = self.reservations.iter().map(|r| r.role).collect();
        roles.sort_unstable();
        roles.dedup();
        roles.into_iter()
    }

    /// What the unreserved pool holds: its own tasks', and those of roles
    /// whose reservation was dropped while they ran there.
    pub fn held_unreserved(&self) -> Demand {
        self.held
            .iter()
            .filter(|(p, _)| match p {
                Pool::Unreserved => true,
                Pool::Reserved(role) => !self.reservations.iter().any(|r| r.role == *role),
            })
            .fold(Demand::default(), |s, (_, d)| add(s, *d))
    }

    /// What `pool` holds.
    pub fn held(&self, pool: Pool) -> Demand {
        self.held.iter().find(|(p, _)| *p == pool).map(|(_, d)| *d).unwrap_or_default()
    }

    /// A task holding `d` was placed in `pool`.
    pub fn place(&mut self, pool: Pool, d: Demand) {
        match self.held.iter_mut().find(|(p, _)| *p == pool) {
            Some((_, h)) => *h = add(*h, d),
            None => self.held.push((pool, d)),
        }
    }

    /// A task holding `d` in `pool` ended.
    pub fn free(&mut self, pool: Pool, d: Demand) {
        if let Some((_, h)) = self.held.iter_mut().find(|(p, _)| *p == pool) {
            h.places = h.places.saturating_sub(d.places);
            h.memory = h.memory.saturating_sub(d.memory);
        }
    }

    /// The unreserved room of an agent of `places` task places and `memory`
    /// bytes (`u64::MAX`: not reported): what its reservations leave.
    pub fn unreserved(&self, places: u32, memory: u64) -> Demand {
        let reserved = self.reservations.iter().fold(Demand::default(), |s, x| add(s, x.amount));
        left(Demand { places, memory }, reserved)
    }

    /// What is free in the unreserved pool of such an agent (no allocation:
    /// this runs at every task's end).
    pub fn unreserved_free(&self, places: u32, memory: u64) -> Free {
        left(self.unreserved(places, memory), self.held_unreserved()).into()
    }

    /// What is free in each pool of such an agent: the unreserved pool first.
    pub fn free_in(&self, places: u32, memory: u64) -> Vec<(Pool, Free)> {
        let mut free = vec![(Pool::Unreserved, self.unreserved_free(places, memory))];
        for role in self.roles() {
            let amount = self
                .reservations
                .iter()
                .filter(|r| r.role == role)
                .fold(Demand::default(), |s, x| add(s, x.amount));
            free.push((Pool::Reserved(role), left(amount, self.held(Pool::Reserved(role))).into()));
        }
        free
    }
}

/// Whether `reservations` fit in an agent of `slots` and `memory` bytes (0:
/// it reports none).
///
/// # Errors
/// What would not fit.
pub fn check(reservations: &[Reservation], slots: u32, memory: u64) -> Result<(), String> {
    let sum = reservations.iter().fold(Demand::default(), |s, x| add(s, x.amount));
    if sum.places > slots || (memory > 0 && sum.memory > memory) {
        return Err(format!(
            "reservations of {} slots and {} would pass the agent's {slots} slots and {}",
            sum.places,
            bytesize::ByteSize::b(sum.memory),
            bytesize::ByteSize::b(memory)
        ));
    }
    Ok(())
}

/// `total` less `taken` in each dimension (memory `u64::MAX` stays: not reported).
fn left(total: Demand, taken: Demand) -> Demand {
    Demand {
        places: total.places.saturating_sub(taken.places),
        memory: if total.memory == u64::MAX { u64::MAX } else { total.memory.saturating_sub(taken.memory) },
    }
}

fn add(a: Demand, b: Demand) -> Demand {
    Demand { places: a.places + b.places, memory: a.memory.saturating_add(b.memory) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn res(role: u32, places: u32, gib: u64, dynamic: bool) -> Reservation {
        Reservation { role, amount: Demand { places, memory: gib * GIB }, dynamic }
    }

    #[test]
    fn reservations_split_an_agent_and_each_pool_counts_its_own_tasks() {
        let mut p = Pools::default();
        p.reserve(res(1, 2, 4, false), 4, 8 * GIB).unwrap();
        p.reserve(res(2, 1, 1, true), 4, 8 * GIB).unwrap();
        let err = p.reserve(res(3, 2, 1, true), 4, 8 * GIB).unwrap_err();
        assert!(err.contains("5 slots") && err.contains("4 slots"), "{err}");
        // A dynamic reservation again replaces the role's earlier one.
        p.reserve(res(2, 1, 2, true), 4, 8 * GIB).unwrap();
        p.place(Pool::Reserved(1), Demand { places: 1, memory: GIB });
        p.place(Pool::Unreserved, Demand { places: 1, memory: GIB });
        let free = p.free_in(6, 8 * GIB); // 4 slots and a queue of 2
        assert_eq!(
            free,
            [
                (Pool::Unreserved, Free { places: 2, memory: GIB }),
                (Pool::Reserved(1), Free { places: 1, memory: 3 * GIB }),
                (Pool::Reserved(2), Free { places: 1, memory: 2 * GIB }),
            ]
        );
        assert_eq!(p.unreserve(1), None, "a static reservation stays");
        assert_eq!(p.unreserve(2), Some(Demand { places: 1, memory: 2 * GIB }));
        assert_eq!(p.roles().collect::<Vec<_>>(), [1]);
        p.free(Pool::Reserved(1), Demand { places: 1, memory: GIB });
        assert_eq!(p.held(Pool::Reserved(1)), Demand::default());
        // A task still running in role 2's pool, dropped above, holds
        // unreserved room (beside the unreserved task placed before).
        p.place(Pool::Reserved(2), Demand { places: 1, memory: GIB });
        assert_eq!(p.held_unreserved(), Demand { places: 2, memory: 2 * GIB });
        assert_eq!(p.free_in(6, 8 * GIB)[0].1, Free { places: 2, memory: 2 * GIB }, "4 unreserved, 2 held");
    }
}
