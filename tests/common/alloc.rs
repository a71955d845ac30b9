//! A per-thread counting global allocator for the tests that measure heap
//! use: it forwards every call to the system allocator unchanged and keeps,
//! per thread, the number of allocations made and the bytes still live.
//!
//! A test opts in with
//! `#[global_allocator] static ALLOC: common::alloc::Counting = common::alloc::Counting;`
//! (tests that do not use `mod common` include this file with `#[path]`).
#![allow(unsafe_code, dead_code, unreachable_pub, clippy::cast_possible_wrap)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// `try_with`: the allocator also runs while thread-locals are torn down.
fn record(new_allocation: bool, delta: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
    if new_allocation {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments and returns its result unchanged; the wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(true, layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(true, layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(false, -(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(true, new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Bytes allocated (and not yet freed) by this thread so far.
pub fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made by this thread
/// while `f` ran, and `f`'s result.
pub fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}
