//! The driver task: a job's `main` in the sandbox, its plan defined and its
//! actions run through a stand-in `Driver` service.

use super::{TOKEN, job, kill, launch_with, lines, step, task, until_running, work};
use crate::support::guest;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};
use weft_codec::batch::BatchWriter;
use weft_codec::key::EncodeKey;
use weft_core::artifact::Digest;
use weft_core::ids::JobId;
use weft_core::metering::EndReason;
use weft_core::plan::StepKind;
use weft_core::proto::v1::driver_server::Driver;
use weft_core::proto::{auth, job_id, v1};
use weft_core::task::{Data, DriverWork, TaskBody, TaskDescriptor, TaskInput, TaskKey, TaskState};

/// Answers driver calls (checked for the cluster token and a job, as the
/// master's are): `count` 42, `take` two (count, word) pairs; records every
/// action with the plan delta it carried.
pub(super) struct FakeDriver {
    pub(super) acts: Arc<Mutex<Vec<v1::ActRequest>>>,
    /// How long each action takes, as a real job would.
    pub(super) act_delay: Arc<Mutex<Duration>>,
}

#[tonic::async_trait]
impl Driver for FakeDriver {
    async fn act(&self, request: Request<v1::ActRequest>) -> Result<Response<v1::ActResponse>, Status> {
        use v1::act_request::Action;
        auth::check(request.metadata(), TOKEN, "driver")?;
        job_id(request.get_ref().job.as_ref(), "ActRequest")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let delay = *self.act_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let mut reply = v1::ActResponse::default();
        let request = request.into_inner();
        self.acts.lock().unwrap().push(request.clone());
        match request.action {
            Some(Action::Count(_)) => reply.count = 42,
            Some(Action::Take(_)) => {
                let mut w = BatchWriter::new();
                for (n, word) in [(5i64, "the"), (3, "rabbit")] {
                    w.push(&n.to_key_bytes());
                    w.push(word.as_bytes());
                }
                reply.records = vec![(&Data::from(w.finish())).into()];
            }
            _ => {}
        }
        Ok(Response::new(reply))
    }
}

/// The word-count component's driver over `in.txt` into `out/`, as `job`.
fn driver_task(job: JobId, wordcount: Digest) -> TaskDescriptor {
    TaskDescriptor {
        key: TaskKey::driver(job, 0),
        body: TaskBody::Driver(DriverWork { args: vec!["in.txt".into(), "out/".into()], deadline: None }),
        ..task(job, 0, 0, wordcount)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_task_defines_its_plan_and_runs_its_actions_through_the_master() {
    let mut c = super::cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let wordcount = c.push(guest("wordcount")).await;
    let t = driver_task(job(11), wordcount);
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!(end.task, t.key);
    assert_eq!((end.state, end.end.clone()), (TaskState::Finished, Some(EndReason::Finished)), "{}", end.log);
    assert!(end.log.contains("42 distinct words") && end.log.contains("the: 5"), "{}", end.log);

    let acts = c.driver.lock().unwrap().clone();
    // Every node once, in order, with the first action that needs it (the
    // plan's new part travels with each action); the cache mark once.
    use v1::plan_node::Node;
    let mut kinds = Vec::new();
    let mut held = 0;
    for act in acts.iter().filter(|a| a.plan.is_some()) {
        let delta = act.plan.as_ref().unwrap();
        assert_eq!(delta.first, held, "each delta starts where the master's plan ends");
        held += delta.nodes.len() as u32;
        for n in &delta.nodes {
            kinds.push(match &n.node {
                Some(Node::TextFile(t)) => format!("text {}", t.uri),
                Some(Node::Narrow(n)) => format!("{}({})", n.step.as_ref().unwrap().function, n.parent),
                Some(Node::Shuffle(s)) => format!("shuffle {:?}({})", s.kind(), s.parent),
                other => format!("{other:?}"),
            });
        }
        kinds.extend(delta.cached.iter().map(|id| format!("cache {id}")));
    }
    let expected = [
        "text in.txt",
        "split_words(0)",
        "one(1)",
        "shuffle ReduceByKey(2)",
        "format(3)",
        "cache 3",
        "by_count(3)",
        "shuffle SortDescending(5)",
    ];
    assert_eq!(kinds, expected);
    assert!(acts.iter().all(|a| a.job == Some(job(11).into())), "{acts:?}");
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_runs_beside_a_busy_task_slot() {
    let mut c = super::cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let hostile = c.push(guest("hostile")).await;
    let mut sleeper = task(job(12), 0, 0, hostile);
    work(&mut sleeper).input = TaskInput::Records(lines(&["zz"]).into());
    work(&mut sleeper).chain = Arc::from([step(StepKind::Map, "sleep")]);
    sleeper.limits.deadline = Duration::from_secs(5);
    c.launch(&agent, &sleeper).await.unwrap();
    until_running(&agent).await;

    // The only task slot (and its pool thread) is taken; a driver still runs
    // (its Driver service: the agent's configured master, none given).
    let wordcount = c.push(guest("wordcount")).await;
    let driver = driver_task(job(13), wordcount);
    launch_with(&agent, &c.addr.to_string(), "", &driver, &[]).await.unwrap();
    let end = c.end().await;
    assert_eq!((end.task, end.state), (driver.key, TaskState::Finished), "{}", end.log);

    assert_eq!(kill(&agent, &sleeper.key).await, 1, "the sleeper was still running");
    let end = c.end().await;
    assert_eq!((end.task, end.state), (sleeper.key, TaskState::Killed));
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_may_outlast_the_agents_rpc_timeout() {
    // Actions block for whole jobs: a 1 s action with a 300 ms RPC timeout must succeed.
    let mut c = super::cluster(Duration::from_secs(1)).await;
    c.rpc_timeout = Duration::from_millis(300);
    *c.act_delay.lock().unwrap() = Duration::from_secs(1);
    let agent = c.agent("a", 1).await;
    let wordcount = c.push(guest("wordcount")).await;
    let t = driver_task(job(14), wordcount);
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!((end.state, end.end.clone()), (TaskState::Finished, Some(EndReason::Finished)), "{}", end.log);
    agent.shutdown().await.unwrap();
}
