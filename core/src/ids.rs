//! Typed ids, all from one macro, so a stage id can never be passed where a
//! dataset id is expected.

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
    /// An agent, as the master numbered it at registration.
    AgentId,
    "agent-"
);
id!(
    /// A partition of a dataset or stage.
    PartitionId,
    "part-"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_with_their_kind() {
        assert_eq!(StageId(3).to_string(), "stage-3");
        assert_eq!(serde_json::to_string(&DatasetId(7)).unwrap(), "7");
    }
}
