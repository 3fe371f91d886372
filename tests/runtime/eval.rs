//! `edge-reid eval` end to end on a tiny Market-1501 layout folder rendered here with the synthetic
//! renderer: the printed tables are parsed and checked against numbers this test computes itself
//! from `edge-reid embed`'s JSON Lines (nearest gallery image per query, predicted labels against
//! the annotations), plus the errors a user meets (missing folders, a malformed annotation file).

use super::{edge_reid, model, text};
use std::collections::BTreeMap;
use std::path::Path;

use edge_reid::attributes::{AttributeLabels, ATTRIBUTES};
use edge_reid::dataset::market::{csv_row, CSV_HEADER};
use edge_reid::dataset::synth::{
    render_crop, render_distractor, render_junk, Camera, PersonAppearance,
};

const SEED: u64 = 11;
/// Test identities: (identity, cameras of its gallery images, camera of its query). Identity 9
/// has no match from another camera (its query is skipped); identity 4 is not annotated.
const PEOPLE: [(u32, &[u8], u8); 6] = [
    (1, &[2, 3], 1),
    (2, &[1, 3], 2),
    (3, &[1, 2, 4], 3),
    (4, &[2, 5], 4),
    (5, &[4, 6, 1], 5),
    (9, &[6], 6),
];
/// Identities whose first gallery image is a copy of their query's pixels (filed under another
/// camera): their rank-1 is a sure hit, so rank-1 is not 0 whatever the model.
const COPIED: [u32; 2] = [1, 3];

fn save(dir: &Path, name: String, image: image::RgbImage) {
    image.save(dir.join(name)).unwrap();
}

/// Writes the folder: query/ and bounding_box_test/ (with one distractor and two junk images) and
/// annotations_test.csv for every identity but 4. Returns the annotated labels.
fn write_market(root: &Path) -> BTreeMap<i32, AttributeLabels> {
    let (query, test) = (root.join("query"), root.join("bounding_box_test"));
    std::fs::create_dir_all(&query).unwrap();
    std::fs::create_dir_all(&test).unwrap();
    let camera = |c| Camera::market(c).unwrap();
    let mut labels = BTreeMap::new();
    let mut frame = 0u32;
    let mut name = |id: &str, camera: u8| {
        frame += 1;
        format!("{id}_c{camera}s1_{frame:06}_01.jpg")
    };
    for (identity, gallery, query_camera) in PEOPLE {
        let person = PersonAppearance::new(SEED, identity);
        let id = format!("{identity:04}");
        let crop = |c: u8, seed: u64| render_crop(&person, &camera(c), seed, 64, 128).unwrap();
        let query_seed = u64::from(identity) * 100;
        save(
            &query,
            name(&id, query_camera),
            crop(query_camera, query_seed),
        );
        for (k, &c) in gallery.iter().enumerate() {
            let image = if k == 0 && COPIED.contains(&identity) {
                crop(query_camera, query_seed)
            } else {
                crop(c, query_seed + 1 + k as u64)
            };
            save(&test, name(&id, c), image);
        }
        if identity != 4 {
            labels.insert(identity as i32, person.attributes());
        }
    }
    let stranger = PersonAppearance::new(SEED, 77);
    let distractor = render_distractor(&stranger, &camera(2), 7, 64, 128).unwrap();
    save(&test, name("0000", 2), distractor);
    for c in [1, 3] {
        save(
            &test,
            name("-1", c),
            render_junk(&camera(c), 8, 64, 128).unwrap(),
        );
    }
    let mut csv = format!("{CSV_HEADER}\n");
    for (id, l) in &labels {
        let values: Vec<String> = csv_row(l).iter().map(u8::to_string).collect();
        csv += &format!("{id},{}\n", values.join(","));
    }
    std::fs::write(root.join("annotations_test.csv"), csv).unwrap();
    labels
}

/// The numbers of a printed report: Table 1 rows (name -> MFC, acc, balanced), Table 2 (valid
/// queries, mAP, rank-1, rank-5, rank-10) and the person-vs-junk accuracy, all in percent.
#[derive(Debug, PartialEq)]
struct Tables {
    attributes: BTreeMap<String, [f64; 3]>,
    valid_queries: usize,
    ranking: [f64; 4],
    person: Option<f64>,
}

