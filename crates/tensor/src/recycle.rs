//! Large scratch buffers handed back for reuse instead of freed.
//!
//! A recurrent layer's training step keeps megabytes of activations for its
//! backward pass (an LSTM(128) over 32 × 64 characters: 4 MB of gates
//! alone) and drops them when the step's tape is dropped. Allocated fresh
//! each step they must be zeroed first, a separate pass over memory that
//! cost a textgenrnn-sized step about a tenth of its time (measured with
//! `examples/profile_rnn`). A [`Recycled`] buffer goes back to a small
//! process-wide pool when it is dropped, and the next step of the same
//! shape takes it back with its old contents: the kernels write over it as
//! they go, which costs nothing extra (PyTorch's caching allocators keep
//! freed blocks for the same reason).
//!
//! The contents of a buffer from [`Recycled::for_overwrite`] are therefore
//! unspecified (zeros, or values from an earlier use): only for buffers the
//! caller writes before it reads, element by element.

use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers smaller than this are not worth keeping (the allocator's own
/// caches serve them well).
const MIN_BYTES: usize = 256 << 10;
/// At most this many buffers are kept, ...
const MAX_KEPT: usize = 32;
/// ... holding at most this many bytes together.
const MAX_KEPT_BYTES: usize = 1 << 30;

/// Kept buffers, each a `Vec<T>` of some element type, with its size in bytes.
static POOL: Mutex<Vec<(usize, Box<dyn Any + Send>)>> = Mutex::new(Vec::new());

/// A `Vec<T>` that returns to the pool when dropped. Derefs to `[T]`.
#[derive(Debug, Default)]
pub struct Recycled<T: Copy + Default + Send + 'static> {
    data: Vec<T>,
}

impl<T: Copy + Default + Send + 'static> Recycled<T> {
    /// `len` values whose contents are unspecified: a kept buffer that fits
    /// (the smallest one) if there is one, else fresh zeros.
    pub fn for_overwrite(len: usize) -> Self {
        let mut data = take_kept::<T>(len).unwrap_or_default();
        data.resize(len, T::default());
        Recycled { data }
    }

    /// The buffer as a plain `Vec`, which then leaves the pool's care.
    pub fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.data)
    }
}

impl<T: Copy + Default + Send + 'static> Deref for Recycled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

impl<T: Copy + Default + Send + 'static> DerefMut for Recycled<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
}

impl<T: Copy + Default + Send + 'static> Drop for Recycled<T> {
    fn drop(&mut self) {
        let bytes = self.data.capacity().saturating_mul(size_of::<T>());
        if bytes < MIN_BYTES {
            return;
        }
        // a poisoned lock (a panic while it was held) only costs the reuse
        let Ok(mut pool) = POOL.lock() else { return };
        let kept: usize = pool.iter().map(|(b, _)| b).sum();
        if pool.len() < MAX_KEPT && kept.saturating_add(bytes) <= MAX_KEPT_BYTES {
            pool.push((bytes, Box::new(std::mem::take(&mut self.data))));
        }
    }
}

/// The smallest kept `Vec<T>` with room for `len` values, taken out of the pool.
fn take_kept<T: Copy + Send + 'static>(len: usize) -> Option<Vec<T>> {
    if len.saturating_mul(size_of::<T>()) < MIN_BYTES {
        return None;
    }
    let mut pool = POOL.lock().ok()?;
    let best = pool
        .iter()
        .enumerate()
        .filter_map(|(i, (_, b))| {
            let v = b.downcast_ref::<Vec<T>>()?;
            (v.capacity() >= len).then_some((v.capacity(), i))
        })
        .min()?
        .1;
    let (_, boxed) = pool.swap_remove(best);
    boxed.downcast::<Vec<T>>().ok().map(|v| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_taken_back_with_its_length_set() {
        // sizes no other test uses, so tests running in parallel do not meet
        let len = (MIN_BYTES / 4) * 3 + 17;
        let mut a = Recycled::<f32>::for_overwrite(len);
        assert_eq!(a.len(), len);
        assert!(a.iter().all(|&v| v == 0.0), "fresh buffers are zero");
        a[0] = 7.0;
        let ptr = a.as_ptr();
        drop(a);
        let b = Recycled::<f32>::for_overwrite(len - 5);
        assert_eq!(b.len(), len - 5);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is reused");
        assert_eq!(b[0], 7.0, "with its old contents");
        // a longer request than any kept buffer gets a new one
        drop(b);
        let c = Recycled::<f32>::for_overwrite(len * 4 + 1);
        assert_ne!(c.as_ptr(), ptr);
        assert_eq!(c.len(), len * 4 + 1);
    }

    #[test]
    fn small_buffers_and_other_types_are_not_mixed_up() {
        let len = (MIN_BYTES / 8) * 5 + 3;
        let a = Recycled::<f64>::for_overwrite(len);
        let ptr = a.as_ptr() as usize;
        drop(a);
        // same bytes, other type: not this buffer
        let b = Recycled::<u64>::for_overwrite(len);
        assert_ne!(b.as_ptr() as usize, ptr);
        let small = Recycled::<f64>::for_overwrite(3);
        assert_eq!(small.len(), 3);
        assert_eq!(small.into_vec(), vec![0.0; 3]);
    }
}
