//! What a synthetic person looks like: the 12 Market-1501 attributes, drawn with the dataset's class
//! balance, plus identity traits the attributes do not name (exact garment shades, skin and hair
//! colour, body shape, garment patterns, shoes, bag colours and sides, gait), so that people who
//! share an attribute combination still look different.

use rand::Rng;

use crate::attributes::{Attribute, AttributeLabels, ATTRIBUTES, NUM_ATTRIBUTES};

use super::palette;
use super::raster::Rgb;
use super::{rng, SynthError};

/// Attribute indices in [`ATTRIBUTES`] order.
pub(crate) mod attr {
    pub const AGE: usize = 0;
    pub const BACKPACK: usize = 1;
    pub const BAG: usize = 2;
    pub const HANDBAG: usize = 3;
    pub const CLOTHES: usize = 4;
    pub const DOWN: usize = 5;
    pub const UP: usize = 6;
    pub const HAIR: usize = 7;
    pub const HAT: usize = 8;
    pub const GENDER: usize = 9;
    pub const UPCOLOR: usize = 10;
    pub const DOWNCOLOR: usize = 11;
    /// Age classes.
    pub const YOUNG: u8 = 0;
    pub const OLD: u8 = 3;
    /// `clothes` class of a dress or skirt, `down`/`up`/`hair` class of short, `gender` of female.
    pub const DRESS: u8 = 0;
    pub const SHORT: u8 = 1;
    pub const LONG_HAIR: u8 = 1;
    pub const FEMALE: u8 = 1;
}

/// Relative weights of the non-majority classes (the majority class takes its `majority_share`
/// from [`ATTRIBUTES`], the others share the rest in these proportions; the entry at the majority
/// index is ignored). Roughly Market-1501's own proportions.
const AGE_REST: [f32; 4] = [0.07, 0.0, 0.86, 0.07];
const UPCOLOR_REST: [f32; 8] = [0.0, 0.2, 0.1, 0.05, 0.08, 0.14, 0.1, 0.058];
const DOWNCOLOR_REST: [f32; 9] = [0.0, 0.06, 0.02, 0.02, 0.02, 0.13, 0.2, 0.03, 0.065];

/// How much likelier a woman is than a man to have long hair, or a handbag.
const LONG_HAIR_FEMALE_RATIO: f32 = 9.0;
const HANDBAG_FEMALE_RATIO: f32 = 2.5;

/// A garment pattern on the upper body (in the garment's own colour plus a second colour that
/// covers at most about a third of it, so the colour class stays the garment's main colour).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pattern {
    /// One colour.
    Plain,
    /// Horizontal stripes: period (body heights) and the second colour's share.
    Stripes { period: f32, duty: f32 },
    /// Vertical stripes around the body: number of stripes around and the second colour's share.
    Pinstripes { count: f32, duty: f32 },
    /// Checks of the given period (body heights).
    Plaid { period: f32 },
    /// A print on the chest (`back == false`) or the back, of the given size (body heights).
    Print { back: bool, size: f32, round: bool },
    /// Shoulders and sleeves in the second colour (raglan / jacket yoke).
    Yoke,
}

/// A hat style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HatStyle {
    /// Baseball cap: crown and a forward brim.
    Cap,
    /// Knitted beanie: crown only, lower on the head.
    Beanie,
    /// Sun hat: crown and a wide brim all round.
    SunHat,
}

/// Identity traits beyond the 12 attributes. All of them are drawn for every person, in a fixed
/// order, whatever the attributes, so changing an attribute changes nothing else.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Traits {
    /// Positions of the garment shades inside their colour classes.
    pub up_shade: [f32; 3],
    pub down_shade: [f32; 3],
    /// Skin colour.
    pub skin: Rgb,
    /// Hair colour shade and style variant in `[0, 1)`.
    pub hair_shade: f32,
    pub hair_style: f32,
    /// Relative standing height within the age group.
    pub stature: f32,
    /// Girth, shoulder width, hip width and head size factors (around 1).
    pub girth: f32,
    pub shoulders: f32,
    pub hips: f32,
    pub head: f32,
    /// Legs' share of the body height.
    pub legs: f32,
    /// Upper-garment pattern and its second colour.
    pub pattern: Pattern,
    pub pattern_colour: Rgb,
    /// Sleeve length inside the sleeve class, `[0, 1)`.
    pub sleeve: f32,
    /// How far the top's hem falls below the waist, `[0, 1)`.
    pub hem: f32,
    /// Length of shorts / skirt inside the length class, and the trousers' width, `[0, 1)`.
    pub lower_length: f32,
    pub lower_width: f32,
    /// A stripe down the side of the trousers (track pants).
    pub side_stripe: bool,
    pub shoes: Rgb,
    pub backpack: Rgb,
    pub backpack_size: f32,
    pub bag: Rgb,
    /// `+1` for the person's right side, `-1` for the left.
    pub bag_side: f32,
    /// Strap across the body (to the other shoulder) or on the bag's own shoulder.
    pub bag_cross: bool,
    pub bag_size: f32,
    pub handbag: Rgb,
    pub handbag_side: f32,
    pub handbag_size: f32,
    pub hat: Rgb,
    pub hat_style: HatStyle,
    /// Stride and arm swing factors (around 1).
    pub stride: f32,
    pub arm_swing: f32,
}

