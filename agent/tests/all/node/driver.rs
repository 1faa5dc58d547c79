//! The driver task: a job's `main` in the sandbox, its plan defined and its
//! actions run through a stand-in `Driver` service.

use super::{Cluster, client, launch, lines, step, task};
use crate::support::guest;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};
use weft_codec::batch::BatchWriter;
use weft_codec::key::EncodeKey;
use weft_core::metering::EndReason;
use weft_core::proto::v1::driver_server::Driver;
use weft_core::proto::v1::{self, task_input};
use weft_core::task::TaskState;

/// Answers driver calls: ids in order, `count` 42, `take` two (count, word) pairs.
pub(super) struct FakeDriver {
    pub(super) defined: Arc<Mutex<Vec<v1::DefineRequest>>>,
    /// How long each action takes, as a real job would.
    pub(super) act_delay: Arc<Mutex<Duration>>,
}

#[tonic::async_trait]
impl Driver for FakeDriver {
    async fn define(
        &self,
        request: Request<v1::DefineRequest>,
    ) -> Result<Response<v1::DefineResponse>, Status> {
        use v1::define_request::Node;
        let mut defined = self.defined.lock().unwrap();
        let r = request.into_inner();
        let broadcast = |d: &v1::DefineRequest| matches!(d.node, Some(Node::Broadcast(_)));
        let id = match &r.node {
            Some(Node::Cache(id)) => u64::from(*id),
            Some(Node::Broadcast(_)) => defined.iter().filter(|d| broadcast(d)).count() as u64,
            _ => defined.iter().filter(|d| !broadcast(d) && !matches!(d.node, Some(Node::Cache(_)))).count()
                as u64,
        };
        defined.push(r);
        Ok(Response::new(v1::DefineResponse { id }))
    }

    async fn act(&self, request: Request<v1::ActRequest>) -> Result<Response<v1::ActResponse>, Status> {
        use v1::act_request::Action;
        let delay = *self.act_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let mut reply = v1::ActResponse::default();
        match request.into_inner().action {
            Some(Action::Count(_)) => reply.count = 42,
            Some(Action::Take(_)) => {
                let mut w = BatchWriter::new();
                for (n, word) in [(5i64, "the"), (3, "rabbit")] {
                    w.push(&n.to_key_bytes());
                    w.push(word.as_bytes());
                }
                reply.records = w.finish().into();
            }
            _ => {}
        }
        Ok(Response::new(reply))
    }
}

/// The word-count component's driver over `in.txt` into `out/`, as job `job`.
fn driver_task(c: &Cluster, job: &str, wordcount: &str) -> v1::TaskSpec {
    let mut spec = task(c, job, 0, 0, wordcount);
    spec.output = None;
    spec.driver =
        Some(v1::DriverSpec { args: vec!["in.txt".into(), "out/".into()], master: c.addr.to_string() });
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_task_defines_its_plan_and_runs_its_actions_through_the_master() {
    let mut c = super::cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let wordcount = c.push(guest("wordcount")).await;
    let spec = driver_task(&c, "job-driver", &wordcount);
    launch(&agent, spec).await.unwrap();
    let end = c.run_and_end().await;
    assert_eq!((end.state, end.end.clone()), (TaskState::Finished, Some(EndReason::Finished)), "{}", end.log);
    assert!(end.log.contains("42 distinct words") && end.log.contains("the: 5"), "{}", end.log);

    let defined = c.driver.lock().unwrap().clone();
    // Every node once, in order, each before the first action that needs
    // it; the cache mark once, after its dataset.
    use v1::define_request::Node;
    let kinds: Vec<String> = defined
        .iter()
        .map(|d| match &d.node {
            Some(Node::TextFile(t)) => format!("text {}", t.uri),
            Some(Node::Narrow(n)) => format!("{}({})", n.step.as_ref().unwrap().function, n.parent),
            Some(Node::Shuffle(s)) => format!("shuffle {:?}({})", s.kind(), s.parent),
            Some(Node::Cache(id)) => format!("cache {id}"),
            other => format!("{other:?}"),
        })
        .collect();
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
    assert!(defined.iter().all(|d| d.job_id == "job-driver"));
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_runs_beside_a_busy_task_slot() {
    let mut c = super::cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let hostile = c.push(guest("hostile")).await;
    let mut sleeper = task(&c, "job-busy", 0, 0, &hostile);
    sleeper.input = Some(v1::TaskInput { source: Some(task_input::Source::Records(lines(&["zz"]).into())) });
    sleeper.chain = vec![step(v1::StepKind::Map, "sleep")];
    sleeper.limits.as_mut().unwrap().deadline_ms = 5_000;
    launch(&agent, sleeper.clone()).await.unwrap();
    assert_eq!(c.task_event().await.state, TaskState::Running);

    // The only task slot (and its pool thread) is taken; a driver still runs.
    let wordcount = c.push(guest("wordcount")).await;
    let mut driver = task(&c, "job-driven", 0, 0, &wordcount);
    driver.output = None;
    driver.driver =
        Some(v1::DriverSpec { args: vec!["in.txt".into(), "out/".into()], master: String::new() });
    launch(&agent, driver).await.unwrap();
    let end = c.run_and_end().await;
    assert_eq!((end.task.job.as_str(), end.state), ("job-driven", TaskState::Finished), "{}", end.log);

    let killed = client(&agent).await.kill_task(v1::KillTaskRequest { task: sleeper.task }).await.unwrap();
    assert!(killed.into_inner().was_running, "the sleeper was still running");
    assert_eq!(c.task_event().await.state, TaskState::Killed);
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
    let spec = driver_task(&c, "job-slow", &wordcount);
    launch(&agent, spec).await.unwrap();
    let end = c.run_and_end().await;
    assert_eq!((end.state, end.end.clone()), (TaskState::Finished, Some(EndReason::Finished)), "{}", end.log);
    agent.shutdown().await.unwrap();
}
