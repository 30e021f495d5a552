//! Text with the embedded font, laid out the same way for both backends.
//!
//! plotters 0.3.7's `ab_glyph` text path measures strings well enough but,
//! when it rasterises them, places each glyph's outline at the pen position
//! without its left side bearing, so letters sit unevenly ("un frozen").
//! [`GlyphText`] wraps a backend, delegates every shape to it, and handles
//! text itself with `ab_glyph`: it measures strings (both backends, so the
//! SVG and the PNG get the same layout) and, on a bitmap, rasterises them
//! with proper glyph positions and kerning. The SVG backend keeps writing
//! native `<text>` elements.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, OutlinedGlyph, PxScale, ScaleFont, point};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// The bytes of the embedded font (DejaVu Sans 2.37; licence in
/// `fonts/LICENSE-DejaVu.txt`).
pub(crate) static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The embedded font, parsed once; `None` if it does not parse (a bug).
pub(crate) fn embedded_font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// A string laid out on one line: glyph outlines positioned in a box whose
/// top-left corner is the origin and whose baseline is at the font's ascent.
struct Laid {
    glyphs: Vec<OutlinedGlyph>,
    width: f32,
    height: f32,
}

/// The pixel scale for plotters' font `size`. The SVG backend writes
/// `font-size = size / 1.24` (the em size); the bitmap uses the same em.
fn scale_for(font: &FontRef<'static>, size: f64) -> PxScale {
    let em = (size / 1.24) as f32;
    let units_per_em = font.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * font.height_unscaled() / units_per_em)
}

fn lay_out(font: &FontRef<'static>, size: f64, text: &str) -> Laid {
    let scale = scale_for(font, size);
    let scaled = font.as_scaled(scale);
    let ascent = scaled.ascent();
    let mut caret = 0.0f32;
    let mut previous = None;
    let mut glyphs = Vec::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(caret, ascent));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outlined) = font.outline_glyph(glyph) {
            glyphs.push(outlined);
        }
    }
    Laid {
        glyphs,
        width: caret.max(0.0),
        height: scaled.height(),
    }
}

/// A backend wrapper that measures text with the embedded font and, when
/// `rasterize` is set, draws it too (for pixel backends).
pub(crate) struct GlyphText<B> {
    inner: B,
    font: &'static FontRef<'static>,
    rasterize: bool,
}

impl<B: DrawingBackend> GlyphText<B> {
    /// For a pixel backend: text is rasterised here.
    pub(crate) fn raster(inner: B, font: &'static FontRef<'static>) -> Self {
        GlyphText {
            inner,
            font,
            rasterize: true,
        }
    }

    /// For a vector backend: text is measured here, drawn by `inner`.
    pub(crate) fn vector(inner: B, font: &'static FontRef<'static>) -> Self {
        GlyphText {
            inner,
            font,
            rasterize: false,
        }
    }
}

type Drawn<B> = Result<(), DrawingErrorKind<<B as DrawingBackend>::ErrorType>>;

impl<B: DrawingBackend> DrawingBackend for GlyphText<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Drawn<B> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Drawn<B> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn<B> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Drawn<B> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Drawn<B> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Drawn<B> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Drawn<B> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Drawn<B> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Drawn<B> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let laid = lay_out(self.font, style.size(), text);
        Ok((laid.width.ceil() as u32, laid.height.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Drawn<B> {
        if !self.rasterize {
            return self.inner.draw_text(text, style, pos);
        }
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let laid = lay_out(self.font, style.size(), text);
        let (w, h) = (laid.width.round() as i32, laid.height.round() as i32);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let transform = style.transform();
        let (width, height) = self.inner.get_size();
        let mut coverage = Vec::new();
        for glyph in &laid.glyphs {
            let bounds = glyph.px_bounds();
            let (x0, y0) = (bounds.min.x as i32, bounds.min.y as i32);
            coverage.clear();
            glyph.draw(|x, y, c| coverage.push((x as i32, y as i32, c)));
            for &(x, y, c) in &coverage {
                if c <= 0.0 {
                    continue;
                }
                let (tx, ty) = transform.transform(x0 + x + dx, y0 + y + dy);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if px < 0 || py < 0 || px >= width as i32 || py >= height as i32 {
                    continue;
                }
                let ink = BackendColor {
                    alpha: color.alpha * f64::from(c.min(1.0)),
                    rgb: color.rgb,
                };
                self.inner.draw_pixel((px, py), ink)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses_and_measures() {
        let font = embedded_font().expect("the embedded font parses");
        let short = lay_out(font, 20.0, "ab");
        let long = lay_out(font, 20.0, "abab");
        assert!(short.width > 0.0 && long.width > 1.9 * short.width);
        assert_eq!(short.glyphs.len(), 2);
        // A space has an advance but no outline.
        assert_eq!(lay_out(font, 20.0, "a b").glyphs.len(), 2);
        assert_eq!(lay_out(font, 20.0, "").width, 0.0);
    }
}
