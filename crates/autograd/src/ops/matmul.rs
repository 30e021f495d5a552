//! Matrix products: `matmul` (2-D, batched, with a broadcast operand) and the
//! fused `linear` layer op. Transposes in the gradient rules are strided
//! views handed to the GEMM, never copies.

use finetune_tensor::gemm::{MatMut, MatRef, gemm, gemm_new, gemm_serial};
use finetune_tensor::{Float, Tensor, TensorError};
use rayon::prelude::*;

use crate::error::Result;
use crate::tape::{Tape, Var};

/// One operand of a batched product: a stack of row-major matrices, possibly
/// the same matrix for every batch entry (`batch_stride == 0`).
#[derive(Clone, Copy)]
struct Stack<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    batch_stride: usize,
    transposed: bool,
}

impl<'a, T: Float> Stack<'a, T> {
    fn mat(&self, b: usize) -> finetune_tensor::Result<MatRef<'a, T>> {
        let m = MatRef::new(&self.data[b * self.batch_stride..], self.rows, self.cols)?;
        Ok(if self.transposed { m.t() } else { m })
    }
    fn t(self) -> Self {
        Stack {
            transposed: !self.transposed,
            ..self
        }
    }
    fn out_rows(&self) -> usize {
        if self.transposed {
            self.cols
        } else {
            self.rows
        }
    }
}

/// A stack of `rows x cols` matrices stored in `t` (one shared matrix unless `batched`).
fn stack<T: Float>(t: &Tensor<T>, rows: usize, cols: usize, batched: bool) -> Stack<'_, T> {
    Stack {
        data: t.as_slice(),
        rows,
        cols,
        batch_stride: if batched { rows * cols } else { 0 },
        transposed: false,
    }
}

/// `out[b] = A[b] * B[b]` (or `out += Σ_b A[b] * B[b]` when `sum_batches`).
fn batched_product<T: Float>(
    batch: usize,
    a: Stack<'_, T>,
    b: Stack<'_, T>,
    out: &mut [T],
    sum_batches: bool,
) -> finetune_tensor::Result<()> {
    let m = a.out_rows();
    let n = if b.transposed { b.rows } else { b.cols };
    let k = if a.transposed { a.rows } else { a.cols };
    if sum_batches {
        for i in 0..batch {
            let beta = if i == 0 { T::zero() } else { T::one() };
            gemm(
                T::one(),
                a.mat(i)?,
                b.mat(i)?,
                beta,
                MatMut::new(out, m, n)?,
            )?;
        }
        return Ok(());
    }
    if batch > 1 && m * n * k < (1 << 18) {
        out.par_chunks_mut((m * n).max(1))
            .enumerate()
            .try_for_each(|(i, o)| {
                gemm_serial(
                    T::one(),
                    a.mat(i)?,
                    b.mat(i)?,
                    T::zero(),
                    MatMut::new(o, m, n)?,
                )
            })
    } else {
        for (i, o) in out.chunks_mut((m * n).max(1)).enumerate().take(batch) {
            gemm(
                T::one(),
                a.mat(i)?,
                b.mat(i)?,
                T::zero(),
                MatMut::new(o, m, n)?,
            )?;
        }
        Ok(())
    }
}

/// Shapes of a matmul after validation.
struct MatmulShape {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_batched: bool,
    b_batched: bool,
    out: Vec<usize>,
}

