//! Data parallelism inside kernels, and only where it pays.
//!
//! Splitting a loop over threads costs a few microseconds, so small tensors
//! run on the calling thread. The threshold is in elements.

use rayon::prelude::*;

/// Below this many elements a loop runs sequentially.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Elements per parallel chunk: big enough to amortise scheduling.
const CHUNK: usize = 1 << 13;

/// `dst = src.map(f)`, appending to the empty `dst`.
///
/// Large inputs are mapped in parallel straight into `dst`'s new memory
/// (rayon's indexed collect), with no zero-fill pass first.
pub fn map_into<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    src: &[T],
    dst: &mut Vec<U>,
    f: impl Fn(T) -> U + Sync + Send,
) {
    debug_assert!(dst.is_empty());
    if src.len() < PARALLEL_THRESHOLD {
        dst.extend(src.iter().map(|&v| f(v)));
    } else {
        src.par_iter()
            .with_min_len(CHUNK)
            .map(|&v| f(v))
            .collect_into_vec(dst);
    }
}

/// `len` zeros. A large buffer is filled in parallel: the fill (and the
/// kernel's zeroing of fresh pages on first touch) of a multi-megabyte
/// buffer is split over the threads instead of holding up the calling one
/// while the others wait (the recurrent kernels' saved activations showed
/// as a serial memset in profiles).
pub fn zeros<T: Copy + Send + Sync + Default>(len: usize) -> Vec<T> {
    if len < PARALLEL_THRESHOLD {
        return vec![T::default(); len];
    }
    let mut v = Vec::with_capacity(len);
    (0..len)
        .into_par_iter()
        .with_min_len(CHUNK)
        .map(|_| T::default())
        .collect_into_vec(&mut v);
    v
}

/// A new `Vec` with `f(a[i], b[i])` for equal-length slices (parallel when large, no zero-fill).
pub fn zip_new<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Vec<U> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PARALLEL_THRESHOLD {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.par_iter()
            .zip(b.par_iter())
            .with_min_len(CHUNK)
            .map(|(&x, &y)| f(x, y))
            .collect()
    }
}

/// A new `Vec` of `len` elements built chunk by chunk in parallel: each
/// chunk is first filled row by row (rows of `row` elements, row `r` of chunk
/// `i` set to `row_value(i, r)`), then `work(i, chunk)` runs on the
/// initialised chunk — in the same task, so the chunk is still in cache. This
/// replaces a serial zero-filled allocation followed by a parallel pass (the
/// kernel's page zeroing and a memset showed in profiles). `chunk` must be a
/// multiple of `row`.
pub fn chunks_new<T: Copy + Send + Sync>(
    len: usize,
    chunk: usize,
    row: usize,
    row_value: impl Fn(usize, usize) -> T + Sync + Send,
    work: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    if chunk == 0 {
        return Vec::new();
    }
    let row = row.max(1);
    // SAFETY: `init_rows` writes every element of the chunk before `work` sees it.
    let built = unsafe {
        chunks_written(len, chunk, |i, c| {
            work(i, init_rows(c, row, |r| row_value(i, r)));
            true
        })
    };
    built.unwrap_or_default()
}

/// A new `rows × row.len()` row-major matrix built in blocks of
/// `rows_per_chunk` rows in parallel: each block's rows start as copies of
/// `row`, then `work(first_row, block)` runs on it in the same task, while it
/// is in cache — for products that start from a broadcast bias (a serial
/// fill of every row first showed in the recurrent layers' profiles).
pub fn rows_new<T: Copy + Send + Sync>(
    rows: usize,
    row: &[T],
    rows_per_chunk: usize,
    work: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    let (n, per) = (row.len(), rows_per_chunk.max(1));
    if n == 0 {
        return Vec::new();
    }
    // SAFETY: `init_copies` writes every element of the block before `work` sees it.
    let built = unsafe {
        chunks_written(rows * n, per * n, |i, c| {
            work(i * per, init_copies(c, row));
            true
        })
    };
    built.unwrap_or_default()
}

