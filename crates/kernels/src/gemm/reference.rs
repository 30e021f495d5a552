//! Raw `matrixmultiply::sgemm`, the reference our GEMM is timed against,
//! behind one checked, safe call — for `benches/kernels.rs` and the GEMM
//! examples (`gemm_interleaved`, `gemm_shapes`), so they need no `unsafe`.

/// `c = a · b` for an `m x k` `a` and a `k x n` `b` at the given (row,
/// column) strides, into a row-major `m x n` `c`.
///
/// # Panics
/// If a stride addresses an element outside its buffer.
#[allow(clippy::too_many_arguments)]
pub fn raw_sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
) {
    let fits = |len: usize, rows: usize, cols: usize, rs: usize, cs: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    assert!(
        fits(a.len(), m, k, rsa, csa) && fits(b.len(), k, n, rsb, csb) && c.len() >= m * n,
        "raw_sgemm: a view does not fit its buffer"
    );
    // SAFETY: every element the strides address was checked to lie inside
    // its buffer, and `c` (row-major m x n) does not alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}
