//! Backgrounds and props: the street scenes people walk through (pavement, garden, road, building,
//! shop front, plaza) and the objects that stand in them or in front of people (poles, bicycles,
//! bins, plants, benches, cars).

use image::RgbImage;
use rand::Rng;

use super::palette::{accessory, hsv};
use super::raster::{fill, fill_flat, hash2, mix, shade, value_noise, Rgb, Shape};
use super::{rng, SynthRng};

/// A background style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Paved square tiles in front of a light building wall.
    Pavement,
    /// Grass and a gravel path in front of hedges and trees.
    Garden,
    /// Asphalt with lane markings, a kerb and bushes beyond.
    Road,
    /// A brick or concrete wall with windows and a door, concrete below.
    Building,
    /// Shop windows and a coloured sign band over pale tiles.
    Shopfront,
    /// Red brick paving with trees, benches and people in the distance.
    Plaza,
}

/// Everything a background needs per pixel, drawn once from the seed.
struct Look {
    style: Background,
    seed: u32,
    unit: f32,
    horizon: f32,
    ground: Rgb,
    wall: Rgb,
    accent: Rgb,
    tile: f32,
}

impl Look {
    fn new(style: Background, unit: f32, height: u32, r: &mut SynthRng) -> Self {
        let jitter =
            |r: &mut SynthRng, c: Rgb, k: f32| c.map(|v| v * (1.0 + k * (r.random::<f32>() - 0.5)));
        let (ground, wall, accent) = match style {
            Background::Pavement => (
                [150.0, 146.0, 138.0],
                [206.0, 198.0, 182.0],
                [70.0, 80.0, 90.0],
            ),
            Background::Garden => (
                [84.0, 122.0, 60.0],
                [40.0, 72.0, 38.0],
                [170.0, 160.0, 140.0],
            ),
            Background::Road => (
                [78.0, 78.0, 80.0],
                [66.0, 96.0, 58.0],
                [225.0, 225.0, 215.0],
            ),
            Background::Building => (
                [168.0, 166.0, 160.0],
                [150.0, 82.0, 62.0],
                [60.0, 62.0, 70.0],
            ),
            Background::Shopfront => (
                [196.0, 190.0, 178.0],
                [110.0, 132.0, 150.0],
                hsv(r.random_range(0.0..360.0), 0.7, 0.8),
            ),
            Background::Plaza => (
                [150.0, 92.0, 80.0],
                [60.0, 90.0, 50.0],
                [120.0, 100.0, 80.0],
            ),
        };
        Self {
            style,
            seed: r.random(),
            unit,
            horizon: height as f32 * r.random_range(0.22..0.55),
            ground: jitter(r, ground, 0.25),
            wall: jitter(r, wall, 0.3),
            accent,
            tile: r.random_range(0.14..0.3),
        }
    }

    fn backdrop(&self, x: f32, y: f32) -> Rgb {
        let u = self.unit;
        let n = value_noise(x, y, u * 0.08, self.seed);
        match self.style {
            Background::Pavement | Background::Building => {
                // Wall with a window grid; bricks on the building style.
                let (wx, wy) = (u * 0.5, u * 0.55);
                let (cx, cy) = ((x / wx).rem_euclid(1.0), (y / wy).rem_euclid(1.0));
                let cell = hash2((x / wx).floor() as i32, (y / wy).floor() as i32, self.seed);
                if cx > 0.25 && cx < 0.8 && cy > 0.2 && cy < 0.8 && cell < 0.7 {
                    return shade(self.accent, 0.8 + 0.4 * cy + 0.2 * n);
                }
                let mut c = self.wall;
                if self.style == Background::Building {
                    let (bw, bh) = (u * 0.12, u * 0.04);
                    let row = (y / bh).floor();
                    let bx = (x / bw + 0.5 * row).rem_euclid(1.0);
                    if (y / bh).rem_euclid(1.0) < 0.14 || bx < 0.06 {
                        c = [190.0, 186.0, 176.0];
                    } else {
                        c = shade(
                            c,
                            0.85 + 0.3 * hash2((x / bw + 0.5 * row) as i32, row as i32, self.seed),
                        );
                    }
                }
                shade(c, 0.9 + 0.2 * n)
            }
            Background::Garden | Background::Road | Background::Plaza => {
                // Foliage: layered noise, darker below.
                let leaves = value_noise(x, y, u * 0.03, self.seed ^ 7);
                let k = 0.55 + 0.5 * n + 0.35 * leaves - 0.25 * (y / self.horizon.max(1.0));
                let c = shade(self.wall, k.max(0.2));
                if y < self.horizon * 0.3 * n {
                    mix(c, [200.0, 210.0, 220.0], 0.6)
                } else {
                    c
                }
            }
            Background::Shopfront => {
                let band = self.horizon * 0.25;
                if y < band {
                    let letters = hash2((x / (u * 0.05)) as i32, 0, self.seed) < 0.4
                        && (y / band - 0.5).abs() < 0.25;
                    return if letters {
                        [240.0, 240.0, 235.0]
                    } else {
                        self.accent
                    };
                }
                let pane = (x / (u * 0.7)).rem_euclid(1.0);
                if pane < 0.05 {
                    return [60.0, 60.0, 64.0];
                }
                let glare = (pane + y / (u * 1.5)).rem_euclid(1.0);
                let glass = shade(self.wall, 0.7 + 0.4 * n);
                if glare < 0.15 {
                    mix(glass, [230.0, 235.0, 240.0], 0.4)
                } else {
                    glass
                }
            }
        }
    }

