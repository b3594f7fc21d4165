//! Group commit for sends. Every `enqueue` goes to one task on the
//! store's runtime, which takes all the sends waiting, queues them in one
//! transaction, commits once and only then answers each caller; no thread
//! waits meanwhile. So N concurrent sends cost one commit (one WAL flush)
//! and two round trips, not N of each, and none is acknowledged
//! before its commit.
//!
//! The batch first locks the account rows of its recipients and senders
//! (`FOR KEY SHARE`: none is deleted before the commit, and a recipient
//! deleted meanwhile is no longer found by its name; their keys, prekeys
//! and sessions may change meanwhile, so that a busy mailbox, whose row
//! some server's batch nearly always holds, never keeps its owner from
//! logging in) and then the recipients' queue totals (`FOR UPDATE`), both
//! in ascending id as `queries` requires. With the totals locked until
//! the commit, no other transaction on any server can queue for these
//! recipients or delete their messages meanwhile, so the quota and
//! sender-share checks are made on the batch's own running totals and
//! hold at the commit, and each recipient's message ids grow in commit
//! order (a reader paging by id never skips one committed late).
//!
//! Sends that arrive before a batch's first flight returns join it then,
//! if it already holds what they need (their recipient locked, their
//! sender's share read) and no earlier send of their sender to their
//! recipient waits; the others wait for the next batch, first in line.
//! That flight takes longest when another server holds the locks,
//! committing its own batch for the same recipients: so servers that take
//! turns at one busy mailbox commit as many sends per turn as one server
//! alone would, rather than each committing the half that had arrived
//! when its turn was asked. A send never overtakes an earlier one from its
//! sender to its recipient; others may overtake it, so which sends a
//! nearly full mailbox refuses follows the batches, not strictly their
//! arrival.
//!
//! Those locks are also what keeps every message naming accounts that
//! exist: `messages` has no foreign keys on PostgreSQL, whose checks cost
//! a lookup and a row lock per message (see the schema). So nothing in
//! the insert can fail one send alone: a send from an account that is
//! gone is answered so before it, and the accepted sends are inserted by
//! one statement sent with the COMMIT. A batch that loses a deadlock or
//! serialization conflict is run again whole; any other failure fails
//! every send in the batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::{debug, error};

use super::arrivals;
use super::pipeline::{self, Transaction};
use super::queries::{self, sql_int};
use crate::server::metrics::BatchSizes;
use crate::server::store::{Enqueued, Origin, Quota, StoreError, Usage, User, UserId};
use crate::wire::protocol::{canonical_name, unix_now};

/// Most sends committed together; the rest wait for the next batch.
const MAX_BATCH: usize = 512;

/// Whom a send is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Recipient {
    /// The account with this name, in any letter case.
    Name(String),
    /// The account with this id.
    Id(UserId),
}

/// What a send resolves to: `None` for an unknown recipient.
pub(super) type Outcome = Result<Option<(User, Enqueued)>, StoreError>;

/// One send waiting for its batch.
struct Job {
    /// Whom it is for, a name in canonical form.
    recipient: Recipient,
    sender: UserId,
    envelope: Vec<u8>,
    quota: Quota,
    reply: oneshot::Sender<Outcome>,
}

impl Job {
    /// A send to `recipient` (a name in any letter case), answered through
    /// `reply`.
    fn new(
        recipient: Recipient,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
        reply: oneshot::Sender<Outcome>,
    ) -> Self {
        let recipient = match recipient {
            Recipient::Name(name) => Recipient::Name(canonical_name(&name)),
            id @ Recipient::Id(_) => id,
        };
        Self {
            recipient,
            sender,
            envelope,
            quota,
            reply,
        }
    }

    /// Its sender and recipient.
    fn pair(&self) -> (UserId, Recipient) {
        (self.sender, self.recipient.clone())
    }
}

