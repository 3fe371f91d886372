//! Attribute annotations per identity, from Lin et al.'s `market_attribute.mat` or the CSV form.
//!
//! Both files give 27 columns per identity with values 1/2 (age 1-4). They become class indices in
//! [`ATTRIBUTES`] order: value 1 is class 0, value 2 class 1, age 1-4 classes 0-3, and for the
//! colours the one column of the group set to 2 gives the class, in [`crate::attributes::UP_COLORS`]
//! / [`crate::attributes::DOWN_COLORS`] order.
//!
//! Real files are messier: in the course's CSV some identities set no colour column of a group
//! (multicolour clothing) and a few set two; some tools add the columns `upmulticolor` and
//! `downmulticolor` (30 columns, [`CSV_HEADER_MULTICOLOR`]). A group with no colour set, several,
//! or its multicolour column set to 2 is [`UNLABELLED`]: the loss and the metrics skip it, and
//! [`csv_row`] writes it back as the course does, every colour column 1.

use std::collections::BTreeMap;
use std::path::Path;

use crate::attributes::{AttributeLabels, ATTRIBUTES, NUM_ATTRIBUTES, UNLABELLED};

use super::mat::{MatFile, MatValue};
use super::{MarketError, Record, MAT_FILE, TEST_CSV, TRAIN_CSV};

/// The exact header of `annotations_train.csv` / `annotations_test.csv` (`id` is the identity).
pub const CSV_HEADER: &str = "id,age,backpack,bag,handbag,clothes,down,up,hair,hat,gender,upblack,upwhite,upred,uppurple,upyellow,upgray,upblue,upgreen,downblack,downwhite,downpink,downpurple,downyellow,downgray,downblue,downgreen,downbrown";

/// [`CSV_HEADER`] with the two multicolour columns some tools add (30 columns).
pub const CSV_HEADER_MULTICOLOR: &str = "id,age,backpack,bag,handbag,clothes,down,up,hair,hat,gender,upblack,upwhite,upred,uppurple,upyellow,upgray,upblue,upgreen,downblack,downwhite,downpink,downpurple,downyellow,downgray,downblue,downgreen,downbrown,upmulticolor,downmulticolor";

/// Attribute labels per identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeTable {
    labels: BTreeMap<i32, AttributeLabels>,
}

impl AttributeTable {
    /// Reads the annotations of a dataset root: `market_attribute.mat` if present, else whichever
    /// of `annotations_train.csv` and `annotations_test.csv` exist; none of them is an error.
    pub fn open(root: &Path) -> Result<Self, MarketError> {
        let mat = root.join(MAT_FILE);
        if mat.is_file() {
            return Self::from_mat(&mat);
        }
        let csvs: Vec<_> = [TRAIN_CSV, TEST_CSV]
            .iter()
            .map(|name| root.join(name))
            .filter(|path| path.is_file())
            .collect();
        if csvs.is_empty() {
            return Err(MarketError::NoAnnotations {
                root: root.to_path_buf(),
            });
        }
        let mut table = Self::default();
        for csv in &csvs {
            table.add_csv(csv)?;
        }
        Ok(table)
    }

    /// Reads one annotation CSV with header [`CSV_HEADER`] or [`CSV_HEADER_MULTICOLOR`].
    pub fn from_csv(path: &Path) -> Result<Self, MarketError> {
        let mut table = Self::default();
        table.add_csv(path)?;
        Ok(table)
    }

    /// Reads Lin et al.'s `market_attribute.mat`: struct `market_attribute` with 1x1 structs
    /// `train` (required) and `test` (optional), each holding the 27 attribute arrays (1 x n) and
    /// `image_index` (1 x n cell of identity strings). Identities may come in any order.
    pub fn from_mat(path: &Path) -> Result<Self, MarketError> {
        let mat = MatFile::open(path)?;
        let content = |field: &str, reason: String| MarketError::MatContent {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        let root = mat
            .variable("market_attribute")
            .ok_or_else(|| content("market_attribute", "no such variable".into()))?;
        let mut table = Self::default();
        for (split, required) in [("train", true), ("test", false)] {
            let field = format!("market_attribute.{split}");
            match root.field(split) {
                Some(part) => table.add_mat_split(part, &field, &content)?,
                None if required => {
                    let reason = format!("missing (market_attribute is {})", root.describe());
                    return Err(content(&field, reason));
                }
                None => {}
            }
        }
        Ok(table)
    }

    /// Labels of `identity`.
    pub fn get(&self, identity: i32) -> Option<&AttributeLabels> {
        self.labels.get(&identity)
    }

    /// Labels of `record`'s identity, or an error naming the record's file.
    pub fn labels_for(&self, record: &Record) -> Result<AttributeLabels, MarketError> {
        self.get(record.identity)
            .copied()
            .ok_or_else(|| MarketError::MissingAttributes {
                path: record.path.clone(),
                identity: record.identity,
            })
    }

    /// Number of annotated identities.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no identity is annotated.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Identities and labels in ascending identity order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &AttributeLabels)> {
        self.labels.iter().map(|(id, labels)| (*id, labels))
    }