    fn ground_at(&self, x: f32, y: f32) -> Rgb {
        let u = self.unit;
        let n = value_noise(x, y, u * 0.05, self.seed ^ 3);
        let grain = hash2(x as i32, y as i32, self.seed) - 0.5;
        let depth = (y - self.horizon) / u;
        match self.style {
            Background::Pavement
            | Background::Shopfront
            | Background::Building
            | Background::Plaza => {
                let (tw, th) = if self.style == Background::Plaza {
                    (u * 0.12, u * 0.05)
                } else {
                    (u * self.tile, u * self.tile * 0.5)
                };
                let row = (y / th).floor();
                let off = if self.style == Background::Plaza {
                    0.5 * row
                } else {
                    0.0
                };
                let (fx, fy) = ((x / tw + off).rem_euclid(1.0), (y / th).rem_euclid(1.0));
                let cell = hash2((x / tw + off).floor() as i32, row as i32, self.seed);
                let grout = fx < 0.05 || fy < 0.08;
                let k = if grout { 0.72 } else { 0.9 + 0.2 * cell };
                shade(self.ground, k + 0.12 * n + 0.08 * grain)
            }
            Background::Garden => {
                let path = value_noise(x, 0.0, u * 0.6, self.seed ^ 5) > 0.55 && depth > 0.1;
                if path {
                    shade(self.accent, 0.85 + 0.2 * n + 0.25 * grain)
                } else {
                    shade(self.ground, 0.75 + 0.35 * n + 0.3 * grain)
                }
            }
            Background::Road => {
                if depth < 0.06 {
                    return shade([170.0, 168.0, 160.0], 0.9 + 0.1 * n);
                }
                let lane = ((y - self.horizon) / (u * 0.9)).rem_euclid(1.0);
                let dash = (x / (u * 0.8)).rem_euclid(1.0) < 0.6;
                if lane > 0.45 && lane < 0.5 && dash {
                    shade(self.accent, 0.95 + 0.1 * n)
                } else {
                    shade(self.ground, 0.85 + 0.25 * n + 0.2 * grain)
                }
            }
        }
    }
}

/// Fills `canvas` with a background of `style` for people about `unit` pixels tall (the scale of
/// tiles, windows and leaves), drawn from `seed`. Returns the horizon's row (where ground starts).
pub fn draw_background(canvas: &mut RgbImage, style: Background, unit: f32, seed: u64) -> f32 {
    let mut r = rng(&[seed, 0xb6]);
    let unit = unit.max(4.0);
    let look = Look::new(style, unit, canvas.height(), &mut r);
    let light_seed: u32 = r.random();
    for (x, y, px) in canvas.enumerate_pixels_mut() {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        let c = if fy < look.horizon {
            look.backdrop(fx, fy)
        } else {
            look.ground_at(fx, fy)
        };
        // Soft patches of shade (trees, clouds) over everything.
        let light = 0.82 + 0.3 * value_noise(fx, fy, unit * 0.7, light_seed);
        px.0 = shade(c, light).map(|v| v.round() as u8);
    }
    // Props standing in the scene, smaller further up (people only in the distance, so a crop
    // never gains a second full-size person from its background).
    let props = match style {
        Background::Plaza | Background::Road => r.random_range(1..4),
        _ => r.random_range(0..3),
    };
    let bottom = canvas.height() as f32 + unit * 0.2;
    for _ in 0..props {
        let kind = Prop::random(&mut r, style == Background::Plaza);
        let near: f32 = r.random_range(0.0..if kind == Prop::Person { 0.4 } else { 1.0 });
        let y = look.horizon + near * (bottom - look.horizon);
        let x = r.random_range(0.0..canvas.width() as f32);
        draw_prop(canvas, kind, [x, y], unit * (0.3 + 0.6 * near), &mut r);
    }
    look.horizon
}