/// The handle callers use; the task ends once it is dropped and the
/// sends queued before are answered.
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    /// Transactions committed, for tests that check sends share them.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Start the task on the current runtime; it records the size of each
    /// batch in `batches`.
    /// `origin` names this process in the hints that tell other servers of
    /// the messages queued.
    pub(super) fn start(pool: Pool, batches: Option<BatchSizes>, origin: Origin) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, queue, Arc::clone(&commits), batches, origin));
        Self {
            jobs,
            #[cfg(test)]
            commits,
        }
    }

    /// Queue an envelope in the next batch; the outcome arrives once that
    /// batch has committed (or failed).
    pub(super) fn submit(
        &self,
        recipient: Recipient,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        let (reply, outcome) = oneshot::channel();
        let job = Job::new(recipient, sender, envelope, quota, reply);
        // If the task has stopped, the job and its reply are dropped here
        // and the caller learns it from the closed channel.
        let _ = self.jobs.send(job);
        async move {
            outcome.await.unwrap_or_else(|_| {
                Err(StoreError::NotCommitted(
                    "the database writer has stopped".into(),
                ))
            })
        }
    }

    /// Transactions the writer has committed.
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// Sends waiting for a batch: those a batch could not take when they
/// arrived during its wait for locks (first in line), then the channel.
struct Waiting {
    held_over: VecDeque<Job>,
    queue: mpsc::UnboundedReceiver<Job>,
}

impl Waiting {
    /// The next batch: the sends held over, then those in the channel, up
    /// to [`MAX_BATCH`]; waits for one if there is none. Empty once every
    /// [`Writer`] is gone and nothing waits.
    async fn next_batch(&mut self) -> Vec<Job> {
        let held = self.held_over.len().min(MAX_BATCH);
        let mut batch: Vec<Job> = self.held_over.drain(..held).collect();
        if batch.is_empty() {
            self.queue.recv_many(&mut batch, MAX_BATCH).await;
        } else {
            while batch.len() < MAX_BATCH {
                let Ok(job) = self.queue.try_recv() else {
                    break;
                };
                batch.push(job);
            }
        }
        batch
    }

    /// Up to `room` of the sends that arrived meanwhile and that `fits`
    /// takes, in order; the others it looks at are held over, in order,
    /// and so is every later send from the same sender to the same
    /// recipient as a send held over.
    fn late_joiners(&mut self, room: usize, fits: impl Fn(&Job) -> bool) -> Vec<Job> {
        let mut held: HashSet<(UserId, Recipient)> = self.held_over.iter().map(Job::pair).collect();
        let mut joining = Vec::new();
        for _ in 0..MAX_BATCH {
            if joining.len() == room {
                break;
            }
            let Ok(job) = self.queue.try_recv() else {
                break;
            };
            let pair = job.pair();
            if !held.contains(&pair) && fits(&job) {
                joining.push(job);
            } else {
                held.insert(pair);
                self.held_over.push_back(job);
            }
        }
        joining
    }
}

/// The task: batch, commit, answer, until every [`Writer`] is gone.
async fn run(
    pool: Pool,
    queue: mpsc::UnboundedReceiver<Job>,
    commits: Arc<AtomicU64>,
    batches: Option<BatchSizes>,
    origin: Origin,
) {
    let waiting = Arc::new(Mutex::new(Waiting {
        held_over: VecDeque::new(),
        queue,
    }));
    let mut writes = 0u64;
    loop {
        // Not held while the batch runs: it takes the lock itself to draw
        // the sends that join it.
        let batch = waiting.lock().await.next_batch().await;
        if batch.is_empty() {
            break;
        }
        // A task of its own, so that a panic loses this batch alone: its
        // callers find their reply channels closed and the writer goes on.
        let pool = pool.clone();
        let commits = Arc::clone(&commits);
        let waiting = Arc::clone(&waiting);
        let committed = tokio::spawn(async move {
            let batch = Mutex::new(batch);
            let outcome = commit_with_retries(&pool, &batch, &waiting, &origin).await;
            let batch = batch.into_inner();
            let size = batch.len();
            answer(batch, outcome, &commits);
            size
        })
        .await;
        match committed {
            Ok(size) => {
                writes += size as u64;
                if let Some(batches) = &batches {
                    batches.record(size);
                }
            }
            Err(_) => error!("a group commit panicked; its sends were not committed"),
        }
    }
    debug!(
        commits = commits.load(Ordering::Relaxed),
        writes, "database writer stopped"
    );
}