/// A synthetic person: identity number, the 12 attributes and the traits that make them one
/// individual. Deterministic: the same `(seed, identity)` always gives the same person.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonAppearance {
    identity: u32,
    attributes: AttributeLabels,
    pub(crate) traits: Traits,
}

/// Stream tags, so attributes and traits come from independent random streams.
const ATTRIBUTE_STREAM: u64 = 0xa771;
const TRAIT_STREAM: u64 = 0x7a17;

impl PersonAppearance {
    /// Person number `identity` of the population drawn with `seed`: attributes with Market-1501's
    /// class balance (see [`ATTRIBUTES`]), traits at random.
    pub fn new(seed: u64, identity: u32) -> Self {
        let mut r = rng(&[seed, u64::from(identity), ATTRIBUTE_STREAM]);
        let attributes = sample_attributes(&mut r);
        Self {
            identity,
            attributes,
            traits: sample_traits(seed, identity),
        }
    }

    /// Person number `identity` of the population drawn with `seed`, but with the given attributes
    /// (class indices in [`ATTRIBUTES`] order). The traits are those of [`PersonAppearance::new`]
    /// with the same arguments, so two calls that differ in one attribute differ only in it.
    pub fn with_attributes(
        seed: u64,
        identity: u32,
        attributes: AttributeLabels,
    ) -> Result<Self, SynthError> {
        for (a, &class) in ATTRIBUTES.iter().zip(&attributes) {
            if usize::from(class) >= a.classes() {
                return Err(SynthError::AttributeClass {
                    attribute: a.name,
                    class,
                    classes: a.classes(),
                });
            }
        }
        Ok(Self {
            identity,
            attributes,
            traits: sample_traits(seed, identity),
        })
    }

    /// The identity number.
    pub fn identity(&self) -> u32 {
        self.identity
    }

    /// The 12 attribute class indices, in [`ATTRIBUTES`] order.
    pub fn attributes(&self) -> AttributeLabels {
        self.attributes
    }

    /// Standing height relative to an average adult (children are about two thirds of it), for
    /// scenes that place several people at one distance.
    pub fn stature(&self) -> f32 {
        let age = match self.attributes[attr::AGE] {
            attr::YOUNG => 0.66,
            1 => 0.97,
            attr::OLD => 0.96,
            _ => 1.0,
        };
        let gender = if self.is(attr::GENDER, attr::FEMALE) {
            0.95
        } else {
            1.0
        };
        age * gender * self.traits.stature
    }

    /// Whether attribute `index` has class `class`.
    pub(crate) fn is(&self, index: usize, class: u8) -> bool {
        self.attributes[index] == class
    }

    /// Whether a binary no/yes attribute (`backpack`, `bag`, `handbag`, `hat`) is yes.
    pub(crate) fn has(&self, index: usize) -> bool {
        self.attributes[index] == 1
    }
}

/// Class probabilities of `a`: the majority class takes its share, the rest follow `rest`.
fn shares<const N: usize>(a: &Attribute, rest: [f32; N]) -> [f32; N] {
    let others: f32 = rest
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != a.majority)
        .map(|(_, w)| w)
        .sum();
    let mut p = [0.0; N];
    for (i, w) in rest.iter().enumerate() {
        p[i] = if i == a.majority {
            a.majority_share
        } else {
            (1.0 - a.majority_share) * w / others
        };
    }
    p
}

/// Probability of the non-majority class of a binary attribute.
fn minority(a: &Attribute) -> f32 {
    1.0 - a.majority_share
}

