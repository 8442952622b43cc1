//! The process allocator: the system allocator, counting the bytes it hands out.
//!
//! The count serves `kferry bench`: allocated bytes per forwarded byte. It costs one relaxed
//! atomic add per allocation.
//!
//! This is the binary's only `unsafe`: `GlobalAlloc` is an unsafe trait. Each method forwards
//! its call, unchanged, to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator with a running total of bytes allocated.
pub struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

/// Heap bytes allocated by this process so far (growth by `realloc` included).
pub fn allocated_bytes() -> u64 {
    ALLOCATED.load(Ordering::Relaxed)
}

// SAFETY: every method passes the caller's arguments, and so the caller's guarantees
// (layouts, pointers from this allocator), straight to the system allocator, whose `GlobalAlloc`
// implementation upholds the trait's contract; counting touches no memory it returns.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size.saturating_sub(layout.size()) as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