/// Writes `value(r)` into every element of row `r` (rows of `width`) of `c`,
/// and gives `c` back as initialised.
fn init_rows<T: Copy>(
    c: &mut [std::mem::MaybeUninit<T>],
    width: usize,
    value: impl Fn(usize) -> T,
) -> &mut [T] {
    for (r, cells) in c.chunks_mut(width.max(1)).enumerate() {
        let v = value(r);
        for slot in cells {
            slot.write(v);
        }
    }
    // SAFETY: every element of `c` was written just above.
    unsafe { &mut *(c as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
}

/// Writes `pattern` (not empty) over and over into `c`, the last copy cut
/// short where `c` ends, and gives `c` back as initialised.
fn init_copies<'c, T: Copy>(c: &'c mut [std::mem::MaybeUninit<T>], pattern: &[T]) -> &'c mut [T] {
    assert!(!pattern.is_empty(), "a pattern to copy");
    for cells in c.chunks_mut(pattern.len()) {
        for (slot, &v) in cells.iter_mut().zip(pattern) {
            slot.write(v);
        }
    }
    // SAFETY: every piece of `c` is at most one pattern long, so the zip
    // above wrote each of its elements.
    unsafe { &mut *(c as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
}

/// A new `Vec` of `len` elements written chunk by chunk in parallel by
/// `work(i, chunk)`, which gets each chunk unwritten (never zeroed: for
/// kernels that write every output value anyway) and says whether it wrote
/// all of it. `None` if any chunk was not written. The one place here that
/// hands out unwritten memory; [`chunks_new`] and [`rows_new`] fill it first.
///
/// # Safety
/// `work` returns `true` only after writing every element of its chunk.
pub(crate) unsafe fn chunks_written<T: Copy + Send + Sync>(
    len: usize,
    chunk: usize,
    work: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) -> bool + Sync + Send,
) -> Option<Vec<T>> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    if len == 0 {
        return Some(v);
    }
    let chunk = chunk.max(1);
    let spare = &mut v.spare_capacity_mut()[..len];
    let all = if len >= PARALLEL_THRESHOLD {
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .map(|(i, c)| work(i, c))
            .reduce(|| true, |a, b| a & b)
    } else {
        spare
            .chunks_mut(chunk)
            .enumerate()
            .fold(true, |ok, (i, c)| work(i, c) & ok)
    };
    if !all {
        return None;
    }
    // SAFETY: the chunks cover 0..len and `work` vouched for writing each.
    unsafe { v.set_len(len) };
    Some(v)
}

/// A chunk of a new buffer that [`chunks_filled`] hands out unwritten: values
/// go in only in order, so what has been written is always a prefix, and
/// the chunk counts as written only when the prefix is all of it.
pub struct ChunkWriter<'c, T> {
    slots: &'c mut [std::mem::MaybeUninit<T>],
    written: usize,
    overflowed: bool,
}

impl<T: Copy> ChunkWriter<'_, T> {
    /// How many values the chunk holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many values have been written.
    pub fn len(&self) -> usize {
        self.written
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Appends `v`; a value past the end is dropped and spoils the chunk.
    pub fn push(&mut self, v: T) {
        self.extend_from_slice(std::slice::from_ref(&v));
    }

    /// Appends `values`; those past the end are dropped and spoil the chunk.
    pub fn extend_from_slice(&mut self, values: &[T]) {
        let room = &mut self.slots[self.written..];
        let fits = values.len().min(room.len());
        for (slot, &v) in room.iter_mut().zip(&values[..fits]) {
            slot.write(v);
        }
        self.written += fits;
        self.overflowed |= fits < values.len();
    }

    /// Whether every value was written, and no more.
    fn complete(&self) -> bool {
        self.written == self.slots.len() && !self.overflowed
    }
}

