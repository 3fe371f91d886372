//! A user's own person detector: an ONNX file in the Ultralytics YOLOv8 / YOLO11 export layout,
//! run on the CPU with tract.
//!
//! The layout is what `yolo export model=yolov8n.pt format=onnx opset=17 imgsz=640` writes. The
//! one input (`images`) is `[1, 3, H, W]` f32 RGB in `[0, 1]`, letterboxed: the frame resized
//! (bilinear) keeping its aspect ratio to fit, centred, the rest grey 114/255. The first output
//! (`output0`) is `[1, 4 + C, N]`: for each of the N candidates its box `cx, cy, w, h` in input
//! pixels, then its C class scores (probabilities already). Class 0 is person (COCO).
//!
//! [`YoloDetector::detect`] letterboxes the frame into the input tensor, runs the plan, keeps the
//! candidates whose person score reaches [`YoloConfig::conf`] and is their best class (what
//! Ultralytics' `predict classes=0` keeps), maps their boxes back to frame pixels, clips them to
//! the frame, drops empty ones and applies [`nms`].

use std::fmt::Display;
use std::path::{Path, PathBuf};

use image::RgbImage;
use tract_onnx::prelude::*;

use super::{nms, DetectError, Proposal};
use crate::onnx_file::{OnnxFile, ReadError};
use crate::preprocess::{PreprocessError, Preprocessor, Region};

/// The grey of the letterbox padding (Ultralytics' 114 of 255).
const PAD: f32 = 114.0 / 255.0;

/// Settings of a [`YoloDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloConfig {
    /// Lowest person score kept, in `[0, 1]` (default 0.25, Ultralytics' `predict` default).
    pub conf: f32,
    /// Largest IoU between two kept boxes, in `[0, 1]` (default 0.45, YOLOv5's; Ultralytics'
    /// `predict` uses 0.7, which keeps more overlapping people in crowds).
    pub iou: f32,
    /// Input height and width used where the graph leaves them dynamic (default 640; these
    /// networks want a multiple of 32).
    pub input_size: usize,
}

impl Default for YoloConfig {
    fn default() -> Self {
        YoloConfig {
            conf: 0.25,
            iou: 0.45,
            input_size: 640,
        }
    }
}

/// An ONNX person detector in the YOLOv8 / YOLO11 export layout, planned for one frame at a time.
#[derive(Debug)]
pub struct YoloDetector {
    path: PathBuf,
    cfg: YoloConfig,
    /// Input height.
    height: usize,
    /// Input width.
    width: usize,
    plan: Arc<TypedRunnableModel>,
    /// The resized frame before padding, `[3, h, w]`, reused across frames.
    scratch: Vec<f32>,
}

