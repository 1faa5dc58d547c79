//! The guest's global allocator: small blocks recycled through size-class
//! free lists, in front of the C library's allocator.
//!
//! A job allocates and frees small values per record (a `String` per word, a
//! `Vec<f64>` per parsed point). Each of those is a call into wasi-libc's
//! dlmalloc and back, with its bins and headers; here a freed small block goes
//! on a list of its size class and the next request of that class takes it
//! back, a few instructions each way. Blocks above [`SMALL`] bytes, or aligned
//! to more than 8, go straight to the C library.
//!
//! The lists never make the heap grow: before the C library serves any
//! request (a large one, or a small one whose list is empty), every listed
//! block goes back to it first. So a guest's memory peaks where it would
//! without the lists, and a job that frees many small values and then wants a
//! large buffer, or small values of other sizes, finds the memory. (Running
//! out cannot be left to the C library to report: past a task's memory limit
//! the host stops the guest instead of failing the allocation.) Each listed
//! block goes back at most once per time it was listed, so this costs a
//! bounded amount of work per `dealloc`.
//!
//! It is the global allocator of a `wasm32` guest built with the default
//! `allocator` feature (a component has no threads, which is what makes the
//! unsynchronised lists sound); turn the feature off to pick another. What it
//! saves is measured in `docs/architecture.md` ("The Rust SDK").

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// The largest block served from the lists, in bytes.
pub const SMALL: usize = 256;
/// The size classes: one per 8 bytes up to [`SMALL`].
const CLASSES: usize = SMALL / 8;

/// Small blocks recycled through free lists in front of the allocator `A`.
///
/// Not thread-safe: it is `Sync` only where there are no threads (see the
/// module docs).
pub struct SmallBlocks<A> {
    lists: UnsafeCell<Lists>,
    next: A,
}

/// The free lists, one per class: each head points to a free block whose
/// first word points to the next one.
struct Lists {
    heads: [*mut u8; CLASSES],
    /// Bit `c` is set when class `c`'s list may hold blocks (set by every
    /// `dealloc` onto it, cleared when the lists are given back).
    listed: u32,
}

impl<A> SmallBlocks<A> {
    /// No blocks listed yet, over `next`.
    pub const fn new(next: A) -> Self {
        SmallBlocks { lists: UnsafeCell::new(Lists { heads: [null_mut(); CLASSES], listed: 0 }), next }
    }
}

impl<A: GlobalAlloc> SmallBlocks<A> {
    /// Give every listed block back to `next`, then ask it for `layout`.
    /// Out of line, to keep the lists' paths short.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[allow(unsafe_code)]
    #[inline(never)]
    unsafe fn alloc_next(&self, layout: Layout) -> *mut u8 {
        self.release();
        // SAFETY: a non-zero size, as the caller's contract requires.
        unsafe { self.next.alloc(layout) }
    }

    /// Give every listed block back to `next`.
    #[allow(unsafe_code)]
    #[inline(always)]
    fn release(&self) {
        // SAFETY: single-threaded (see `Sync`); the reference ends before `next` is called.
        let lists = unsafe { &mut *self.lists.get() };
        if lists.listed != 0 {
            // Detached first, so that no reference into the lists is held while `next` runs.
            let (heads, listed) = (lists.heads, lists.listed);
            *lists = Lists { heads: [null_mut(); CLASSES], listed: 0 };
            self.give_back(heads, listed);
        }
    }

    /// Give the blocks of the lists `heads` whose bits are set in `listed` back to `next`.
    #[allow(unsafe_code)]
    #[cold]
    #[inline(never)]
    fn give_back(&self, heads: [*mut u8; CLASSES], mut listed: u32) {
        while listed != 0 {
            let c = listed.trailing_zeros() as usize;
            listed &= listed - 1;
            let mut block_ptr = heads[c];
            while !block_ptr.is_null() {
                // SAFETY: a listed block is a free `block(c)` from `next` whose first word links
                // the next one; it is read before the block is given back.
                unsafe {
                    let link = block_ptr.cast::<*mut u8>().read();
                    self.next.dealloc(block_ptr, block(c));
                    block_ptr = link;
                }
            }
        }
    }
}

/// The size class of a layout served from the lists, if it is one.
#[inline(always)]
fn class(layout: &Layout) -> Option<usize> {
    let size = layout.size();
    (size != 0 && size <= SMALL && layout.align() <= 8).then(|| (size - 1) >> 3)
}

/// The layout of every block of class `c`: all of its class's size, aligned
/// to 8, so that any request of the class fits any block of it.
#[allow(unsafe_code)]
#[inline(always)]
fn block(c: usize) -> Layout {
    // SAFETY: (c + 1) * 8 ≤ SMALL, far below isize::MAX, and 8 is a power of two.
    unsafe { Layout::from_size_align_unchecked((c + 1) * 8, 8) }
}

// SAFETY: every method hands out blocks of at least the requested size and
// alignment: a class's blocks are all `block(c)`, which covers any layout of
// that class; others come from `next` with the caller's own layout. A block is
// on a list only between its `dealloc` and the next `alloc` of its class (or
// the lists' release), so it is never handed out or given back twice.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlocks<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(c) = class(&layout) {
            // SAFETY: single-threaded (see `Sync`); no reference into the lists outlives this block.
            let lists = unsafe { &mut *self.lists.get() };
            let head = lists.heads[c];
            if !head.is_null() {
                // SAFETY: a listed block is a free `block(c)`, aligned to 8, whose first word links the next one.
                lists.heads[c] = unsafe { head.cast::<*mut u8>().read() };
                return head;
            }
            // SAFETY: a non-zero size.
            return unsafe { self.alloc_next(block(c)) };
        }
        // SAFETY: the caller's layout, as the caller's contract requires.
        unsafe { self.alloc_next(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(&layout) else {
            // SAFETY: `ptr` came from `next` with this layout (see `alloc`).
            return unsafe { self.next.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded (see `Sync`); no reference into the lists outlives this function.
        let lists = unsafe { &mut *self.lists.get() };
        // SAFETY: the caller gives the block up; it holds at least 8 bytes, aligned to 8.
        unsafe { ptr.cast::<*mut u8>().write(lists.heads[c]) };
        lists.heads[c] = ptr;
        lists.listed |= 1 << c;
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(&layout).is_none() {
            self.release();
            // SAFETY: as in `alloc`; the C library's zeroed memory may need no writing.
            return unsafe { self.next.alloc_zeroed(layout) };
        }
        // SAFETY: as in `alloc`; the block holds `layout.size()` bytes.
        unsafe {
            let ptr = self.alloc(layout);
            if !ptr.is_null() {
                ptr.write_bytes(0, layout.size());
            }
            ptr
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: `new_size` is non-zero and fits a layout of this alignment.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(&layout), class(&new)) {
            // Its block already holds the new size.
            (Some(c), Some(d)) if c == d => ptr,
            (None, None) => {
                self.release();
                // SAFETY: `ptr` came from `next` with `layout` (see `alloc`).
                unsafe { self.next.realloc(ptr, layout, new_size) }
            }
            // SAFETY: a fresh block of the new layout; the old one holds `layout.size()` bytes.
            _ => unsafe {
                let moved = self.alloc(new);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            },
        }
    }
}

/// The global allocator of a guest (see the module docs).
#[cfg(all(feature = "allocator", target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static GLOBAL: SmallBlocks<std::alloc::System> = SmallBlocks::new(std::alloc::System);

// SAFETY: a wasm32 component without the `atomics` feature has exactly one
// thread, so the lists are never touched concurrently.
#[allow(unsafe_code)]
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

#[cfg(test)]
mod tests;
