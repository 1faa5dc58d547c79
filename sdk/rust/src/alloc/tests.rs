#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use std::alloc::System;
use std::cell::Cell;

/// The system allocator, counting what reaches it and the bytes it holds,
/// and refusing to hold more than `limit` bytes when one is set.
#[derive(Default)]
struct Counting {
    calls: Cell<usize>,
    held: Cell<isize>,
    limit: Cell<Option<isize>>,
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.calls.set(self.calls.get() + 1);
        if self.limit.get().is_some_and(|limit| self.held.get() + layout.size() as isize > limit) {
            return std::ptr::null_mut();
        }
        self.held.set(self.held.get() + layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.calls.set(self.calls.get() + 1);
        self.held.set(self.held.get() - layout.size() as isize);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.calls.set(self.calls.get() + 1);
        self.held.set(self.held.get() + new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// The bytes of the blocks on the lists.
fn listed<A>(a: &SmallBlocks<A>) -> usize {
    let heads = unsafe { &*a.heads.get() };
    let mut bytes = 0;
    for (c, &head) in heads.iter().enumerate() {
        let mut p = head;
        while !p.is_null() {
            bytes += block(c).size();
            p = unsafe { p.cast::<*mut u8>().read() };
        }
    }
    bytes
}

#[test]
fn a_freed_small_block_is_reused_by_the_next_request_of_its_class_without_the_system() {
    let a = SmallBlocks::new(Counting::default());
    unsafe {
        let p = a.alloc(layout(13, 1));
        assert_eq!(a.next.calls.get(), 1);
        a.dealloc(p, layout(13, 1));
        assert_eq!(listed(&a), 16, "a 13-byte block is listed as its class's 16");
        // 9 to 16 bytes, aligned to at most 8: the same class, the same block.
        let q = a.alloc(layout(16, 8));
        assert_eq!(q, p);
        assert_eq!(listed(&a), 0);
        assert_eq!(a.next.calls.get(), 1, "the reuse did not reach the system allocator");
        // Another class does not take it.
        a.dealloc(q, layout(16, 8));
        let r = a.alloc(layout(24, 8));
        assert_ne!(r, q);
        a.dealloc(r, layout(24, 8));
    }
}

#[test]
fn large_and_over_aligned_requests_go_to_the_system_allocator_each_time() {
    let a = SmallBlocks::new(Counting::default());
    for l in [layout(SMALL + 1, 8), layout(64, 16), layout(4096, 4096)] {
        unsafe {
            let before = a.next.calls.get();
            let p = a.alloc(l);
            assert_eq!(p as usize % l.align(), 0);
            a.dealloc(p, l);
            assert_eq!(a.next.calls.get(), before + 2, "{l:?} bypasses the lists");
            assert_eq!(listed(&a), 0);
        }
    }
    assert_eq!(a.next.held.get(), 0);
}

#[test]
fn listed_blocks_go_back_to_the_system_allocator_when_it_runs_out() {
    let a = SmallBlocks::new(Counting::default());
    let limit = 1 << 20;
    a.next.limit.set(Some(limit));
    // The whole limit in small blocks of several classes, then all freed: listed.
    let mut blocks = Vec::new();
    for size in [24, 200].into_iter().cycle() {
        let p = unsafe { a.alloc(layout(size, 8)) };
        if p.is_null() {
            break;
        }
        blocks.push((p, size));
    }
    assert!(a.next.held.get() > limit - 200);
    for (p, size) in blocks {
        unsafe { a.dealloc(p, layout(size, 8)) };
    }
    assert_eq!(listed(&a) as isize, a.next.held.get());
    unsafe {
        // A large request finds the memory; so does a small one of a class with an empty list.
        let big = a.alloc(layout(limit as usize / 2, 8));
        assert!(!big.is_null(), "the listed blocks were not given back");
        assert_eq!(listed(&a), 0);
        a.dealloc(big, layout(limit as usize / 2, 8));
        let small = a.alloc(layout(100, 8));
        assert!(!small.is_null());
        a.dealloc(small, layout(100, 8));
        // With nothing listed to give back, an impossible request is refused, not looped on.
        let calls = a.next.calls.get();
        assert!(a.alloc(layout(2 * limit as usize, 8)).is_null());
        assert_eq!(a.next.calls.get(), calls + 3, "a try, the listed block given back, one more try");
        assert!(a.alloc(layout(2 * limit as usize, 8)).is_null());
        assert_eq!(a.next.calls.get(), calls + 4, "nothing listed: one try");
    }
}

#[test]
fn realloc_keeps_the_contents_within_a_class_and_across_classes_and_sizes() {
    let a = SmallBlocks::new(Counting::default());
    unsafe {
        let mut size = 3;
        let mut p = a.alloc(layout(size, 1));
        p.write_bytes(0xab, size);
        // Within its class (3 → 7 bytes): the same block.
        let q = a.realloc(p, layout(size, 1), 7);
        assert_eq!(q, p);
        q.add(3).write_bytes(0xab, 4);
        (p, size) = (q, 7);
        // Up through classes, out to the system allocator and back down.
        for new in [40, 200, SMALL, 1000, 70_000, 100, 5] {
            let q = a.realloc(p, layout(size, 1), new);
            let kept = size.min(new);
            assert!((0..kept).all(|i| *q.add(i) == 0xab), "{size} → {new} bytes lost the contents");
            q.add(kept).write_bytes(0xab, new - kept);
            (p, size) = (q, new);
        }
        a.dealloc(p, layout(size, 1));
    }
}

#[test]
fn zeroed_blocks_are_zero_even_when_reused() {
    let a = SmallBlocks::new(Counting::default());
    unsafe {
        let p = a.alloc(layout(48, 8));
        p.write_bytes(0xff, 48);
        a.dealloc(p, layout(48, 8));
        let q = a.alloc_zeroed(layout(41, 8));
        assert_eq!(q, p);
        assert!((0..41).all(|i| *q.add(i) == 0));
        a.dealloc(q, layout(41, 8));
        let big = a.alloc_zeroed(layout(10_000, 8));
        assert!((0..10_000).all(|i| *big.add(i) == 0));
        a.dealloc(big, layout(10_000, 8));
    }
}

/// One step of an allocation history.
#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_log2: u32 },
    Free(usize),
    Realloc(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..600usize, 0..5u32).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        any::<usize>().prop_map(Op::Free),
        (any::<usize>(), 1..600usize).prop_map(|(i, size)| Op::Realloc(i, size)),
    ]
}

proptest! {
    /// Any history of requests: every live block is aligned, lies apart from
    /// every other and keeps what was written into it.
    #[test]
    fn live_blocks_never_overlap_and_keep_their_contents(ops in prop::collection::vec(op(), 1..300)) {
        let a = SmallBlocks::new(Counting::default());
        // (pointer, layout, fill byte)
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let fill = step as u8;
            unsafe {
                match op {
                    Op::Alloc { size, align_log2 } => {
                        let l = layout(size, 1 << align_log2);
                        let p = a.alloc(l);
                        prop_assert_eq!(p as usize % l.align(), 0);
                        p.write_bytes(fill, size);
                        live.push((p, l, fill));
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (p, l, _) = live.swap_remove(i % live.len());
                        a.dealloc(p, l);
                    }
                    Op::Realloc(i, size) if !live.is_empty() => {
                        let i = i % live.len();
                        let (p, l, old) = live[i];
                        let q = a.realloc(p, l, size);
                        let kept = l.size().min(size);
                        prop_assert!((0..kept).all(|j| *q.add(j) == old));
                        q.write_bytes(fill, size);
                        live[i] = (q, layout(size, l.align()), fill);
                    }
                    _ => {}
                }
                for &(p, l, fill) in &live {
                    prop_assert!((0..l.size()).all(|j| *p.add(j) == fill), "a live block was overwritten");
                }
            }
        }
        let mut spans: Vec<_> = live.iter().map(|&(p, l, _)| (p as usize, p as usize + l.size())).collect();
        spans.sort_unstable();
        prop_assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "live blocks overlap");
        for (p, l, _) in live {
            unsafe { a.dealloc(p, l) };
        }
        prop_assert_eq!(a.next.held.get(), listed(&a) as isize, "everything not on the lists went back");
    }
}