fn numbers(line: &str) -> Vec<f64> {
    line.split_whitespace()
        .filter_map(|w| w.trim_end_matches('%').parse().ok())
        .collect()
}

fn parse(report: &str) -> Tables {
    let lines: Vec<&str> = report.lines().collect();
    let mut attributes = BTreeMap::new();
    if let Some(t1) = lines.iter().position(|l| l.starts_with("Table 1:")) {
        assert!(lines[t1 + 1].starts_with("attribute"), "{report}");
        for line in &lines[t1 + 2..t1 + 15] {
            let name = line.split_whitespace().next().unwrap().to_string();
            let v = numbers(line);
            assert_eq!(v.len(), 3, "{line}");
            attributes.insert(name, [v[0], v[1], v[2]]);
        }
    }
    let t2 = lines
        .iter()
        .position(|l| l.starts_with("Table 2:"))
        .unwrap_or_else(|| panic!("no Table 2 in {report}"));
    let valid_queries = numbers(&lines[t2].replace('(', " "))[0] as usize;
    let v = numbers(lines[t2 + 2]);
    let person = lines
        .iter()
        .find(|l| l.starts_with("person-vs-junk accuracy:"))
        .map(|l| numbers(l)[0]);
    Tables {
        attributes,
        valid_queries,
        ranking: [v[0], v[1], v[2], v[3]],
        person,
    }
}

/// What `edge-reid embed` says about one image.
struct Embedded {
    embedding: Vec<f32>,
    labels: AttributeLabels,
    person_score: f64,
}

