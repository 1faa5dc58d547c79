//! Typed ids, so a stage id can never be passed where a dataset id is
//! expected. Numbers local to a job (datasets, stages, shuffles) come from one
//! macro; ids the master hands out ([`JobId`], [`ActionId`], [`AgentId`])
//! carry the master's [`Incarnation`], so none is ever reused across restarts.

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }
    };
}

id!(
    /// A dataset within one driver run (the driver's handle).
    DatasetId,
    "ds-"
);
id!(
    /// A stage within a job.
    StageId,
    "stage-"
);
id!(
    /// A shuffle within a job: the map outputs of one wide dependency.
    ShuffleId,
    "shuffle-"
);
id!(
    /// A partition of a dataset or stage.
    PartitionId,
    "part-"
);

/// One run of a master process: a number no earlier run of the master used.
///
/// Every id the master hands out (jobs, their actions, agents) carries it, so
/// nothing left over from before a restart (a task still running on an agent,
/// its shuffle files, an agent heartbeating under its old id) can be mistaken
/// for, or overwrite, something made after it. Printed as 8 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Incarnation(pub u32);

impl Incarnation {
    /// A fresh incarnation: random, never 0 (0 marks "none" on the wire).
    pub fn fresh() -> Self {
        Self(fastrand::u32(1..))
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// An id string that does not parse; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not {expected}")]
pub struct IdParseError {
    /// What was given.
    pub given: String,
    /// What a valid id looks like.
    pub expected: &'static str,
}

/// `<prefix><incarnation hex>-<seq>` → its parts.
fn parse_numbered(s: &str, prefix: &str, expected: &'static str) -> Result<(Incarnation, u32), IdParseError> {
    let bad = || IdParseError { given: s.to_string(), expected };
    let rest = s.strip_prefix(prefix).ok_or_else(bad)?;
    let (inc, seq) = rest.split_once('-').ok_or_else(bad)?;
    if inc.len() != 8 {
        return Err(bad());
    }
    let inc = u32::from_str_radix(inc, 16).map_err(|_| bad())?;
    let seq = seq.parse().map_err(|_| bad())?;
    Ok((Incarnation(inc), seq))
}

/// A submitted job: `job-<incarnation>-<n>`, e.g. `job-5f3a91c2-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct JobId {
    /// The master run that accepted it.
    pub incarnation: Incarnation,
    /// Its number within that run, from 1.
    pub seq: u32,
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job-{}-{}", self.incarnation, self.seq)
    }
}

impl std::str::FromStr for JobId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, IdParseError> {
        let expected = "a job id such as job-5f3a91c2-1 (`weft status` lists them)";
        let (incarnation, seq) = parse_numbered(s, "job-", expected)?;
        Ok(Self { incarnation, seq })
    }
}

/// One job the master runs for a submitted job: an action, or a sort's
/// sample job. Number 0 is the job's driver. Printed `<job>.<n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct ActionId {
    /// The submitted job.
    pub job: JobId,
    /// Its number within the job (0: the driver).
    pub seq: u32,
}

impl ActionId {
    /// The driver of `job`.
    pub fn driver(job: JobId) -> Self {
        Self { job, seq: 0 }
    }
}

impl std::fmt::Display for ActionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.job, self.seq)
    }
}

/// An agent, as the master numbered it at registration:
/// `agent-<incarnation>-<n>`. An agent that registers again gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct AgentId {
    /// The master run that registered it.
    pub incarnation: Incarnation,
    /// Its number within that run, from 0.
    pub seq: u32,
}

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent-{}-{}", self.incarnation, self.seq)
    }
}

impl std::str::FromStr for AgentId {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, IdParseError> {
        let (incarnation, seq) = parse_numbered(s, "agent-", "an agent id such as agent-5f3a91c2-0")?;
        Ok(Self { incarnation, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_with_their_kind() {
        assert_eq!(StageId(3).to_string(), "stage-3");
        assert_eq!(serde_json::to_string(&DatasetId(7)).unwrap(), "7");
    }

    #[test]
    fn ids_carry_the_incarnation_and_parse_back() {
        let job = JobId { incarnation: Incarnation(0x5f3a91c2), seq: 12 };
        assert_eq!(job.to_string(), "job-5f3a91c2-12");
        assert_eq!("job-5f3a91c2-12".parse::<JobId>().unwrap(), job);
        assert_eq!(ActionId { job, seq: 3 }.to_string(), "job-5f3a91c2-12.3");
        let agent = AgentId { incarnation: Incarnation(1), seq: 0 };
        assert_eq!(agent.to_string(), "agent-00000001-0");
        assert_eq!(agent.to_string().parse::<AgentId>().unwrap(), agent);
        for bad in ["job-1", "job-5f3a91c2", "job-5f3a91c2-x", "job-zzzzzzzz-1", "agent-5f3a91c2-1", ""] {
            let err = bad.parse::<JobId>().unwrap_err();
            assert!(err.to_string().contains("weft status"), "{err}");
        }
        let other = JobId { incarnation: Incarnation(0x5f3a91c3), seq: 12 };
        assert_ne!(job, other, "the same number in another master run is another job");
        assert_ne!(Incarnation::fresh(), Incarnation(0));
    }
}
