//! A real HTTP client for the tests of the servers (`--metrics`, `--http`): Python's urllib.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use super::text;

/// A response: status, headers (names lowercase) and body.
pub(super) struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        text(&self.body)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// GETs `url` with `headers` (`Name: value`), reading at most `limit` bytes of the body (0: all;
/// a stream's first bytes otherwise).
pub(super) fn request(url: &str, headers: &[&str], limit: usize) -> Reply {
    request_with("GET", url, headers, limit)
}

/// [`request`] with another method (`POST` sends an empty body).
pub(super) fn request_with(method: &str, url: &str, headers: &[&str], limit: usize) -> Reply {
    exchange(method, url, headers, b"", limit)
}

/// POSTs `photos` (file name, bytes) to `url` as `multipart/form-data`, each as a `photo` file
/// field, with a `name` text field beside them as the page's form sends it.
pub(super) fn post_photos(url: &str, photos: &[(&str, &[u8])]) -> Reply {
    let boundary = "edge-reid-test-7f3a9c";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n")
            .as_bytes(),
    );
    for (file, bytes) in photos {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let kind = format!("Content-Type: multipart/form-data; boundary={boundary}");
    exchange("POST", url, &[&kind], &body, 0)
}

/// Sends a request (`body` with a `POST`) and reads at most `limit` bytes of the answer (0: all).
fn exchange(method: &str, url: &str, headers: &[&str], body: &[u8], limit: usize) -> Reply {
    let script = "import sys, json, urllib.request, urllib.error\n\
        method = sys.argv[3]\n\
        headers = dict(h.split(': ', 1) for h in sys.argv[4:])\n\
        data = sys.stdin.buffer.read() if method == 'POST' else None\n\
        request = urllib.request.Request(sys.argv[1], headers=headers, method=method, data=data)\n\
        try:\n    r = urllib.request.urlopen(request, timeout=20)\n\
        except urllib.error.HTTPError as e:\n    r = e\n\
        limit = int(sys.argv[2])\n\
        body = r.read(limit) if limit else r.read()\n\
        head = {'status': r.status, 'headers': {k.lower(): v for k, v in r.headers.items()}}\n\
        sys.stdout.write(json.dumps(head) + '\\n'); sys.stdout.flush(); sys.stdout.buffer.write(body)\n";
    let mut child = Command::new("python3")
        .args(["-c", script, url, &limit.to_string(), method])
        .args(headers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: a large body must not wait on a full stdout pipe.
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{url}: {}", text(&out.stderr));
    let at = out.stdout.iter().position(|&b| b == b'\n').unwrap();
    let head: serde_json::Value = serde_json::from_slice(&out.stdout[..at]).unwrap();
    Reply {
        status: head["status"].as_u64().unwrap() as u16,
        headers: serde_json::from_value(head["headers"].clone()).unwrap(),
        body: out.stdout[at + 1..].to_vec(),
    }
}

/// GETs `url`: the status and the body.
pub(super) fn get(url: &str) -> (u16, String) {
    let r = request(url, &[], 0);
    (r.status, r.text())
}

/// Reads the run's stderr up to the line that starts with `prefix` and returns the address
/// after it, as `http://HOST:PORT`; the rest of stderr is drained (and returned when the run
/// ends, through the handle).
pub(super) fn address_in_stderr(
    run: &mut Child,
    prefix: &str,
) -> (String, std::thread::JoinHandle<String>) {
    let mut lines = BufReader::new(run.stderr.take().unwrap()).lines();
    let mut before = String::new();
    let base = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the run never said {prefix:?}:\n{before}"))
            .unwrap();
        if let Some(rest) = line.strip_prefix(prefix) {
            let end = rest[7..].find('/').map_or(rest.len(), |i| i + 7);
            break rest[..end].to_string();
        }
        before += &line;
        before.push('\n');
    };
    let rest = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .fold(before, |all, l| all + &l + "\n")
    });
    (base, rest)
}
