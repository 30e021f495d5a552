//! [`KeepLarge`]: a global allocator wrapper that keeps the last freed
//! large blocks and hands them back for requests of the same size.
//!
//! Why: every op allocates its output, and a training step frees and
//! re-allocates the same few dozen multi-megabyte tensors step after step.
//! An allocator that returns such blocks to the OS (mimalloc purges freed
//! memory after a short delay, the system allocator unmaps large blocks at
//! once) gets them back as fresh pages, which the kernel zeroes one 2 MiB
//! huge page at a time on first touch. Measured on the textgenrnn-shaped
//! step (`examples/profile_rnn W5`): ten thousand page faults per 200 steps
//! (two hundred with this wrapper),
//! most of the serial thread's time, and a 13% slower step than with
//! purging switched off. Kept blocks are already mapped and often still in
//! cache — what PyTorch's caching allocators do for the same reason.
//!
//! Only blocks of at least [`MIN_SIZE`] are kept, at most [`SLOTS`] of them
//! and [`MAX_KEPT_BYTES`] together (the oldest go back to the inner
//! allocator first), and a block is only handed out for a request with
//! exactly its size and alignment, so every block reaches the inner
//! allocator's `dealloc` and `realloc` with the layout it was made with.
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: finetune_kernels::alloc::KeepLarge<std::alloc::System> =
//!     finetune_kernels::alloc::KeepLarge::new(std::alloc::System);
//! let v = vec![1.0f32; 1 << 20];
//! assert_eq!(v.len(), 1 << 20);
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Smaller blocks go straight to the inner allocator, whose own caches serve them well.
pub const MIN_SIZE: usize = 1 << 18;
/// How many freed blocks are kept at most.
pub const SLOTS: usize = 64;
/// How many bytes the kept blocks hold together at most.
pub const MAX_KEPT_BYTES: usize = 1 << 30;

/// One kept block (`ptr` null when the slot is free).
#[derive(Clone, Copy)]
struct Slot {
    ptr: *mut u8,
    size: usize,
    align: usize,
    /// When it was freed, for evicting the oldest.
    freed_at: u64,
}

const EMPTY: Slot = Slot {
    ptr: std::ptr::null_mut(),
    size: 0,
    align: 0,
    freed_at: 0,
};

struct Kept {
    slots: [Slot; SLOTS],
    bytes: usize,
    clock: u64,
}

/// A global allocator that keeps freed blocks of [`MIN_SIZE`] or more for
/// reuse (see the module doc); everything else goes to `A`.
pub struct KeepLarge<A> {
    inner: A,
    locked: AtomicBool,
    kept: UnsafeCell<Kept>,
}

// SAFETY: `kept` is only touched while `locked` is held (see `with_kept`),
// and the raw pointers in it are blocks no one else holds.
unsafe impl<A: Sync> Sync for KeepLarge<A> {}

