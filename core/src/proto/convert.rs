//! Domain types to and from their proto messages. Nothing else converts.

use super::v1;
use crate::ids::{ActionId, AgentId, Incarnation, JobId, ShuffleId, StageId};
use crate::limits::TaskLimits;
use crate::metering::{EndReason, TaskMetering, TrapKind};
use crate::plan::{Step, StepKind};
use crate::task::{Data, TaskKey, TaskState};
use bytesize::ByteSize;
use std::time::Duration;

/// A message that does not convert to its domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A required field is missing.
    #[error("message {message} lacks its required field `{field}`")]
    Missing {
        /// The message type.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A block digest that is not `blake3:<hex>`.
    #[error("bad block digest `{0}`")]
    BadDigest(String),
    /// An enum field holds a value this version does not know (or is unspecified).
    #[error("field `{field}` holds an unknown or unspecified value {value}: is the peer a newer weft?")]
    UnknownEnum {
        /// The field.
        field: &'static str,
        /// The raw value.
        value: i32,
    },
    /// A message whose fields disagree with each other.
    #[error("message {message} is inconsistent: {reason}")]
    Inconsistent {
        /// The message type.
        message: &'static str,
        /// What disagrees.
        reason: String,
    },
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<&TaskLimits> for v1::TaskLimits {
    fn from(l: &TaskLimits) -> Self {
        v1::TaskLimits {
            fuel: l.fuel,
            memory_bytes: l.memory.as_u64(),
            deadline_ms: u64::try_from(l.deadline.as_millis()).unwrap_or(u64::MAX),
            log_bytes: l.log.as_u64(),
            output_per_call_bytes: l.output_per_call.as_u64(),
            slots: l.slots,
        }
    }
}

impl From<&v1::TaskLimits> for TaskLimits {
    fn from(l: &v1::TaskLimits) -> Self {
        TaskLimits {
            fuel: l.fuel,
            memory: ByteSize::b(l.memory_bytes),
            deadline: Duration::from_millis(l.deadline_ms),
            log: ByteSize::b(l.log_bytes),
            output_per_call: ByteSize::b(l.output_per_call_bytes),
            slots: l.slots,
        }
    }
}

impl From<&TaskMetering> for v1::TaskMetering {
    fn from(m: &TaskMetering) -> Self {
        v1::TaskMetering {
            fuel: m.fuel,
            peak_memory_bytes: m.peak_memory,
            wall_us: micros(m.wall),
            cpu_us: micros(m.cpu),
            instantiate_us: micros(m.instantiate),
            records_in: m.records_in,
            records_out: m.records_out,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            calls: m.calls,
            log_bytes: m.log_bytes,
            shuffle_bytes_written: m.shuffle_bytes_written,
            shuffle_bytes_read: m.shuffle_bytes_read,
            spill_bytes: m.spill_bytes,
            peak_host_memory_bytes: m.peak_host_memory,
        }
    }
}

impl From<&v1::TaskMetering> for TaskMetering {
    fn from(m: &v1::TaskMetering) -> Self {
        TaskMetering {
            fuel: m.fuel,
            peak_memory: m.peak_memory_bytes,
            wall: Duration::from_micros(m.wall_us),
            cpu: Duration::from_micros(m.cpu_us),
            instantiate: Duration::from_micros(m.instantiate_us),
            records_in: m.records_in,
            records_out: m.records_out,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            calls: m.calls,
            log_bytes: m.log_bytes,
            shuffle_bytes_written: m.shuffle_bytes_written,
            shuffle_bytes_read: m.shuffle_bytes_read,
            spill_bytes: m.spill_bytes,
            peak_host_memory: m.peak_host_memory_bytes,
        }
    }
}

fn trap_to_proto(k: TrapKind) -> v1::TrapKind {
    match k {
        TrapKind::Panic => v1::TrapKind::Panic,
        TrapKind::Unreachable => v1::TrapKind::Unreachable,
        TrapKind::StackOverflow => v1::TrapKind::StackOverflow,
        TrapKind::OutOfBounds => v1::TrapKind::OutOfBounds,
        TrapKind::Arithmetic => v1::TrapKind::Arithmetic,
        TrapKind::BadCall => v1::TrapKind::BadCall,
        TrapKind::Other => v1::TrapKind::Other,
    }
}

fn trap_from_proto(value: i32) -> Result<TrapKind, ProtoError> {
    Ok(match v1::TrapKind::try_from(value) {
        Ok(v1::TrapKind::Panic) => TrapKind::Panic,
        Ok(v1::TrapKind::Unreachable) => TrapKind::Unreachable,
        Ok(v1::TrapKind::StackOverflow) => TrapKind::StackOverflow,
        Ok(v1::TrapKind::OutOfBounds) => TrapKind::OutOfBounds,
        Ok(v1::TrapKind::Arithmetic) => TrapKind::Arithmetic,
        Ok(v1::TrapKind::BadCall) => TrapKind::BadCall,
        Ok(v1::TrapKind::Other) => TrapKind::Other,
        Ok(v1::TrapKind::Unspecified) | Err(_) => {
            return Err(ProtoError::UnknownEnum { field: "trap", value });
        }
    })
}

impl From<&EndReason> for v1::EndReason {
    fn from(r: &EndReason) -> Self {
        use v1::EndKind as K;
        let mut m = v1::EndReason::default();
        let kind = match r {
            EndReason::Finished => K::Finished,
            EndReason::OutOfFuel { limit } => {
                m.limit = *limit;
                K::OutOfFuel
            }
            EndReason::Deadline { limit } => {
                m.limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
                K::Deadline
            }
            EndReason::MemoryLimit { limit, requested } => {
                (m.limit, m.amount) = (*limit, *requested);
                K::MemoryLimit
            }
            EndReason::OutputLimit { limit, produced } => {
                (m.limit, m.amount) = (*limit, *produced);
                K::OutputLimit
            }
            EndReason::GuestTrap { kind, message } => {
                m.trap = trap_to_proto(*kind) as i32;
                m.message = message.clone();
                K::GuestTrap
            }
            EndReason::GuestError { message } => {
                m.message = message.clone();
                K::GuestError
            }
            EndReason::HostError { message } => {
                m.message = message.clone();
                K::HostError
            }
            EndReason::Killed => K::Killed,
            EndReason::FetchFailed { shuffle, map, message } => {
                (m.shuffle, m.map, m.message) = (shuffle.0, *map, message.clone());
                K::FetchFailed
            }
            EndReason::CacheMiss { dataset, partition, message } => {
                (m.dataset, m.partition, m.message) = (dataset.0, *partition, message.clone());
                K::CacheMiss
            }
        };
        m.kind = kind as i32;
        m
    }
}

impl TryFrom<&v1::EndReason> for EndReason {
    type Error = ProtoError;

    fn try_from(m: &v1::EndReason) -> Result<Self, ProtoError> {
        use v1::EndKind as K;
        let message = m.message.clone();
        Ok(match v1::EndKind::try_from(m.kind) {
            Ok(K::Finished) => EndReason::Finished,
            Ok(K::OutOfFuel) => EndReason::OutOfFuel { limit: m.limit },
            Ok(K::Deadline) => EndReason::Deadline { limit: Duration::from_millis(m.limit) },
            Ok(K::MemoryLimit) => EndReason::MemoryLimit { limit: m.limit, requested: m.amount },
            Ok(K::OutputLimit) => EndReason::OutputLimit { limit: m.limit, produced: m.amount },
            Ok(K::GuestTrap) => EndReason::GuestTrap { kind: trap_from_proto(m.trap)?, message },
            Ok(K::GuestError) => EndReason::GuestError { message },
            Ok(K::HostError) => EndReason::HostError { message },
            Ok(K::Killed) => EndReason::Killed,
            Ok(K::FetchFailed) => {
                EndReason::FetchFailed { shuffle: ShuffleId(m.shuffle), map: m.map, message }
            }
            Ok(K::CacheMiss) => EndReason::CacheMiss {
                dataset: crate::ids::DatasetId(m.dataset),
                partition: m.partition,
                message,
            },
            Ok(K::Unspecified) | Err(_) => {
                return Err(ProtoError::UnknownEnum { field: "end.kind", value: m.kind });
            }
        })
    }
}

impl From<&Step> for v1::Step {
    fn from(s: &Step) -> Self {
        let kind = match s.kind {
            StepKind::Map => v1::StepKind::Map,
            StepKind::Filter => v1::StepKind::Filter,
            StepKind::FlatMap => v1::StepKind::FlatMap,
            StepKind::MapBatch => v1::StepKind::MapBatch,
            StepKind::Reduce => v1::StepKind::Reduce,
        };
        v1::Step { kind: kind as i32, function: s.function.clone(), param: s.param }
    }
}

impl TryFrom<&v1::Step> for Step {
    type Error = ProtoError;

    fn try_from(s: &v1::Step) -> Result<Self, ProtoError> {
        let kind = match v1::StepKind::try_from(s.kind) {
            Ok(v1::StepKind::Map) => StepKind::Map,
            Ok(v1::StepKind::Filter) => StepKind::Filter,
            Ok(v1::StepKind::FlatMap) => StepKind::FlatMap,
            Ok(v1::StepKind::MapBatch) => StepKind::MapBatch,
            Ok(v1::StepKind::Reduce) => StepKind::Reduce,
            Ok(v1::StepKind::Unspecified) | Err(_) => {
                return Err(ProtoError::UnknownEnum { field: "step.kind", value: s.kind });
            }
        };
        Ok(Step { kind, function: s.function.clone(), param: s.param })
    }
}

impl From<&Data> for v1::Data {
    fn from(d: &Data) -> Self {
        let kind = match d {
            Data::Inline(b) => v1::data::Kind::Inline(b.clone()),
            Data::Block { digest, len } => {
                v1::data::Kind::Block(v1::BlockRef { digest: digest.to_string(), len: *len })
            }
        };
        v1::Data { kind: Some(kind) }
    }
}

impl TryFrom<v1::Data> for Data {
    type Error = ProtoError;

    fn try_from(d: v1::Data) -> Result<Self, ProtoError> {
        Ok(match d.kind {
            None => Data::Inline(bytes::Bytes::new()),
            Some(v1::data::Kind::Inline(b)) => Data::Inline(b),
            Some(v1::data::Kind::Block(b)) => Data::Block {
                digest: b.digest.parse().map_err(|_| ProtoError::BadDigest(b.digest.clone()))?,
                len: b.len,
            },
        })
    }
}

impl From<JobId> for v1::JobRef {
    fn from(j: JobId) -> Self {
        v1::JobRef { incarnation: j.incarnation.0, seq: j.seq }
    }
}

impl TryFrom<&v1::JobRef> for JobId {
    type Error = ProtoError;

    fn try_from(r: &v1::JobRef) -> Result<Self, ProtoError> {
        if r.incarnation == 0 {
            return Err(ProtoError::Missing { message: "JobRef", field: "incarnation" });
        }
        Ok(JobId { incarnation: Incarnation(r.incarnation), seq: r.seq })
    }
}

impl From<&crate::access::S3Grant> for v1::S3Credentials {
    fn from(g: &crate::access::S3Grant) -> Self {
        use crate::access::Access;
        let c = &g.config;
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        v1::S3Credentials {
            bucket: g.bucket.clone(),
            prefix: g.prefix.clone(),
            access: match g.access {
                Access::Read => v1::GrantAccess::Read,
                Access::Write => v1::GrantAccess::Write,
                Access::ReadWrite => v1::GrantAccess::ReadWrite,
            } as i32,
            endpoint: text(&c.endpoint),
            region: text(&c.region),
            access_key_id: text(&c.access_key_id),
            secret_access_key: text(&c.secret_access_key),
            session_token: text(&c.session_token),
            allow_http: c.allow_http,
            virtual_hosted_style: c.virtual_hosted_style,
        }
    }
}

impl TryFrom<&v1::S3Credentials> for crate::access::S3Grant {
    type Error = ProtoError;

    /// Static credentials only: never the environment or a credential service.
    fn try_from(p: &v1::S3Credentials) -> Result<Self, ProtoError> {
        use crate::access::Access;
        let access = match v1::GrantAccess::try_from(p.access) {
            Ok(v1::GrantAccess::Read) => Access::Read,
            Ok(v1::GrantAccess::Write) => Access::Write,
            Ok(v1::GrantAccess::ReadWrite) => Access::ReadWrite,
            _ => return Err(ProtoError::UnknownEnum { field: "S3Credentials.access", value: p.access }),
        };
        if p.bucket.is_empty() || p.access_key_id.is_empty() || p.secret_access_key.is_empty() {
            return Err(ProtoError::Inconsistent {
                message: "S3Credentials",
                reason: "a bucket, an access key id and a secret are required".into(),
            });
        }
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let mut config = crate::artifact::S3Config::default()
            .with_credentials(&p.access_key_id, &p.secret_access_key)
            .with_allow_http(p.allow_http)
            .with_virtual_hosted_style(p.virtual_hosted_style)
            .with_from_env(false);
        config.endpoint = some(&p.endpoint);
        config.region = some(&p.region);
        config.session_token = some(&p.session_token);
        Ok(crate::access::S3Grant { bucket: p.bucket.clone(), prefix: p.prefix.clone(), access, config })
    }
}

/// A required job reference.
pub fn job_id(r: Option<&v1::JobRef>, message: &'static str) -> Result<JobId, ProtoError> {
    JobId::try_from(r.ok_or(ProtoError::Missing { message, field: "job" })?)
}

impl From<AgentId> for v1::AgentRef {
    fn from(a: AgentId) -> Self {
        v1::AgentRef { incarnation: a.incarnation.0, seq: a.seq }
    }
}

impl TryFrom<&v1::AgentRef> for AgentId {
    type Error = ProtoError;

    fn try_from(r: &v1::AgentRef) -> Result<Self, ProtoError> {
        if r.incarnation == 0 {
            return Err(ProtoError::Missing { message: "AgentRef", field: "incarnation" });
        }
        Ok(AgentId { incarnation: Incarnation(r.incarnation), seq: r.seq })
    }
}

impl From<ActionId> for v1::ActionRef {
    fn from(a: ActionId) -> Self {
        v1::ActionRef { job: Some(a.job.into()), seq: a.seq }
    }
}

impl TryFrom<&v1::ActionRef> for ActionId {
    type Error = ProtoError;

    fn try_from(r: &v1::ActionRef) -> Result<Self, ProtoError> {
        Ok(ActionId { job: job_id(r.job.as_ref(), "ActionRef")?, seq: r.seq })
    }
}

impl From<&TaskKey> for v1::TaskRef {
    fn from(k: &TaskKey) -> Self {
        v1::TaskRef {
            action: Some(k.action.into()),
            stage: k.stage.0,
            partition: k.partition,
            attempt: k.attempt,
        }
    }
}

impl TryFrom<&v1::TaskRef> for TaskKey {
    type Error = ProtoError;

    fn try_from(r: &v1::TaskRef) -> Result<Self, ProtoError> {
        let action = r.action.as_ref().ok_or(ProtoError::Missing { message: "TaskRef", field: "action" })?;
        Ok(TaskKey {
            action: ActionId::try_from(action)?,
            stage: StageId(r.stage),
            partition: r.partition,
            attempt: r.attempt,
        })
    }
}

impl From<TaskState> for v1::TaskState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Pending => v1::TaskState::Pending,
            TaskState::Staging => v1::TaskState::Staging,
            TaskState::Running => v1::TaskState::Running,
            TaskState::Finished => v1::TaskState::Finished,
            TaskState::Failed => v1::TaskState::Failed,
            TaskState::Killed => v1::TaskState::Killed,
            TaskState::Lost => v1::TaskState::Lost,
        }
    }
}

