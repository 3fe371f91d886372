//! Anti-aliased filling of simple shapes (ellipses, tapered capsules, convex polygons, rounded
//! rectangles, rings) into an `RgbImage`, plus the hash noise the textures use.
//!
//! Every shape has a signed distance (pixels, negative inside); a pixel's coverage is
//! `clamp(0.5 - d, 0, 1)`, which anti-aliases edges for the price of one distance per pixel.

use image::RgbImage;

/// A colour as `[r, g, b]` floats on the `0..=255` scale.
pub(crate) type Rgb = [f32; 3];

/// A shape in pixel coordinates (x right, y down; pixel `(i, j)` has its centre at `(i + 0.5, j + 0.5)`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Axis-aligned ellipse.
    Ellipse { c: [f32; 2], r: [f32; 2] },
    /// Segment `a`-`b` thickened by a radius going linearly from `ra` to `rb` (a limb).
    Capsule {
        a: [f32; 2],
        b: [f32; 2],
        ra: f32,
        rb: f32,
    },
    /// Convex polygon (either winding).
    Polygon(Vec<[f32; 2]>),
    /// Axis-aligned rectangle of half-size `half` with corners rounded by `r`.
    RoundRect { c: [f32; 2], half: [f32; 2], r: f32 },
    /// Circle outline of radius `r` and half-thickness `half_width`.
    Ring {
        c: [f32; 2],
        r: f32,
        half_width: f32,
    },
}

/// Where a pixel lies in a shape: signed distance `d` (pixels) and `u` in `[0, 1]`, how far from
/// the shape's centre line towards its edge (for volume shading; 0 for polygons).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub d: f32,
    pub u: f32,
}

fn len(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

impl Shape {
    /// Signed distance and centre-line position at point `(x, y)`.
    pub fn sample(&self, x: f32, y: f32) -> Sample {
        match self {
            Shape::Ellipse { c, r } => {
                let (px, py) = (x - c[0], y - c[1]);
                let (rx, ry) = (r[0].max(1e-3), r[1].max(1e-3));
                let k0 = len(px / rx, py / ry);
                let k1 = len(px / (rx * rx), py / (ry * ry));
                let d = if k1 < 1e-6 {
                    -rx.min(ry)
                } else {
                    k0 * (k0 - 1.0) / k1
                };
                Sample { d, u: k0.min(1.0) }
            }
            Shape::Capsule { a, b, ra, rb } => {
                let (bax, bay) = (b[0] - a[0], b[1] - a[1]);
                let (pax, pay) = (x - a[0], y - a[1]);
                let l2 = (bax * bax + bay * bay).max(1e-6);
                let t = ((pax * bax + pay * bay) / l2).clamp(0.0, 1.0);
                let r = (ra + (rb - ra) * t).max(1e-3);
                let dist = len(pax - bax * t, pay - bay * t);
                Sample {
                    d: dist - r,
                    u: (dist / r).min(1.0),
                }
            }
            Shape::Polygon(points) => {
                let n = points.len();
                let area: f32 = (0..n)
                    .map(|i| {
                        let (p, q) = (points[i], points[(i + 1) % n]);
                        p[0] * q[1] - q[0] * p[1]
                    })
                    .sum();
                let sign = if area >= 0.0 { 1.0 } else { -1.0 };
                let d = (0..n)
                    .map(|i| {
                        let (p, q) = (points[i], points[(i + 1) % n]);
                        let (ex, ey) = (q[0] - p[0], q[1] - p[1]);
                        let l = len(ex, ey).max(1e-6);
                        // Outward normal of a counter-clockwise (in y-down: clockwise) edge.
                        sign * ((x - p[0]) * ey - (y - p[1]) * ex) / l
                    })
                    .fold(f32::NEG_INFINITY, f32::max);
                Sample { d, u: 0.0 }
            }
            Shape::RoundRect { c, half, r } => {
                let r = r.min(half[0]).min(half[1]).max(0.0);
                let qx = (x - c[0]).abs() - half[0] + r;
                let qy = (y - c[1]).abs() - half[1] + r;
                let d = len(qx.max(0.0), qy.max(0.0)) + qx.max(qy).min(0.0) - r;
                Sample {
                    d,
                    u: ((x - c[0]).abs() / half[0].max(1e-3)).min(1.0),
                }
            }
            Shape::Ring { c, r, half_width } => Sample {
                d: (len(x - c[0], y - c[1]) - r).abs() - half_width,
                u: 0.0,
            },
        }
    }

    /// Pixel bounds `(x0, y0, x1, y1)` (inclusive-exclusive, unclipped) that hold every covered pixel.
    fn bounds(&self) -> (f32, f32, f32, f32) {
        let (x0, y0, x1, y1) = match self {
            Shape::Ellipse { c, r } => (c[0] - r[0], c[1] - r[1], c[0] + r[0], c[1] + r[1]),
            Shape::Capsule { a, b, ra, rb } => {
                let m = ra.max(*rb);
                (
                    a[0].min(b[0]) - m,
                    a[1].min(b[1]) - m,
                    a[0].max(b[0]) + m,
                    a[1].max(b[1]) + m,
                )
            }
            Shape::Polygon(points) => points.iter().fold(
                (
                    f32::INFINITY,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                ),
                |(x0, y0, x1, y1), p| (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])),
            ),
            Shape::RoundRect { c, half, .. } => (
                c[0] - half[0],
                c[1] - half[1],
                c[0] + half[0],
                c[1] + half[1],
            ),
            Shape::Ring { c, r, half_width } => {
                let m = r + half_width;
                (c[0] - m, c[1] - m, c[0] + m, c[1] + m)
            }
        };
        (x0 - 1.0, y0 - 1.0, x1 + 1.0, y1 + 1.0)
    }
}