fn embed(root: &Path) -> BTreeMap<String, Embedded> {
    let out = root.join("embeddings.jsonl");
    let query = root.join("query");
    let test = root.join("bounding_box_test");
    let o = edge_reid(
        root,
        &[
            "embed",
            "--out",
            out.to_str().unwrap(),
            query.to_str().unwrap(),
            test.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let name = Path::new(v["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let embedding = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let mut labels = [0u8; 12];
            for (l, a) in labels.iter_mut().zip(&ATTRIBUTES) {
                let label = v["attributes"][a.name]["label"].as_str().unwrap();
                *l = a.labels.iter().position(|x| *x == label).unwrap() as u8;
            }
            let person_score = v["person_score"].as_f64().unwrap();
            let e = Embedded {
                embedding,
                labels,
                person_score,
            };
            (name, e)
        })
        .collect()
}

/// Identity and camera of a Market file name.
fn id_camera(name: &str) -> (i32, u8) {
    let mut parts = name.split('_');
    let id = parts.next().unwrap().parse().unwrap();
    let camera = parts.next().unwrap().as_bytes()[1] - b'0';
    (id, camera)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn percent(hits: usize, of: usize) -> f64 {
    (10_000.0 * hits as f64 / of as f64).round() / 100.0
}

#[test]
fn eval_prints_tables_that_agree_with_the_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let truth = write_market(root);
    let card = edge_reid::model::Model::load(model(), 1)
        .unwrap()
        .card()
        .clone();
    assert_eq!(
        card.embedding.unwrap().metric,
        edge_reid::distance::DistanceMetric::Euclidean
    );

    let out = edge_reid(root, &["eval", "--data", root.to_str().unwrap(), "--junk"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let tables = parse(&report);
    assert!(
        report.contains("6 queries, 14 gallery images (1 distractors), 2 junk images"),
        "{report}"
    );
    // 5 annotated identities, 1 query + their gallery images each: 3 + 3 + 4 + 4 + 2.
    assert!(
        report.contains("attributes: 16 annotated person images"),
        "{report}"
    );
    assert!(report.contains("Market-1501's commonest class"), "{report}");

    let e = embed(root);
    assert_eq!(e.len(), 6 + 14 + 2);
    let names = |prefix: &str| -> Vec<&String> {
        e.keys()
            .filter(|n| std::fs::metadata(root.join(prefix).join(n)).is_ok())
            .collect()
    };
    let queries = names("query");
    let gallery: Vec<&String> = names("bounding_box_test")
        .into_iter()
        .filter(|n| id_camera(n).0 != -1)
        .collect();
    assert_eq!((queries.len(), gallery.len()), (6, 14));

    // Rank-1: the nearest gallery image not of the query's identity and camera; mAP: the mean
    // over valid queries of the precision at each true match down that ranking.
    let (mut valid, mut hits, mut ap_sum) = (0, 0, 0.0);
    for q in &queries {
        let (id, camera) = id_camera(q);
        let candidates: Vec<&&String> = gallery
            .iter()
            .filter(|g| id_camera(g) != (id, camera))
            .collect();
        if !candidates.iter().any(|g| id_camera(g).0 == id) {
            continue;
        }
        valid += 1;
        let mut ranked = candidates.clone();
        let d = |g: &str| distance(&e[*q].embedding, &e[g].embedding);
        ranked.sort_by(|a, b| d(a).total_cmp(&d(b)));
        hits += usize::from(id_camera(ranked[0]).0 == id);
        let matches: Vec<usize> = (0..ranked.len())
            .filter(|&r| id_camera(ranked[r]).0 == id)
            .collect();
        let precisions = matches
            .iter()
            .enumerate()
            .map(|(i, &r)| (i + 1) as f64 / (r + 1) as f64);
        ap_sum += precisions.sum::<f64>() / matches.len() as f64;
    }
    assert_eq!(tables.valid_queries, valid);
    assert_eq!(valid, 5);
    assert!(hits >= COPIED.len(), "{report}");
    assert_eq!(tables.ranking[1], percent(hits, valid), "{report}");
    let map = (10_000.0 * ap_sum / valid as f64).round() / 100.0;
    assert_eq!(tables.ranking[0], map, "{report}");

    // Table 1: accuracy of embed's labels, and the Market-share baseline, over annotated persons.
    let annotated: Vec<(&Embedded, &AttributeLabels)> = queries
        .iter()
        .chain(&gallery)
        .filter_map(|n| truth.get(&id_camera(n).0).map(|t| (&e[*n], t)))
        .collect();
    assert_eq!(annotated.len(), 16);
    for (a, attribute) in ATTRIBUTES.iter().enumerate() {
        let [mfc, acc, _] = tables.attributes[attribute.name];
        let right = annotated
            .iter()
            .filter(|(p, t)| p.labels[a] == t[a])
            .count();
        assert_eq!(acc, percent(right, 16), "{}: {report}", attribute.name);
        let majority = annotated
            .iter()
            .filter(|(_, t)| usize::from(t[a]) == attribute.majority)
            .count();
        assert_eq!(mfc, percent(majority, 16), "{}: {report}", attribute.name);
    }

    // Person-vs-junk: every image, persons should score above 0.5, the rest below.
    let right = e
        .iter()
        .filter(|(n, x)| (x.person_score > 0.5) == (id_camera(n).0 > 0))
        .count();
    assert_eq!(tables.person, Some(percent(right, e.len())), "{report}");

    // Without annotations: Table 2 only, the same numbers, and a note saying why.
    std::fs::remove_file(root.join("annotations_test.csv")).unwrap();
    let out = edge_reid(
        root,
        &["eval", "--data", root.to_str().unwrap(), "--batch", "4"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bare = text(&out.stdout);
    assert!(
        bare.contains("attributes skipped: no annotation file found"),
        "{bare}"
    );
    let without = parse(&bare);
    assert!(
        without.attributes.is_empty() && without.person.is_none(),
        "{bare}"
    );
    assert_eq!(
        (without.valid_queries, without.ranking),
        (tables.valid_queries, tables.ranking)
    );
}

#[test]
fn eval_errors_name_the_missing_folder_or_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = || edge_reid(root, &["eval", "--data", root.to_str().unwrap()]);

    let out = run();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("query is missing"),
        "{}",
        text(&out.stderr)
    );

    write_market(root);
    std::fs::remove_dir_all(root.join("bounding_box_test")).unwrap();
    let err = text(&run().stderr);
    assert!(err.contains("bounding_box_test is missing"), "{err}");

    write_market(root);
    let csv = root.join("annotations_test.csv");
    let mut text_csv = std::fs::read_to_string(&csv).unwrap();
    text_csv = text_csv.replacen("\n1,", "\n1,7,", 1);
    std::fs::write(&csv, text_csv).unwrap();
    let out = run();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("annotations_test.csv:2: 29 columns, expected 28"),
        "{err}"
    );
}