/// `P(yes | female)` and `P(yes | male)` for an overall `P(yes) = p` when women are `ratio` times
/// likelier, given `P(female) = female`.
fn by_gender(p: f32, ratio: f32, female: f32) -> (f32, f32) {
    let male = p / (female * ratio + 1.0 - female);
    ((male * ratio).min(1.0), male)
}

fn categorical(r: &mut impl Rng, p: &[f32]) -> u8 {
    let mut u: f32 = r.random();
    for (i, pi) in p.iter().enumerate() {
        if u < *pi {
            return i as u8;
        }
        u -= pi;
    }
    (p.len() - 1) as u8
}

fn bernoulli(r: &mut impl Rng, p: f32) -> u8 {
    u8::from(r.random::<f32>() < p)
}

/// Draws the 12 attributes. Marginals follow [`ATTRIBUTES`] exactly (in expectation); gender
/// steers hair length, the skirt/dress and handbags, as on Market-1501.
fn sample_attributes(r: &mut impl Rng) -> AttributeLabels {
    let a = &ATTRIBUTES;
    let female = minority(&a[attr::GENDER]);
    let mut l = [0u8; NUM_ATTRIBUTES];
    l[attr::GENDER] = bernoulli(r, female);
    let is_female = l[attr::GENDER] == attr::FEMALE;
    let pick = |(f, m): (f32, f32)| if is_female { f } else { m };

    l[attr::AGE] = categorical(r, &shares(&a[attr::AGE], AGE_REST));
    l[attr::BACKPACK] = bernoulli(r, minority(&a[attr::BACKPACK]));
    l[attr::BAG] = bernoulli(r, minority(&a[attr::BAG]));
    let handbag = by_gender(minority(&a[attr::HANDBAG]), HANDBAG_FEMALE_RATIO, female);
    l[attr::HANDBAG] = bernoulli(r, pick(handbag));
    // Dresses and skirts only for women: P(dress | female) = P(dress) / P(female).
    let dress = minority(&a[attr::CLOTHES]) / female;
    l[attr::CLOTHES] = if is_female && r.random::<f32>() < dress {
        attr::DRESS
    } else {
        1 - attr::DRESS
    };
    l[attr::DOWN] = bernoulli(r, minority(&a[attr::DOWN]));
    // `up`: the majority class is short sleeves.
    l[attr::UP] = 1 - bernoulli(r, minority(&a[attr::UP]));
    let long_hair = by_gender(minority(&a[attr::HAIR]), LONG_HAIR_FEMALE_RATIO, female);
    l[attr::HAIR] = bernoulli(r, pick(long_hair));
    l[attr::HAT] = bernoulli(r, minority(&a[attr::HAT]));
    l[attr::UPCOLOR] = categorical(r, &shares(&a[attr::UPCOLOR], UPCOLOR_REST));
    l[attr::DOWNCOLOR] = categorical(r, &shares(&a[attr::DOWNCOLOR], DOWNCOLOR_REST));
    l
}

fn unit3(r: &mut impl Rng) -> [f32; 3] {
    [r.random(), r.random(), r.random()]
}

fn sample_pattern(r: &mut impl Rng) -> Pattern {
    let kind: f32 = r.random();
    let (a, b, c): (f32, f32, f32) = (r.random(), r.random(), r.random());
    match kind {
        k if k < 0.45 => Pattern::Plain,
        k if k < 0.6 => Pattern::Stripes {
            period: 0.03 + 0.03 * a,
            duty: 0.2 + 0.15 * b,
        },
        k if k < 0.66 => Pattern::Pinstripes {
            count: (6.0 + 8.0 * a).round(),
            duty: 0.15 + 0.15 * b,
        },
        k if k < 0.74 => Pattern::Plaid {
            period: 0.04 + 0.03 * a,
        },
        k if k < 0.9 => Pattern::Print {
            back: b < 0.25,
            size: 0.05 + 0.05 * a,
            round: c < 0.5,
        },
        _ => Pattern::Yoke,
    }
}