impl<A> KeepLarge<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        KeepLarge {
            inner,
            locked: AtomicBool::new(false),
            kept: UnsafeCell::new(Kept {
                slots: [EMPTY; SLOTS],
                bytes: 0,
                clock: 0,
            }),
        }
    }

    /// Runs `f` on the kept blocks under a spin lock (held for a scan of
    /// the slots at most; an allocator cannot block on a mutex that might
    /// itself allocate).
    fn with_kept<R>(&self, f: impl FnOnce(&mut Kept) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is ours until the store below, so no other
        // reference to `kept` exists meanwhile.
        let out = f(unsafe { &mut *self.kept.get() });
        self.locked.store(false, Ordering::Release);
        out
    }

    /// The most recently freed kept block of exactly `layout`, if any.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        self.with_kept(|kept| {
            let (i, _) = kept
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    !s.ptr.is_null() && s.size == layout.size() && s.align == layout.align()
                })
                .max_by_key(|(_, s)| s.freed_at)?;
            let slot = std::mem::replace(&mut kept.slots[i], EMPTY);
            kept.bytes -= slot.size;
            Some(slot.ptr)
        })
    }

    /// Keeps `ptr`, making room by evicting the oldest kept blocks; returns
    /// what must go back to the inner allocator (the evicted blocks, or
    /// `ptr` itself if it is too big to keep).
    fn keep(&self, ptr: *mut u8, layout: Layout) -> [Option<Slot>; SLOTS] {
        let mut out = [None; SLOTS];
        let new = Slot {
            ptr,
            size: layout.size(),
            align: layout.align(),
            freed_at: 0,
        };
        if new.size > MAX_KEPT_BYTES {
            out[0] = Some(new);
            return out;
        }
        self.with_kept(|kept| {
            let mut n = 0;
            // each pass empties one slot, so this ends within SLOTS passes
            while kept.bytes + new.size > MAX_KEPT_BYTES
                || kept.slots.iter().all(|s| !s.ptr.is_null())
            {
                let Some(i) = oldest(kept) else { break };
                let slot = std::mem::replace(&mut kept.slots[i], EMPTY);
                kept.bytes -= slot.size;
                out[n] = Some(slot);
                n += 1;
            }
            if let Some(free) = kept.slots.iter().position(|s| s.ptr.is_null()) {
                kept.clock += 1;
                kept.slots[free] = Slot {
                    freed_at: kept.clock,
                    ..new
                };
                kept.bytes += new.size;
            } else if let Some(o) = out.get_mut(n) {
                // (not reached: the loop above always leaves a free slot)
                *o = Some(new);
            }
        });
        out
    }
}

/// The slot freed longest ago, if any is in use.
fn oldest(kept: &Kept) -> Option<usize> {
    kept.slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.ptr.is_null())
        .min_by_key(|(_, s)| s.freed_at)
        .map(|(i, _)| i)
}

