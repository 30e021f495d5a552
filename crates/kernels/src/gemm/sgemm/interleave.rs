//! Interleaving up to eight contiguous streams into one: the transposition
//! inside packing whenever the micro-kernel reads an operand across its unit
//! stride — A's rows (every plain product), or the rows of `W` when a Linear
//! layer's `X·Wᵀ` packs `Wᵀ` as B.
//!
//! ```text
//! stream 0: s0[0] s0[1] … s0[7]            out: s0[0] s1[0] … s7[0] | s0[1] s1[1] … s7[1] | …
//! stream 1: s1[0] s1[1] … s1[7]   8×8 in        (one run of `rows` values per step,
//!   …                             ymm0..7        runs `stride` apart)
//! stream 7: s7[0] s7[1] … s7[7]
//! ```
//!
//! Eight steps at a time the eight streams are loaded as eight `ymm`
//! registers, transposed in registers (unpack, shuffle, 128-bit permute: 24
//! shuffles for 64 values) and stored as eight runs. Element by element the
//! same copy is a load and a store per value through a strided write, and it
//! cost as much as the multiply itself on the head's `X·Wᵀ` (64×9216 by
//! 9216×128 under `perf`). Needs AVX; elsewhere [`interleave`] returns false
//! and the caller copies element by element.

/// Writes `out[p·stride + r] = src[r·ld + p]` for `r < rows`, `p < steps`.
/// Returns false, writing nothing, when the CPU lacks AVX or `rows` is not
/// 1..=8, or the output runs would overlap (`stride < rows`).
///
/// # Safety
/// For `r < rows`, `p < steps`, `src + r·ld + p` must be readable and
/// `out + p·stride + r` writable, the two not overlapping.
pub(crate) unsafe fn interleave(
    rows: usize,
    steps: usize,
    src: *const f32,
    ld: usize,
    out: *mut f32,
    stride: usize,
) -> bool {
    if !(1..=8).contains(&rows) || stride < rows || !crate::simd::avx2_fma_available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX is present (AVX2 implies it); the rest is the caller's contract.
        unsafe { imp::interleave(rows, steps, src, ld, out, stride) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (steps, src, ld, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    /// The 8×8 transpose of `r`: lane `j` of output `i` is lane `i` of input `j`.
    #[target_feature(enable = "avx")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // pairs of rows interleaved, then quadruples, then the 128-bit halves swapped
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// The mask selecting the first `rows` of eight lanes, for `maskstore`.
    #[target_feature(enable = "avx")]
    fn first_lanes(rows: usize) -> __m256i {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32_avx(_mm256_set1_epi32(rows as i32), lane)
    }

    /// `a > b` lane-wise on 32-bit integers with AVX alone (no AVX2 integer ops):
    /// through the two 128-bit halves.
    #[target_feature(enable = "avx")]
    fn _mm256_cmpgt_epi32_avx(a: __m256i, b: __m256i) -> __m256i {
        let lo = _mm_cmpgt_epi32(_mm256_castsi256_si128(a), _mm256_castsi256_si128(b));
        let hi = _mm_cmpgt_epi32(
            _mm256_extractf128_si256::<1>(a),
            _mm256_extractf128_si256::<1>(b),
        );
        _mm256_set_m128i(hi, lo)
    }

    /// # Safety
    /// As [`super::interleave`], with AVX present and `1 ≤ rows ≤ 8 ≤ …`, `stride ≥ rows`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn interleave(
        rows: usize,
        steps: usize,
        src: *const f32,
        ld: usize,
        out: *mut f32,
        stride: usize,
    ) {
        // streams past `rows` read as zeros and are never stored
        let stream: [*const f32; 8] =
            std::array::from_fn(|r| src.wrapping_add(r.min(rows - 1) * ld));
        let mask = first_lanes(rows);
        let full = steps / 8;
        for block in 0..full {
            let p0 = block * 8;
            // SAFETY: steps p0..p0 + 8 < steps of every stream r < rows are readable
            // (the others repeat stream rows − 1); the lanes stored are r < rows of
            // runs p0..p0 + 8, inside the output.
            unsafe {
                let v: [__m256; 8] = std::array::from_fn(|r| _mm256_loadu_ps(stream[r].add(p0)));
                let t = transpose8(v);
                for (q, run) in t.iter().enumerate() {
                    let dst = out.add((p0 + q) * stride);
                    if rows == 8 {
                        _mm256_storeu_ps(dst, *run);
                    } else {
                        _mm256_maskstore_ps(dst, mask, *run);
                    }
                }
            }
        }
        for p in full * 8..steps {
            for (r, s) in stream.iter().enumerate().take(rows) {
                // SAFETY: step p < steps of stream r < rows; run p, lane r of the output.
                unsafe { *out.add(p * stride + r) = *s.add(p) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn interleave_matches_the_element_by_element_copy() {
        let ld = 45;
        let src: Vec<f32> = (0..8 * ld).map(|v| v as f32).collect();
        for rows in 1..=8 {
            for steps in [0, 1, 7, 8, 9, 16, 37] {
                for stride in [rows, 8, 12, 32] {
                    if stride < rows {
                        continue;
                    }
                    let mut out = vec![-1.0f32; steps * stride + 8];
                    // SAFETY: every stream has ld ≥ steps values; out has steps·stride.
                    let done = unsafe {
                        interleave(rows, steps, src.as_ptr(), ld, out.as_mut_ptr(), stride)
                    };
                    if !done {
                        assert!(!crate::simd::avx2_fma_available());
                        return;
                    }
                    for p in 0..steps {
                        for j in 0..stride {
                            let want = if j < rows { src[j * ld + p] } else { -1.0 };
                            assert_eq!(
                                out[p * stride + j],
                                want,
                                "rows {rows} steps {steps} p {p} j {j}"
                            );
                        }
                    }
                    assert!(out[steps * stride..].iter().all(|&v| v == -1.0));
                }
            }
        }
    }
}
