//! Drawing one person: a 2.5-D body (joints in 3-D, turned by the view's yaw, projected
//! orthographically) dressed by the appearance, drawn back to front with anti-aliased shapes.
//!
//! Body units: the standing figure is 1 tall, `y` up from the soles, `x` to the person's right,
//! `z` forward. The view turns the body by its yaw and scales it to `View::height` pixels with the
//! point between the feet at `View::feet`.

use image::RgbImage;

use super::appearance::{attr, HatStyle, Pattern, PersonAppearance};
use super::palette::{self, DOWN_SHADES, UP_SHADES};
use super::raster::{fill, fill_flat, mix, shade, Rgb, Shape};

/// Where a person faces relative to the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewpoint {
    /// Facing the camera.
    Front,
    /// Facing away from the camera.
    Back,
    /// Walking towards the image's left edge (seen from the person's left side).
    Left,
    /// Walking towards the image's right edge (seen from the person's right side).
    Right,
}

impl Viewpoint {
    /// The yaw in degrees: 0 front, 90 right, 180 back, 270 left.
    pub fn yaw(self) -> f32 {
        match self {
            Viewpoint::Front => 0.0,
            Viewpoint::Right => 90.0,
            Viewpoint::Back => 180.0,
            Viewpoint::Left => 270.0,
        }
    }
}

/// How one person is placed on a canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Facing direction in degrees (see [`Viewpoint::yaw`]; any angle, e.g. 45 for three-quarters).
    pub yaw: f32,
    /// Height of the standing figure in pixels, top of the head to the soles.
    pub height: f32,
    /// Pixel position of the point on the ground between the feet.
    pub feet: [f32; 2],
    /// Walking phase in `[0, 1)`: one full cycle of two steps.
    pub phase: f32,
    /// Stride: 0 stands still, 1 walks normally.
    pub stride: f32,
}

impl View {
    /// A person walking in `viewpoint`, `height` pixels tall, feet at `feet`, at phase 0.
    pub fn new(viewpoint: Viewpoint, height: f32, feet: [f32; 2]) -> Self {
        Self {
            yaw: viewpoint.yaw(),
            height,
            feet,
            phase: 0.0,
            stride: 1.0,
        }
    }
}

type V3 = [f32; 3];

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn lerp3(a: V3, b: V3, t: f32) -> V3 {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// A limb of length `len` hanging from a joint, swung forward by `angle` radians (and out to the
/// side by `out` body units).
fn swing(from: V3, len: f32, angle: f32, out: f32) -> V3 {
    add(from, [out, -len * angle.cos(), len * angle.sin()])
}

/// The orthographic camera of one view.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Projection {
    cos: f32,
    sin: f32,
    scale: f32,
    origin: [f32; 2],
}

impl Projection {
    fn new(view: &View) -> Self {
        let yaw = view.yaw.to_radians();
        Self {
            cos: yaw.cos(),
            sin: yaw.sin(),
            scale: view.height,
            origin: view.feet,
        }
    }

    /// Pixel position of a body point.
    fn point(&self, p: V3) -> [f32; 2] {
        [
            self.origin[0] + self.scale * (-p[0] * self.cos + p[2] * self.sin),
            self.origin[1] - self.scale * p[1],
        ]
    }

    /// Distance towards the camera (larger is nearer).
    fn depth(&self, p: V3) -> f32 {
        p[0] * self.sin + p[2] * self.cos
    }

    /// Pixel half-width of a horizontal ellipse with half-axes `wx` (sideways) and `wz` (forward).
    fn half_width(&self, wx: f32, wz: f32) -> f32 {
        self.scale * ((wx * self.cos).powi(2) + (wz * self.sin).powi(2)).sqrt()
    }

    /// The body-frame direction `(x, z)` of the surface point seen at normalised screen offset `u`
    /// (-1 left edge, 1 right edge) on a round cross-section, and its facing `w` towards the camera.
    fn surface(&self, u: f32) -> (f32, f32, f32) {
        let u = u.clamp(-1.0, 1.0);
        let w = (1.0 - u * u).sqrt();
        (-u * self.cos + w * self.sin, u * self.sin + w * self.cos, w)
    }
}

/// A horizontal cross-section of the trunk: height, forward offset of its centre, half-axes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    y: f32,
    z: f32,
    wx: f32,
    wz: f32,
}

/// A garment's colours.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Garment {
    base: Rgb,
    pattern: Pattern,
    second: Rgb,
}

/// A piece of the trunk between two slices, painted with a garment wrapped around it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Surface {
    top: Slice,
    bottom: Slice,
    projection: Projection,
    garment: Garment,
    /// Body height of the chest print's centre.
    chest: f32,
}

impl Surface {
    fn slice_at(&self, y: f32) -> Slice {
        let span = self.top.y - self.bottom.y;
        let t = if span.abs() < 1e-6 {
            0.0
        } else {
            ((self.top.y - y) / span).clamp(0.0, 1.0)
        };
        let l = |a: f32, b: f32| a + (b - a) * t;
        Slice {
            y,
            z: l(self.top.z, self.bottom.z),
            wx: l(self.top.wx, self.bottom.wx),
            wz: l(self.top.wz, self.bottom.wz),
        }
    }

    /// The polygon through `points` given as (slice, fraction of the half-width, -1 left to 1 right).
    fn polygon(&self, points: &[(Slice, f32)]) -> Shape {
        let p = &self.projection;
        Shape::Polygon(
            points
                .iter()
                .map(|(s, f)| {
                    let c = p.point([0.0, s.y, s.z]);
                    [c[0] + f * p.half_width(s.wx, s.wz), c[1]]
                })
                .collect(),
        )
    }