/// Blends `colour` over one pixel with weight `alpha` in `[0, 1]`.
pub(crate) fn blend(canvas: &mut RgbImage, x: u32, y: u32, colour: Rgb, alpha: f32) {
    let px = canvas.get_pixel_mut(x, y);
    for (channel, value) in px.0.iter_mut().zip(colour) {
        let mixed = f32::from(*channel) * (1.0 - alpha) + value * alpha;
        *channel = mixed.round().clamp(0.0, 255.0) as u8;
    }
}

/// Fills `shape` with `opacity`, colouring each covered pixel by `paint(x, y, u)` (pixel centre,
/// centre-line position from [`Shape::sample`]).
pub(crate) fn fill(
    canvas: &mut RgbImage,
    shape: &Shape,
    opacity: f32,
    paint: impl Fn(f32, f32, f32) -> Rgb,
) {
    let (w, h) = canvas.dimensions();
    let (x0, y0, x1, y1) = shape.bounds();
    if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
        return;
    }
    let clip = |v: f32, hi: u32| v.clamp(0.0, hi as f32) as u32;
    let (x0, x1) = (clip(x0.floor(), w), clip(x1.ceil(), w));
    let (y0, y1) = (clip(y0.floor(), h), clip(y1.ceil(), h));
    for y in y0..y1 {
        let cy = y as f32 + 0.5;
        for x in x0..x1 {
            let cx = x as f32 + 0.5;
            let s = shape.sample(cx, cy);
            let alpha = (0.5 - s.d).clamp(0.0, 1.0) * opacity;
            if alpha > 0.0 {
                blend(canvas, x, y, paint(cx, cy, s.u), alpha);
            }
        }
    }
}

/// Fills `shape` with one flat colour.
pub(crate) fn fill_flat(canvas: &mut RgbImage, shape: &Shape, colour: Rgb, opacity: f32) {
    fill(canvas, shape, opacity, |_, _, _| colour);
}

