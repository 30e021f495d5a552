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
pub fn map_into<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    src: &[T],
    dst: &mut Vec<U>,
    f: impl Fn(T) -> U + Sync + Send,
) {
    debug_assert!(dst.is_empty());
    if src.len() < PARALLEL_THRESHOLD {
        dst.extend(src.iter().map(|&v| f(v)));
    } else {
        dst.resize(src.len(), U::default());
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (o, &i) in d.iter_mut().zip(s) {
                    *o = f(i);
                }
            });
    }
}

/// `dst[i] = f(a[i], b[i])` for equal-length slices.
pub fn zip_into<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    a: &[T],
    b: &[T],
    dst: &mut [U],
    f: impl Fn(T, T) -> U + Sync + Send,
) {
    debug_assert!(a.len() == b.len() && a.len() == dst.len());
    if a.len() < PARALLEL_THRESHOLD {
        for ((o, &x), &y) in dst.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    } else {
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(d, (x, y))| {
                for ((o, &x), &y) in d.iter_mut().zip(x).zip(y) {
                    *o = f(x, y);
                }
            });
    }
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
    fn large_map_matches_sequential() {
        let src: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let mut dst = Vec::new();
        map_into(&src, &mut dst, |v| v * 2.0);
        assert!(dst.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32));
    }
}