    fn colour(&self, x: f32, y: f32) -> Rgb {
        let p = &self.projection;
        let body_y = (p.origin[1] - y) / p.scale;
        let s = self.slice_at(body_y);
        let centre = p.point([0.0, body_y, s.z])[0];
        let half = p.half_width(s.wx, s.wz).max(1e-3);
        let (bx, bz, w) = p.surface((x - centre) / half);
        let g = &self.garment;
        let frac = |v: f32| v - v.floor();
        let second = match g.pattern {
            Pattern::Plain | Pattern::Yoke => 0.0,
            Pattern::Stripes { period, duty } => f32::from(frac(body_y / period) < duty),
            Pattern::Pinstripes { count, duty } => {
                let around = bx.atan2(bz) / std::f32::consts::TAU;
                f32::from(frac(around * count) < duty)
            }
            Pattern::Plaid { period } => {
                let around = bx.atan2(bz) * 0.09 / period;
                let rows = f32::from(frac(body_y / period) < 0.3);
                let cols = f32::from(frac(around) < 0.3);
                0.45 * (rows + cols)
            }
            Pattern::Print { back, size, round } => {
                let facing = if back { -bz } else { bz };
                let (dx, dy) = (
                    bx * s.wx / (size * 0.5),
                    (body_y - self.chest) / (size * 0.5),
                );
                let inside = if round {
                    dx * dx + dy * dy < 1.0
                } else {
                    dx.abs() < 1.0 && dy.abs() < 0.7
                };
                f32::from(facing > 0.3 && inside)
            }
        };
        shade(mix(g.base, g.second, second), 0.68 + 0.32 * w)
    }
}

/// The head: an ellipsoid painted with skin, hair, hat crown and a hint of a face.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Head {
    centre: [f32; 2],
    radius: [f32; 2],
    projection: Projection,
    skin: Rgb,
    hair: Rgb,
    long_hair: bool,
    /// Hairline height at the forehead (head-radius units, -1 chin to 1 crown).
    hairline: f32,
    hat: Option<(Rgb, f32)>,
}

impl Head {
    fn colour(&self, x: f32, y: f32) -> Rgb {
        let u = (x - self.centre[0]) / self.radius[0].max(1e-3);
        let v = ((self.centre[1] - y) / self.radius[1].max(1e-3)).clamp(-1.0, 1.0);
        let r2 = (u * u + v * v).min(1.0);
        let w = (1.0 - r2).sqrt();
        let u = u.clamp(-1.0, 1.0);
        let p = &self.projection;
        let (bx, bz) = (-u * p.cos + w * p.sin, u * p.sin + w * p.cos);
        let by = v;
        let light = 0.72 + 0.2 * w + 0.08 * v;
        if let Some((colour, line)) = self.hat {
            if by > line + 0.1 * bz {
                return shade(colour, light);
            }
        }
        // Hairline: high at the forehead, at ear level on the sides, low at the nape.
        let front = self.hairline;
        let mut line = -0.15 + (front + 0.15) * bz.max(0.0) + 0.55 * bz.min(0.0);
        if self.long_hair && bz > -0.2 && bx.abs() > 0.6 {
            line = -0.85;
        }
        if by > line {
            return shade(self.hair, light);
        }
        let mut colour = self.skin;
        for eye in [-0.36, 0.36] {
            let d2 = (bx - eye).powi(2) + (by - 0.08).powi(2) + (bz - 0.92).powi(2);
            if d2 < 0.03 {
                colour = mix(colour, [45.0, 32.0, 30.0], 0.75);
            }
        }
        let mouth = (bx / 0.22).powi(2) + ((by + 0.48) / 0.08).powi(2);
        if bz > 0.5 && mouth < 1.0 {
            colour = mix(colour, [150.0, 70.0, 65.0], 0.5);
        }
        shade(colour, light)
    }
}

/// How one shape is coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paint {
    /// One colour shaded as a round volume (limbs, shoes, bags).
    Round(Rgb),
    /// A garment wrapped around the trunk.
    Surface(Surface),
    /// The head.
    Head(Head),
}

impl Paint {
    fn colour(&self, x: f32, y: f32, u: f32) -> Rgb {
        match self {
            Paint::Round(c) => shade(*c, 0.66 + 0.34 * (1.0 - u * u).max(0.0).sqrt()),
            Paint::Surface(s) => s.colour(x, y),
            Paint::Head(h) => h.colour(x, y),
        }
    }
}

/// One shape to draw and its depth (drawn far to near; equal depths in insertion order).
struct Prim {
    depth: f32,
    shape: Shape,
    paint: Paint,
}

/// Body proportions of one person (body units).
struct Body {
    head: f32,
    shoulder_y: f32,
    hip_y: f32,
    waist_y: f32,
    shoulders: f32,
    chest_depth: f32,
    waist: f32,
    hips: f32,
    hip_depth: f32,
    upper_arm: f32,
    forearm: f32,
    arm_r: f32,
    thigh_r: f32,
    knee_r: f32,
    ankle_r: f32,
    lean: f32,
}

