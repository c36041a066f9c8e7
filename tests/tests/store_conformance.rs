//! One conformance suite, run against every store: memory, file and Redis.

use futures_util::future::join_all;
use komainu_core::model::{Document, Quotas, Route};
use komainu_core::quota::Plan;
use komainu_core::store::{
    ConfigStore, CounterStore, MemoryConfigStore, MemoryCounterStore, StoreError,
};
use komainu_e2e::gateway::temp_dir;
use komainu_e2e::RedisServer;
use komainu_native::store::{
    FileConfigStore, RedisConfigStore, RedisConnection, RedisCounterStore,
};

/// Far enough ahead that Redis does not expire counters at once (it uses the real clock).
const NOW: u64 = 4_102_444_800_000; // 2100-01-01

fn doc(revision: u64, route: &str) -> Document {
    let mut doc = Document {
        revision,
        ..Document::default()
    };
    let text = format!(r#"{{"id":"{route}","paths":["/{route}"],"backend":{{}}}}"#);
    doc.routes
        .push(serde_json::from_str::<Route>(&text).unwrap());
    doc
}

async fn config_cases<S: ConfigStore>(store: &S) {
    assert_eq!(store.load().await.unwrap(), None, "a new store is empty");
    store.save(&doc(1, "a"), 0).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(doc(1, "a")), "round trip");
    // Compare-and-swap: a writer that started from an old revision loses,
    // and the stored document stays exactly as it was.
    let stale = store.save(&doc(2, "b"), 0).await.unwrap_err();
    assert_eq!(
        stale,
        StoreError::Conflict {
            expected: 0,
            found: 1
        }
    );
    assert_eq!(store.load().await.unwrap(), Some(doc(1, "a")));
    store.save(&doc(2, "c"), 1).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(doc(2, "c")));
}

async fn counter_cases<C: CounterStore>(store: &C) {
    let quotas = Quotas {
        per_second: Some(1_000),
        per_day: Some(3),
        per_month: Some(10),
    };
    let plan = Plan::new(&quotas, NOW);
    for n in 1..=3 {
        let a = store.acquire("app", plan.bumps()).await.unwrap();
        assert!(a.admitted);
        assert_eq!(a.counts, [n, n, n]);
    }
    let refused = store.acquire("app", plan.bumps()).await.unwrap();
    assert!(
        !refused.admitted,
        "the 4th call of a daily quota of 3 is refused"
    );
    assert_eq!(refused.counts, [3, 3, 3], "a refused call counts nowhere");
    assert_eq!(store.peek("app", plan.bumps()).await.unwrap(), [3, 3, 3]);
    assert!(
        store.acquire("other", plan.bumps()).await.unwrap().admitted,
        "keys count apart"
    );

    // A reset starts the windows over, for that key alone.
    store.reset("app", plan.bumps()).await.unwrap();
    assert_eq!(store.peek("app", plan.bumps()).await.unwrap(), [0, 0, 0]);
    assert_eq!(store.peek("other", plan.bumps()).await.unwrap(), [1, 1, 1]);
    store.reset("never-called", plan.bumps()).await.unwrap();
    for n in 1..=3 {
        let a = store.acquire("app", plan.bumps()).await.unwrap();
        assert!(a.admitted, "admitted again after the reset");
        assert_eq!(a.counts, [n, n, n]);
    }

    // The next UTC day counts from zero; the month goes on.
    let tomorrow = Plan::new(&quotas, NOW + 86_400_000);
    let a = store.acquire("app", tomorrow.bumps()).await.unwrap();
    assert!(a.admitted);
    assert_eq!(a.counts[1], 1);
    assert_eq!(a.counts[2], 4);

    // Racing calls: exactly the limit is admitted.
    let race = Plan::new(
        &Quotas {
            per_day: Some(20),
            ..Quotas::default()
        },
        NOW,
    );
    let results = join_all((0..64).map(|_| store.acquire("racer", race.bumps()))).await;
    let admitted = results
        .iter()
        .filter(|r| r.as_ref().unwrap().admitted)
        .count();
    assert_eq!(admitted, 20);

    // Counters never go back in time: a late call stamped with a period
    // already over (an instance whose clock is behind, a call racing a
    // boundary) does not start that period over, in any store.
    let daily = Quotas {
        per_day: Some(2),
        ..Quotas::default()
    };
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let today = Plan::new(&daily, real_now);
    let long_ago = Plan::new(&daily, real_now - 3 * 86_400_000);
    assert!(store.acquire("late", today.bumps()).await.unwrap().admitted);
    assert!(
        store
            .acquire("late", long_ago.bumps())
            .await
            .unwrap()
            .admitted
    );
    for plan in [&today, &long_ago] {
        assert!(
            !store.acquire("late", plan.bumps()).await.unwrap().admitted,
            "a daily quota of 2 admits 2, whatever the calls' clocks"
        );
    }
}

