//! The catalogue of every metric: its name as scraped, its type, its
//! labels and what it counts. The registry registers each under this name
//! and help text, and the README's table is checked against it, so the
//! three cannot drift apart.

/// One metric as the README and `# HELP` describe it.
pub struct Described {
    /// Its name as scraped (a counter's with `_total`).
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Its labels and their values, as the README explains them (empty:
    /// none).
    pub labels: &'static str,
    /// What it counts: the `# HELP` text, and the README's.
    pub help: &'static str,
}

impl Described {
    /// The name to register: a counter's without `_total`, which the
    /// encoder adds.
    pub(super) fn base(&self) -> &'static str {
        self.name.strip_suffix("_total").unwrap_or(self.name)
    }
}

/// Requests answered, by type and outcome.
pub const REQUESTS: Described = Described {
    name: "msgr_requests_total",
    kind: "counter",
    labels: "`type`: the request (`send`, `fetch`, …); `outcome`: `ok` or the error code",
    help: "Requests answered after the hello exchange, by request type and outcome",
};

/// Requests refused because a limit was reached, by reason.
pub const REFUSALS: Described = Described {
    name: "msgr_refusals_total",
    kind: "counter",
    labels: "`reason`: `too_large`, `mailbox_full`, `rate_limited`, `storage_full` or `busy`",
    help: "Requests and connections refused because a limit was reached, by reason (a frame \
           too large also closes its connection; busy connections are refused at hello)",
};

/// Messages stored.
pub const MESSAGES_STORED: Described = Described {
    name: "msgr_messages_stored_total",
    kind: "counter",
    labels: "",
    help: "Messages stored durably for their recipients (each send answered sent)",
};

/// Messages acknowledged by their recipients.
pub const MESSAGES_DELIVERED: Described = Described {
    name: "msgr_messages_delivered_total",
    kind: "counter",
    labels: "",
    help: "Messages their recipients acknowledged after reading them, and so deleted",
};

/// Messages deleted unread.
pub const MESSAGES_EXPIRED: Described = Described {
    name: "msgr_messages_expired_total",
    kind: "counter",
    labels: "",
    help: "Messages deleted unread, older than the maximum message age",
};

/// Connections accepted.
pub const CONNECTIONS_ACCEPTED: Described = Described {
    name: "msgr_connections_accepted_total",
    kind: "counter",
    labels: "",
    help: "Connections accepted, before their TLS handshake",
};

/// Connections not yet greeted.
pub const CONNECTIONS_PENDING: Described = Described {
    name: "msgr_connections_pending",
    kind: "gauge",
    labels: "",
    help: "Connections in their TLS handshake or hello, or waiting for a slot",
};

/// Connections in service.
pub const CONNECTIONS_GREETED: Described = Described {
    name: "msgr_connections_greeted",
    kind: "gauge",
    labels: "",
    help: "Connections greeted and holding one of the connection slots",
};

/// Messages queued.
pub const QUEUED_MESSAGES: Described = Described {
    name: "msgr_queued_messages",
    kind: "gauge",
    labels: "",
    help: "Messages stored and not yet acknowledged, for all recipients",
};

/// Their bytes.
pub const QUEUED_BYTES: Described = Described {
    name: "msgr_queued_bytes",
    kind: "gauge",
    labels: "",
    help: "Envelope bytes of the messages queued",
};

/// How long the oldest queued message has waited.
pub const OLDEST_QUEUED: Described = Described {
    name: "msgr_oldest_queued_message_age_seconds",
    kind: "gauge",
    labels: "",
    help: "How long the oldest queued message has waited, 0 when none is queued",
};

/// Registered accounts.
pub const ACCOUNTS: Described = Described {
    name: "msgr_accounts",
    kind: "gauge",
    labels: "",
    help: "Registered accounts",
};

/// Live sessions.
pub const SESSIONS: Described = Described {
    name: "msgr_sessions",
    kind: "gauge",
    labels: "",
    help: "Login sessions not yet expired",
};

/// How long requests took.
pub const REQUEST_DURATION: Described = Described {
    name: "msgr_request_duration_seconds",
    kind: "histogram",
    labels: "`type`: the request",
    help: "Time from reading a request to its response being ready, by request type (a send \
           until its group commit is durable; a waiting fetch includes its wait)",
};

/// Writes per group commit.
pub const GROUP_COMMIT_WRITES: Described = Described {
    name: "msgr_group_commit_writes",
    kind: "histogram",
    labels: "",
    help: "Writes committed together in one transaction and one fsync (group commit)",
};

/// Every metric, in the order the README lists them.
pub const CATALOGUE: &[&Described] = &[
    &REQUESTS,
    &REQUEST_DURATION,
    &REFUSALS,
    &MESSAGES_STORED,
    &MESSAGES_DELIVERED,
    &MESSAGES_EXPIRED,
    &QUEUED_MESSAGES,
    &QUEUED_BYTES,
    &OLDEST_QUEUED,
    &CONNECTIONS_ACCEPTED,
    &CONNECTIONS_PENDING,
    &CONNECTIONS_GREETED,
    &GROUP_COMMIT_WRITES,
    &ACCOUNTS,
    &SESSIONS,
];