/// A raw `TaskState` field as the domain state.
pub fn task_state(value: i32) -> Result<TaskState, ProtoError> {
    Ok(match v1::TaskState::try_from(value) {
        Ok(v1::TaskState::Pending) => TaskState::Pending,
        Ok(v1::TaskState::Staging) => TaskState::Staging,
        Ok(v1::TaskState::Running) => TaskState::Running,
        Ok(v1::TaskState::Finished) => TaskState::Finished,
        Ok(v1::TaskState::Failed) => TaskState::Failed,
        Ok(v1::TaskState::Killed) => TaskState::Killed,
        Ok(v1::TaskState::Lost) => TaskState::Lost,
        Ok(v1::TaskState::Unspecified) | Err(_) => {
            return Err(ProtoError::UnknownEnum { field: "state", value });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons() -> Vec<EndReason> {
        vec![
            EndReason::Finished,
            EndReason::OutOfFuel { limit: 7 },
            EndReason::Deadline { limit: Duration::from_millis(1500) },
            EndReason::MemoryLimit { limit: 64 << 20, requested: 65 << 20 },
            EndReason::OutputLimit { limit: 1, produced: 2 },
            EndReason::GuestTrap { kind: TrapKind::StackOverflow, message: "deep".into() },
            EndReason::GuestError { message: "bad".into() },
            EndReason::HostError { message: "disk".into() },
            EndReason::Killed,
            EndReason::FetchFailed { shuffle: ShuffleId(4), map: 2, message: "peer gone".into() },
            EndReason::CacheMiss {
                dataset: crate::ids::DatasetId(3),
                partition: 1,
                message: "evicted".into(),
            },
        ]
    }

    #[test]
    fn every_end_reason_round_trips() {
        for r in reasons() {
            let m = v1::EndReason::from(&r);
            assert_eq!(EndReason::try_from(&m).unwrap(), r);
        }
    }

    #[test]
    fn task_keys_and_states_round_trip() {
        let job = JobId { incarnation: Incarnation(0xfeed), seq: 4 };
        let k = TaskKey { action: ActionId { job, seq: 2 }, stage: StageId(2), partition: 3, attempt: 1 };
        assert_eq!(TaskKey::try_from(&v1::TaskRef::from(&k)).unwrap(), k);
        assert!(TaskKey::try_from(&v1::TaskRef::default()).is_err(), "a task without a job");
        let no_incarnation = v1::TaskRef {
            action: Some(v1::ActionRef { job: Some(v1::JobRef { incarnation: 0, seq: 4 }), seq: 2 }),
            ..Default::default()
        };
        assert!(TaskKey::try_from(&no_incarnation).is_err(), "a job of no master run");
        for d in [
            Data::Inline(bytes::Bytes::from_static(b"x")),
            Data::Block { digest: crate::artifact::Digest::of(b"y"), len: 1 },
        ] {
            assert_eq!(Data::try_from(v1::Data::from(&d)).unwrap(), d);
        }
        let bad =
            v1::Data { kind: Some(v1::data::Kind::Block(v1::BlockRef { digest: "md5:1".into(), len: 1 })) };
        assert!(Data::try_from(bad).is_err());
        let agent = AgentId { incarnation: Incarnation(7), seq: 3 };
        assert_eq!(AgentId::try_from(&v1::AgentRef::from(agent)).unwrap(), agent);
        use TaskState::*;
        for s in [Pending, Staging, Running, Finished, Failed, Killed, Lost] {
            assert_eq!(task_state(v1::TaskState::from(s) as i32).unwrap(), s);
        }
        assert!(task_state(0).is_err());
    }

    #[test]
    fn unknown_enums_are_errors_not_defaults() {
        let m = v1::EndReason { kind: 99, ..Default::default() };
        assert_eq!(EndReason::try_from(&m), Err(ProtoError::UnknownEnum { field: "end.kind", value: 99 }));
        assert!(EndReason::try_from(&v1::EndReason::default()).is_err(), "unspecified is not `finished`");
        assert!(Step::try_from(&v1::Step { kind: 0, function: "f".into(), param: None }).is_err());
    }

    #[test]
    fn limits_metering_and_steps_round_trip() {
        let l = TaskLimits::default().with_memory(123 << 20).with_deadline(Duration::from_millis(2500));
        assert_eq!(TaskLimits::from(&v1::TaskLimits::from(&l)), l);
        let m = TaskMetering {
            fuel: 1,
            peak_memory: 2,
            wall: Duration::from_micros(3),
            cpu: Duration::from_micros(4),
            instantiate: Duration::from_micros(5),
            records_in: 6,
            records_out: 7,
            bytes_in: 8,
            bytes_out: 9,
            calls: 10,
            log_bytes: 11,
            shuffle_bytes_written: 12,
            shuffle_bytes_read: 13,
            spill_bytes: 14,
            peak_host_memory: 15,
        };
        assert_eq!(TaskMetering::from(&v1::TaskMetering::from(&m)), m);
        for kind in [StepKind::Map, StepKind::Filter, StepKind::FlatMap, StepKind::MapBatch, StepKind::Reduce]
        {
            for param in [None, Some(7)] {
                let s = Step { param, ..Step::new(kind, "f") };
                assert_eq!(Step::try_from(&v1::Step::from(&s)).unwrap(), s);
            }
        }
    }

    #[test]
    fn s3_credentials_round_trip_with_static_keys_only() {
        use crate::access::{Access, S3Grant};
        let config = crate::artifact::S3Config::default()
            .with_endpoint("http://127.0.0.1:9000")
            .with_region("eu-west-1")
            .with_credentials("AK", "SK")
            .with_session_token("ST")
            .with_allow_http(true)
            .with_from_env(false);
        let g = S3Grant { bucket: "lake".into(), prefix: "analytics/".into(), access: Access::Write, config };
        assert_eq!(S3Grant::try_from(&v1::S3Credentials::from(&g)).unwrap(), g);
        let mut no_secret = v1::S3Credentials::from(&g);
        no_secret.secret_access_key.clear();
        assert!(S3Grant::try_from(&no_secret).is_err(), "no ambient credentials, ever");
        let mut unknown = v1::S3Credentials::from(&g);
        unknown.access = 0;
        assert!(S3Grant::try_from(&unknown).is_err());
    }
}
