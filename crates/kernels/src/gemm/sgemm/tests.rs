//! Every micro-kernel against a plain triple loop, on shapes with edges in
//! every dimension, transposed and strided operands, and each alpha/beta case.

use super::{available_kernels, sgemm, sgemm_with};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    rsc: usize,
    csc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a[i * rsa + p * csa] as f64 * b[p * rsb + j * csb] as f64;
            }
            let old = &mut c[i * rsc + j * csc];
            *old = if beta == 0.0 {
                alpha * s as f32
            } else {
                alpha * s as f32 + beta * *old
            };
        }
    }
}

#[test]
fn every_kernel_matches_the_triple_loop() {
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (8, 256, 32),
        (13, 300, 45),
        (97, 513, 70),
        (6, 17, 4100),
        (40, 1, 33),
    ];
    for kernel in available_kernels() {
        for &(m, k, n) in &shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
                    let a = data(m * k, 1);
                    let b = data(k * n, 2);
                    let sa = if ta { (1, m) } else { (k, 1) };
                    let sb = if tb { (1, k) } else { (n, 1) };
                    // C with a row stride wider than n, and NaN where beta = 0 must ignore it
                    let rsc = n + 3;
                    let init: Vec<f32> = data(m * rsc, 3)
                        .into_iter()
                        .map(|v| if beta == 0.0 { f32::NAN } else { v })
                        .collect();
                    let (mut want, mut got) = (init.clone(), init);
                    reference(m, k, n, alpha, &a, sa, &b, sb, beta, &mut want, rsc, 1);
                    // SAFETY: the buffers hold every element the strides address.
                    unsafe {
                        sgemm_with(
                            kernel,
                            m,
                            k,
                            n,
                            alpha,
                            a.as_ptr(),
                            sa.0 as isize,
                            sa.1 as isize,
                            b.as_ptr(),
                            sb.0 as isize,
                            sb.1 as isize,
                            beta,
                            got.as_mut_ptr(),
                            rsc as isize,
                            1,
                        )
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let (w, g) = (want[i * rsc + j], got[i * rsc + j]);
                            assert!(
                                (w - g).abs() <= 1e-4 * (1.0 + k as f32).sqrt() * (1.0 + w.abs()),
                                "{} {m}x{k}x{n} ta={ta} tb={tb} a={alpha} b={beta} at ({i},{j}): {g} vs {w}",
                                kernel.name
                            );
                        }
                        for j in n..rsc {
                            assert_eq!(
                                got[i * rsc + j].to_bits(),
                                want[i * rsc + j].to_bits(),
                                "{}: wrote outside C",
                                kernel.name
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_column_strided_output_and_the_degenerate_cases() {
    for kernel in available_kernels() {
        let (m, k, n) = (9, 20, 35);
        let a = data(m * k, 4);
        let b = data(k * n, 5);
        // C transposed in memory: element (i, j) at j·m + i
        let mut want = vec![0.0f32; m * n];
        let mut got = vec![f32::NAN; m * n];
        reference(m, k, n, 1.0, &a, (k, 1), &b, (n, 1), 0.0, &mut want, 1, m);
        // SAFETY: every addressed element is inside the buffers.
        unsafe {
            sgemm_with(
                kernel,
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                got.as_mut_ptr(),
                1,
                m as isize,
            )
        };
        assert!(
            want.iter().zip(&got).all(|(w, g)| (w - g).abs() < 1e-4),
            "{}",
            kernel.name
        );
        // k = 0: C = beta·C; beta = 0 clears NaN
        let mut c = vec![f32::NAN, 2.0];
        // SAFETY: a 1×2 C, nothing read from A or B.
        unsafe {
            sgemm_with(
                kernel,
                1,
                0,
                2,
                1.0,
                a.as_ptr(),
                1,
                1,
                b.as_ptr(),
                1,
                1,
                0.0,
                c.as_mut_ptr(),
                2,
                1,
            )
        };
        assert_eq!(c, [0.0, 0.0]);
        let mut c = vec![1.0, 2.0];
        // SAFETY: as above.
        unsafe {
            sgemm_with(
                kernel,
                1,
                0,
                2,
                1.0,
                a.as_ptr(),
                1,
                1,
                b.as_ptr(),
                1,
                1,
                3.0,
                c.as_mut_ptr(),
                2,
                1,
            )
        };
        assert_eq!(c, [3.0, 6.0]);
    }
}

#[test]
fn a_times_b_transposed_matches_on_the_dot_product_and_the_packed_path() {
    // k of 256 and 300 runs as dot products, 1030 and 2100 packed (through
    // the interleaving transposes); m and n with edges
    for &(m, k, n) in &[(5, 256, 7), (64, 300, 33), (4, 1030, 4), (9, 2100, 13)] {
        for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
            let a = data(m * k, 7);
            // Bᵀ row-major [n, k]: b[p, j] at j·k + p
            let bt = data(n * k, 8);
            let rsc = n + 2;
            let init: Vec<f32> = data(m * rsc, 9)
                .into_iter()
                .map(|v| if beta == 0.0 { f32::NAN } else { v })
                .collect();
            let (mut want, mut got) = (init.clone(), init);
            reference(
                m,
                k,
                n,
                alpha,
                &a,
                (k, 1),
                &bt,
                (1, k),
                beta,
                &mut want,
                rsc,
                1,
            );
            // SAFETY: every addressed element is inside the buffers.
            unsafe {
                sgemm(
                    m,
                    k,
                    n,
                    alpha,
                    a.as_ptr(),
                    k as isize,
                    1,
                    bt.as_ptr(),
                    1,
                    k as isize,
                    beta,
                    got.as_mut_ptr(),
                    rsc as isize,
                    1,
                )
            };
            for i in 0..m {
                for j in 0..rsc {
                    let (w, g) = (want[i * rsc + j], got[i * rsc + j]);
                    if j < n {
                        assert!(
                            (w - g).abs() <= 1e-4 * (k as f32).sqrt() * (1.0 + w.abs()),
                            "{m}x{k}x{n} at ({i},{j}): {g} vs {w}"
                        );
                    } else {
                        assert_eq!(w.to_bits(), g.to_bits(), "wrote outside C");
                    }
                }
            }
        }
    }
}
