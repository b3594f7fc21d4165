//! Flights of statements on a real PostgreSQL: what they run inside of,
//! and what is left when one fails or a transaction is dropped half-way.

use super::*;
use crate::server::postgres::PgStore;
use crate::server::postgres::queries::{execute, row};
use crate::server::postgres::testing::TestDatabase;

/// A database for the calling test, or return (skipped) without one.
macro_rules! database {
    ($test:literal) => {
        match TestDatabase::create($test) {
            Some(database) => database,
            None => return,
        }
    };
}

/// A store on a database holding one empty table, `t (x int)`.
fn store_with_table(database: &TestDatabase) -> PgStore {
    database.execute("CREATE TABLE t (x int)");
    database.open()
}

/// A transaction on `store` that has begun by inserting 1 into `t`.
async fn begun_with_a_row(store: &PgStore) -> Transaction {
    let tx = Transaction::on(&store.pool).await.unwrap();
    tx.begin_with(execute(tx.client(), "INSERT INTO t VALUES (1)", &[]))
        .await
        .unwrap();
    tx
}

/// Sessions of the test's database left inside a transaction.
fn idle_in_transaction(database: &TestDatabase) -> i64 {
    database.count(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
}

#[test]
fn a_flight_runs_inside_its_transaction_even_on_a_fresh_connection() {
    let database = database!("flight_in_transaction");
    let store = database.open();
    // Two texts no connection has prepared yet: were COMMIT sent before
    // they were, they would run after it, each in a transaction of its own.
    const FIRST: &str = "SELECT pg_current_xact_id()::text";
    const SECOND: &str = "SELECT pg_current_xact_id()::text AS again";
    let (first, second) = store.block_on(async {
        let tx = Transaction::on(&store.pool).await.unwrap();
        let client = tx.client();
        let statements =
            async { tokio::try_join!(biased; row(client, FIRST, &[]), row(client, SECOND, &[])) };
        tx.begin_with(tx.commit_with(&[FIRST, SECOND], statements))
            .await
            .unwrap()
            .unwrap()
    });
    let xid = |found: Option<tokio_postgres::Row>| found.unwrap().get::<_, String>(0);
    assert_eq!(xid(first), xid(second));
}

#[test]
fn a_statement_failing_before_the_commit_rolls_everything_back() {
    let database = database!("failing_before_commit");
    let store = store_with_table(&database);
    const DIVIDE: &str = "SELECT 1 / $1::int";
    let outcome = store.block_on(async {
        let tx = begun_with_a_row(&store).await;
        let client = tx.client();
        tx.commit_with(&[DIVIDE], row(client, DIVIDE, &[&0i32]))
            .await
            .unwrap()
    });
    let error = outcome.unwrap_err().to_string();
    assert!(error.contains("division by zero"), "{error}");
    assert_eq!(database.count("SELECT count(*) FROM t"), 0);
    // The connection went back to the pool outside any transaction.
    assert_eq!(idle_in_transaction(&database), 0);
    assert_eq!(store.pool.status().size, 1);
}

#[test]
fn a_transaction_dropped_before_its_end_takes_its_connection_away() {
    let database = database!("dropped_transaction");
    let store = store_with_table(&database);
    store.block_on(async {
        let tx = begun_with_a_row(&store).await;
        assert_eq!(store.pool.status().size, 1);
        drop(tx);
        // Not back in the pool, where the next caller would find it
        // inside the transaction.
        assert_eq!(store.pool.status().size, 0);
    });
    // Closed, so the server rolled it back.
    for _ in 0..100 {
        if idle_in_transaction(&database) == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(idle_in_transaction(&database), 0);
    assert_eq!(database.count("SELECT count(*) FROM t"), 0);
}