fn matmul_shape(a: &[usize], b: &[usize]) -> finetune_tensor::Result<MatmulShape> {
    let bad = |why: &str| TensorError::mismatch_because("matmul", a, b, why);
    if a.len() < 2 || b.len() < 2 {
        return Err(bad("both operands need at least two dimensions"));
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(bad(&format!("inner dimensions {k} and {k2} differ")));
    }
    let (ab, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
    let (batch_dims, a_batched, b_batched) = match (ab.is_empty(), bb.is_empty()) {
        (_, true) => (ab.to_vec(), !ab.is_empty(), false),
        (true, false) => (bb.to_vec(), false, true),
        (false, false) if ab == bb => (ab.to_vec(), true, true),
        _ => return Err(bad("batch dimensions differ")),
    };
    let mut out = batch_dims.clone();
    out.extend([m, n]);
    let batch: usize = batch_dims.iter().product();
    if a_batched && !b_batched {
        // (B, M, K) x (K, N) is one (B*M, K) x (K, N) product: one big GEMM.
        return Ok(MatmulShape {
            batch: 1,
            m: batch * m,
            k,
            n,
            a_batched: false,
            b_batched: false,
            out,
        });
    }
    Ok(MatmulShape {
        batch,
        m,
        k,
        n,
        a_batched,
        b_batched,
        out,
    })
}

impl<T: Float> Tape<T> {
    /// Matrix product over the last two axes: `(.., M, K) x (.., K, N)`.
    ///
    /// Either operand may be a plain 2-D matrix shared by every batch entry.
    /// Gradients: dA = dC·Bᵀ, dB = Aᵀ·dC (summed over the batch for a shared operand).
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (av, bv) = (self.value(a)?, self.value(b)?);
        let s = matmul_shape(av.shape(), bv.shape())?;
        let mut out = vec![T::zero(); s.out.iter().product()];
        batched_product(
            s.batch,
            stack(av, s.m, s.k, s.a_batched),
            stack(bv, s.k, s.n, s.b_batched),
            &mut out,
            false,
        )?;
        let y = Tensor::from_parts(&s.out, out)?;
        Ok(self.record("matmul", &[a, b], y, move |ctx| {
            let (av, bv, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad_output);
            let sa = stack(av, s.m, s.k, s.a_batched);
            let sb = stack(bv, s.k, s.n, s.b_batched);
            let sg = stack(g, s.m, s.n, true);
            let mut grads = vec![None, None];
            if ctx.needs_grad[0] {
                let mut da = vec![T::zero(); av.len()];
                batched_product(s.batch, sg, sb.t(), &mut da, !s.a_batched)?;
                grads[0] = Some(Tensor::from_parts(av.shape(), da)?);
            }
            if ctx.needs_grad[1] {
                let mut db = vec![T::zero(); bv.len()];
                batched_product(s.batch, sa.t(), sg, &mut db, !s.b_batched)?;
                grads[1] = Some(Tensor::from_parts(bv.shape(), db)?);
            }
            Ok(grads)
        }))
    }

    /// A fully connected layer, `y = x·Wᵀ + b`, with PyTorch's weight layout
    /// `(out_features, in_features)`. `x` may have any leading dimensions.
    ///
    /// Gradients: dx = dy·W, dW = dyᵀ·x, db = Σ_rows dy.
    pub fn linear(&mut self, x: Var, weight: Var, bias: Option<Var>) -> Result<Var> {
        let (xv, wv) = (self.value(x)?, self.value(weight)?);
        let (rows, fan_in, fan_out) = linear_dims(xv.shape(), wv.shape())?;
        let bias_row = match bias {
            Some(b) => {
                let bv = self.value(b)?;
                if bv.shape() != [fan_out] {
                    return Err(TensorError::mismatch_because(
                        "linear",
                        wv.shape(),
                        bv.shape(),
                        "bias must be (out_features)",
                    )
                    .into());
                }
                Some(bv.as_slice())
            }
            None => None,
        };
        let out = gemm_new(
            MatRef::new(xv.as_slice(), rows, fan_in)?,
            MatRef::new(wv.as_slice(), fan_out, fan_in)?.t(),
            bias_row,
        )?;
        let mut shape = xv.shape().to_vec();
        *shape.last_mut().expect("linear_dims checked rank >= 1") = fan_out;
        let y = Tensor::from_parts(&shape, out)?;
        let inputs: Vec<Var> = std::iter::once(x)
            .chain(std::iter::once(weight))
            .chain(bias)
            .collect();
        Ok(self.record("linear", &inputs, y, move |ctx| {
            let (xv, wv, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad_output);
            let gm = MatRef::new(g.as_slice(), rows, fan_out)?;
            let mut grads = vec![None; ctx.inputs.len()];
            if ctx.needs_grad[0] {
                let dx = gemm_new(gm, MatRef::new(wv.as_slice(), fan_out, fan_in)?, None)?;
                grads[0] = Some(Tensor::from_parts(xv.shape(), dx)?);
            }
            if ctx.needs_grad[1] {
                let dw = gemm_new(gm.t(), MatRef::new(xv.as_slice(), rows, fan_in)?, None)?;
                grads[1] = Some(Tensor::from_parts(wv.shape(), dw)?);
            }
            if ctx.inputs.len() == 3 && ctx.needs_grad[2] {
                grads[2] = Some(column_sums(g.as_slice(), fan_out));
            }
            Ok(grads)
        }))
    }
}

/// `(rows, in, out)` of a linear layer, validated.
fn linear_dims(x: &[usize], w: &[usize]) -> finetune_tensor::Result<(usize, usize, usize)> {
    if w.len() != 2 {
        return Err(TensorError::invalid_shape(
            "linear",
            w,
            "weight must be (out_features, in_features)",
        ));
    }
    let Some(&fan_in) = x.last() else {
        return Err(TensorError::invalid_shape(
            "linear",
            x,
            "input needs at least one dimension",
        ));
    };
    if fan_in != w[1] {
        return Err(TensorError::mismatch_because(
            "linear",
            x,
            w,
            format!("input has {fan_in} features, weight expects {}", w[1]),
        ));
    }
    Ok((x.iter().product::<usize>() / fan_in.max(1), fan_in, w[0]))
}

/// Sums the rows of a row-major `(rows, cols)` matrix.
pub(crate) fn column_sums<T: Float>(data: &[T], cols: usize) -> Tensor<T> {
    let mut sums = vec![T::zero(); cols];
    for row in data.chunks(cols.max(1)) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s += v;
        }
    }
    Tensor::from_parts(&[cols], sums).expect("invariant: cols elements")
}