    fn add_csv(&mut self, path: &Path) -> Result<(), MarketError> {
        let text = std::fs::read_to_string(path).map_err(|source| MarketError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let error = |line: usize, reason: String| MarketError::Csv {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let header = lines.next().map(|(_, h)| h.trim_start_matches('\u{feff}'));
        let columns: Vec<&str> = match header {
            Some(h) if h == CSV_HEADER || h == CSV_HEADER_MULTICOLOR => h.split(',').collect(),
            _ => {
                let reason = format!(
                    "the header must be exactly {CSV_HEADER} (optionally followed by \
                     ,upmulticolor,downmulticolor)"
                );
                return Err(error(1, reason));
            }
        };
        for (line, row) in lines.filter(|(_, row)| !row.is_empty()) {
            let fields: Vec<&str> = row.split(',').map(str::trim).collect();
            if fields.len() != columns.len() {
                let reason = format!("{} columns, expected {}", fields.len(), columns.len());
                return Err(error(line, reason));
            }
            let values = fields
                .iter()
                .zip(&columns)
                .map(|(text, column)| {
                    text.parse::<i64>()
                        .map_err(|_| format!("{column} = {text:?} is not an integer"))
                })
                .collect::<Result<Vec<i64>, String>>()
                .map_err(|reason| error(line, reason))?;
            let identity = i32::try_from(values[0])
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| error(line, format!("id {} is not an identity", values[0])))?;
            let labels = labels_from(|name| {
                let column = columns.iter().position(|c| *c == name)?;
                Some(values[column])
            })
            .map_err(|reason| error(line, reason))?;
            if self.labels.insert(identity, labels).is_some() {
                return Err(error(
                    line,
                    format!("identity {identity} is annotated twice"),
                ));
            }
        }
        Ok(())
    }

    fn add_mat_split(
        &mut self,
        part: &MatValue,
        field: &str,
        content: &impl Fn(&str, String) -> MarketError,
    ) -> Result<(), MarketError> {
        let index_field = format!("{field}.image_index");
        let identities: Vec<i32> = match part.field("image_index") {
            Some(MatValue::Cell { items, .. }) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let text = item.as_text().unwrap_or_default();
                    text.trim().parse::<i32>().map_err(|_| {
                        let reason = format!("{} is not an identity", item.describe());
                        content(&format!("{index_field}{{{}}}", i + 1), reason)
                    })
                })
                .collect::<Result<_, _>>()?,
            other => {
                let found = other.map_or("nothing".to_string(), MatValue::describe);
                let reason = format!("expected a 1 x n cell of identity strings, found {found}");
                return Err(content(&index_field, reason));
            }
        };
        let mut columns = BTreeMap::new();
        for name in file_columns() {
            let column_field = format!("{field}.{name}");
            let values = match part.field(&name) {
                Some(MatValue::Numeric { data, .. }) if data.len() == identities.len() => data,
                other => {
                    let found = other.map_or("nothing".to_string(), MatValue::describe);
                    let reason = format!(
                        "expected {} numbers (one per image_index entry), found {found}",
                        identities.len()
                    );
                    return Err(content(&column_field, reason));
                }
            };
            let values = values
                .iter()
                .map(|v| (v.fract() == 0.0).then_some(*v as i64))
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| content(&column_field, "holds a non-integer value".into()))?;
            columns.insert(name, values);
        }
        for (j, identity) in identities.iter().enumerate() {
            let labels = labels_from(|name| columns.get(name).map(|values| values[j]))
                .map_err(|reason| content(field, format!("identity {identity}: {reason}")))?;
            if self.labels.insert(*identity, labels).is_some() {
                let reason = format!("identity {identity} is annotated twice");
                return Err(content(&index_field, reason));
            }
        }
        Ok(())
    }
}