/// Tell each caller in the batch its send's fate.
fn answer(batch: Vec<Job>, outcome: Result<Vec<Outcome>, StoreError>, commits: &AtomicU64) {
    match outcome {
        Ok(outcomes) => {
            commits.fetch_add(1, Ordering::Relaxed);
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                // The caller may have given up waiting; nothing to do then.
                let _ = job.reply.send(outcome);
            }
        }
        Err(failure) => {
            error!(error = %failure, writes = batch.len(), "group commit failed");
            // A database out of reach is told apart, so that clients hear
            // to try again shortly.
            let (unavailable, text) = (failure.is_unavailable(), failure.to_string());
            for job in batch {
                let error = match unavailable {
                    true => StoreError::Unavailable(text.clone()),
                    false => StoreError::NotCommitted(text.clone()),
                };
                let _ = job.reply.send(Err(error));
            }
        }
    }
}

/// Run the batch in a transaction of its own until it commits or fails
/// for a reason other than a conflict with another transaction; a run
/// that fails is rolled back. Sends from `waiting` may join the batch; a
/// run again takes them with it.
async fn commit_with_retries(
    pool: &Pool,
    batch: &Mutex<Vec<Job>>,
    waiting: &Mutex<Waiting>,
    origin: &Origin,
) -> Result<Vec<Outcome>, StoreError> {
    // The batch grows as sends join it, and a run again must take them:
    // each run borrows it in turn, through a lock that may be held across
    // the run's awaits.
    pipeline::retrying(|| async {
        let tx = Transaction::on(pool).await?;
        run_batch(&tx, &mut *batch.lock().await, waiting, origin).await
    })
    .await
}

/// The batch in `tx`, which it begins and commits, in two flights of
/// statements sent together (`pipeline`): BEGIN with the locks and the
/// senders' shares; then the insert with the COMMIT. Once the first
/// flight has returned, the sends from `waiting` that need nothing more
/// join the batch.
///
/// Every send is decided on the running totals and the accepted ones are
/// inserted together; the other servers hear of the recipients when they
/// commit (`origin` names this one).
async fn run_batch(
    tx: &Transaction,
    batch: &mut Vec<Job>,
    waiting: &Mutex<Waiting>,
    origin: &Origin,
) -> Result<Vec<Outcome>, StoreError> {
    let client = tx.client();
    let recipients = Recipients::of(batch);
    let ((), accounts, queues, shares) = tx
        .begin_with(async {
            // Sent together, locks in the order `queries` requires.
            tokio::try_join!(biased;
                generic_plans(client),
                lock_accounts(client, &recipients),
                queries::lock_queues(client, &recipients.names, &recipients.ids),
                sender_usage(client, &recipients),
            )
        })
        .await?;
    let mut running = Totals {
        queues: HashMap::new(),
        shares,
    };
    for row in queues {
        running.queues.insert(row.try_get(0)?, usage_from(&row, 1)?);
    }
    let senders: HashSet<UserId> = recipients.senders.into_iter().collect();
    let joining = waiting
        .lock()
        .await
        .late_joiners(MAX_BATCH - batch.len(), |job| {
            accounts.find(&job.recipient).is_some() && senders.contains(&job.sender)
        });
    batch.extend(joining);
    let batch = &batch[..];

    let decisions: Vec<Decision<'_>> = batch
        .iter()
        .map(|job| running.decide(job, &accounts))
        .collect();
    let accepted: Vec<(UserId, &Job)> = decisions
        .iter()
        .zip(batch)
        .filter_map(|(decision, job)| match decision {
            Decision::Insert(user) => Some((user.id, job)),
            _ => None,
        })
        .collect();
    let ids = insert_and_commit(tx, &accepted, origin).await?;
    let mut ids = ids.into_iter();
    Ok(decisions
        .into_iter()
        .map(|decision| decision.outcome(&mut ids))
        .collect())
}

/// Most envelope bytes one insert statement carries.
const MAX_INSERT_BYTES: usize = 8 << 20;

