//! Light, seeded image augmentation applied while a batch is filled.
//!
//! Only random translation is offered: it is the one augmentation that
//! helps small-digit and clothing images without changing their class, and
//! it costs nothing extra when done during the copy into the batch buffer.

use crate::error::{DataError, Result};
use crate::image::ImageDims;
use crate::rng::SeededRng;

/// Shift each image by a random whole number of pixels in `-max..=max`
/// along each axis, filling the uncovered border with pixel value 0
/// (background), before normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomShift {
    /// Largest shift in pixels along either axis.
    pub max: usize,
    /// Seed of the shift sequence; use a different seed per epoch.
    pub seed: u64,
}

/// Draws per-image shifts from a [`RandomShift`].
#[derive(Clone, Debug)]
pub(crate) struct Shifter {
    max: usize,
    rng: SeededRng,
}

impl Shifter {
    pub(crate) fn new(shift: RandomShift, dims: ImageDims) -> Result<Self> {
        if shift.max >= dims.height.max(dims.width) {
            return Err(DataError::arg(format!(
                "a shift of up to {} pixels would move {}x{} images entirely out of view",
                shift.max, dims.height, dims.width
            )));
        }
        Ok(Shifter {
            max: shift.max,
            rng: SeededRng::new(shift.seed),
        })
    }

    /// The next `(dy, dx)`.
    pub(crate) fn next(&mut self) -> (isize, isize) {
        let span = 2 * self.max + 1;
        let dy = self.rng.below(span) as isize - self.max as isize;
        let dx = self.rng.below(span) as isize - self.max as isize;
        (dy, dx)
    }
}

/// Writes one image into `dst` through per-channel lookup tables, shifted by `(dy, dx)`.
///
/// Output pixel `(y, x)` takes source pixel `(y - dy, x - dx)`, or value 0
/// when that lies outside the image.
pub(crate) fn fill_image(
    dst: &mut [f32],
    src: &[u8],
    dims: ImageDims,
    tables: &[[f32; 256]],
    (dy, dx): (isize, isize),
) {
    let (h, w) = (dims.height, dims.width);
    let plane = h * w;
    for ((out, inp), table) in dst
        .chunks_exact_mut(plane)
        .zip(src.chunks_exact(plane))
        .zip(tables)
    {
        if dy == 0 && dx == 0 {
            for (o, &p) in out.iter_mut().zip(inp) {
                *o = table[usize::from(p)];
            }
            continue;
        }
        out.fill(table[0]);
        // Columns of the output that have a source pixel.
        let x_lo = dx.max(0) as usize;
        let x_hi = (w as isize + dx.min(0)).max(0) as usize;
        if x_lo >= x_hi {
            continue;
        }
        for y in 0..h {
            let sy = y as isize - dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            let src_row = &inp[sy as usize * w..][..w];
            let dst_row = &mut out[y * w..][..w];
            let sx_lo = (x_lo as isize - dx) as usize;
            for (o, &p) in dst_row[x_lo..x_hi]
                .iter_mut()
                .zip(&src_row[sx_lo..sx_lo + (x_hi - x_lo)])
            {
                *o = table[usize::from(p)];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_table() -> Vec<[f32; 256]> {
        vec![std::array::from_fn(|p| p as f32)]
    }

    #[test]
    fn shift_moves_pixels_and_zero_fills() {
        // 3x3 image 1..9.
        let src: Vec<u8> = (1..=9).collect();
        let dims = ImageDims::new(1, 3, 3);
        let mut out = vec![-1.0; 9];
        fill_image(&mut out, &src, dims, &identity_table(), (1, -1));
        // Down by one, left by one.
        assert_eq!(out, vec![0., 0., 0., 2., 3., 0., 5., 6., 0.]);
        fill_image(&mut out, &src, dims, &identity_table(), (0, 0));
        assert_eq!(out, (1..=9).map(|v| v as f32).collect::<Vec<_>>());
        fill_image(&mut out, &src, dims, &identity_table(), (-2, 2));
        assert_eq!(out, vec![0., 0., 7., 0., 0., 0., 0., 0., 0.]);
    }

    #[test]
    fn shifter_is_seeded_and_bounded() {
        let dims = ImageDims::new(1, 28, 28);
        let draw = |seed| {
            let mut s = Shifter::new(RandomShift { max: 2, seed }, dims).unwrap();
            (0..100).map(|_| s.next()).collect::<Vec<_>>()
        };
        let a = draw(5);
        assert_eq!(a, draw(5));
        assert_ne!(a, draw(6));
        assert!(a.iter().all(|&(y, x)| y.abs() <= 2 && x.abs() <= 2));
        assert!(a.iter().any(|&(y, _)| y == -2) && a.iter().any(|&(_, x)| x == 2));
        assert!(Shifter::new(RandomShift { max: 28, seed: 0 }, dims).is_err());
    }
}