/// The colour-column prefix of a colour attribute (`upcolor` -> `up`), `None` for the others.
fn colour_prefix(attribute_name: &str) -> Option<&str> {
    attribute_name.strip_suffix("color")
}

/// The 27 file columns, named as in both files (`age`, ..., `upblack`, ..., `downbrown`).
fn file_columns() -> Vec<String> {
    ATTRIBUTES
        .iter()
        .flat_map(|a| match colour_prefix(a.name) {
            Some(prefix) => a.labels.iter().map(|l| format!("{prefix}{l}")).collect(),
            None => vec![a.name.to_string()],
        })
        .collect()
}

/// The 27 file values (the columns of [`CSV_HEADER`] after `id`) of one identity's labels: the
/// inverse of reading a row. Binary attributes and age are `class + 1`; a colour group has 2 in
/// its class's column and 1 elsewhere (1 everywhere when [`UNLABELLED`], the course's multicolour).
///
/// # Panics
/// If an attribute other than a colour is [`UNLABELLED`]: the files have no value for that.
pub fn csv_row(labels: &AttributeLabels) -> Vec<u8> {
    ATTRIBUTES
        .iter()
        .zip(labels)
        .flat_map(|(a, &class)| match colour_prefix(a.name) {
            Some(_) => (0..a.classes())
                .map(|c| if c == usize::from(class) { 2 } else { 1 })
                .collect(),
            None => {
                assert!(
                    class != UNLABELLED,
                    "{} has no unlabelled value in the files",
                    a.name
                );
                vec![class + 1]
            }
        })
        .collect()
}