/// Insert the envelopes, in order, in as few statements as their size
/// allows, the last sent with the COMMIT; their ids, in the same order.
async fn insert_and_commit(
    tx: &Transaction,
    sends: &[(UserId, &Job)],
    origin: &Origin,
) -> Result<Vec<u64>, StoreError> {
    let client = tx.client();
    let mut statements = by_statement(sends);
    let last = statements.pop().unwrap_or_default();
    let mut ids = Vec::with_capacity(sends.len());
    for chunk in statements {
        ids.extend(insert_chunk(client, chunk, origin).await?);
    }
    ids.extend(
        tx.commit_with(&[INSERT], insert_chunk(client, last, origin))
            .await??,
    );
    Ok(ids)
}

/// The sends in runs of at most [`MAX_INSERT_BYTES`] of envelopes (or one
/// send), in order: one insert statement each.
fn by_statement<'a, 'j>(sends: &'a [(UserId, &'j Job)]) -> Vec<&'a [(UserId, &'j Job)]> {
    let mut statements = Vec::new();
    let mut rest = sends;
    while !rest.is_empty() {
        let mut bytes = 0;
        let count = rest
            .iter()
            .take_while(|(_, job)| {
                bytes += job.envelope.len();
                bytes <= MAX_INSERT_BYTES
            })
            .count()
            .max(1);
        let (statement, later) = rest.split_at(count);
        statements.push(statement);
        rest = later;
    }
    statements
}

/// Inserts envelopes and leaves the other servers a hint for each
/// recipient ([`arrivals`]), delivered if the transaction commits.
const INSERT: &str = "WITH inserted AS (
         INSERT INTO messages (recipient_id, sender_id, envelope, received_at)
         SELECT n.recipient_id, n.sender_id, n.envelope, $4::bigint
         FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])
              WITH ORDINALITY AS n (recipient_id, sender_id, envelope, position)
         ORDER BY n.position
         RETURNING id, recipient_id)
     SELECT i.id FROM inserted AS i
     CROSS JOIN LATERAL pg_notify($5, $6 || i.recipient_id::text) AS hint";

