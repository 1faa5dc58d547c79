//! Shuffles across agents: map output written on one, read by another
//! through its `Blocks` service.

use super::{cluster, input, launch, step, task, text_input};
use crate::support::guest;
use std::collections::HashMap;
use std::time::Duration;
use weft_codec::batch::pairs;
use weft_codec::key::Key;
use weft_core::ids::ShuffleId;
use weft_core::metering::EndReason;
use weft_core::proto::v1::{self, task_input, task_output};
use weft_core::task::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_stage_word_count_reads_shuffle_blocks_from_a_peer() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let (a, b) = (c.agent("a", 2).await, c.agent("b", 1).await);
    let wordcount = c.push(guest("wordcount")).await;
    let (text, location, splits) = input(c.dir.path(), 3).await;
    const REDUCES: u32 = 2;
    for (i, split) in splits.iter().enumerate() {
        let mut spec = task(&c, "job-wc", 0, i as u32, &wordcount);
        spec.input = text_input(&location, split);
        spec.chain = vec![step(v1::StepKind::FlatMap, "split_words"), step(v1::StepKind::Map, "one")];
        spec.output_keyed = true;
        spec.output = Some(v1::TaskOutput {
            sink: Some(task_output::Sink::Shuffle(v1::ShuffleWrite {
                shuffle: 1,
                partitions: REDUCES,
                combiner: Some(v1::shuffle_write::Combiner::Guest("add".into())),
                ..Default::default()
            })),
        });
        launch(&a, spec).await.unwrap();
        let end = c.run_and_end().await;
        assert_eq!(end.state, TaskState::Finished, "{:?} {}", end.end, end.log);
        assert_eq!(end.partition_bytes.len(), REDUCES as usize);
    }
    let maps: Vec<v1::MapLocation> =
        (0..splits.len() as u32).map(|map| v1::MapLocation { map, address: a.address().into() }).collect();
    let mut counts = HashMap::new();
    for reduce in 0..REDUCES {
        let mut spec = task(&c, "job-wc", 1, reduce, &wordcount);
        spec.input = Some(v1::TaskInput {
            source: Some(task_input::Source::Shuffle(v1::ShuffleRead {
                shuffle: 1,
                reduce,
                aggregate: v1::Aggregate::SumI64 as i32,
                maps: maps.clone(),
            })),
        });
        spec.input_keyed = true;
        spec.output_keyed = true;
        launch(&b, spec).await.unwrap();
        let end = c.run_and_end().await;
        assert_eq!(end.state, TaskState::Finished, "{:?} {}", end.end, end.log);
        for p in pairs(&end.result) {
            let (k, v) = p.unwrap();
            let word = String::from_utf8(k.to_vec()).unwrap();
            assert!(
                counts.insert(word, i64::from_key_bytes(v).unwrap()).is_none(),
                "a word in two partitions"
            );
        }
    }
    let mut native = HashMap::new();
    for w in text.split_whitespace().map(str::to_lowercase) {
        *native.entry(w).or_insert(0i64) += 1;
    }
    assert_eq!(counts, native);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_whose_map_output_is_gone_ends_fetch_failed() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let (a, b) = (c.agent("a", 1).await, c.agent("b", 1).await);
    let wordcount = c.push(guest("wordcount")).await;
    let (_, location, splits) = input(c.dir.path(), 1).await;
    let mut spec = task(&c, "job-lost", 0, 0, &wordcount);
    spec.input = text_input(&location, &splits[0]);
    spec.chain = vec![step(v1::StepKind::FlatMap, "split_words"), step(v1::StepKind::Map, "one")];
    spec.output_keyed = true;
    spec.output = Some(v1::TaskOutput {
        sink: Some(task_output::Sink::Shuffle(v1::ShuffleWrite {
            shuffle: 4,
            partitions: 1,
            ..Default::default()
        })),
    });
    launch(&a, spec).await.unwrap();
    assert_eq!(c.run_and_end().await.state, TaskState::Finished);
    let gone = a.address().to_owned();
    a.shutdown().await.unwrap();

    let mut spec = task(&c, "job-lost", 1, 0, &wordcount);
    spec.input = Some(v1::TaskInput {
        source: Some(task_input::Source::Shuffle(v1::ShuffleRead {
            shuffle: 4,
            reduce: 0,
            aggregate: v1::Aggregate::SumI64 as i32,
            maps: vec![v1::MapLocation { map: 0, address: gone }],
        })),
    });
    spec.input_keyed = true;
    spec.output_keyed = true;
    launch(&b, spec).await.unwrap();
    let end = loop {
        // Agent A's loss may show up in between.
        let e = c.task_event().await;
        if e.state.is_terminal() {
            break e;
        }
    };
    assert_eq!(end.state, TaskState::Failed, "{:?}", end.end);
    assert_eq!(end.fetch_failed, Some((ShuffleId(4), 0)), "{:?}", end.end);
    assert!(matches!(&end.end, Some(EndReason::HostError { .. })), "{:?}", end.end);
    b.shutdown().await.unwrap();
}
