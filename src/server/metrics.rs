//! What the server counts for its operator, in the Prometheus conventions
//! (`msgr_` names, units in names, counters ending in `_total`): the
//! [`CATALOGUE`] of every metric (`catalogue`, which the README lists word
//! for word), the [`Metrics`] the connections count into, and their
//! rendering in the OpenMetrics text format by `prometheus-client`. The
//! HTTP endpoint that serves them and the health check is `endpoint`.
//!
//! Counting must cost next to nothing on the path of every request: a
//! counter is one atomic add on a handle made once for each request type
//! and outcome (both fixed sets), never a look-up in a locked map. What
//! can be read when scraped instead (connections, queue totals) is read
//! then, and costs the requests nothing.

mod catalogue;
pub(super) mod endpoint;

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use catalogue::{
    ACCOUNTS, CONNECTIONS_ACCEPTED, CONNECTIONS_GREETED, CONNECTIONS_PENDING, GROUP_COMMIT_WRITES,
    MESSAGES_DELIVERED, MESSAGES_EXPIRED, MESSAGES_STORED, OLDEST_QUEUED, QUEUED_BYTES,
    QUEUED_MESSAGES, REFUSALS, REQUEST_DURATION, REQUESTS, SESSIONS,
};
pub use catalogue::{CATALOGUE, Described};

use super::store::StoreStats;
use crate::wire::protocol::ErrorCode;

/// The request types, as `Request::kind` names them: the rows of the
/// table of request counters.
const REQUEST_TYPES: [&str; 14] = [
    "hello",
    "register",
    "login",
    "login_proof",
    "authenticate",
    "get_key",
    "publish_prekeys",
    "rotate_key",
    "send",
    "fetch",
    "ack",
    "logout",
    "logout_all",
    "unregister",
];

/// The outcomes: `ok`, then each error code in [`ErrorCode::ALL`]'s order.
const OUTCOMES: usize = 1 + ErrorCode::ALL.len();

/// The refusals counted by [`REFUSALS`]: the codes of limits reached.
const REFUSAL_REASONS: [ErrorCode; 5] = [
    ErrorCode::TooLarge,
    ErrorCode::MailboxFull,
    ErrorCode::RateLimited,
    ErrorCode::StorageFull,
    ErrorCode::Busy,
];

/// Upper bounds of the request duration buckets, in seconds: from half a
/// millisecond (a lookup) to the longest wait of a `fetch`.
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The sizes of group commits, recorded by the store's writer.
#[derive(Clone, Debug)]
pub struct BatchSizes(Histogram);

impl BatchSizes {
    /// One group commit of `writes` writes.
    pub fn record(&self, writes: usize) {
        self.0.observe(writes as f64);
    }
}

/// What is read when the metrics are scraped rather than counted.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Connections not yet greeted.
    pub pending: usize,
    /// Connections holding a slot.
    pub greeted: usize,
    /// The store's totals, unless they could not be read.
    pub store: Option<StoreStats>,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
}