impl Body {
    fn new(a: &PersonAppearance) -> Self {
        let t = &a.traits;
        let female = a.is(attr::GENDER, attr::FEMALE);
        let young = a.is(attr::AGE, attr::YOUNG);
        let head = t.head
            * match a.attributes()[attr::AGE] {
                attr::YOUNG => 0.17,
                1 => 0.135,
                _ => 0.13,
            };
        let hip_y = t.legs * if young { 0.92 } else { 1.0 };
        let shoulder_y = 1.0 - head - 0.035;
        let g = t.girth;
        let (shoulders, waist, hips) = if female {
            (0.105, 0.08, 0.108)
        } else {
            (0.125, 0.095, 0.098)
        };
        let slim = if young { 0.9 } else { 1.0 };
        Self {
            head,
            shoulder_y,
            hip_y,
            waist_y: hip_y + 0.11,
            shoulders: shoulders * t.shoulders * g.sqrt() * slim,
            chest_depth: 0.062 * g * slim,
            waist: waist * g * slim,
            hips: hips * t.hips * g * slim,
            hip_depth: 0.066 * g * slim,
            upper_arm: (shoulder_y - hip_y) * 0.55,
            forearm: (shoulder_y - hip_y) * 0.47,
            arm_r: 0.031 * g.sqrt() * slim,
            thigh_r: 0.056 * g * slim,
            knee_r: 0.04 * g.sqrt() * slim,
            ankle_r: 0.028 * slim,
            lean: if a.is(attr::AGE, attr::OLD) {
                0.035
            } else {
                0.0
            },
        }
    }
}

/// Collects shapes, then draws them far to near.
struct Painter {
    p: Projection,
    prims: Vec<Prim>,
}

impl Painter {
    fn add(&mut self, depth: f32, shape: Shape, paint: Paint) {
        self.prims.push(Prim {
            depth,
            shape,
            paint,
        });
    }

    /// A limb segment from `a` to `b` (body points) with radii `ra`, `rb` (body units).
    fn limb(&mut self, depth: f32, a: V3, b: V3, ra: f32, rb: f32, colour: Rgb) {
        let shape = Shape::Capsule {
            a: self.p.point(a),
            b: self.p.point(b),
            ra: ra * self.p.scale,
            rb: rb * self.p.scale,
        };
        self.add(depth, shape, Paint::Round(colour));
    }

    /// A box centred at `c` with half-extents `h` (body units), seen turned by the view.
    fn block(&mut self, depth: f32, c: V3, h: V3, paint: Paint) {
        let p = self.p;
        let half = [
            p.scale * ((h[0] * p.cos).abs() + (h[2] * p.sin).abs()),
            p.scale * h[1],
        ];
        let r = 0.35 * half[0].min(half[1]);
        self.add(
            depth,
            Shape::RoundRect {
                c: p.point(c),
                half,
                r,
            },
            paint,
        );
    }

    /// An ellipsoid centred at `c` with half-axes `r` (body units).
    fn blob(&mut self, depth: f32, c: V3, r: V3, paint: Paint) {
        let p = self.p;
        let shape = Shape::Ellipse {
            c: p.point(c),
            r: [p.half_width(r[0], r[2]), p.scale * r[1]],
        };
        self.add(depth, shape, paint);
    }

    fn draw(mut self, canvas: &mut RgbImage) {
        self.prims.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        for prim in &self.prims {
            fill(canvas, &prim.shape, 1.0, |x, y, u| {
                prim.paint.colour(x, y, u)
            });
        }
    }
}

/// One person being drawn: appearance, proportions, camera and gait.
struct Figure<'a> {
    a: &'a PersonAppearance,
    b: Body,
    /// The view's projection, raised so the lower foot touches the ground.
    p: Projection,
    /// Walking phase in radians and stride.
    phase: f32,
    stride: f32,
    up: Garment,
    down: Garment,
}

/// Hip, knee and ankle of both legs (right first) at `phase` and `stride`.
fn leg_joints(b: &Body, phase: f32, stride: f32) -> [(f32, [V3; 3]); 2] {
    let thigh = (b.hip_y - 0.045) * 0.5;
    let joints = |side: f32| {
        let angle = side * 0.3 * stride * phase.sin();
        // The knee bends while the leg swings forward.
        let flex = 0.55 * stride * (side * phase.cos()).max(0.0).powf(1.5);
        let hip = [side * b.hips * 0.48, b.hip_y, 0.0];
        let knee = swing(hip, thigh, angle, 0.0);
        (side, [hip, knee, swing(knee, thigh, angle - flex, 0.0)])
    };
    [joints(1.0), joints(-1.0)]
}

