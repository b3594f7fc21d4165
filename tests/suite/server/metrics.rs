//! `msgr serve --metrics`: the real binary's endpoint scraped over plain
//! HTTP/1.1 (a bare TcpStream, as curl would) after real client commands,
//! its OpenMetrics text read by a Prometheus parser and checked value by
//! value; `/healthz` while the database is there and after its files are
//! removed; the other paths and methods; a port in use; and no listener
//! at all without the flag.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use msgr::server::metrics::CATALOGUE;
use prometheus_parse::{Scrape, Value};

use crate::common::{Server, World, msgr_bare};

/// An HTTP response: status, header block, body.
struct Http {
    status: u16,
    head: String,
    body: String,
}

impl Http {
    /// The value of header `name` (compared ignoring case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `METHOD PATH` on `addr` over one HTTP/1.1 connection.
fn http(addr: &str, method: &str, path: &str) -> Http {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {response:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Http {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// The metrics address the server announced after its fingerprint.
fn metrics_addr(server: &mut Server) -> String {
    let line = server.next_line();
    line.strip_prefix("msgr metrics on http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_owned()
}

/// `GET /metrics`, checked as a scrape and parsed.
fn get_metrics(addr: &str) -> (Scrape, String) {
    let response = http(addr, "GET", "/metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
    let lines = response.body.lines().map(|line| Ok(line.to_owned()));
    (Scrape::parse(lines).unwrap(), response.body)
}

/// The value of the sample `name` with exactly `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = scrape.samples.iter().find(|sample| {
        sample.metric == name
            && sample.labels.len() == labels.len()
            && labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(value))
    })?;
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        Value::Histogram(buckets) => buckets.last().map(|bucket| bucket.count),
        Value::Summary(_) => None,
    }
}

/// Scrape until `done` holds (up to ten seconds): a client may exit before
/// the server has counted its last request.
fn scrape_until(addr: &str, done: impl Fn(&Scrape) -> bool) -> (Scrape, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (scrape, text) = get_metrics(addr);
        if done(&scrape) || Instant::now() > deadline {
            return (scrape, text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The TCP ports process `pid` listens on, from /proc.
fn listening_ports(pid: u32) -> Vec<u16> {
    let sockets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state (0A: LISTEN), …, inode.
            let (local, state, inode) = (fields[1], fields[3], fields[9]);
            if state == "0A" && sockets.iter().any(|s| s == inode) {
                let port = local.rsplit_once(':').unwrap().1;
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort_unstable();
    ports
}

#[test]
fn a_scrape_counts_what_the_server_did_and_healthz_follows_the_database() {
    // It breaks the SQLite file to fail the health check.
    crate::common::sqlite_only();
    let mut world =
        World::with_server_args(&["--metrics", "127.0.0.1:0", "--max-queued-messages", "1"]);
    let addr = metrics_addr(&mut world.server);
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "one");
    // John's mailbox holds one message: the second is refused.
    world
        .msgr("Alice")
        .args(["create", "John", "two"])
        .assert()
        .code(7);
    world
        .msgr("Alice")
        .args(["create", "Nobody", "hello?"])
        .assert()
        .code(5);
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("    one"), "{stdout}");
    world.assert_queued_soon(0);

    let (scrape, text) = scrape_until(&addr, |scrape| {
        value(scrape, "msgr_messages_delivered_total", &[]) == Some(1.0)
    });
    let expect = |name: &str, labels: &[(&str, &str)], expected: f64| {
        assert_eq!(
            value(&scrape, name, labels),
            Some(expected),
            "{name} {labels:?} in\n{text}"
        );
    };
    expect("msgr_messages_stored_total", &[], 1.0);
    expect("msgr_messages_delivered_total", &[], 1.0);
    expect("msgr_messages_expired_total", &[], 0.0);
    let requests = "msgr_requests_total";
    expect(requests, &[("type", "register"), ("outcome", "ok")], 2.0);
    expect(requests, &[("type", "send"), ("outcome", "ok")], 1.0);
    expect(
        requests,
        &[("type", "send"), ("outcome", "mailbox_full")],
        1.0,
    );
    expect(
        requests,
        &[("type", "get_key"), ("outcome", "unknown_user")],
        1.0,
    );
    expect(requests, &[("type", "ack"), ("outcome", "ok")], 1.0);
    let refusals = "msgr_refusals_total";
    expect(refusals, &[("reason", "mailbox_full")], 1.0);
    for reason in ["too_large", "rate_limited", "storage_full", "busy"] {
        expect(refusals, &[("reason", reason)], 0.0);
    }
    expect("msgr_queued_messages", &[], 0.0);
    expect("msgr_queued_bytes", &[], 0.0);
    expect("msgr_oldest_queued_message_age_seconds", &[], 0.0);
    expect("msgr_accounts", &[], 2.0);
    // Both sends, the one stored and the one refused, were timed.
    let durations = "msgr_request_duration_seconds";
    expect(&format!("{durations}_count"), &[("type", "send")], 2.0);
    expect(durations, &[("type", "send")], 2.0);
    let commits = value(&scrape, "msgr_group_commit_writes_count", &[]).unwrap();
    assert!(commits >= 1.0, "{text}");
    let accepted = value(&scrape, "msgr_connections_accepted_total", &[]).unwrap();
    assert!(
        accepted >= 6.0,
        "one connection per command at least: {text}"
    );
    assert!(value(&scrape, "msgr_connections_pending", &[]).is_some());
    assert!(value(&scrape, "msgr_connections_greeted", &[]).is_some());
    for described in CATALOGUE {
        let base = described.name.trim_end_matches("_total");
        assert!(
            text.contains(&format!("\n# TYPE {base} {}\n", described.kind)),
            "{base} declared in\n{text}"
        );
        assert!(scrape.docs.contains_key(base), "{base} documented");
    }

    let healthy = http(&addr, "GET", "/healthz");
    assert_eq!((healthy.status, healthy.body.as_str()), (200, "ok\n"));
    assert_eq!(http(&addr, "HEAD", "/healthz").status, 200);
    let wrong_method = http(&addr, "POST", "/metrics");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD"));
    assert_eq!(http(&addr, "GET", "/").status, 404);
    assert_eq!(http(&addr, "GET", "/metrics/more").status, 404);

    // The database files removed under the running server: its open
    // connections go on, but the next start would find nothing.
    for file in ["msgr.db", "msgr.db-wal", "msgr.db-shm"] {
        let _ = std::fs::remove_file(world.server.data_dir.join(file));
    }
    let unhealthy = http(&addr, "GET", "/healthz");
    assert_eq!(unhealthy.status, 503, "{}", unhealthy.body);
    assert!(
        unhealthy.body.starts_with("unavailable: ") && unhealthy.body.ends_with('\n'),
        "{}",
        unhealthy.body
    );
    assert!(world.server.log_text().contains("health check failed"));
    // The metrics are still served, without what the store could not say.
    let (_, text) = get_metrics(&addr);
    assert!(text.contains("msgr_messages_stored_total 1\n"), "{text}");
}

#[test]
fn without_metrics_only_the_client_port_listens() {
    let world = World::new();
    assert_eq!(listening_ports(world.server.pid()), [world.server.port]);

    let mut world = World::with_server_args(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&mut world.server);
    let metrics_port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut expected = vec![world.server.port, metrics_port];
    expected.sort_unstable();
    assert_eq!(listening_ports(world.server.pid()), expected);
    // The metrics port speaks plain HTTP only; the client port TLS only.
    let response = http(&addr, "GET", "/healthz");
    assert_eq!(response.status, 200);
}

#[test]
fn a_metrics_port_in_use_stops_the_start_and_leaves_nothing_behind() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    msgr_bare()
        .args(["serve", "0", "--bind", "127.0.0.1", "--metrics"])
        .arg(address.to_string())
        .arg("--data-dir")
        .arg(&data_dir)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "msgr: cannot listen for metrics on {address}: Address already in use (os error \
             98); stop the program using that port or give --metrics another (port 0 picks a \
             free one)\n"
        ));
    assert!(!data_dir.exists(), "the data directory was made");
}