/// Objects in scenes and in front of people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prop {
    Pole,
    Bicycle,
    Bin,
    Plant,
    Bench,
    Car,
    /// A small walking person (seen in the distance or partly in front).
    Person,
}

impl Prop {
    /// A random prop; `people` allows distant people.
    pub fn random(r: &mut SynthRng, people: bool) -> Self {
        let all = [
            Prop::Pole,
            Prop::Bicycle,
            Prop::Bin,
            Prop::Plant,
            Prop::Bench,
            Prop::Car,
            Prop::Person,
        ];
        let n = if people { all.len() } else { all.len() - 1 };
        all[r.random_range(0..n)]
    }
}

/// Draws `prop` standing on the ground at `base` (pixels), for people `unit` pixels tall.
pub(crate) fn draw_prop(
    canvas: &mut RgbImage,
    prop: Prop,
    base: [f32; 2],
    unit: f32,
    r: &mut SynthRng,
) {
    let [x, y] = base;
    let colour = accessory(r.random(), [r.random(), r.random(), r.random()]);
    let metal = shade([150.0, 150.0, 155.0], r.random_range(0.5..1.1));
    match prop {
        Prop::Pole => {
            let w = unit * r.random_range(0.03..0.06);
            let pole = Shape::RoundRect {
                c: [x, y - unit * 1.5],
                half: [w, unit * 1.5],
                r: w * 0.3,
            };
            fill(canvas, &pole, 1.0, |px, _, _| {
                shade(metal, 1.15 - 0.5 * ((px - x) / w).abs())
            });
        }
        Prop::Bicycle => {
            let wheel = unit * r.random_range(0.17..0.21);
            let gap = wheel * 2.4;
            let t = (unit * 0.012).max(0.6);
            for cx in [x - gap * 0.5, x + gap * 0.5] {
                let ring = Shape::Ring {
                    c: [cx, y - wheel],
                    r: wheel,
                    half_width: t * 1.4,
                };
                fill_flat(canvas, &ring, [30.0, 30.0, 32.0], 1.0);
            }
            let (rear, front) = ([x - gap * 0.5, y - wheel], [x + gap * 0.5, y - wheel]);
            let seat = [x - gap * 0.15, y - wheel * 2.3];
            let bar = [x + gap * 0.35, y - wheel * 2.5];
            let crank = [x, y - wheel];
            for (a, b) in [
                (rear, seat),
                (seat, crank),
                (crank, rear),
                (seat, bar),
                (bar, front),
                (crank, bar),
            ] {
                let seg = Shape::Capsule { a, b, ra: t, rb: t };
                fill_flat(canvas, &seg, colour, 1.0);
            }
        }
        Prop::Bin => {
            let (w, h) = (unit * 0.14, unit * 0.5);
            let bin = Shape::RoundRect {
                c: [x, y - h * 0.5],
                half: [w, h * 0.5],
                r: w * 0.2,
            };
            let green = shade([60.0, 110.0, 70.0], r.random_range(0.6..1.2));
            fill(canvas, &bin, 1.0, |_, _, u| {
                shade(green, 1.1 - 0.35 * u * u)
            });
        }
        Prop::Plant => {
            let leaves = shade([50.0, 105.0, 45.0], r.random_range(0.6..1.2));
            let pot = Shape::Polygon(vec![
                [x - unit * 0.12, y - unit * 0.25],
                [x + unit * 0.12, y - unit * 0.25],
                [x + unit * 0.08, y],
                [x - unit * 0.08, y],
            ]);
            fill_flat(canvas, &pot, shade([150.0, 90.0, 60.0], 0.9), 1.0);
            for _ in 0..6 {
                let c = [
                    x + unit * r.random_range(-0.2..0.2),
                    y - unit * r.random_range(0.3..0.6),
                ];
                let blob = Shape::Ellipse {
                    c,
                    r: [
                        unit * r.random_range(0.08..0.16),
                        unit * r.random_range(0.07..0.13),
                    ],
                };
                let k = r.random_range(0.7..1.2);
                fill_flat(canvas, &blob, shade(leaves, k), 1.0);
            }
        }
        Prop::Bench => {
            let (w, h) = (unit * r.random_range(0.5..0.9), unit * 0.25);
            let wood = shade([140.0, 100.0, 60.0], r.random_range(0.6..1.1));
            for dx in [-0.85, 0.85] {
                let leg = Shape::RoundRect {
                    c: [x + dx * w, y - h * 0.5],
                    half: [unit * 0.02, h * 0.5],
                    r: 0.0,
                };
                fill_flat(canvas, &leg, [40.0, 40.0, 40.0], 1.0);
            }
            for level in [0.9, 1.5, 1.9] {
                let slat = Shape::RoundRect {
                    c: [x, y - h * level],
                    half: [w, unit * 0.025],
                    r: unit * 0.01,
                };
                fill_flat(canvas, &slat, wood, 1.0);
            }
        }
        Prop::Car => {
            let (w, h) = (unit * r.random_range(1.2..1.6), unit * 0.45);
            let paint = accessory(r.random(), [r.random(), r.random(), r.random()]);
            let body = Shape::RoundRect {
                c: [x, y - h * 0.6],
                half: [w, h * 0.35],
                r: h * 0.15,
            };
            fill(canvas, &body, 1.0, |_, py, _| {
                shade(paint, 1.1 - 0.4 * ((py - (y - h)) / h).clamp(0.0, 1.0))
            });
            let cabin = Shape::Polygon(vec![
                [x - w * 0.55, y - h * 0.9],
                [x + w * 0.4, y - h * 0.9],
                [x + w * 0.25, y - h * 1.4],
                [x - w * 0.4, y - h * 1.4],
            ]);
            fill_flat(canvas, &cabin, [60.0, 70.0, 85.0], 1.0);
            for dx in [-0.65, 0.65] {
                let wheel = Shape::Ellipse {
                    c: [x + dx * w, y - h * 0.22],
                    r: [h * 0.22, h * 0.22],
                };
                fill_flat(canvas, &wheel, [25.0, 25.0, 25.0], 1.0);
            }
        }
        Prop::Person => {
            let who = super::PersonAppearance::new(r.random(), r.random());
            let yaw = r.random_range(0.0..360.0);
            let view = super::View {
                yaw,
                height: unit * r.random_range(0.8..1.15) * who.stature(),
                feet: [x, y],
                phase: r.random(),
                stride: 1.0,
            };
            super::draw_person(canvas, &who, &view);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backgrounds_are_deterministic_textured_and_differ_by_style() {
        let styles = [
            Background::Pavement,
            Background::Garden,
            Background::Road,
            Background::Building,
            Background::Shopfront,
            Background::Plaza,
        ];
        let mut means = Vec::new();
        for style in styles {
            let mut a = RgbImage::new(48, 96);
            let mut b = RgbImage::new(48, 96);
            let ha = draw_background(&mut a, style, 90.0, 11);
            let hb = draw_background(&mut b, style, 90.0, 11);
            assert_eq!(a, b, "{style:?}");
            assert_eq!(ha, hb);
            assert!((0.0..96.0).contains(&ha));
            let distinct: std::collections::HashSet<_> = a.pixels().map(|p| p.0).collect();
            assert!(distinct.len() > 50, "{style:?} is flat: {}", distinct.len());
            let mean: Vec<f32> = (0..3)
                .map(|c| a.pixels().map(|p| f32::from(p.0[c])).sum::<f32>() / (48.0 * 96.0))
                .collect();
            means.push(mean);
        }
        // Every pair of styles differs in mean colour.
        for i in 0..means.len() {
            for j in i + 1..means.len() {
                let d: f32 = (0..3).map(|c| (means[i][c] - means[j][c]).abs()).sum();
                assert!(d > 8.0, "{:?} vs {:?}: {d}", styles[i], styles[j]);
            }
        }
    }
}