/// Insert the envelopes in one statement ([`INSERT`], from `origin`); their
/// ids, in the same order. No envelopes, no statement.
async fn insert_chunk(
    client: &impl GenericClient,
    sends: &[(UserId, &Job)],
    origin: &Origin,
) -> Result<Vec<u64>, StoreError> {
    if sends.is_empty() {
        return Ok(Vec::new());
    }
    let recipients: Vec<UserId> = sends.iter().map(|(recipient, _)| *recipient).collect();
    let senders: Vec<UserId> = sends.iter().map(|(_, job)| job.sender).collect();
    let envelopes: Vec<&[u8]> = sends.iter().map(|(_, job)| &job.envelope[..]).collect();
    let rows = queries::rows(
        client,
        INSERT,
        &[
            &recipients,
            &senders,
            &envelopes,
            &sql_int(unix_now()),
            &arrivals::CHANNEL,
            &arrivals::hint_prefix(origin),
        ],
    )
    .await?;
    // The rows are inserted in order and each takes the identity's next
    // value then, so their ids ascend in the sends' order.
    let mut ids = rows
        .iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            u64::try_from(id).map_err(|_| StoreError::Corrupt("negative message id".into()))
        })
        .collect::<Result<Vec<u64>, StoreError>>()?;
    if ids.len() != sends.len() {
        return Err(StoreError::Corrupt(format!(
            "{} envelopes inserted, {} ids returned",
            sends.len(),
            ids.len()
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The queue totals of the batch's recipients and its senders' shares of
/// them, kept up to date as sends are accepted.
#[derive(Debug, Default)]
struct Totals {
    queues: HashMap<UserId, Usage>,
    shares: HashMap<(UserId, UserId), Usage>,
}

/// What the totals say about one send.
enum Decision<'a> {
    /// No such recipient.
    Unknown,
    /// The sender's account no longer exists.
    SenderGone,
    /// Refused by the quota or the sender's share.
    Refused(&'a User, Enqueued),
    /// To be inserted.
    Insert(&'a User),
}

impl Decision<'_> {
    /// The caller's answer, taking an inserted send's id from `ids`.
    fn outcome(self, ids: &mut impl Iterator<Item = u64>) -> Outcome {
        match self {
            Decision::Unknown => Ok(None),
            Decision::SenderGone => Err(StoreError::NotCommitted(
                "the sending account no longer exists".into(),
            )),
            Decision::Refused(user, refusal) => Ok(Some((user.clone(), refusal))),
            Decision::Insert(user) => {
                let id = ids
                    .next()
                    .ok_or_else(|| StoreError::Corrupt("a send got no id".into()))?;
                Ok(Some((user.clone(), Enqueued::Queued(id))))
            }
        }
    }
}

impl Totals {
    /// Decide `job` as [`queries`]' SQLite twin does, counting it if accepted.
    fn decide<'a>(&mut self, job: &Job, accounts: &'a Accounts) -> Decision<'a> {
        let Some(user) = accounts.find(&job.recipient) else {
            return Decision::Unknown;
        };
        if !accounts.locked.contains(&job.sender) {
            return Decision::SenderGone;
        }
        let len = job.envelope.len() as u64;
        let queue = self.queues.entry(user.id).or_default();
        if queue.exceeds_with(len, job.quota) {
            return Decision::Refused(user, Enqueued::MailboxFull(*queue));
        }
        let share = self.shares.entry((user.id, job.sender)).or_default();
        if share.messages > 0 && share.exceeds_with(len, job.quota.one_senders()) {
            return Decision::Refused(user, Enqueued::SenderShareFull(*share));
        }
        for usage in [queue, share] {
            usage.messages += 1;
            usage.bytes += len;
        }
        Decision::Insert(user)
    }
}

/// The batch's accounts, locked: its recipients, found by name or id,
/// and every account row it locked, its senders' that exist among them.
struct Accounts {
    by_name: HashMap<String, UserId>,
    by_id: HashMap<UserId, User>,
    locked: HashSet<UserId>,
}

impl Accounts {
    fn find(&self, recipient: &Recipient) -> Option<&User> {
        let id = match recipient {
            Recipient::Name(name) => self.by_name.get(name)?,
            Recipient::Id(id) => id,
        };
        self.by_id.get(id)
    }
}

/// Whom a batch sends to, and from whom, as its statements take them.
struct Recipients {
    /// The recipients named, in canonical form.
    names: Vec<String>,
    /// The recipients given by id.
    ids: Vec<UserId>,
    /// The senders.
    senders: Vec<UserId>,
}

impl Recipients {
    fn of(batch: &[Job]) -> Self {
        let mut recipients = Self {
            names: Vec::new(),
            ids: Vec::new(),
            senders: Vec::with_capacity(batch.len()),
        };
        for job in batch {
            match &job.recipient {
                Recipient::Name(name) => recipients.names.push(name.clone()),
                Recipient::Id(id) => recipients.ids.push(*id),
            }
            recipients.senders.push(job.sender);
        }
        recipients
    }
}

/// Have the rest of the transaction run its statements' generic plans.
/// The batch's statements take arrays, whose length PostgreSQL cannot
/// guess; it would otherwise plan them anew at every run, for the
/// length given (a tenth of a millisecond each, on a batch's path), when
/// their generic plans use the same indexes whatever the length.
async fn generic_plans(client: &impl GenericClient) -> Result<(), StoreError> {
    Ok(client
        .batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
        .await?)
}

/// Find the accounts the batch sends to and from and lock them against
/// deletion, in ascending id.
async fn lock_accounts(
    client: &impl GenericClient,
    recipients: &Recipients,
) -> Result<Accounts, StoreError> {
    let rows = queries::rows(
        client,
        "SELECT id, name, public_key, name_key, name_key = ANY($1) OR id = ANY($2) FROM users
         WHERE name_key = ANY($1) OR id = ANY($2) OR id = ANY($3)
         ORDER BY id FOR KEY SHARE",
        &[&recipients.names, &recipients.ids, &recipients.senders],
    )
    .await?;
    let mut accounts = Accounts {
        by_name: HashMap::new(),
        by_id: HashMap::new(),
        locked: HashSet::new(),
    };
    for row in &rows {
        let user = queries::user_from_row(row)?;
        accounts.locked.insert(user.id);
        if row.try_get(4)? {
            accounts.by_name.insert(row.try_get(3)?, user.id);
            accounts.by_id.insert(user.id, user);
        }
    }
    Ok(accounts)
}

/// What each of the batch's senders has queued for its recipient (and,
/// harmlessly, for the batch's other recipients); read after the
/// recipients' queue totals are locked, as these rows change only under
/// that lock. The recipients are looked up as in [`queries::lock_queues`],
/// so that the primary key's index finds the rows, however many dead
/// versions of them the table holds.
async fn sender_usage(
    client: &impl GenericClient,
    recipients: &Recipients,
) -> Result<HashMap<(UserId, UserId), Usage>, StoreError> {
    let rows = queries::rows(
        client,
        "SELECT recipient_id, sender_id, messages, bytes FROM sender_totals
         WHERE recipient_id = ANY(array_cat($2, ARRAY(SELECT id FROM users WHERE name_key = ANY($1))))
           AND sender_id = ANY($3)",
        &[&recipients.names, &recipients.ids, &recipients.senders],
    )
    .await?;
    let mut shares = HashMap::new();
    for row in &rows {
        shares.insert((row.try_get(0)?, row.try_get(1)?), usage_from(row, 2)?);
    }
    Ok(shares)
}

/// A [`Usage`] from the columns `messages, bytes` starting at `first`.
fn usage_from(row: &tokio_postgres::Row, first: usize) -> Result<Usage, StoreError> {
    let count = |index: usize| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(index)?;
        u64::try_from(value)
            .map_err(|_| StoreError::Corrupt(format!("a queue total is negative ({value})")))
    };
    Ok(Usage {
        messages: count(first)?,
        bytes: count(first + 1)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::fixtures::ROOMY;

    /// A send from `sender` to `recipient` whose answer nobody awaits.
    fn job(sender: UserId, recipient: &str) -> Job {
        Job::new(
            Recipient::Name(recipient.into()),
            sender,
            Vec::new(),
            ROOMY,
            oneshot::channel().0,
        )
    }

    fn pairs(jobs: &[Job]) -> Vec<(UserId, Recipient)> {
        jobs.iter().map(Job::pair).collect()
    }

    fn pair(sender: UserId, name: &str) -> (UserId, Recipient) {
        (sender, Recipient::Name(name.to_owned()))
    }

    #[tokio::test]
    async fn held_over_sends_go_first_and_none_is_overtaken_by_its_own_pair() {
        let (jobs, queue) = mpsc::unbounded_channel();
        let mut waiting = Waiting {
            held_over: VecDeque::new(),
            queue,
        };
        let not_to_john = |job: &Job| job.pair().1 != Recipient::Name("john".into());
        for send in [job(1, "John"), job(2, "Carol"), job(1, "Carol")] {
            jobs.send(send).unwrap();
        }
        let joining = waiting.late_joiners(MAX_BATCH, not_to_john);
        assert_eq!(pairs(&joining), [pair(2, "carol"), pair(1, "carol")]);

        // John's account can be taken now; but a send from 1 to him, in
        // any spelling, still waits behind the one held over.
        for send in [job(1, "JOHN"), job(3, "John"), job(2, "Carol")] {
            jobs.send(send).unwrap();
        }
        let joining = waiting.late_joiners(MAX_BATCH, |_| true);
        assert_eq!(pairs(&joining), [pair(3, "john"), pair(2, "carol")]);

        // With room for one, the rest stay in the channel, behind those
        // held over.
        for send in [job(4, "Carol"), job(5, "Carol")] {
            jobs.send(send).unwrap();
        }
        let joining = waiting.late_joiners(1, |_| true);
        assert_eq!(pairs(&joining), [pair(4, "carol")]);
        assert_eq!(
            pairs(&waiting.next_batch().await),
            [pair(1, "john"), pair(1, "john"), pair(5, "carol")]
        );
    }
}
