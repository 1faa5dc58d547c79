//! Shuffles across agents: map output written on one, read by another
//! through its `Blocks` service.

use super::{cluster, input, job, step, task, text_input, work};
use crate::support::guest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use weft_codec::batch::pairs;
use weft_codec::key::Key;
use weft_core::ids::ShuffleId;
use weft_core::metering::EndReason;
use weft_core::plan::StepKind;
use weft_core::task::{
    Aggregate, BlockSizes, Combiner, MapStatus, MapTable, Partitioning, ShuffleRead, ShuffleWrite, TaskInput,
    TaskOutput, TaskState,
};
use weft_core::{ids::ActionId, proto::v1};

/// The table of `shuffle` for `action`: every map output on the agent at
/// `address`, with the stored bytes each map task reported.
fn table(action: ActionId, shuffle: ShuffleId, address: &str, map_bytes: &[Vec<u64>]) -> MapTable {
    MapTable {
        action,
        shuffle,
        addresses: vec![address.into()],
        // The map tasks here run as attempt 0.
        maps: map_bytes
            .iter()
            .map(|b| MapStatus { address: 0, attempt: 0, sizes: BlockSizes::new(b) })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_stage_word_count_reads_shuffle_blocks_from_a_peer() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let (a, b) = (c.agent("a", 2).await, c.agent("b", 1).await);
    let wordcount = c.push(guest("wordcount")).await;
    let (text, location, splits) = input(c.dir.path(), 3).await;
    const REDUCES: u32 = 2;
    // The stored bytes of each map output, by reduce partition.
    let mut map_bytes = Vec::new();
    for (i, split) in splits.iter().enumerate() {
        let mut t = task(job(21), 0, i as u32, wordcount);
        let w = work(&mut t);
        w.input = text_input(&location, split);
        w.chain = Arc::from([step(StepKind::FlatMap, "split_words"), step(StepKind::Map, "one")]);
        w.output_keyed = true;
        w.output = TaskOutput::Shuffle(ShuffleWrite {
            shuffle: ShuffleId(1),
            partitions: REDUCES,
            partitioning: Partitioning::Hash,
            combiner: Combiner::Guest("add".into()),
        });
        c.launch(&a, &t).await.unwrap();
        let end = c.end().await;
        assert_eq!((end.task, end.agent), (t.key, a.agent_id().unwrap()));
        assert_eq!(end.state, TaskState::Finished, "{:?} {}", end.end, end.log);
        assert_eq!(end.partition_bytes.len(), REDUCES as usize);
        assert!(end.partition_bytes.iter().all(|b| *b > 0), "every block's size: {:?}", end.partition_bytes);
        map_bytes.push(end.partition_bytes);
    }
    let mut counts = HashMap::new();
    let mut results = Vec::new();
    for reduce in 0..REDUCES {
        let mut t = task(job(21), 1, reduce, wordcount);
        let w = work(&mut t);
        w.input = TaskInput::Shuffle(ShuffleRead {
            shuffle: ShuffleId(1),
            reduce,
            aggregate: Aggregate::SumI64,
            maps: splits.len() as u32,
        });
        w.input_keyed = true;
        w.output_keyed = true;
        // The table goes with the first reduce task only: the agent keeps it.
        let tables = if reduce == 0 {
            vec![table(t.key.action, ShuffleId(1), a.address(), &map_bytes)]
        } else {
            vec![]
        };
        c.launch_reading(&b, &t, &tables).await.unwrap();
        let end = c.end().await;
        assert_eq!((end.task, end.agent), (t.key, b.agent_id().unwrap()));
        assert_eq!(end.state, TaskState::Finished, "{:?} {}", end.end, end.log);
        // The sizes the maps reported reached the reader through the table
        // (as `BlockSizes` keeps them).
        let sizes: u64 = map_bytes.iter().map(|m| BlockSizes::new(m).of(reduce)).sum();
        assert!(sizes > 0);
        assert_eq!(end.metering.shuffle_bytes_read, sizes);
        results.push(end.result.clone());
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
    // The same reduce on the agent holding the map outputs reads its own
    // files, and gives the same result.
    let mut t = task(job(21), 1, 0, wordcount);
    t.key.attempt = 1;
    let w = work(&mut t);
    w.input = TaskInput::Shuffle(ShuffleRead {
        shuffle: ShuffleId(1),
        reduce: 0,
        aggregate: Aggregate::SumI64,
        maps: splits.len() as u32,
    });
    w.input_keyed = true;
    w.output_keyed = true;
    c.launch_reading(&a, &t, &[table(t.key.action, ShuffleId(1), a.address(), &map_bytes)]).await.unwrap();
    let end = c.end().await;
    assert_eq!((end.task, end.state), (t.key, TaskState::Finished), "{:?} {}", end.end, end.log);
    assert_eq!(end.result, results[0]);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_whose_map_output_is_gone_ends_fetch_failed() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let (a, b) = (c.agent("a", 1).await, c.agent("b", 1).await);
    let wordcount = c.push(guest("wordcount")).await;
    let (_, location, splits) = input(c.dir.path(), 1).await;
    let mut t = task(job(22), 0, 0, wordcount);
    let w = work(&mut t);
    w.input = text_input(&location, &splits[0]);
    w.chain = Arc::from([step(StepKind::FlatMap, "split_words"), step(StepKind::Map, "one")]);
    w.output_keyed = true;
    w.output = TaskOutput::Shuffle(ShuffleWrite {
        shuffle: ShuffleId(4),
        partitions: 1,
        partitioning: Partitioning::Hash,
        combiner: Combiner::None,
    });
    c.launch(&a, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!(end.state, TaskState::Finished, "{:?} {}", end.end, end.log);
    let (gone, bytes) = (a.address().to_owned(), end.partition_bytes);
    a.shutdown().await.unwrap();

    let mut t = task(job(22), 1, 0, wordcount);
    let w = work(&mut t);
    w.input = TaskInput::Shuffle(ShuffleRead {
        shuffle: ShuffleId(4),
        reduce: 0,
        aggregate: Aggregate::SumI64,
        maps: 1,
    });
    w.input_keyed = true;
    w.output_keyed = true;
    c.launch_reading(&b, &t, &[table(t.key.action, ShuffleId(4), &gone, &[bytes])]).await.unwrap();
    // Agent A's loss may show up in between; `end` skips it.
    let end = c.end().await;
    assert_eq!((end.task, end.state), (t.key, TaskState::Failed), "{:?}", end.end);
    assert!(
        matches!(&end.end, Some(EndReason::FetchFailed { shuffle: ShuffleId(4), map: 0, .. })),
        "{:?}",
        end.end
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_whose_table_never_came_is_refused_as_stale() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let b = c.agent("b", 1).await;
    let wordcount = c.push(guest("wordcount")).await;
    let mut t = task(job(23), 1, 0, wordcount);
    let w = work(&mut t);
    w.input = TaskInput::Shuffle(ShuffleRead {
        shuffle: ShuffleId(2),
        reduce: 0,
        aggregate: Aggregate::Merge,
        maps: 3,
    });
    w.input_keyed = true;
    let refusal = c.launch(&b, &t).await.unwrap_err();
    assert_eq!(refusal.kind, v1::RefusalKind::Stale as i32, "{refusal:?}");
    assert!(refusal.message.contains("shuffle 2 was not received"), "{}", refusal.message);
    // A table of another shape is stale too, and says how.
    let other = table(t.key.action, ShuffleId(2), "127.0.0.1:1", &[vec![1], vec![2]]);
    let refusal = c.launch_reading(&b, &t, &[other]).await.unwrap_err();
    assert_eq!(refusal.kind, v1::RefusalKind::Stale as i32, "{refusal:?}");
    assert!(refusal.message.contains("lists 2 map outputs, the task reads 3"), "{}", refusal.message);
    b.shutdown().await.unwrap();
}
