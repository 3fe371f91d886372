//! Colours: the shade range of each garment colour class, skin tones, hair colours and the
//! accessory palette. A person's exact shade is a point inside its class's range, picked by three
//! uniform numbers, so two people in "blue" are rarely the same blue.

use crate::attributes::{DOWN_COLORS, UP_COLORS};

use super::raster::Rgb;

/// A box in HSV space: hue in degrees (may wrap below 0), saturation and value in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HsvRange {
    hue: (f32, f32),
    saturation: (f32, f32),
    value: (f32, f32),
}

const fn range(hue: (f32, f32), saturation: (f32, f32), value: (f32, f32)) -> HsvRange {
    HsvRange {
        hue,
        saturation,
        value,
    }
}

const BLACK: HsvRange = range((0.0, 360.0), (0.0, 0.25), (0.07, 0.2));
const WHITE: HsvRange = range((0.0, 360.0), (0.0, 0.07), (0.86, 0.97));
const RED: HsvRange = range((-10.0, 8.0), (0.68, 0.95), (0.58, 0.9));
const PURPLE: HsvRange = range((262.0, 295.0), (0.4, 0.7), (0.38, 0.68));
const YELLOW: HsvRange = range((46.0, 58.0), (0.6, 0.92), (0.82, 0.98));
const GRAY: HsvRange = range((0.0, 360.0), (0.0, 0.07), (0.4, 0.66));
const BLUE: HsvRange = range((205.0, 228.0), (0.5, 0.85), (0.35, 0.8));
const GREEN: HsvRange = range((95.0, 150.0), (0.45, 0.8), (0.32, 0.66));
const PINK: HsvRange = range((322.0, 345.0), (0.3, 0.55), (0.82, 0.97));
const BROWN: HsvRange = range((20.0, 34.0), (0.5, 0.75), (0.3, 0.55));

/// Shade ranges of the upper-body colour classes, in [`UP_COLORS`] order.
pub(crate) const UP_SHADES: [HsvRange; UP_COLORS.len()] =
    [BLACK, WHITE, RED, PURPLE, YELLOW, GRAY, BLUE, GREEN];

/// Shade ranges of the lower-body colour classes, in [`DOWN_COLORS`] order.
pub(crate) const DOWN_SHADES: [HsvRange; DOWN_COLORS.len()] =
    [BLACK, WHITE, PINK, PURPLE, YELLOW, GRAY, BLUE, GREEN, BROWN];

/// Neutral and muted colours for accessories, shoes and second garment colours.
const ACCESSORY: [HsvRange; 6] = [
    BLACK,
    GRAY,
    BROWN,
    range((200.0, 230.0), (0.3, 0.6), (0.2, 0.45)),
    range((0.0, 360.0), (0.5, 0.8), (0.45, 0.8)),
    WHITE,
];

/// HSV (hue in degrees, saturation and value in `[0, 1]`) to RGB on the `0..=255` scale.
pub(crate) fn hsv(hue: f32, saturation: f32, value: f32) -> Rgb {
    let h = hue.rem_euclid(360.0) / 60.0;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [(r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0]
}

impl HsvRange {
    /// The shade at position `t` (each component in `[0, 1)`) inside the range.
    pub fn pick(&self, t: [f32; 3]) -> Rgb {
        let lerp = |(a, b): (f32, f32), t: f32| a + (b - a) * t;
        hsv(
            lerp(self.hue, t[0]),
            lerp(self.saturation, t[1]),
            lerp(self.value, t[2]),
        )
    }
}

/// An accessory colour: `k` picks the family, `t` the shade.
pub(crate) fn accessory(k: f32, t: [f32; 3]) -> Rgb {
    let family = ((k * ACCESSORY.len() as f32) as usize).min(ACCESSORY.len() - 1);
    ACCESSORY[family].pick(t)
}

/// A skin tone from light (`t = 0`) to dark (`t = 1`).
pub(crate) fn skin(t: f32) -> Rgb {
    const RAMP: [Rgb; 4] = [
        [246.0, 214.0, 190.0],
        [226.0, 180.0, 146.0],
        [184.0, 132.0, 98.0],
        [112.0, 74.0, 52.0],
    ];
    let x = t.clamp(0.0, 1.0) * (RAMP.len() - 1) as f32;
    let i = (x as usize).min(RAMP.len() - 2);
    super::raster::mix(RAMP[i], RAMP[i + 1], x - i as f32)
}

/// A hair colour: black through brown to dyed blond (`t` in `[0, 1)`), grey to white when `grey`.
pub(crate) fn hair(t: f32, grey: bool) -> Rgb {
    if grey {
        let v = 150.0 + 80.0 * t;
        return [v, v * 0.98, v * 0.95];
    }
    match t {
        t if t < 0.55 => [24.0 + 20.0 * t, 20.0 + 14.0 * t, 18.0 + 10.0 * t],
        t if t < 0.85 => [
            60.0 + 120.0 * (t - 0.55),
            40.0 + 70.0 * (t - 0.55),
            28.0 + 30.0 * (t - 0.55),
        ],
        t => [
            150.0 + 300.0 * (t - 0.85),
            110.0 + 250.0 * (t - 0.85),
            60.0 + 150.0 * (t - 0.85),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_matches_known_colours() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [255.0, 0.0, 0.0]);
        assert_eq!(hsv(120.0, 1.0, 1.0), [0.0, 255.0, 0.0]);
        assert_eq!(hsv(-120.0, 1.0, 1.0), [0.0, 0.0, 255.0]);
        assert_eq!(hsv(77.0, 0.0, 0.5), [127.5, 127.5, 127.5]);
    }

    #[test]
    fn shade_tables_follow_the_schema_and_keep_classes_apart() {
        // Index-aligned with the schema: these spot checks fail if either list is reordered.
        assert_eq!((UP_COLORS[2], UP_SHADES[2]), ("red", RED));
        assert_eq!((UP_COLORS[6], UP_SHADES[6]), ("blue", BLUE));
        assert_eq!((DOWN_COLORS[2], DOWN_SHADES[2]), ("pink", PINK));
        assert_eq!((DOWN_COLORS[8], DOWN_SHADES[8]), ("brown", BROWN));
        let corners = [[0.0; 3], [0.999; 3], [0.5; 3]];
        let brightness = |c: Rgb| c.iter().sum::<f32>() / 3.0;
        for t in corners {
            assert!(brightness(BLACK.pick(t)) < 55.0);
            assert!(brightness(WHITE.pick(t)) > 200.0);
            let red = RED.pick(t);
            assert!(red[0] > 1.5 * red[1] && red[0] > 1.5 * red[2], "{red:?}");
            let blue = BLUE.pick(t);
            assert!(blue[2] > blue[0] && blue[2] > blue[1], "{blue:?}");
            let green = GREEN.pick(t);
            assert!(green[1] > green[0] && green[1] > green[2], "{green:?}");
        }
        assert!(brightness(skin(0.0)) > brightness(skin(1.0)));
        assert!(brightness(hair(0.1, true)) > brightness(hair(0.1, false)));
    }
}