fn sample_traits(seed: u64, identity: u32) -> Traits {
    let mut r = rng(&[seed, u64::from(identity), TRAIT_STREAM]);
    let r = &mut r;
    let side = |r: &mut _| if bernoulli(r, 0.5) == 1 { 1.0 } else { -1.0 };
    let accessory = |r: &mut _| palette::accessory(Rng::random(r), unit3(r));
    Traits {
        up_shade: unit3(r),
        down_shade: unit3(r),
        skin: palette::skin(r.random::<f32>().powf(1.6)),
        hair_shade: r.random(),
        hair_style: r.random(),
        stature: r.random_range(0.94..1.06),
        girth: r.random_range(0.86..1.18),
        shoulders: r.random_range(0.92..1.1),
        hips: r.random_range(0.92..1.1),
        head: r.random_range(0.94..1.07),
        legs: r.random_range(0.46..0.51),
        pattern: sample_pattern(r),
        pattern_colour: if bernoulli(r, 0.5) == 1 {
            accessory(r)
        } else {
            palette::UP_SHADES[r.random_range(0..palette::UP_SHADES.len())].pick(unit3(r))
        },
        sleeve: r.random(),
        hem: r.random(),
        lower_length: r.random(),
        lower_width: r.random(),
        side_stripe: r.random::<f32>() < 0.1,
        shoes: accessory(r),
        backpack: accessory(r),
        backpack_size: r.random_range(0.85..1.2),
        bag: accessory(r),
        bag_side: side(r),
        bag_cross: bernoulli(r, 0.6) == 1,
        bag_size: r.random_range(0.8..1.25),
        handbag: accessory(r),
        handbag_side: side(r),
        handbag_size: r.random_range(0.8..1.3),
        hat: accessory(r),
        hat_style: match r.random::<f32>() {
            k if k < 0.6 => HatStyle::Cap,
            k if k < 0.85 => HatStyle::Beanie,
            _ => HatStyle::SunHat,
        },
        stride: r.random_range(0.8..1.15),
        arm_swing: r.random_range(0.6..1.2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_identity_give_the_same_person() {
        assert_eq!(PersonAppearance::new(7, 12), PersonAppearance::new(7, 12));
        assert_ne!(PersonAppearance::new(7, 12), PersonAppearance::new(7, 13));
        assert_ne!(PersonAppearance::new(7, 12), PersonAppearance::new(8, 12));
    }

    #[test]
    fn marginals_follow_market_class_balance() {
        let n = 2000;
        let people: Vec<_> = (0..n).map(|i| PersonAppearance::new(3, i)).collect();
        for (k, a) in ATTRIBUTES.iter().enumerate() {
            let mut counts = vec![0usize; a.classes()];
            for p in &people {
                counts[usize::from(p.attributes()[k])] += 1;
            }
            let share = counts[a.majority] as f32 / n as f32;
            // Binomial standard error at n = 2000 is at most 1.1 points: 3.5 points is > 3 sigma.
            assert!(
                (share - a.majority_share).abs() < 0.035,
                "{}: majority share {share} vs {}",
                a.name,
                a.majority_share
            );
            let max = counts.iter().max().copied().unwrap_or(0);
            assert_eq!(counts[a.majority], max, "{}: {counts:?}", a.name);
            assert!(
                counts.iter().all(|&c| c > 0),
                "{}: every class occurs {counts:?}",
                a.name
            );
        }
        // Dresses only on women; long hair mostly on women.
        let woman = |p: &PersonAppearance| p.is(attr::GENDER, attr::FEMALE);
        assert!(people
            .iter()
            .filter(|p| p.is(attr::CLOTHES, attr::DRESS))
            .all(woman));
        let long: Vec<_> = people.iter().filter(|p| p.is(attr::HAIR, 1)).collect();
        let long_women = long.iter().filter(|p| woman(p)).count() as f32 / long.len() as f32;
        assert!(long_women > 0.8, "{long_women}");
    }

    #[test]
    fn shares_sum_to_one_with_the_majority_share() {
        let p = shares(&ATTRIBUTES[attr::DOWNCOLOR], DOWNCOLOR_REST);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(p[0], 0.455);
        let (f, m) = by_gender(0.3, 4.0, 0.5);
        assert!((0.5 * f + 0.5 * m - 0.3).abs() < 1e-6 && (f / m - 4.0).abs() < 1e-5);
    }

    #[test]
    fn with_attributes_keeps_traits_and_checks_classes() {
        let base = PersonAppearance::new(5, 40);
        let mut labels = base.attributes();
        labels[attr::HAT] = 1 - labels[attr::HAT];
        let changed = PersonAppearance::with_attributes(5, 40, labels).unwrap();
        assert_eq!(changed.traits, base.traits);
        assert_eq!(changed.attributes(), labels);
        labels[attr::UPCOLOR] = 8;
        let err = PersonAppearance::with_attributes(5, 40, labels).unwrap_err();
        assert!(err.to_string().contains("upcolor"), "{err}");
    }
}