/// A new `Vec` of `len` elements written chunk by chunk in parallel by
/// `work(i, writer)`, which appends each chunk's values in order — straight
/// into the new memory, with no zero fill first (a gather or copy that writes
/// every value anyway). `None` if any chunk was left short or overfilled.
pub fn chunks_filled<T: Copy + Send + Sync>(
    len: usize,
    chunk: usize,
    work: impl Fn(usize, &mut ChunkWriter<'_, T>) + Sync + Send,
) -> Option<Vec<T>> {
    let fill = |i: usize, slots: &mut [std::mem::MaybeUninit<T>]| {
        let mut writer = ChunkWriter {
            slots,
            written: 0,
            overflowed: false,
        };
        work(i, &mut writer);
        writer.complete()
    };
    // SAFETY: `fill` reports a chunk written only when its writer's prefix
    // covers every slot, and the writer writes each slot of that prefix.
    unsafe { chunks_written(len, chunk, fill) }
}

/// The first error any of a set of parallel tasks reported (later ones are
/// dropped): what tasks that cannot return a `Result` through rayon keep.
#[derive(Debug)]
pub struct FirstError<E>(std::sync::Mutex<Option<E>>);

impl<E> Default for FirstError<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> FirstError<E> {
    /// No error yet.
    pub fn new() -> Self {
        FirstError(std::sync::Mutex::new(None))
    }

    /// Keeps `r`'s error if it is the first; whether `r` was `Ok`.
    pub fn keep(&self, r: Result<(), E>) -> bool {
        let Err(e) = r else { return true };
        // a poisoned lock (a panic while it was held) still holds the slot
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
        false
    }

    /// `value`, unless a task failed.
    pub fn or<T>(self, value: T) -> Result<T, E> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// Runs `f` on a thread of rayon's pool (directly, if this already is one)
/// and returns its result — what a whole forward pass or training step
/// should be wrapped in. Called from outside the pool (a program's main
/// thread, a bench), every parallel kernel inside would be injected into the
/// pool while the caller slept until a woken worker finished it: two context
/// switches per kernel, ~100 a step of W5 (`perf stat -e context-switches`,
/// 10 955 → 2 333 per 60 steps). From inside, the calling thread takes its
/// share and the other workers steal the rest.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // `scope` runs its body on a worker (injecting it once if need be);
    // `in_place_scope` would stay on the calling thread
    rayon::scope(|_| f())
}

/// Runs `f` on every element in place.
pub fn for_each_mut<T: Send + Sync>(data: &mut [T], f: impl Fn(&mut T) + Sync + Send) {
    if data.len() < PARALLEL_THRESHOLD {
        data.iter_mut().for_each(f);
    } else {
        data.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(&f));
    }
}

/// Runs `f(index, chunk)` over consecutive chunks of `chunk_len` elements,
/// in parallel when the whole slice is large enough.
pub fn for_each_chunk_mut<T: Send + Sync>(
    data: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if chunk_len == 0 {
        return;
    }
    if data.len() < PARALLEL_THRESHOLD {
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// Splits `0..n` into at most `rayon::current_num_threads()` contiguous ranges
/// (used to give each thread one scratch buffer for a whole run of samples).
pub fn thread_ranges(n: usize) -> Vec<std::ops::Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, n.max(1));
    let base = n / parts;
    let extra = n % parts;
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_filled_needs_every_value_and_no_more() {
        for len in [0, 5, PARALLEL_THRESHOLD + 7] {
            let exact = chunks_filled(len, 4, |i, w| {
                for v in 0..w.capacity() {
                    w.push(i * 4 + v);
                }
            });
            assert_eq!(exact, Some((0..len).collect::<Vec<_>>()));
        }
        let short = chunks_filled(10, 4, |_, w: &mut ChunkWriter<'_, u8>| w.push(1));
        assert_eq!(short, None);
        let over = chunks_filled(10, 4, |_, w: &mut ChunkWriter<'_, u8>| {
            w.extend_from_slice(&[1; 5])
        });
        assert_eq!(over, None);
    }

    #[test]
    fn thread_ranges_cover_everything_once() {
        for n in [0, 1, 2, 3, 7, 64, 65] {
            let ranges = thread_ranges(n);
            let total: usize = ranges.iter().map(|r| r.len()).sum();
            assert_eq!(total, n);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
        }
    }

    #[test]
    fn zeros_are_zeros_at_every_size() {
        for len in [0, 1, PARALLEL_THRESHOLD - 1, PARALLEL_THRESHOLD, 300_001] {
            let v: Vec<f32> = zeros(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn chunks_new_initialises_then_works() {
        for len in [0, 5, 100_000] {
            // rows of 10 within chunks of 1000: row r of chunk i starts as i*100 + r
            let v = chunks_new(
                len,
                1000,
                10,
                |i, r| (i * 100 + r) as f32,
                |_, c| c.iter_mut().for_each(|x| *x *= 2.0),
            );
            assert_eq!(v.len(), len);
            assert!(
                v.iter()
                    .enumerate()
                    .all(|(i, &x)| x == 2.0 * (i / 10) as f32)
            );
        }
        let z = zip_new(&[1.0f32, 2.0], &[3.0, 4.0], |a, b| a * b);
        assert_eq!(z, vec![3.0, 8.0]);
    }

    #[test]
    fn large_map_matches_sequential() {
        let src: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let mut dst = Vec::new();
        map_into(&src, &mut dst, |v| v * 2.0);
        assert!(dst.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32));
    }
}