/// Everything counted while the server runs; shared by every connection.
pub struct Metrics {
    /// The counters and histograms, for encoding.
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<TypeLabel, Histogram, fn() -> Histogram>,
    /// `requests`' counter for each request type and outcome, made on
    /// first use (so that only outcomes that happened are scraped).
    request_counters: [[OnceLock<Counter>; OUTCOMES]; REQUEST_TYPES.len()],
    /// `durations`' histogram for each request type, made on first use.
    duration_histograms: [OnceLock<Histogram>; REQUEST_TYPES.len()],
    /// One for each of [`REFUSAL_REASONS`], scraped from the start.
    refusals: [Counter; REFUSAL_REASONS.len()],
    stored: Counter,
    delivered: Counter,
    expired: Counter,
    accepted: Counter,
    batches: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(REQUESTS.base(), REQUESTS.help, requests.clone());
        let durations = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register(
            REQUEST_DURATION.base(),
            REQUEST_DURATION.help,
            durations.clone(),
        );
        let reasons = Family::<ReasonLabel, Counter>::default();
        registry.register(REFUSALS.base(), REFUSALS.help, reasons.clone());
        let refusals = REFUSAL_REASONS.map(|code| {
            reasons.get_or_create_owned(&ReasonLabel {
                reason: code.as_str(),
            })
        });
        let counter = |registry: &mut Registry, described: &Described| {
            let counter = Counter::default();
            registry.register(described.base(), described.help, counter.clone());
            counter
        };
        let stored = counter(&mut registry, &MESSAGES_STORED);
        let delivered = counter(&mut registry, &MESSAGES_DELIVERED);
        let expired = counter(&mut registry, &MESSAGES_EXPIRED);
        let accepted = counter(&mut registry, &CONNECTIONS_ACCEPTED);
        // One to the largest batch the writer makes, 512.
        let batches = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            GROUP_COMMIT_WRITES.base(),
            GROUP_COMMIT_WRITES.help,
            batches.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            request_counters: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            duration_histograms: std::array::from_fn(|_| OnceLock::new()),
            refusals,
            stored,
            delivered,
            expired,
            accepted,
            batches,
        }
    }

    /// A `kind` request was answered after `took`: with success, or
    /// `refused` with that code.
    pub fn answered(&self, kind: &'static str, refused: Option<ErrorCode>, took: Duration) {
        let outcome = match refused {
            None => Some(0),
            Some(code) => ErrorCode::ALL
                .iter()
                .position(|c| *c == code)
                .map(|i| 1 + i),
        };
        let labels = || RequestLabels {
            r#type: kind,
            outcome: refused.map_or("ok", ErrorCode::as_str),
        };
        let seconds = took.as_secs_f64();
        let row = REQUEST_TYPES.iter().position(|known| *known == kind);
        match row.zip(outcome) {
            Some((row, outcome)) => {
                self.request_counters[row][outcome]
                    .get_or_init(|| self.requests.get_or_create_owned(&labels()))
                    .inc();
                self.duration_histograms[row]
                    .get_or_init(|| {
                        self.durations
                            .get_or_create_owned(&TypeLabel { r#type: kind })
                    })
                    .observe(seconds);
            }
            // A type or code this table does not know yet: counted all
            // the same, through the families' maps.
            None => {
                self.requests.get_or_create(&labels()).inc();
                self.durations
                    .get_or_create(&TypeLabel { r#type: kind })
                    .observe(seconds);
            }
        }
        if let Some(code) = refused {
            self.refused(code);
        }
    }

    /// Something was refused with `code`: counted in `msgr_refusals_total`
    /// if that is a limit's code.
    pub fn refused(&self, code: ErrorCode) {
        if let Some(index) = REFUSAL_REASONS.iter().position(|c| *c == code) {
            self.refusals[index].inc();
        }
    }

    /// A message was stored.
    pub fn message_stored(&self) {
        self.stored.inc();
    }

    /// Recipients acknowledged `count` messages.
    pub fn messages_delivered(&self, count: u64) {
        self.delivered.inc_by(count);
    }

    /// `count` messages were deleted unread.
    pub fn messages_expired(&self, count: u64) {
        self.expired.inc_by(count);
    }

    /// A connection was accepted.
    pub fn connection_accepted(&self) {
        self.accepted.inc();
    }

    /// Where the store's writer records the size of each group commit.
    pub fn batch_sizes(&self) -> BatchSizes {
        BatchSizes(self.batches.clone())
    }

    /// Everything, counted and read in `snapshot`, in the OpenMetrics
    /// text format.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let as_gauge = |value: u64| ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        let mut now = Registry::default();
        let mut gauge = |described: &Described, value: u64| {
            now.register(described.base(), described.help, as_gauge(value));
        };
        gauge(&CONNECTIONS_PENDING, snapshot.pending as u64);
        gauge(&CONNECTIONS_GREETED, snapshot.greeted as u64);
        if let Some(store) = &snapshot.store {
            gauge(&QUEUED_MESSAGES, store.queued_messages);
            gauge(&QUEUED_BYTES, store.queued_bytes);
            let waited = store
                .oldest_queued_at
                .map_or(0, |at| snapshot.now.saturating_sub(at));
            gauge(&OLDEST_QUEUED, waited);
            gauge(&ACCOUNTS, store.accounts);
            gauge(&SESSIONS, store.sessions);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        encode_registry(&mut text, &self.registry).expect("encoding to a String");
        encode_registry(&mut text, &now).expect("encoding to a String");
        encode_eof(&mut text).expect("encoding to a String");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> StoreStats {
        StoreStats {
            accounts: 2,
            queued_messages: 3,
            queued_bytes: 4000,
            oldest_queued_at: Some(90),
            sessions: 5,
            database_bytes: 1 << 20,
        }
    }

    /// The names a rendering declares with `# TYPE`, and their types.
    fn declared(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|rest| {
                let (name, kind) = rest.split_once(' ').unwrap();
                (name.to_owned(), kind.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_metric_of_the_catalogue_is_rendered_and_no_other() {
        let metrics = Metrics::new();
        // Families are declared once they have a member.
        metrics.answered("fetch", None, Duration::ZERO);
        let snapshot = Snapshot {
            store: Some(stats()),
            now: 100,
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot);
        let mut declared = declared(&text);
        declared.sort();
        let mut catalogue: Vec<_> = CATALOGUE
            .iter()
            .map(|d| (d.base().to_owned(), d.kind.to_owned()))
            .collect();
        catalogue.sort();
        assert_eq!(declared, catalogue, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("\nmsgr_oldest_queued_message_age_seconds 10\n"));
        for reason in REFUSAL_REASONS {
            let line = format!(
                "\nmsgr_refusals_total{{reason=\"{}\"}} 0\n",
                reason.as_str()
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    #[test]
    fn requests_are_counted_by_type_and_outcome_and_limits_as_refusals() {
        let metrics = Metrics::new();
        let took = Duration::from_millis(3);
        metrics.answered("send", None, took);
        metrics.answered("send", None, took);
        metrics.answered("send", Some(ErrorCode::MailboxFull), took);
        metrics.answered("fetch", Some(ErrorCode::AuthRequired), took);
        metrics.answered("a_new_type", None, took);
        metrics.refused(ErrorCode::Busy);
        let text = metrics.render(&Snapshot::default());
        for line in [
            "msgr_requests_total{type=\"send\",outcome=\"ok\"} 2",
            "msgr_requests_total{type=\"send\",outcome=\"mailbox_full\"} 1",
            "msgr_requests_total{type=\"fetch\",outcome=\"auth_required\"} 1",
            "msgr_requests_total{type=\"a_new_type\",outcome=\"ok\"} 1",
            "msgr_refusals_total{reason=\"mailbox_full\"} 1",
            "msgr_refusals_total{reason=\"busy\"} 1",
            "msgr_refusals_total{reason=\"too_large\"} 0",
            "msgr_request_duration_seconds_count{type=\"send\"} 3",
            "msgr_request_duration_seconds_bucket{le=\"0.0025\",type=\"send\"} 0",
            "msgr_request_duration_seconds_bucket{le=\"0.005\",type=\"send\"} 3",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in {text}");
        }
        assert!(!text.contains("outcome=\"auth_failed\""), "{text}");
        // Without the store's totals, their gauges are left out.
        assert!(!text.contains("msgr_queued_messages"), "{text}");
    }

    #[test]
    fn the_request_types_are_the_wire_names() {
        let (requests, _) = crate::wire::protocol::tests::every_request_and_response();
        for request in requests {
            assert!(
                REQUEST_TYPES.contains(&request.kind()),
                "{}",
                request.kind()
            );
        }
        let mut sorted = REQUEST_TYPES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), REQUEST_TYPES.len());
    }
}
