//! Bilinear resizing of 8-bit images, exactly as Pillow does it — which is
//! what torchvision's `Resize` runs on the PIL images `ImageFolder` loads.
//!
//! Pillow's "bilinear" is a separable convolution with the triangle filter
//! whose support grows with the downscaling factor (so shrinking a 224-pixel
//! photo to 28 averages every pixel, instead of sampling 4 of each 8x8
//! block as a plain bilinear lookup would). Weights are fixed point with 22
//! fractional bits, the horizontal pass runs first and rounds to bytes, then
//! the vertical pass: the same integers in the same order, so results match
//! Pillow's byte for byte (checked against Pillow's output in the fixtures).

/// Fractional bits of Pillow's fixed-point weights (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// One output pixel's taps along an axis: the first input index and the
/// fixed-point weight of each input from there.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// The triangle (bilinear) filter, support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Pillow's `precompute_coeffs` for the triangle filter, then its
/// `normalize_coeffs_8bpc` rounding to fixed point.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support (1) times the scale
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| triangle((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total == 0.0 { 0.0 } else { w / total };
                    let fixed = w * f64::from(1u32 << PRECISION_BITS);
                    if fixed < 0.0 {
                        (fixed - 0.5) as i32
                    } else {
                        (fixed + 0.5) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

/// A fixed-point sum back to a byte, rounding half up and clamping as
/// Pillow's `clip8`.
fn to_byte(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The rounding term every sum starts from.
const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// Resizes each of `channels` planes of `height x width` bytes (planar,
/// `[C, H, W]`) to `out_h x out_w`. An axis whose size does not change is
/// not resampled (as in Pillow).
pub fn resize_planes(
    pixels: &[u8],
    channels: usize,
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<u8> {
    let plane = height * width;
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    let (xs, ys) = (taps(width, out_w), taps(height, out_h));
    for c in 0..channels {
        let src = &pixels[c * plane..(c + 1) * plane];
        // horizontal first, into bytes
        let wide: Vec<u8> = if out_w == width {
            src.to_vec()
        } else {
            let mut tmp = Vec::with_capacity(height * out_w);
            for row in src.chunks_exact(width) {
                for t in &xs {
                    let sum = t.weights.iter().enumerate().fold(HALF, |s, (i, &w)| {
                        s + i64::from(row[t.start + i]) * i64::from(w)
                    });
                    tmp.push(to_byte(sum));
                }
            }
            tmp
        };
        if out_h == height {
            out.extend_from_slice(&wide);
            continue;
        }
        for t in &ys {
            for x in 0..out_w {
                let sum = t.weights.iter().enumerate().fold(HALF, |s, (i, &w)| {
                    s + i64::from(wide[(t.start + i) * out_w + x]) * i64::from(w)
                });
                out.push(to_byte(sum));
            }
        }
    }
    out
}

/// The size an image is resized to before a center crop to `out_h x out_w`:
/// the smallest that covers the target with the aspect ratio kept, the
/// matching side exact and the other rounded down (torchvision's
/// `Resize(size)` then `CenterCrop`).
pub fn cover_size(
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> (usize, usize) {
    // compare out_h / height with out_w / width without rounding
    if (out_h as u128) * (width as u128) >= (out_w as u128) * (height as u128) {
        let w = (width as u128 * out_h as u128 / height.max(1) as u128) as usize;
        (out_h, w.max(out_w))
    } else {
        let h = (height as u128 * out_w as u128 / width.max(1) as u128) as usize;
        (h.max(out_h), out_w)
    }
}

/// The offset of a centered crop of `crop` out of `size`: torchvision's
/// `int(round((size - crop) / 2))`, Python rounding halves to even.
pub fn crop_offset(size: usize, crop: usize) -> usize {
    let d = size.saturating_sub(crop);
    let (half, odd) = (d / 2, d % 2 == 1);
    if odd && half % 2 == 1 { half + 1 } else { half }
}

/// The `out_h x out_w` window at `(top, left)` of each plane.
pub fn crop_planes(
    pixels: &[u8],
    channels: usize,
    (height, width): (usize, usize),
    (top, left): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<u8> {
    let plane = height * width;
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for c in 0..channels {
        for y in top..top + out_h {
            let row = c * plane + y * width;
            out.extend_from_slice(&pixels[row + left..row + left + out_w]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_size_is_the_same_image() {
        let img: Vec<u8> = (0..12).map(|v| v * 20).collect();
        assert_eq!(resize_planes(&img, 1, (3, 4), (3, 4)), img);
    }

    #[test]
    fn a_constant_image_stays_constant_at_any_size() {
        let img = vec![77u8; 3 * 50 * 31];
        for size in [(1, 1), (7, 9), (28, 28), (100, 62)] {
            let out = resize_planes(&img, 3, (50, 31), size);
            assert_eq!(out.len(), 3 * size.0 * size.1);
            assert!(out.iter().all(|&v| v == 77), "{size:?}");
        }
    }

    #[test]
    fn halving_weighs_three_neighbours_as_pillow() {
        // 4 -> 2: support 2 around centres 1 and 3; taps (0.75, 0.75, 0.25)/1.75
        assert_eq!(
            resize_planes(&[0, 100, 200, 40], 1, (1, 4), (1, 2)),
            vec![71, 117]
        );
    }

    #[test]
    fn cover_and_crop_follow_torchvision() {
        assert_eq!(cover_size((100, 50), (28, 28)), (56, 28));
        assert_eq!(cover_size((50, 100), (28, 28)), (28, 56));
        assert_eq!(cover_size((33, 47), (28, 28)), (28, 39));
        assert_eq!(crop_offset(56, 28), 14);
        assert_eq!(crop_offset(29, 28), 0); // round(0.5) = 0
        assert_eq!(crop_offset(31, 28), 2); // round(1.5) = 2
        let img: Vec<u8> = (0..16).collect();
        assert_eq!(
            crop_planes(&img, 1, (4, 4), (1, 1), (2, 2)),
            vec![5, 6, 9, 10]
        );
    }
}