impl YoloDetector {
    /// Loads the detector at `path` and plans it for `[1, 3, H, W]` inputs.
    ///
    /// `H` and `W` are the graph's where it fixes them, else `cfg.input_size`. Refuses a file
    /// that cannot be read or is not ONNX, a graph with other than one f32 input `[1, 3, H, W]`,
    /// and a first output that is not f32 `[1, 4 + C, N]` with `C >= 1` and `4 + C <= N` (so a
    /// transposed `[1, N, 4 + C]` output, or an export with NMS inside such as `[1, 300, 6]`, is
    /// refused rather than misread). Graph outputs after the first are not computed.
    pub fn load(path: &Path, cfg: YoloConfig) -> Result<Self, DetectError> {
        check_config(&cfg)?;
        let file = OnnxFile::read(path).map_err(|e| match e {
            ReadError::Io(source) => DetectError::Io {
                path: path.to_path_buf(),
                source,
            },
            ReadError::NotOnnx(reason) => DetectError::NotOnnx {
                path: path.to_path_buf(),
                reason,
            },
        })?;
        let layout = |problem: String| DetectError::Layout {
            path: path.to_path_buf(),
            problem,
        };
        let prepare = |e: TractError| DetectError::Tract {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let (height, width) = input_size(&file, cfg.input_size).map_err(layout)?;

        let mut model = file.into_tract_model().map_err(prepare)?;
        model
            .set_input_fact(0, f32::fact([1, 3, height, width]).into())
            .map_err(prepare)?;
        let first = *model
            .output_outlets()
            .map_err(prepare)?
            .first()
            .ok_or_else(|| layout("the graph has no output".into()))?;
        model.select_output_outlets(&[first]).map_err(prepare)?;
        let typed = model.into_typed().map_err(prepare)?;
        let fact = typed.output_fact(0).map_err(prepare)?;
        match fact.shape.as_concrete() {
            Some(shape) if fact.datum_type == f32::datum_type() => {
                output_layout(shape).map_err(layout)?;
            }
            _ => {
                return Err(layout(format!(
                    "the first output is {:?} {}, expected F32 [1, 4 + classes, candidates]",
                    fact.datum_type,
                    dims(fact.shape.iter())
                )))
            }
        }
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(prepare)?;
        Ok(YoloDetector {
            path: path.to_path_buf(),
            cfg,
            height,
            width,
            plan,
            scratch: Vec::new(),
        })
    }

    /// The input height and width the detector was planned for.
    pub fn input_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The people in `frame`: boxes in frame pixels, clipped to the frame, best first, each with
    /// its person score.
    pub fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Proposal>, DetectError> {
        let path = &self.path;
        let tract = |e: TractError| DetectError::Tract {
            path: path.clone(),
            message: format!("{e:#}"),
        };
        let fit = Letterbox::fit(frame.width(), frame.height(), self.height, self.width);
        let mut input = Tensor::zero::<f32>(&[1, 3, self.height, self.width]).map_err(tract)?;
        {
            let mut plain = input.try_as_plain_ram_mut().map_err(tract)?;
            let slice = plain.as_slice_mut::<f32>().map_err(tract)?;
            fit.write(frame, &mut self.scratch, slice)?;
        }
        let outputs = self.plan.run(tvec!(input.into())).map_err(tract)?;
        let output = outputs
            .first()
            .ok_or_else(|| tract(TractError::msg("the plan returned no output")))?;
        let (rows, candidates) =
            output_layout(output.shape()).map_err(|problem| DetectError::Layout {
                path: path.clone(),
                problem,
            })?;
        let plain = output.try_as_plain_ram().map_err(tract)?;
        let table = plain.as_slice::<f32>().map_err(tract)?;
        Ok(decode(table, rows, candidates, &self.cfg, &fit))
    }
}

/// Refuses thresholds outside `[0, 1]` (or NaN) and an input size of 0.
fn check_config(cfg: &YoloConfig) -> Result<(), DetectError> {
    for (name, value) in [("conf", cfg.conf), ("iou", cfg.iou)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(DetectError::Config(format!(
                "{name} is {value}, must be in [0, 1]"
            )));
        }
    }
    if cfg.input_size == 0 {
        return Err(DetectError::Config("input size is 0".into()));
    }
    Ok(())
}