// SAFETY: every block handed out is either fresh from `inner` or a block
// `inner` made with exactly the requested layout and that was freed to us
// (no one else holds it); every block given back to `inner` goes with the
// layout it was made with.
unsafe impl<A: GlobalAlloc> GlobalAlloc for KeepLarge<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_SIZE
            && let Some(ptr) = self.take(layout)
        {
            return ptr;
        }
        // SAFETY: the caller's contract (a non-zero size), forwarded.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_SIZE
            && let Some(ptr) = self.take(layout)
        {
            // SAFETY: the kept block holds `layout.size()` bytes and is ours.
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        // SAFETY: as `alloc`.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < MIN_SIZE {
            // SAFETY: the caller's contract, forwarded.
            unsafe { self.inner.dealloc(ptr, layout) };
            return;
        }
        for slot in self.keep(ptr, layout).into_iter().flatten() {
            // SAFETY: a block `inner` made with exactly this layout, no longer kept.
            unsafe {
                self.inner.dealloc(
                    slot.ptr,
                    Layout::from_size_align_unchecked(slot.size, slot.align),
                )
            };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was made by `inner` with `layout` (kept blocks are
        // handed out only for their exact layout), so `inner` may resize it.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// A global allocator wrapper that records the largest single request
/// (allocation or resize) since the last [`LargestRequest::reset`]: how the
/// hostile-file tests prove that a lying size claim allocates nothing big.
///
/// ```
/// use finetune_kernels::alloc::LargestRequest;
/// static PROBE: LargestRequest<std::alloc::System> = LargestRequest::new(std::alloc::System);
/// // (a test installs it with `#[global_allocator]`; here it is only read)
/// PROBE.reset();
/// assert_eq!(PROBE.largest(), 0);
/// ```
pub struct LargestRequest<A> {
    inner: A,
    largest: AtomicUsize,
}

impl<A> LargestRequest<A> {
    /// Wraps `inner`, with nothing recorded yet.
    pub const fn new(inner: A) -> Self {
        Self {
            inner,
            largest: AtomicUsize::new(0),
        }
    }

    /// Forgets what was recorded.
    pub fn reset(&self) {
        self.largest.store(0, Ordering::Relaxed);
    }

    /// The largest request in bytes since the last reset.
    pub fn largest(&self) -> usize {
        self.largest.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded unchanged to `inner`, itself a global
// allocator; the wrapper only records sizes in an atomic.
unsafe impl<A: GlobalAlloc> GlobalAlloc for LargestRequest<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.largest.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.largest.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded (`ptr` came from `inner`).
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.largest.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded (`ptr` came from `inner`).
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 64).unwrap()
    }

    #[test]
    fn a_freed_large_block_comes_back_for_the_same_layout_only() {
        let a = KeepLarge::new(System);
        // SAFETY: non-zero sizes; every block is freed once with its layout.
        unsafe {
            let p = a.alloc(layout(MIN_SIZE));
            p.write_bytes(7, MIN_SIZE);
            a.dealloc(p, layout(MIN_SIZE));
            // another size, or another alignment, is not served from it
            let q = a.alloc(layout(MIN_SIZE + 64));
            assert_ne!(q, p);
            let r = a.alloc(Layout::from_size_align(MIN_SIZE, 128).unwrap());
            assert_ne!(r, p);
            // the same layout is, and zeroed when asked
            let z = a.alloc_zeroed(layout(MIN_SIZE));
            assert_eq!(z, p);
            assert!(
                std::slice::from_raw_parts(z, MIN_SIZE)
                    .iter()
                    .all(|&b| b == 0)
            );
            for (ptr, l) in [
                (q, layout(MIN_SIZE + 64)),
                (r, Layout::from_size_align(MIN_SIZE, 128).unwrap()),
                (z, layout(MIN_SIZE)),
            ] {
                a.dealloc(ptr, l);
            }
            // small blocks are never kept
            let s = a.alloc(layout(64));
            a.dealloc(s, layout(64));
            a.with_kept(|k| {
                assert!(
                    k.slots
                        .iter()
                        .all(|sl| sl.size >= MIN_SIZE || sl.ptr.is_null())
                )
            });
        }
    }

    #[test]
    fn at_most_the_slots_and_the_bytes_are_kept() {
        let a = KeepLarge::new(System);
        // SAFETY: as above.
        unsafe {
            let blocks: Vec<*mut u8> = (0..SLOTS + 5).map(|_| a.alloc(layout(MIN_SIZE))).collect();
            for &p in &blocks {
                a.dealloc(p, layout(MIN_SIZE));
            }
            a.with_kept(|k| {
                assert!(k.slots.iter().all(|s| !s.ptr.is_null()));
                assert_eq!(k.bytes, SLOTS * MIN_SIZE);
            });
            // the newest are the ones kept: the last freed comes back first
            assert_eq!(a.alloc(layout(MIN_SIZE)), *blocks.last().unwrap());
            a.dealloc(*blocks.last().unwrap(), layout(MIN_SIZE));
            // a block bigger than the byte budget goes straight back
            let huge = layout(MAX_KEPT_BYTES + 64);
            let h = a.alloc(huge);
            if !h.is_null() {
                a.dealloc(h, huge);
                a.with_kept(|k| assert!(k.slots.iter().all(|s| s.ptr != h)));
            }
            // a big one evicts old ones until the bytes fit
            let big = layout(MAX_KEPT_BYTES - MIN_SIZE);
            let b = a.alloc(big);
            assert!(!b.is_null());
            a.dealloc(b, big);
            a.with_kept(|k| assert!(k.bytes <= MAX_KEPT_BYTES));
            // hand everything back to the system
            for i in 0..SLOTS {
                let slot = a.with_kept(|k| std::mem::replace(&mut k.slots[i], EMPTY));
                if !slot.ptr.is_null() {
                    System.dealloc(
                        slot.ptr,
                        Layout::from_size_align(slot.size, slot.align).unwrap(),
                    );
                }
            }
        }
    }
}