impl Figure<'_> {
    fn painter(&self) -> Painter {
        Painter {
            p: self.p,
            prims: Vec::new(),
        }
    }

    /// Forward lean of the trunk at body height `y` (old people stoop).
    fn lean_at(&self, y: f32) -> f32 {
        let b = &self.b;
        b.lean * ((y - b.hip_y) / (b.shoulder_y - b.hip_y)).clamp(0.0, 1.0)
    }

    fn slice(&self, y: f32, wx: f32, wz: f32) -> Slice {
        Slice {
            y,
            z: self.lean_at(y),
            wx,
            wz,
        }
    }

    fn surface(&self, top: Slice, bottom: Slice, garment: Garment) -> Surface {
        Surface {
            top,
            bottom,
            projection: self.p,
            garment,
            chest: self.b.shoulder_y - 0.09,
        }
    }

    /// Legs, drawn straight onto the canvas: always behind the trunk, far leg first.
    fn legs(&self, canvas: &mut RgbImage) {
        let (a, b, t, p) = (self.a, &self.b, &self.a.traits, &self.p);
        let dress = a.is(attr::CLOTHES, attr::DRESS);
        let shorts = a.is(attr::DOWN, attr::SHORT);
        let colour = self.down.base;
        let mut painter = self.painter();
        for (side, [hip, knee, ankle]) in leg_joints(b, self.phase, self.stride) {
            let depth = p.depth(knee);
            painter.limb(depth, hip, knee, b.thigh_r, b.knee_r, t.skin);
            painter.limb(depth, knee, ankle, b.knee_r, b.ankle_r, t.skin);
            if !dress && shorts {
                let cut = lerp3(hip, knee, 0.35 + 0.55 * t.lower_length);
                let r = b.thigh_r + (b.knee_r - b.thigh_r) * 0.5 + 0.004;
                painter.limb(depth, hip, cut, b.thigh_r + 0.004, r, colour);
            } else if !dress {
                let widen = 0.003 + 0.006 * t.lower_width;
                let (rt, rk, ra) = (b.thigh_r + widen, b.knee_r + widen, b.ankle_r + widen);
                painter.limb(depth, hip, knee, rt, rk, colour);
                painter.limb(depth, knee, add(ankle, [0.0, 0.01, 0.0]), rk, ra, colour);
                if t.side_stripe {
                    let (top, low) = (
                        add(hip, [side * rt * 0.9, 0.0, 0.0]),
                        add(ankle, [side * ra * 0.9, 0.0, 0.0]),
                    );
                    painter.limb(depth, top, low, 0.006, 0.006, t.pattern_colour);
                }
            }
            let heel = add(ankle, [0.0, -0.025, -0.02]);
            let toe = add(ankle, [0.0, -0.02, 0.1]);
            painter.limb(depth, heel, toe, 0.026, 0.022, t.shoes);
        }
        painter.draw(canvas);
    }

    /// Neck, lower garment, skirt and top.
    fn trunk(&self, painter: &mut Painter) {
        let (a, b, t) = (self.a, &self.b, &self.a.traits);
        let shoulders = self.slice(b.shoulder_y, b.shoulders, b.chest_depth);
        let neckline = self.slice(
            b.shoulder_y + 0.022,
            b.shoulders * 0.45,
            b.chest_depth * 0.6,
        );
        let waist = self.slice(b.waist_y, b.waist, b.chest_depth * 0.9);
        let hips = self.slice(b.hip_y - 0.02, b.hips, b.hip_depth);
        let hem_y = b.hip_y + 0.065 - 0.05 * t.hem;
        let hem_w =
            b.waist + (b.hips - b.waist) * (b.waist_y - hem_y) / (b.waist_y - b.hip_y + 0.02);
        let hem = self.slice(hem_y, hem_w + 0.006, b.hip_depth + 0.004);
        let quad =
            |top: Slice, bottom: Slice| [(top, -1.0), (top, 1.0), (bottom, 1.0), (bottom, -1.0)];

        let neck_base = [0.0, b.shoulder_y - 0.01, self.lean_at(b.shoulder_y)];
        let neck_top = [0.0, 1.0 - b.head * 0.8, b.lean * 1.3];
        painter.limb(0.0, neck_base, neck_top, 0.03, 0.027, t.skin);
        let lower = self.surface(waist, hips, self.down);
        painter.add(
            0.0,
            lower.polygon(&quad(waist, hips)),
            Paint::Surface(lower),
        );
        if a.is(attr::CLOTHES, attr::DRESS) {
            let (hem_y, flare) = if a.is(attr::DOWN, attr::SHORT) {
                (0.3 + 0.08 * t.lower_length, 0.02)
            } else {
                (0.1 + 0.12 * t.lower_length, 0.05)
            };
            let skirt_hem = self.slice(hem_y, b.hips * 1.15 + flare, b.hip_depth * 1.4);
            let skirt = self.surface(waist, skirt_hem, self.down);
            painter.add(
                0.0,
                skirt.polygon(&quad(waist, skirt_hem)),
                Paint::Surface(skirt),
            );
        }
        let chest = |top: &Surface, bottom: Slice| {
            top.polygon(&[
                (neckline, -1.0),
                (neckline, 1.0),
                (shoulders, 1.0),
                (bottom, 1.0),
                (bottom, -1.0),
                (shoulders, -1.0),
            ])
        };
        let top = self.surface(neckline, hem, self.up);
        painter.add(0.0, chest(&top, waist), Paint::Surface(top));
        painter.add(0.0, top.polygon(&quad(waist, hem)), Paint::Surface(top));
        if t.pattern == Pattern::Yoke {
            let yoke = self.slice(b.shoulder_y - 0.07, b.shoulders * 0.95, b.chest_depth);
            let band = Surface {
                garment: Garment {
                    base: t.pattern_colour,
                    ..self.up
                },
                ..top
            };
            painter.add(0.0, chest(&band, yoke), Paint::Surface(band));
        }
    }

    /// Head, hair (long hair falls behind onto the shoulders or back) and hat.
    fn head(&self, painter: &mut Painter) {
        let (a, b, t, p) = (self.a, &self.b, &self.a.traits, &self.p);
        let hair = palette::hair(t.hair_shade, a.is(attr::AGE, attr::OLD));
        let long_hair = a.is(attr::HAIR, attr::LONG_HAIR);
        let centre = [0.0, 1.0 - b.head * 0.5, b.lean * 1.3];
        let radius = [b.head * 0.37, b.head * 0.5, b.head * 0.43];
        if long_hair {
            let length = 0.03 + 0.12 * t.hair_style;
            let top = add(centre, [0.0, b.head * 0.1, -b.head * 0.2]);
            let bottom = [0.0, b.shoulder_y - length, centre[2] - b.chest_depth * 0.9];
            let width = radius[0] * (0.9 + 0.25 * t.hair_style);
            let depth = p.depth(lerp3(top, bottom, 0.5)) - 0.01;
            painter.limb(depth, top, bottom, width, width * 0.8, hair);
        }
        let hat_line = match t.hat_style {
            HatStyle::Cap => 0.2,
            HatStyle::Beanie => 0.05,
            HatStyle::SunHat => 0.3,
        };
        let hat = a.has(attr::HAT);
        let head = Head {
            centre: p.point(centre),
            radius: [p.half_width(radius[0], radius[2]), p.scale * radius[1]],
            projection: *p,
            skin: t.skin,
            hair,
            long_hair,
            hairline: if long_hair {
                0.25 + 0.2 * t.hair_style
            } else {
                0.3 + 0.3 * t.hair_style
            },
            hat: hat.then_some((t.hat, hat_line)),
        };
        painter.blob(0.0, centre, radius, Paint::Head(head));
        let brim_y = centre[1] + radius[1] * hat_line;
        match (hat, t.hat_style) {
            (true, HatStyle::Cap) => {
                let c = [0.0, brim_y, centre[2] + radius[2] * 0.95];
                let r = [radius[0] * 0.85, b.head * 0.04, radius[2] * 0.55];
                painter.blob(p.depth(c), c, r, Paint::Round(shade(t.hat, 0.85)));
            }
            (true, HatStyle::SunHat) => {
                let r = [radius[0] * 1.7, b.head * 0.06, radius[2] * 1.7];
                painter.blob(0.001, [0.0, brim_y, centre[2]], r, Paint::Round(t.hat));
            }
            _ => {}
        }
    }

    /// Arms with sleeves; the hand holding a handbag swings less.
    fn arms(&self, painter: &mut Painter) {
        let (a, b, t, p) = (self.a, &self.b, &self.a.traits, &self.p);
        let handbag = a.has(attr::HANDBAG);
        let swing_amplitude = 0.32 * self.stride.min(1.2) * t.arm_swing;
        let sleeve = if t.pattern == Pattern::Yoke {
            t.pattern_colour
        } else {
            self.up.base
        };
        for side in [1.0f32, -1.0] {
            let holding = handbag && side == t.handbag_side;
            let angle =
                -side * swing_amplitude * self.phase.sin() * if holding { 0.3 } else { 1.0 };
            let bend = 0.12 + 0.35 * angle.max(0.0) + if holding { 0.2 } else { 0.0 };
            let shoulder = [
                side * (b.shoulders - b.arm_r * 0.8),
                b.shoulder_y - 0.015,
                self.lean_at(b.shoulder_y),
            ];
            let elbow = swing(shoulder, b.upper_arm, angle, side * 0.012);
            let wrist = swing(elbow, b.forearm, angle + bend, side * 0.006);
            let hand = swing(wrist, 0.035, angle + bend, 0.0);
            let depth = p.depth(elbow);
            let (r_elbow, r_wrist) = (b.arm_r * 0.85, b.arm_r * 0.7);
            painter.limb(depth, shoulder, elbow, b.arm_r, r_elbow, t.skin);
            painter.limb(depth, elbow, wrist, r_elbow, r_wrist, t.skin);
            painter.blob(depth, hand, [0.02, 0.028, 0.02], Paint::Round(t.skin));
            let cap = b.arm_r + 0.008;
            if a.is(attr::UP, attr::SHORT) {
                let cut = lerp3(shoulder, elbow, 0.3 + 0.5 * t.sleeve);
                painter.limb(depth, shoulder, cut, cap, cap * 0.95, sleeve);
            } else {
                let cuff = lerp3(elbow, wrist, 0.9 + 0.1 * t.sleeve);
                painter.limb(depth, shoulder, elbow, cap, r_elbow + 0.007, sleeve);
                painter.limb(depth, elbow, cuff, r_elbow + 0.007, r_wrist + 0.006, sleeve);
            }
            if holding {
                let size = t.handbag_size;
                let c = add(hand, [0.0, -0.07 * size, 0.0]);
                let half = [0.028, 0.05 * size, 0.075 * size];
                let depth = p.depth(c) + 0.001;
                let handle = shade(t.handbag, 0.7);
                painter.limb(
                    depth,
                    hand,
                    add(c, [0.0, half[1], 0.0]),
                    0.006,
                    0.006,
                    handle,
                );
                painter.block(depth, c, half, Paint::Round(t.handbag));
            }
        }
    }

    /// A block on the back with a pocket, straps over the shoulders in front.
    fn backpack(&self, painter: &mut Painter) {
        let (b, t, p) = (&self.b, &self.a.traits, &self.p);
        let size = t.backpack_size;
        let half = [0.085 * size.min(1.1), 0.13 * size, 0.05 * size];
        let lean = self.lean_at(b.shoulder_y);
        let c = [
            0.0,
            b.shoulder_y - 0.02 - half[1],
            lean - b.chest_depth - half[2],
        ];
        painter.block(p.depth(c), c, half, Paint::Round(t.backpack));
        let pocket = add(c, [0.0, -half[1] * 0.4, -half[2] - 0.004]);
        let pocket_half = [half[0] * 0.7, half[1] * 0.35, 0.004];
        painter.block(
            p.depth(pocket),
            pocket,
            pocket_half,
            Paint::Round(shade(t.backpack, 0.75)),
        );
        for side in [1.0f32, -1.0] {
            let over = [side * b.shoulders * 0.55, b.shoulder_y + 0.01, lean];
            let front = [
                side * b.shoulders * 0.62,
                b.shoulder_y - 0.2,
                b.chest_depth + 0.006,
            ];
            painter.limb(
                p.depth(front),
                over,
                front,
                0.012,
                0.011,
                shade(t.backpack, 0.8),
            );
        }
    }

    /// A bag at the hip on a strap over one shoulder (or across the body), front and back.
    fn shoulder_bag(&self, painter: &mut Painter) {
        let (b, t, p) = (&self.b, &self.a.traits, &self.p);
        let (s, size) = (t.bag_side, t.bag_size);
        let strap = shade(t.bag, 0.75);
        let shoulder_x = if t.bag_cross { -s } else { s } * b.shoulders * 0.6;
        for face in [1.0f32, -1.0] {
            let over = [shoulder_x, b.shoulder_y + 0.01, 0.0];
            let low = [s * b.hips * 0.95, b.hip_y + 0.07, face * b.hip_depth * 0.9];
            let mid = lerp3(over, low, 0.5);
            let mid = [mid[0], mid[1], face * b.chest_depth * 1.05];
            painter.limb(p.depth(mid), over, mid, 0.009, 0.009, strap);
            painter.limb(p.depth(mid), mid, low, 0.009, 0.009, strap);
        }
        let c = [s * (b.hips + 0.04 * size), b.hip_y + 0.02, 0.01];
        let half = [0.03, 0.055 * size, 0.065 * size];
        painter.block(p.depth(c) + 0.002, c, half, Paint::Round(t.bag));
    }
}

