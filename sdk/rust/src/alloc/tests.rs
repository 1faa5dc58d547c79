// The tests call the allocator under test directly, within the layouts they asked for.
#![allow(clippy::unwrap_used, unsafe_code)]

use super::*;
use proptest::prelude::*;
use std::alloc::System;
use std::cell::Cell;

/// The system allocator, counting what reaches it and the bytes it holds,
/// and checking that it is never asked for memory while blocks are listed.
#[derive(Default)]
struct Counting {
    calls: Cell<usize>,
    held: Cell<isize>,
    /// The lists of the `SmallBlocks` in front, once [`watch`]ed.
    lists: Cell<Option<*const UnsafeCell<Lists>>>,
}

impl Counting {
    fn assert_nothing_listed(&self) {
        if let Some(lists) = self.lists.get() {
            let heads = unsafe { (*(*lists).get()).heads };
            assert!(heads.iter().all(|h| h.is_null()), "asked for memory while blocks were listed");
        }
    }
}

/// `a`, with its system allocator checking the lists (`a` must not move).
fn watch(a: &SmallBlocks<Counting>) -> &SmallBlocks<Counting> {
    a.next.lists.set(Some(&a.lists));
    a
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.assert_nothing_listed();
        self.calls.set(self.calls.get() + 1);
        self.held.set(self.held.get() + layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.calls.set(self.calls.get() + 1);
        self.held.set(self.held.get() - layout.size() as isize);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.assert_nothing_listed();
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
    let heads = unsafe { &(*a.lists.get()).heads };
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
        // Another class does not take it: its list is empty, so the system
        // allocator serves it, after getting the listed block back.
        a.dealloc(q, layout(16, 8));
        let r = a.alloc(layout(24, 8));
        assert_eq!(a.next.calls.get(), 3, "the 16-byte block given back, then a 24-byte one made");
        assert_eq!(a.next.held.get(), 24);
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
fn listed_blocks_go_back_before_the_system_allocator_serves_anything() {
    let owner = SmallBlocks::new(Counting::default());
    let a = watch(&owner);
    let small = |size: usize| {
        // Many blocks of two classes (sizes inside their classes), all freed: listed.
        let blocks: Vec<_> =
            (0..1000usize).map(|i| (unsafe { a.alloc(layout(size + i % 2, 8)) }, size + i % 2)).collect();
        for (p, size) in blocks {
            unsafe { a.dealloc(p, layout(size, 8)) };
        }
    };
    small(13);
    assert_eq!(listed(a), 1000 * 16);
    // The first 199-byte request finds its list empty: the 16-byte blocks go back first.
    small(199);
    assert_eq!(listed(a), 1000 * 200);
    assert_eq!(listed(a) as isize, a.next.held.get(), "the system holds only what is listed");
    unsafe {
        // A large request: everything listed goes back first (the system allocator checks).
        let big = a.alloc(layout(100_000, 8));
        assert_eq!(listed(a), 0);
        assert_eq!(a.next.held.get(), 100_000, "all listed blocks were given back");
        a.dealloc(big, layout(100_000, 8));
        // A small request of a class whose list is empty, after others were listed: the same.
        small(13);
        let p = a.alloc(layout(60, 8));
        assert_eq!(listed(a), 0);
        assert_eq!(a.next.held.get(), 64);
        // Zeroed and reallocated large blocks too.
        a.dealloc(p, layout(60, 8));
        let z = a.alloc_zeroed(layout(5000, 8));
        assert_eq!(a.next.held.get(), 5000);
        small(13);
        let z = a.realloc(z, layout(5000, 8), 9000);
        assert_eq!(a.next.held.get(), 9000);
        a.dealloc(z, layout(9000, 8));
    }
    assert_eq!(a.next.held.get(), 0);
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
        let owner = SmallBlocks::new(Counting::default());
        let a = watch(&owner);
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
                        prop_assert_eq!(q as usize % l.align(), 0);
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
        prop_assert_eq!(a.next.held.get(), listed(a) as isize, "everything not on the lists went back");
    }
}