#[tokio::test]
async fn memory_stores_conform() {
    config_cases(&MemoryConfigStore::default()).await;
    counter_cases(&MemoryCounterStore::new()).await;
}

#[tokio::test]
async fn file_store_conforms() {
    let dir = temp_dir();
    config_cases(&FileConfigStore::new(dir.join("data.json"))).await;
    // A second process reading the file sees the last save.
    let reread = FileConfigStore::new(dir.join("data.json"))
        .load()
        .await
        .unwrap();
    assert_eq!(reread, Some(doc(2, "c")));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn redis_stores_conform() {
    let server = RedisServer::start();
    let conn = RedisConnection::open(&server.url()).await.unwrap();
    config_cases(&RedisConfigStore::new(conn.clone())).await;
    counter_cases(&RedisCounterStore::new(conn)).await;

    // Counters expire after their window (plus a minute of grace for clock skew).
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!(
        "komainu:q:{}",
        Plan::new(
            &Quotas {
                per_second: Some(5),
                ..Quotas::default()
            },
            NOW
        )
        .bumps()[0]
            .counter_name("app")
    );
    let expire_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(expire_at, (NOW / 1000 + 1) as i64 * 1000 + 60_000);
}

#[tokio::test]
async fn redis_with_a_password_and_a_database_number() {
    let server = RedisServer::start_with_password("s3cret-pw");
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/2", server.port);
    let conn = RedisConnection::open(&url).await.unwrap();
    counter_cases(&RedisCounterStore::new(conn)).await;
    // The counters went to database 2, with the password.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("komainu:q:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!keys.is_empty());

    // A wrong password: a clear error, not a hang.
    let wrong = format!("redis://:wrong@127.0.0.1:{}/2", server.port);
    match RedisConnection::open(&wrong).await {
        Err(e) => assert!(e.contains("cannot connect"), "{e}"),
        Ok(conn) => {
            let plan = Plan::new(
                &Quotas {
                    per_day: Some(1),
                    ..Quotas::default()
                },
                NOW,
            );
            let err = RedisCounterStore::new(conn)
                .acquire("app", plan.bumps())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("AUTH"), "{err}");
        }
    }
}

#[tokio::test]
async fn a_redis_that_is_gone_is_an_error_not_a_hang() {
    let mut server = RedisServer::start();
    let conn = RedisConnection::open(&server.url()).await.unwrap();
    let store = RedisCounterStore::new(conn.clone());
    server.kill();
    let plan = Plan::new(
        &Quotas {
            per_day: Some(1),
            ..Quotas::default()
        },
        NOW,
    );
    let err = store.acquire("app", plan.bumps()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let config = RedisConfigStore::new(conn);
    assert!(matches!(
        config.load().await,
        Err(StoreError::Unavailable(_))
    ));
    server.restart();
    // The connection manager reconnects by itself.
    let mut recovered = false;
    for _ in 0..50 {
        if store.acquire("app", plan.bumps()).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store recovers when Redis returns");
}