/// Draws `appearance` on `canvas` as placed by `view`. Parts outside the canvas are clipped.
pub fn draw_person(canvas: &mut RgbImage, appearance: &PersonAppearance, view: &View) {
    if !(view.height.is_finite() && view.height > 0.0) {
        return;
    }
    let a = appearance;
    let t = &a.traits;
    let labels = a.attributes();
    let b = Body::new(a);
    let mut p = Projection::new(view);

    let shadow = Shape::Ellipse {
        c: p.origin,
        r: [p.scale * 0.15, p.scale * 0.022],
    };
    fill_flat(canvas, &shadow, [20.0, 20.0, 20.0], 0.22);

    // Gait: legs swing opposite to each other and to the arms; the stance foot stays on the ground.
    let phase = view.phase * std::f32::consts::TAU;
    let stride = view.stride * t.stride * if a.is(attr::AGE, attr::OLD) { 0.6 } else { 1.0 };
    let lowest = leg_joints(&b, phase, stride)
        .iter()
        .map(|(_, joints)| joints[2][1])
        .fold(f32::INFINITY, f32::min);
    p.origin[1] -= (0.045 - lowest) * p.scale;

    let figure = Figure {
        a,
        b,
        p,
        phase,
        stride,
        up: Garment {
            base: UP_SHADES[usize::from(labels[attr::UPCOLOR])].pick(t.up_shade),
            pattern: t.pattern,
            second: t.pattern_colour,
        },
        down: Garment {
            base: DOWN_SHADES[usize::from(labels[attr::DOWNCOLOR])].pick(t.down_shade),
            pattern: Pattern::Plain,
            second: t.pattern_colour,
        },
    };
    figure.legs(canvas);
    let mut painter = figure.painter();
    figure.trunk(&mut painter);
    figure.head(&mut painter);
    figure.arms(&mut painter);
    if a.has(attr::BACKPACK) {
        figure.backpack(&mut painter);
    }
    if a.has(attr::BAG) {
        figure.shoulder_bag(&mut painter);
    }
    painter.draw(canvas);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{AttributeLabels, ATTRIBUTES};

    /// A teenage man with short hair, short sleeves, long trousers, a blue top and black trousers.
    const BASE: AttributeLabels = [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 6, 0];
    const BG: [u8; 3] = [255, 0, 255];
    const SEED: u64 = 9;
    const FEET: [f32; 2] = [32.0, 125.0];
    const HEIGHT: f32 = 120.0;

    /// Screen row of body height `y` (body units).
    fn row(y: f32) -> u32 {
        (FEET[1] - y * HEIGHT) as u32
    }

    /// The first identity of the test population whose top is plain (so colours are exact).
    fn plain_identity() -> u32 {
        (0..)
            .find(|&i| PersonAppearance::new(SEED, i).traits.pattern == Pattern::Plain)
            .unwrap()
    }

    fn person(labels: AttributeLabels) -> PersonAppearance {
        PersonAppearance::with_attributes(SEED, plain_identity(), labels).unwrap()
    }

    fn render(p: &PersonAppearance, yaw: f32) -> RgbImage {
        let mut img = RgbImage::from_pixel(64, 128, image::Rgb(BG));
        let view = View {
            yaw,
            height: HEIGHT,
            feet: FEET,
            phase: 0.0,
            stride: 0.0,
        };
        draw_person(&mut img, p, &view);
        img
    }

    fn with(index: usize, class: u8) -> AttributeLabels {
        let mut l = BASE;
        l[index] = class;
        l
    }

    /// Pixels that differ by more than 8 in some channel.
    fn diff(a: &RgbImage, b: &RgbImage) -> Vec<(u32, u32)> {
        a.enumerate_pixels()
            .filter(|(x, y, p)| {
                let q = b.get_pixel(*x, *y);
                p.0.iter().zip(q.0).any(|(u, v)| u.abs_diff(v) > 8)
            })
            .map(|(x, y, _)| (x, y))
            .collect()
    }

    /// Pixels whose colour is the skin colour under some shading, in rows `rows`.
    fn skin_pixels(img: &RgbImage, skin: Rgb, rows: std::ops::Range<u32>) -> usize {
        let ss: f32 = skin.iter().map(|s| s * s).sum();
        img.enumerate_pixels()
            .filter(|(_, y, p)| {
                let px = p.0.map(f32::from);
                let k = px.iter().zip(skin).map(|(a, b)| a * b).sum::<f32>() / ss;
                let residual = px
                    .iter()
                    .zip(skin)
                    .map(|(a, b)| (a - k * b).powi(2))
                    .sum::<f32>()
                    .sqrt();
                rows.contains(y) && (0.55..1.1).contains(&k) && residual < 8.0
            })
            .count()
    }

    #[test]
    fn every_attribute_class_changes_the_image() {
        let base = person(BASE);
        let (front, back) = (render(&base, 0.0), render(&base, 180.0));
        for (index, a) in ATTRIBUTES.iter().enumerate() {
            for class in 0..a.classes() as u8 {
                if class == BASE[index] {
                    continue;
                }
                let p = person(with(index, class));
                let changed =
                    diff(&front, &render(&p, 0.0)).len() + diff(&back, &render(&p, 180.0)).len();
                assert!(
                    changed >= 20,
                    "{} = {}: {changed} pixels changed",
                    a.name,
                    a.labels[usize::from(class)]
                );
            }
        }
    }

    #[test]
    fn a_hat_changes_only_the_head() {
        let (bare, hat) = (person(BASE), person(with(attr::HAT, 1)));
        for yaw in [0.0, 90.0, 180.0] {
            let d = diff(&render(&bare, yaw), &render(&hat, yaw));
            assert!(d.len() >= 15, "yaw {yaw}: {}", d.len());
            let neck = row(1.0 - bare.traits.head * 0.17 - 0.02);
            assert!(
                d.iter().all(|&(_, y)| y < neck),
                "yaw {yaw}: a hat pixel below the head"
            );
        }
    }

    #[test]
    fn short_sleeves_and_short_lower_garments_show_skin() {
        let long = person(with(attr::UP, 0));
        let short = person(BASE);
        let skin = short.traits.skin;
        let arms = row(0.8)..row(0.45);
        let (s, l) = (
            skin_pixels(&render(&short, 0.0), skin, arms.clone()),
            skin_pixels(&render(&long, 0.0), skin, arms),
        );
        assert!(s > l + 60, "arm skin: short sleeves {s}, long {l}");

        let shorts = person(with(attr::DOWN, attr::SHORT));
        let shins = row(0.35)..row(0.05);
        let (s, l) = (
            skin_pixels(&render(&shorts, 90.0), skin, shins.clone()),
            skin_pixels(&render(&short, 90.0), skin, shins),
        );
        assert!(s > l + 60, "leg skin: shorts {s}, trousers {l}");
    }

    #[test]
    fn a_skirt_is_wider_than_trousers_and_long_hair_covers_the_back() {
        let mut woman = with(attr::GENDER, attr::FEMALE);
        let trousers = render(&person(woman), 0.0);
        woman[attr::CLOTHES] = attr::DRESS;
        let skirt = render(&person(woman), 0.0);
        let covered = |img: &RgbImage, rows: std::ops::Range<u32>| {
            img.enumerate_pixels()
                .filter(|(_, y, p)| rows.contains(y) && p.0 != BG)
                .count()
        };
        let thighs = row(0.45)..row(0.35);
        assert!(covered(&skirt, thighs.clone()) > covered(&trousers, thighs) + 20);

        let short_hair = render(&person(BASE), 180.0);
        let long_hair = render(&person(with(attr::HAIR, attr::LONG_HAIR)), 180.0);
        let d = diff(&short_hair, &long_hair);
        let upper_back = d
            .iter()
            .filter(|&&(_, y)| (row(0.85)..row(0.7)).contains(&y))
            .count();
        assert!(upper_back > 40, "{upper_back}");
    }

    #[test]
    fn bags_show_where_they_are_carried() {
        let base = person(BASE);
        let backpack = person(with(attr::BACKPACK, 1));
        let from_back = diff(&render(&base, 180.0), &render(&backpack, 180.0));
        let from_front = diff(&render(&base, 0.0), &render(&backpack, 0.0));
        assert!(
            from_back.len() > 300,
            "backpack from behind: {}",
            from_back.len()
        );
        assert!(
            from_front.len() >= 10,
            "straps from the front: {}",
            from_front.len()
        );
        assert!(
            from_front.len() * 2 < from_back.len(),
            "{} vs {}",
            from_front.len(),
            from_back.len()
        );
        let torso = row(0.85)..row(0.45);
        assert!(from_back.iter().all(|(_, y)| torso.contains(y)));

        let bag = diff(
            &render(&base, 0.0),
            &render(&person(with(attr::BAG, 1)), 0.0),
        );
        let hip = bag
            .iter()
            .filter(|(_, y)| (row(0.6)..row(0.4)).contains(y))
            .count();
        assert!(hip > 30, "shoulder bag at the hip: {hip}");

        let handbag = diff(
            &render(&base, 90.0),
            &render(&person(with(attr::HANDBAG, 1)), 90.0),
        );
        let below_hand = handbag
            .iter()
            .filter(|(_, y)| (row(0.45)..row(0.2)).contains(y))
            .count();
        assert!(below_hand > 30, "handbag below the hand: {below_hand}");
    }

    #[test]
    fn garment_colours_are_drawn_on_the_body() {
        let p = person(BASE);
        let img = render(&p, 0.0);
        let chest = img.get_pixel(FEET[0] as u32, row(0.7)).0;
        let thigh_x = (FEET[0] + 0.05 * HEIGHT) as u32;
        let thigh = img.get_pixel(thigh_x, row(0.38)).0;
        let mut seen = Vec::new();
        for class in 0..UP_SHADES.len() as u8 {
            let p = person(with(attr::UPCOLOR, class));
            let chest = render(&p, 0.0)
                .get_pixel(FEET[0] as u32, row(0.7))
                .0
                .map(f32::from);
            let expected = UP_SHADES[usize::from(class)].pick(p.traits.up_shade);
            // The chest faces the camera: the shade is unshaded there.
            assert!(
                chest.iter().zip(expected).all(|(a, b)| (a - b).abs() < 2.0),
                "{chest:?} vs {expected:?}"
            );
            seen.push(chest);
        }
        for (i, a) in seen.iter().enumerate() {
            assert!(seen[i + 1..].iter().all(|b| b != a));
        }
        for class in 0..DOWN_SHADES.len() as u8 {
            let p = person(with(attr::DOWNCOLOR, class));
            let px = render(&p, 0.0).get_pixel(thigh_x, row(0.38)).0;
            let expected = DOWN_SHADES[usize::from(class)].pick(p.traits.down_shade);
            let k = 0.66 + 0.34 * 0.5f32.sqrt(); // not on the leg's centre line: a little shaded
            let near = px
                .iter()
                .zip(expected)
                .all(|(&a, b)| (f32::from(a) - b * k).abs() < 0.3 * b + 6.0);
            assert!(near, "{px:?} vs {expected:?}");
        }
        assert_ne!(chest, thigh);
    }

    #[test]
    fn old_people_have_grey_hair_and_children_big_heads() {
        let top = |img: &RgbImage| img.get_pixel(FEET[0] as u32, row(0.985)).0;
        let teen = render(&person(BASE), 180.0);
        let old = render(&person(with(attr::AGE, attr::OLD)), 180.0);
        let brightness = |p: [u8; 3]| p.iter().map(|&v| u32::from(v)).sum::<u32>();
        assert!(
            brightness(top(&old)) > brightness(top(&teen)) + 150,
            "{:?} vs {:?}",
            top(&old),
            top(&teen)
        );
        // Head and neck: from the top of the head down to the collar, along the centre line.
        let head_and_neck = |p: &PersonAppearance| {
            let img = render(p, 0.0);
            let shirt = UP_SHADES[usize::from(BASE[attr::UPCOLOR])].pick(p.traits.up_shade);
            let column: Vec<[u8; 3]> = (0..128)
                .map(|y| img.get_pixel(FEET[0] as u32, y).0)
                .collect();
            let top = column.iter().position(|q| *q != BG).unwrap();
            let collar = column
                .iter()
                .position(|q| {
                    q.iter()
                        .zip(shirt)
                        .all(|(&a, b)| (f32::from(a) - b).abs() < 3.0)
                })
                .unwrap();
            collar - top
        };
        let (teen, child) = (
            head_and_neck(&person(BASE)),
            head_and_neck(&person(with(attr::AGE, attr::YOUNG))),
        );
        assert!(child >= teen + 3, "child {child} rows, teen {teen}");
    }

    #[test]
    fn views_turn_the_person_and_bad_heights_draw_nothing() {
        let p = person(BASE);
        let front = render(&p, 0.0);
        assert_ne!(front, render(&p, 180.0));
        assert_ne!(render(&p, 90.0), render(&p, 270.0));
        let side_width = |img: &RgbImage| {
            img.enumerate_pixels()
                .filter(|(_, y, q)| *y == row(0.7) && q.0 != BG)
                .count()
        };
        assert!(side_width(&render(&p, 90.0)) < side_width(&front));
        for height in [0.0, -5.0, f32::NAN] {
            let mut img = RgbImage::from_pixel(8, 8, image::Rgb(BG));
            let view = View::new(Viewpoint::Front, height, [4.0, 8.0]);
            draw_person(&mut img, &p, &view);
            assert!(img.pixels().all(|q| q.0 == BG));
        }
    }

    #[test]
    fn people_compose_on_a_larger_canvas_at_any_size_and_place() {
        let mut scene = RgbImage::from_pixel(200, 150, image::Rgb(BG));
        // (feet, height): a near person, a far one, one half outside the left edge.
        let placed = [
            ([60.0, 140.0], 100.0),
            ([170.0, 80.0], 30.0),
            ([-4.0, 150.0], 120.0),
        ];
        for (i, (feet, height)) in placed.into_iter().enumerate() {
            let mut view = View::new(Viewpoint::Right, height, feet);
            view.phase = 0.3 * i as f32;
            draw_person(&mut scene, &PersonAppearance::new(SEED, i as u32), &view);
        }
        let inside = |x: u32, y: u32| {
            placed.iter().any(|([fx, fy], h)| {
                let (x, y) = (x as f32 + 0.5, y as f32 + 0.5);
                (x - fx).abs() < 0.3 * h && y > fy - 1.03 * h && y < fy + 0.05 * h
            })
        };
        let drawn: Vec<(u32, u32)> = scene
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 != BG)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(
            drawn.iter().all(|&(x, y)| inside(x, y)),
            "pixels drawn outside the people's boxes"
        );
        for ([fx, fy], h) in placed {
            let mine = drawn
                .iter()
                .filter(|&&(x, y)| {
                    (x as f32 - fx).abs() < 0.3 * h && (y as f32) > fy - 1.03 * h && (y as f32) < fy
                })
                .count();
            assert!(
                mine as f32 > 0.03 * h * h,
                "person at {fx},{fy} ({h} px): {mine} pixels"
            );
        }
    }
}