/// `[a, b, c]`.
fn dims<D: Display>(dims: impl IntoIterator<Item = D>) -> String {
    let dims: Vec<String> = dims.into_iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// The input height and width: the graph's where its one input fixes them, else `dynamic`.
/// Returns the problem when the graph's inputs are not one f32 `[1, 3, H, W]`.
fn input_size(file: &OnnxFile, dynamic: usize) -> Result<(usize, usize), String> {
    let input = file.sole_input()?;
    let Some(fixed) = input.dims else {
        return Ok((dynamic, dynamic));
    };
    let side = |d: Option<i64>| match d {
        None => Some(dynamic),
        Some(v) => usize::try_from(v).ok().filter(|&v| v > 0),
    };
    match fixed.as_slice() {
        [batch, channels, h, w]
            if matches!(batch, None | Some(1)) && matches!(channels, None | Some(3)) =>
        {
            if let (Some(h), Some(w)) = (side(*h), side(*w)) {
                return Ok((h, w));
            }
        }
        _ => {}
    }
    let shown = fixed
        .iter()
        .map(|d| d.map_or("?".to_string(), |v| v.to_string()));
    Err(format!(
        "input {:?} has shape {}, expected [1, 3, H, W] (RGB)",
        input.name,
        dims(shown)
    ))
}

/// Rows (`4 + classes`) and candidates of an output of shape `[1, 4 + C, N]`, or the problem.
fn output_layout(shape: &[usize]) -> Result<(usize, usize), String> {
    match *shape {
        [1, rows, candidates] if rows >= 5 && rows <= candidates => Ok((rows, candidates)),
        _ => Err(format!(
            "the first output has shape {}, expected [1, 4 + classes, candidates] with at least \
             one class and at least as many candidates as rows (the Ultralytics YOLOv8/YOLO11 layout; \
             [1, candidates, 4 + classes] is a transposed export, [1, 300, 6] one with NMS inside)",
            dims(shape)
        )),
    }
}

/// The people of a `[rows, candidates]` output table (see [`people`]) after [`nms`], best first.
pub(crate) fn decode(
    table: &[f32],
    rows: usize,
    candidates: usize,
    cfg: &YoloConfig,
    fit: &Letterbox,
) -> Vec<Proposal> {
    nms(people(table, rows, candidates, cfg.conf, fit), cfg.iou)
}

/// The candidates of a `[rows, candidates]` output table kept as people: person score (row 4) at
/// least `conf` and no lower than any other class's, box mapped back to the frame and not empty.
fn people(
    table: &[f32],
    rows: usize,
    candidates: usize,
    conf: f32,
    fit: &Letterbox,
) -> Vec<Proposal> {
    let row = |r: usize| &table[r * candidates..(r + 1) * candidates];
    let (cx, cy, w, h, person) = (row(0), row(1), row(2), row(3), row(4));
    (0..candidates)
        .filter(|&i| person[i] >= conf && (5..rows).all(|r| row(r)[i] <= person[i]))
        .filter_map(|i| {
            let region = fit.region(cx[i], cy[i], w[i], h[i])?;
            Some(Proposal {
                region,
                score: person[i],
            })
        })
        .collect()
}

/// Where a frame lands in the detector's input: resized to `width x height`, its top-left corner
/// at (`left`, `top`) of the `input_width x input_height` input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Letterbox {
    frame_width: u32,
    frame_height: u32,
    input_height: usize,
    input_width: usize,
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

impl Letterbox {
    /// Ultralytics' `LetterBox(auto=False)`: scale `min(input_h / h, input_w / w)`, resized sides
    /// `round(side * scale)` (Python's round, ties to even), the padding split evenly with the odd
    /// pixel at the bottom or right.
    pub(crate) fn fit(
        frame_width: u32,
        frame_height: u32,
        input_height: usize,
        input_width: usize,
    ) -> Self {
        let scale = (input_height as f64 / f64::from(frame_height))
            .min(input_width as f64 / f64::from(frame_width));
        let side =
            |s: u32, max: usize| ((f64::from(s) * scale).round_ties_even() as usize).clamp(1, max);
        let (width, height) = (
            side(frame_width, input_width),
            side(frame_height, input_height),
        );
        Letterbox {
            frame_width,
            frame_height,
            input_height,
            input_width,
            left: (input_width - width) / 2,
            top: (input_height - height) / 2,
            width,
            height,
        }
    }

    /// Writes `frame` letterboxed into `out` (`[3, input_height, input_width]`), resized with the
    /// project's bilinear resize (half-pixel centres, as OpenCV's `INTER_LINEAR`) through
    /// `scratch`.
    fn write(
        &self,
        frame: &RgbImage,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let resize = Preprocessor::new(self.height, self.width, [0.0; 3], [1.0; 3])?;
        scratch.resize(resize.slot_len(), 0.0);
        resize.resize_into(frame, Region::full(frame), scratch)?;
        out.fill(PAD);
        let rows = scratch.chunks_exact(self.width);
        for (i, src) in rows.enumerate() {
            let (c, y) = (i / self.height, i % self.height);
            let start = (c * self.input_height + self.top + y) * self.input_width + self.left;
            out[start..start + self.width].copy_from_slice(src);
        }
        Ok(())
    }

    /// The box `cx, cy, w, h` (input pixels) in frame pixels, clipped to the frame, edges
    /// rounded to the nearest pixel; `None` when nothing of it is left.
    fn region(&self, cx: f32, cy: f32, w: f32, h: f32) -> Option<Region> {
        let sx = self.frame_width as f32 / self.width as f32;
        let sy = self.frame_height as f32 / self.height as f32;
        let x = |v: f32| ((v - self.left as f32) * sx).clamp(0.0, self.frame_width as f32);
        let y = |v: f32| ((v - self.top as f32) * sy).clamp(0.0, self.frame_height as f32);
        let (x0, x1) = (x(cx - w / 2.0).round(), x(cx + w / 2.0).round());
        let (y0, y1) = (y(cy - h / 2.0).round(), y(cy + h / 2.0).round());
        (x1 > x0 && y1 > y0).then_some(Region {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0) as u32,
            height: (y1 - y0) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_test_graph::{float_tensor, model, node, value_info};
    use prost::Message;
    use tract_onnx::pb;
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;

    /// An opset-17 detector whose output `output0` is the constant `table` of shape `shape`
    /// plus `0 * ReduceMean(images)`, so that the graph uses its input.
    fn detector(input: &[Dim], shape: [usize; 3], table: Vec<f32>) -> Vec<u8> {
        let ints = |name: &str, ints: Vec<i64>| pb::AttributeProto {
            name: name.into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints,
            ..Default::default()
        };
        let keepdims = pb::AttributeProto {
            name: "keepdims".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        };
        let mean = node(
            "ReduceMean",
            &["images"],
            "mean",
            vec![ints("axes", vec![1, 2, 3]), keepdims],
        );
        let out_dims: Vec<Dim> = shape.iter().map(|&d| Dim::DimValue(d as i64)).collect();
        model(pb::GraphProto {
            name: "tiny-yolo".into(),
            node: vec![
                mean,
                node("Mul", &["mean", "zero"], "nothing", vec![]),
                node("Add", &["table", "nothing"], "output0", vec![]),
            ],
            initializer: vec![
                float_tensor("table", &shape, table),
                float_tensor("zero", &[], vec![0.0]),
            ],
            input: vec![value_info("images", input)],
            output: vec![value_info("output0", &out_dims)],
            ..Default::default()
        })
        .encode_to_vec()
    }

    /// `[1, 3, height, width]`.
    fn nchw(height: i64, width: i64) -> Vec<Dim> {
        [1, 3, height, width].map(Dim::DimValue).to_vec()
    }

    /// Candidates for a 32x32 input: `cx, cy, w, h` in input pixels, person score, class-1 score.
    const CANDIDATES: [[f32; 6]; 7] = [
        [10.0, 16.0, 8.0, 12.0, 0.9, 0.05], // A: a person
        [11.0, 16.0, 8.0, 12.0, 0.8, 0.1],  // B: A shifted by one pixel, which NMS drops
        [20.0, 16.0, 6.0, 10.0, 0.1, 0.0],  // C: below conf
        [24.0, 12.0, 6.0, 10.0, 0.4, 0.9],  // D: above conf, but class 1 is its best class
        [26.0, 26.0, 8.0, 8.0, 0.7, 0.2],   // E: crosses the bottom or right edge of the frame
        [16.0, 4.0, 8.0, 4.0, 0.95, 0.0],   // F: in the top padding of a landscape frame
        [0.0; 6],                           // an empty candidate
    ];

    /// The candidates as the `[6, N]` table the layout stores (row-major, one row per field).
    fn table(candidates: &[[f32; 6]]) -> Vec<f32> {
        (0..6)
            .flat_map(|row| candidates.iter().map(move |c| c[row]))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn person(x: u32, y: u32, width: u32, height: u32, score: f32) -> Proposal {
        Proposal {
            region: Region {
                x,
                y,
                width,
                height,
            },
            score,
        }
    }

    #[test]
    fn boxes_come_back_in_frame_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = detector(&nchw(32, 32), [1, 6, 7], table(&CANDIDATES));
        let path = write(&dir, "tiny.onnx", &bytes);
        let mut yolo = YoloDetector::load(&path, YoloConfig::default()).unwrap();
        assert_eq!(yolo.input_size(), (32, 32));

        // 64x32 into 32x32: scale 0.5, resized to 32x16, 8 rows of padding on top.
        // Frame x = 2 x, frame y = 2 (y - 8). A: x 6..14, y 10..22 -> x 12..28, y 4..28.
        // E: x 22..30, y 22..30 -> x 44..60, y 28..44, clipped to 32. F: y 2..6 -> -12..-4, empty.
        let landscape = RgbImage::new(64, 32);
        assert_eq!(
            yolo.detect(&landscape).unwrap(),
            [person(12, 4, 16, 24, 0.9), person(44, 28, 16, 4, 0.7)]
        );
        // 40x80: scale 0.4, resized to 16x32, 8 columns of padding on the left.
        // Frame x = 2.5 (x - 8), frame y = 2.5 y. F: x 12..20, y 2..6 -> x 10..30, y 5..15.
        // A: x 6..14 -> -5..15, clipped to 0; y 25..55. E: x 35..55 clipped to 40, y 55..75.
        let portrait = RgbImage::new(40, 80);
        assert_eq!(
            yolo.detect(&portrait).unwrap(),
            [
                person(10, 5, 20, 10, 0.95),
                person(0, 25, 15, 30, 0.9),
                person(35, 55, 5, 20, 0.7)
            ]
        );

        // Thresholds: a lower conf keeps C (x 17..23, y 11..21 -> 34..46, 6..26), a higher IoU
        // keeps B (IoU 14/18 with A); D stays out (a person score below its class-1 score).
        let cfg = YoloConfig {
            conf: 0.05,
            iou: 0.8,
            ..YoloConfig::default()
        };
        let mut loose = YoloDetector::load(&path, cfg).unwrap();
        assert_eq!(
            loose.detect(&landscape).unwrap(),
            [
                person(12, 4, 16, 24, 0.9),
                person(14, 4, 16, 24, 0.8),
                person(44, 28, 16, 4, 0.7),
                person(34, 6, 12, 20, 0.1)
            ]
        );
    }

    #[test]
    fn dynamic_input_takes_the_configured_size() {
        let dir = tempfile::tempdir().unwrap();
        let input = [
            Dim::DimParam("batch".into()),
            Dim::DimValue(3),
            Dim::DimParam("height".into()),
            Dim::DimParam("width".into()),
        ];
        let bytes = detector(&input, [1, 6, 7], table(&CANDIDATES));
        let cfg = YoloConfig {
            input_size: 64,
            ..YoloConfig::default()
        };
        let mut yolo = YoloDetector::load(&write(&dir, "dynamic.onnx", &bytes), cfg).unwrap();
        assert_eq!(yolo.input_size(), (64, 64));
        // 64x32 into 64x64: scale 1, 16 rows of padding on top: frame y = y - 16.
        // A: y 10..22 -> 0..6; E: x 22..30, y 6..14; F: y 2..6, in the padding.
        assert_eq!(
            yolo.detect(&RgbImage::new(64, 32)).unwrap(),
            [person(6, 0, 8, 6, 0.9), person(22, 6, 8, 8, 0.7)]
        );
    }

    /// Loads `bytes` as `name` and returns the error, checking that its message names the file.
    fn refusal(name: &str, bytes: &[u8]) -> (DetectError, String) {
        let dir = tempfile::tempdir().unwrap();
        let err = YoloDetector::load(&write(&dir, name, bytes), YoloConfig::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(name), "{msg}");
        (err, msg)
    }

    #[test]
    fn refuses_other_layouts_and_files() {
        let layout = |name: &str, bytes: Vec<u8>, shape: &str| {
            let (err, msg) = refusal(name, &bytes);
            assert!(matches!(err, DetectError::Layout { .. }), "{err:?}");
            assert!(msg.contains(shape), "{msg:?} does not name {shape}");
        };
        // Transposed ([1, N, 4 + C]) and NMS-included exports, and no class at all.
        let zeros = |n| vec![0.0; n];
        layout(
            "transposed.onnx",
            detector(&nchw(32, 32), [1, 8, 6], zeros(48)),
            "[1, 8, 6]",
        );
        layout(
            "no-class.onnx",
            detector(&nchw(32, 32), [1, 4, 10], zeros(40)),
            "[1, 4, 10]",
        );
        let mut grey = nchw(32, 32);
        grey[1] = Dim::DimValue(1);
        layout(
            "grey.onnx",
            detector(&grey, [1, 6, 7], table(&CANDIDATES)),
            "[1, 1, 32, 32]",
        );

        let (err, _) = refusal("text.onnx", b"not an ONNX file\n");
        assert!(matches!(err, DetectError::NotOnnx { .. }), "{err:?}");
        let missing = Path::new("/nonexistent/yolo.onnx");
        let err = YoloDetector::load(missing, YoloConfig::default()).unwrap_err();
        assert!(matches!(err, DetectError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/yolo.onnx"));

        for cfg in [
            YoloConfig {
                conf: 1.5,
                ..YoloConfig::default()
            },
            YoloConfig {
                iou: f32::NAN,
                ..YoloConfig::default()
            },
            YoloConfig {
                input_size: 0,
                ..YoloConfig::default()
            },
        ] {
            let err = YoloDetector::load(missing, cfg).unwrap_err();
            assert!(matches!(err, DetectError::Config(_)), "{err:?}");
        }
    }

    #[test]
    fn empty_frames_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = detector(&nchw(32, 32), [1, 6, 7], table(&CANDIDATES));
        let path = write(&dir, "tiny.onnx", &bytes);
        let mut yolo = YoloDetector::load(&path, YoloConfig::default()).unwrap();
        for (w, h) in [(0, 0), (0, 8), (8, 0)] {
            let err = yolo.detect(&RgbImage::new(w, h)).unwrap_err();
            assert!(matches!(err, DetectError::Frame(_)), "{w}x{h}: {err:?}");
        }
    }

    /// The test frame of `src/preprocess.rs`, `width x height`.
    fn test_frame(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb(std::array::from_fn(|c| {
                ((x * 37 + y * 91 + c as u32 * 53 + x * y * 13) % 256) as u8
            }))
        })
    }

    /// Letterboxes a `width x height` test frame into `input_height x input_width`.
    fn letterboxed(width: u32, height: u32, input_height: usize, input_width: usize) -> Vec<f32> {
        let fit = Letterbox::fit(width, height, input_height, input_width);
        let mut out = vec![f32::NAN; 3 * input_height * input_width];
        fit.write(&test_frame(width, height), &mut Vec::new(), &mut out)
            .unwrap();
        out
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-5, "element {i}: got {g}, torch {w}");
        }
    }

    // Expected values from PyTorch 2.x (python3, torch), Ultralytics' LetterBox with OpenCV's
    // INTER_LINEAR resize replaced by the same bilinear resize in float:
    //
    // import torch, torch.nn.functional as F
    // def frame(W, H):
    //     return torch.tensor([[[(x * 37 + y * 91 + c * 53 + x * y * 13) % 256 for x in range(W)]
    //                           for y in range(H)] for c in range(3)], dtype=torch.float32)
    // def letterbox(W, H, ih, iw):
    //     r = min(ih / H, iw / W)
    //     nw, nh = int(round(W * r)), int(round(H * r))
    //     top, left = (ih - nh) // 2, (iw - nw) // 2
    //     out = torch.full((3, ih, iw), 114 / 255)
    //     out[:, top:top + nh, left:left + nw] = F.interpolate(
    //         frame(W, H)[None], size=(nh, nw), mode='bilinear', align_corners=False,
    //         antialias=False)[0] / 255
    //     print((left, top, nw, nh), "[" + ", ".join(f"{v:.6}" for v in out.flatten().tolist()) + "]")
    // letterbox(7, 9, 4, 6); letterbox(3, 2, 5, 5)
    #[test]
    fn letterbox_matches_torch() {
        let fit = Letterbox::fit(7, 9, 4, 6);
        assert_eq!(
            (fit.left, fit.top, fit.width, fit.height),
            (1, 0, 3, 4),
            "{fit:?}"
        );
        let p = PAD;
        #[rustfmt::skip]
        let want = [
            p, 0.341013, 0.753922, 0.539379, p, p, p, 0.341993, 0.897059, 0.657353, p, p,
            p, 0.384804, 0.914706, 0.566177, p, p, p, 0.720425, 0.806863, 0.68415, p, p,
            p, 0.548856, 0.334314, 0.621732, p, p, p, 0.466176, 0.226471, 0.488726, p, p,
            p, 0.592647, 0.244118, 0.73219, p, p, p, 0.384477, 0.387255, 0.473693, p, p,
            p, 0.756699, 0.542157, 0.578595, p, p, p, 0.63219, 0.434314, 0.696569, p, p,
            p, 0.50768, 0.451961, 0.354412, p, p, p, 0.59232, 0.595098, 0.430555, p, p,
        ];
        assert_close(&letterboxed(7, 9, 4, 6), &want);

        let fit = Letterbox::fit(3, 2, 5, 5);
        assert_eq!((fit.left, fit.top, fit.width, fit.height), (0, 1, 5, 3));
        #[rustfmt::skip]
        let want = [
            p, p, p, p, p,
            0.0, 0.0580392, 0.145098, 0.232157, 0.290196,
            0.178431, 0.246667, 0.34902, 0.451373, 0.519608,
            0.356863, 0.435294, 0.552941, 0.670588, 0.74902,
            p, p, p, p, p,
            p, p, p, p, p,
            0.207843, 0.265882, 0.352941, 0.44, 0.498039,
            0.386275, 0.45451, 0.556863, 0.659216, 0.727451,
            0.564706, 0.643137, 0.760784, 0.878431, 0.956863,
            p, p, p, p, p,
            p, p, p, p, p,
            0.415686, 0.473725, 0.560784, 0.647843, 0.705882,
            0.594118, 0.662353, 0.764706, 0.565882, 0.433333,
            0.772549, 0.85098, 0.968627, 0.483921, 0.160784,
            p, p, p, p, p,
        ];
        assert_close(&letterboxed(3, 2, 5, 5), &want);
    }

    #[test]
    fn letterbox_sides_round_as_ultralytics() {
        // 768x576 into 640x640 (vtest.avi): scale 5/6, 640x480, 80 rows of padding on top.
        let fit = Letterbox::fit(768, 576, 640, 640);
        assert_eq!(
            (fit.left, fit.top, fit.width, fit.height),
            (0, 80, 640, 480)
        );
        // 5 x 0.5 = 2.5 rounds to 2 (ties to even, Python's round); the odd padding pixel
        // goes to the right.
        let fit = Letterbox::fit(5, 10, 5, 5);
        assert_eq!((fit.left, fit.top, fit.width, fit.height), (1, 0, 2, 5));
        // A frame 1000 times wider than high keeps one row.
        assert_eq!(Letterbox::fit(32000, 32, 32, 32).height, 1);
    }
}
