//! The batch drivers every convolution path shares: the batch is split into
//! one contiguous run of samples per rayon thread, so each run reuses its
//! own scratch buffers and the hot loops allocate nothing. The im2col and
//! Winograd paths supply what one run does; these functions only split,
//! zero and sum.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::Result;
use crate::float::Float;
use crate::parallel::FirstError;

/// The input and weight gradients of a backward pass, each only if asked for.
pub(super) type Grads<T> = (Option<Vec<T>>, Option<Vec<T>>);

/// Samples per parallel task: one contiguous run per rayon thread.
fn samples_per_task(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// A new per-sample output (`per_sample` values per sample) built by one task
/// per contiguous run of samples: each task's chunk is first set row by row
/// (rows of `row` values; `row_value(r)` for the chunk's row `r`), then
/// `run(samples, chunk)` fills it (the im2col forward, which accumulates onto
/// the bias); the first error a run returns is the result.
pub(crate) fn forward_over_sample_runs<T: Float>(
    batch: usize,
    per_sample: usize,
    row: usize,
    row_value: impl Fn(usize) -> T + Sync + Send,
    run: impl Fn(Range<usize>, &mut [T]) -> Result<()> + Sync + Send,
) -> Result<Vec<T>> {
    let per_task = samples_per_task(batch);
    let failure = FirstError::new();
    let out = crate::parallel::chunks_new(
        batch * per_sample,
        per_task * per_sample,
        row.max(1),
        |_, r| row_value(r),
        |task, chunk| {
            failure.keep(run(
                task_samples(task, per_task, per_sample, chunk.len()),
                chunk,
            ));
        },
    );
    failure.or(out)
}

/// The samples task `task` covers, from its chunk's length.
fn task_samples(task: usize, per_task: usize, per_sample: usize, chunk: usize) -> Range<usize> {
    let first = task * per_task;
    first..first + chunk / per_sample.max(1)
}

/// The backward pass over contiguous runs of samples, one per task:
/// `run(samples, dx)` writes the run's input gradient into `dx` (its zeroed
/// part of dX, if `need_x`) and returns its partial weight gradient; the
/// partials (`partial_len` values each, or none) are summed. Shared by the
/// im2col and Winograd backwards.
pub(crate) fn backward_over_sample_runs<T: Float>(
    batch: usize,
    in_per_sample: usize,
    need_x: bool,
    partial_len: usize,
    run: impl Fn(Range<usize>, Option<&mut [T]>) -> Result<Vec<T>> + Sync + Send,
) -> Result<(Option<Vec<T>>, Vec<T>)> {
    let per_task = samples_per_task(batch);
    let tasks = batch.div_ceil(per_task);
    let samples = |task: usize| task * per_task..((task + 1) * per_task).min(batch);
    let (dx, partials) = if need_x {
        // each task zeroes its own slice of dX (in parallel, cache-warm) and
        // keeps its partial weight gradient
        let slots: Vec<std::sync::Mutex<Option<Result<Vec<T>>>>> =
            (0..tasks).map(|_| std::sync::Mutex::new(None)).collect();
        let dx = crate::parallel::chunks_new(
            batch * in_per_sample,
            per_task * in_per_sample,
            in_per_sample.max(1),
            |_, _| T::zero(),
            |task, chunk| {
                let r = run(samples(task), Some(chunk));
                *slots[task].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            },
        );
        let partials = slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| Ok(Vec::new()))
            })
            .collect::<Result<Vec<_>>>()?;
        (Some(dx), partials)
    } else {
        let partials = (0..tasks)
            .into_par_iter()
            .map(|task| run(samples(task), None))
            .collect::<Result<Vec<_>>>()?;
        (None, partials)
    };
    let mut sum = vec![T::zero(); partial_len];
    for p in &partials {
        for (d, &v) in sum.iter_mut().zip(p) {
            *d += v;
        }
    }
    Ok((dx, sum))
}