/// A hash of a lattice point and a seed to `[0, 1)` (deterministic on every platform).
pub(crate) fn hash2(x: i32, y: i32, seed: u32) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x8da6_b343)
        ^ (y as u32).wrapping_mul(0xd816_3841)
        ^ seed.wrapping_mul(0xcb1a_b31f);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^= h >> 15;
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// Smooth value noise in `[0, 1)` with lattice spacing `cell` pixels.
pub(crate) fn value_noise(x: f32, y: f32, cell: f32, seed: u32) -> f32 {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - ix, gy - iy);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (ix as i32, iy as i32);
    let a = hash2(ix, iy, seed);
    let b = hash2(ix + 1, iy, seed);
    let c = hash2(ix, iy + 1, seed);
    let d = hash2(ix + 1, iy + 1, seed);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Multiplies a colour by `k` (shading), staying on the `0..=255` scale.
pub(crate) fn shade(colour: Rgb, k: f32) -> Rgb {
    colour.map(|c| (c * k).clamp(0.0, 255.0))
}

/// Linear mix of two colours, `t = 0` gives `a`.
pub(crate) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb as Px;

    #[test]
    fn distances_are_signed_and_exact_where_simple() {
        let circle = Shape::Ellipse {
            c: [10.0, 10.0],
            r: [4.0, 4.0],
        };
        assert!((circle.sample(10.0, 10.0).d + 4.0).abs() < 1e-4);
        assert!((circle.sample(16.0, 10.0).d - 2.0).abs() < 1e-4);
        let capsule = Shape::Capsule {
            a: [0.0, 0.0],
            b: [10.0, 0.0],
            ra: 2.0,
            rb: 2.0,
        };
        assert!((capsule.sample(5.0, 3.0).d - 1.0).abs() < 1e-4);
        assert!((capsule.sample(13.0, 0.0).d - 1.0).abs() < 1e-4);
        for square in [
            vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]],
            vec![[0.0, 0.0], [0.0, 4.0], [4.0, 4.0], [4.0, 0.0]],
        ] {
            let poly = Shape::Polygon(square);
            assert!((poly.sample(2.0, 2.0).d + 2.0).abs() < 1e-4);
            assert!((poly.sample(6.0, 2.0).d - 2.0).abs() < 1e-4);
        }
        let rect = Shape::RoundRect {
            c: [0.0, 0.0],
            half: [3.0, 2.0],
            r: 0.0,
        };
        assert!((rect.sample(0.0, 3.0).d - 1.0).abs() < 1e-4);
        let ring = Shape::Ring {
            c: [0.0, 0.0],
            r: 5.0,
            half_width: 1.0,
        };
        assert!(ring.sample(0.0, 0.0).d > 0.0 && ring.sample(5.0, 0.0).d < 0.0);
    }

    #[test]
    fn fill_covers_the_shape_with_antialiased_edges_and_clips() {
        let mut img = RgbImage::from_pixel(20, 20, Px([0, 0, 0]));
        let rect = Shape::RoundRect {
            c: [10.0, 10.0],
            half: [5.25, 5.0],
            r: 0.0,
        };
        fill_flat(&mut img, &rect, [200.0, 100.0, 0.0], 1.0);
        assert_eq!(img.get_pixel(10, 10).0, [200, 100, 0]);
        assert_eq!(img.get_pixel(2, 10).0, [0, 0, 0]);
        // The column at x = 15 is a quarter covered.
        assert_eq!(img.get_pixel(15, 10).0, [50, 25, 0]);
        // Shapes partly or wholly outside the canvas are clipped, not a panic.
        let outside = Shape::Ellipse {
            c: [-5.0, 22.0],
            r: [8.0, 14.0],
        };
        fill_flat(&mut img, &outside, [255.0; 3], 1.0);
        assert_eq!(img.get_pixel(0, 19).0, [255, 255, 255]);
    }

    #[test]
    fn noise_is_deterministic_and_in_range() {
        let a: Vec<f32> = (0..50)
            .map(|i| value_noise(i as f32 * 1.7, 3.0, 4.0, 9))
            .collect();
        let b: Vec<f32> = (0..50)
            .map(|i| value_noise(i as f32 * 1.7, 3.0, 4.0, 9))
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(a.iter().any(|v| (v - a[0]).abs() > 0.05));
        assert_ne!(hash2(1, 2, 3), hash2(1, 2, 4));
    }
}