/// Class indices from one identity's file values, `value(column)` giving each column's value.
fn labels_from(value: impl Fn(&str) -> Option<i64>) -> Result<AttributeLabels, String> {
    let get = |column: &str| value(column).ok_or_else(|| format!("column {column} is missing"));
    let yes = |column: &str, v: i64| match v {
        1 => Ok(false),
        2 => Ok(true),
        v => Err(format!("{column} = {v}, expected 1 or 2")),
    };
    let mut labels = [0u8; NUM_ATTRIBUTES];
    for (label, attribute) in labels.iter_mut().zip(&ATTRIBUTES) {
        *label = match colour_prefix(attribute.name) {
            None => {
                let v = get(attribute.name)?;
                let classes = attribute.classes() as i64;
                if !(1..=classes).contains(&v) {
                    return Err(format!("{} = {v}, expected 1..={classes}", attribute.name));
                }
                (v - 1) as u8
            }
            Some(prefix) => {
                let mut set = Vec::new();
                for (class, colour) in attribute.labels.iter().enumerate() {
                    let column = format!("{prefix}{colour}");
                    if yes(&column, get(&column)?)? {
                        set.push(class);
                    }
                }
                let multicolour = format!("{prefix}multicolor");
                let multicolour = match value(&multicolour) {
                    Some(v) => yes(&multicolour, v)?,
                    None => false,
                };
                match set.as_slice() {
                    [class] if !multicolour => *class as u8,
                    // No colour, several, or multicolour: the annotation leaves it open.
                    _ => UNLABELLED,
                }
            }
        };
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// The labels `tests/reference/make_mat_fixture.py` prints for its identities.
    const EXPECTED: [(i32, AttributeLabels); 5] = [
        (7, [1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 2, 8]),
        (2, [2, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 6]),
        (10, [0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 7, 2]),
        (5, [3, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0]),
        (3, [2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 5, 5]),
    ];

    #[test]
    fn csv_rows_read_back_as_the_same_labels() {
        let labels: AttributeLabels = [3, 1, 0, 1, 0, 1, 0, 1, 1, 0, 7, 8];
        let row = csv_row(&labels);
        assert_eq!(row.len(), 27);
        let columns = file_columns();
        let value = |c: &str| {
            columns
                .iter()
                .position(|x| x == c)
                .map(|i| i64::from(row[i]))
        };
        assert_eq!(labels_from(value).unwrap(), labels);
    }

    #[test]
    #[should_panic(expected = "age has no unlabelled value")]
    fn csv_rows_refuse_an_unlabelled_attribute_other_than_a_colour() {
        let mut labels = [0u8; NUM_ATTRIBUTES];
        labels[0] = UNLABELLED;
        csv_row(&labels);
    }

    #[test]
    fn file_columns_match_the_csv_header() {
        let mut columns = file_columns();
        columns.insert(0, "id".into());
        assert_eq!(columns.join(","), CSV_HEADER);
    }

    #[test]
    fn reads_lin_mat_files_in_any_identity_order() {
        for name in ["market_small.mat", "market_small_compressed.mat"] {
            let table = AttributeTable::from_mat(&fixture(name)).unwrap();
            assert_eq!(table.len(), 5, "{name}");
            for (id, labels) in EXPECTED {
                assert_eq!(table.get(id), Some(&labels), "{name}: identity {id}");
            }
            let ids: Vec<i32> = table.iter().map(|(id, _)| id).collect();
            assert_eq!(ids, [2, 3, 5, 7, 10]);
        }
    }

    #[test]
    fn multicolour_mat_identities_load_unlabelled() {
        // `tests/reference/make_mat_fixture.py`: 0004 sets upblack and upred, 0008 no down colour.
        let table = AttributeTable::from_mat(&fixture("market_multicolour.mat")).unwrap();
        let four = table.get(4).unwrap();
        assert_eq!((four[10], four[11]), (UNLABELLED, 0), "{four:?}");
        let eight = table.get(8).unwrap();
        assert_eq!((eight[10], eight[11]), (6, UNLABELLED), "{eight:?}");
        assert_eq!(eight[..10], [1; 10]);
    }

    #[test]
    fn bad_mat_content_names_the_field() {
        let err = AttributeTable::from_mat(&fixture("market_bad_colour.mat")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, MarketError::MatContent { .. }), "{text}");
        assert!(text.contains("market_bad_colour.mat"), "{text}");
        assert!(text.contains("market_attribute.train"), "{text}");
        assert!(
            text.contains("identity 4: upred = 3, expected 1 or 2"),
            "{text}"
        );

        let err = AttributeTable::from_mat(&fixture("market_missing_field.mat")).unwrap_err();
        assert!(
            err.to_string().contains("market_attribute.test.hat"),
            "{err}"
        );

        let err = AttributeTable::from_mat(&fixture("matlab_style.mat")).unwrap_err();
        assert!(
            err.to_string()
                .contains("market_attribute: no such variable"),
            "{err}"
        );
    }

    /// One CSV row: `values` are age..gender as file values, then the up and down colour classes.
    fn row(id: &str, values: [u8; 10], up: usize, down: usize) -> String {
        let mut fields = vec![id.to_string()];
        fields.extend(values.iter().map(u8::to_string));
        fields.extend((0..8).map(|c| if c == up { "2" } else { "1" }.to_string()));
        fields.extend((0..9).map(|c| if c == down { "2" } else { "1" }.to_string()));
        fields.join(",")
    }

    fn write(dir: &Path, name: &str, rows: &[String]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("{CSV_HEADER}\r\n{}\n\n", rows.join("\r\n"))).unwrap();
        path
    }

    #[test]
    fn reads_csv_train_and_test() {
        let dir = tempfile::tempdir().unwrap();
        let train = [
            row("7", [2, 1, 2, 1, 2, 1, 2, 1, 1, 2], 2, 8),
            row("0002", [3, 2, 1, 1, 2, 2, 2, 1, 1, 1], 0, 6),
        ];
        write(
            dir.path(),
            "annotations_test.csv",
            &[row("5", [4, 1, 1, 1, 2, 1, 2, 2, 1, 2], 1, 0)],
        );
        // A test-only folder (what `edge-reid eval` needs) reads its test annotations.
        let table = AttributeTable::open(dir.path()).unwrap();
        let ids: Vec<i32> = table.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [5]);
        write(dir.path(), "annotations_train.csv", &train);
        let table = AttributeTable::open(dir.path()).unwrap();
        assert_eq!(table.len(), 3);
        for (id, labels) in EXPECTED.iter().filter(|(id, _)| [7, 2, 5].contains(id)) {
            assert_eq!(table.get(*id), Some(labels), "identity {id}");
        }

        // A market_attribute.mat next to the CSVs takes precedence.
        std::fs::copy(
            fixture("market_small.mat"),
            dir.path().join("market_attribute.mat"),
        )
        .unwrap();
        assert_eq!(AttributeTable::open(dir.path()).unwrap().len(), 5);

        let empty = tempfile::tempdir().unwrap();
        let err = AttributeTable::open(empty.path()).unwrap_err();
        assert!(matches!(err, MarketError::NoAnnotations { .. }), "{err}");
    }

    /// `fields` with column `column` set to `value`.
    fn set(fields: &str, header: &str, column: &str, value: &str) -> String {
        let position = header.split(',').position(|c| c == column).unwrap();
        let mut fields: Vec<&str> = fields.split(',').collect();
        fields[position] = value;
        fields.join(",")
    }

    #[test]
    fn multicolour_csv_rows_load_unlabelled_in_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        // 28 columns: no up colour set (1); two down colours set (2).
        let base = row("1", [1; 10], 3, 4);
        let none = set(&base, CSV_HEADER, "uppurple", "1");
        let two = set(
            &set(&base, CSV_HEADER, "id", "2"),
            CSV_HEADER,
            "downblue",
            "2",
        );
        let path = write(dir.path(), "a.csv", &[none, two, row("3", [1; 10], 3, 4)]);
        let table = AttributeTable::from_csv(&path).unwrap();
        let colours = |id| table.get(id).map(|l| (l[10], l[11]));
        assert_eq!(colours(1), Some((UNLABELLED, 4)));
        assert_eq!(colours(2), Some((3, UNLABELLED)));
        assert_eq!(colours(3), Some((3, 4)));
        // Written back in the course's form: every colour column 1.
        let back = csv_row(table.get(1).unwrap());
        assert_eq!(back[10..18], [1; 8]);
        assert_eq!(back[18..27], [1, 1, 1, 1, 2, 1, 1, 1, 1]);

        // 30 columns: the multicolour columns decide, a colour set beside them or not.
        let multi =
            |id: &str, up: &str, down: &str| format!("{},{up},{down}", row(id, [1; 10], 0, 1));
        let path = dir.path().join("b.csv");
        let rows = [
            multi("4", "2", "1"),
            multi("5", "1", "2"),
            multi("6", "1", "1"),
        ];
        std::fs::write(
            &path,
            format!("{CSV_HEADER_MULTICOLOR}\n{}\n", rows.join("\n")),
        )
        .unwrap();
        let table = AttributeTable::from_csv(&path).unwrap();
        let colours = |id| table.get(id).map(|l| (l[10], l[11]));
        assert_eq!(colours(4), Some((UNLABELLED, 1)));
        assert_eq!(colours(5), Some((0, UNLABELLED)));
        assert_eq!(colours(6), Some((0, 1)));
        std::fs::write(
            &path,
            format!("{CSV_HEADER_MULTICOLOR}\n{}\n", multi("7", "3", "1")),
        )
        .unwrap();
        let err = AttributeTable::from_csv(&path).unwrap_err().to_string();
        assert!(
            err.contains("b.csv:2: upmulticolor = 3, expected 1 or 2"),
            "{err}"
        );
    }

    #[test]
    fn malformed_csv_rows_are_errors_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let good = row("1", [1; 10], 0, 0);
        let bad = |column: &str, value: &str| {
            set(
                &set(&good, CSV_HEADER, "id", "2"),
                CSV_HEADER,
                column,
                value,
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (bad("age", "5"), "age = 5, expected 1..=4"),
            (bad("backpack", "0"), "backpack = 0, expected 1..=2"),
            (bad("gender", "3"), "gender = 3"),
            (bad("upwhite", "3"), "upwhite = 3, expected 1 or 2"),
            (bad("hat", ""), "hat = \"\" is not an integer"),
            (bad("id", "-1"), "id -1 is not an identity"),
            (format!("{good},1"), "29 columns, expected 28"),
            (good.clone(), "identity 1 is annotated twice"),
        ];
        for (bad, message) in cases {
            let path = write(dir.path(), "a.csv", &[good.clone(), String::new(), bad]);
            let err = AttributeTable::from_csv(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, MarketError::Csv { line: 4, .. }),
                "{message}: {text}"
            );
            assert!(text.contains("a.csv:4: "), "{text}");
            assert!(text.contains(message), "expected {message:?} in {text}");
        }

        let path = dir.path().join("b.csv");
        std::fs::write(&path, CSV_HEADER.replace("hat,", "")).unwrap();
        let err = AttributeTable::from_csv(&path).unwrap_err();
        assert!(matches!(err, MarketError::Csv { line: 1, .. }), "{err}");

        // The same identity in train and test.
        write(
            dir.path(),
            "annotations_train.csv",
            std::slice::from_ref(&good),
        );
        write(dir.path(), "annotations_test.csv", &[good]);
        let err = AttributeTable::open(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("annotations_test.csv:2: identity 1"),
            "{err}"
        );
    }
}
