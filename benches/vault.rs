//! Micro-benchmarks of the vault's hot paths: sealing/opening a value and store reads/writes.
//! Run: `cargo bench --bench vault`. Figures go in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};

use connect_appliance::connections::model::{Connection, Status, TokenSet};
use connect_appliance::vault::{ConnectionFilter, CredentialsUpdate, Keyring, RedbStore, Store};

fn tokens() -> TokenSet {
    TokenSet {
        access_token: "a".repeat(200),
        token_type: "Bearer".into(),
        refresh_token: Some("r".repeat(200)),
        expires_at: Some(2_000_000_000),
        scopes: vec!["read".into(), "write".into()],
        id_token: None,
        extra: serde_json::Map::new(),
        obtained_at: 1_700_000_000,
    }
}

fn crypto(c: &mut Criterion) {
    let ring = Keyring::generate("bench-db");
    let plain = serde_json::to_vec(&tokens()).expect("json");
    let sealed = ring.seal("credentials", "conn_1", &plain).expect("seal");
    c.bench_function("seal 0.5 KiB value", |b| {
        b.iter(|| ring.seal("credentials", "conn_1", &plain).expect("seal"))
    });
    c.bench_function("open 0.5 KiB value", |b| {
        b.iter(|| ring.open("credentials", "conn_1", &sealed).expect("open"))
    });
    c.bench_function("blind index", |b| {
        b.iter(|| ring.blind_index("tenant", "user-42"))
    });
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = RedbStore::open(&dir.path().join("b.redb"), &dir.path().join("id.txt"))
        .expect("open store");
    let mut conn = Connection::new_pending("tenant-1", "plugin", vec![]);
    let t = tokens();
    conn.mark_connected(&t);
    store
        .put_connection(&conn, CredentialsUpdate::Replace(&t))
        .expect("put");
    c.bench_function("store: read connection + credentials", |b| {
        b.iter(|| {
            let c = store.connection(&conn.id).expect("get").expect("some");
            let t = store.credentials(&c.id).expect("get").expect("some");
            t.access_token.len()
        })
    });
    let mut group = c.benchmark_group("store: durable write");
    group.sample_size(20);
    group.bench_function("connection + credentials, one fsync'd commit", |b| {
        b.iter(|| {
            store
                .put_connection(&conn, CredentialsUpdate::Replace(&t))
                .expect("put")
        })
    });
    // 32 writers at once share commits: the time per iteration is that of 32 durable writes.
    let conns: Vec<Connection> = (0..32)
        .map(|i| {
            let mut c = Connection::new_pending(&format!("tenant-{i}"), "plugin", vec![]);
            c.mark_connected(&t);
            c
        })
        .collect();
    group.bench_function("32 concurrent connection writes (group commit)", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for c in &conns {
                    let (store, t) = (&store, &t);
                    s.spawn(move || {
                        store
                            .put_connection(c, CredentialsUpdate::Replace(t))
                            .expect("put")
                    });
                }
            })
        })
    });
    group.finish();

    // Listing one plugin's connected connections among 10,000 of two plugins, through the index.
    let items: Vec<(Connection, TokenSet)> = (0..10_000)
        .map(|i| {
            let plugin = if i % 2 == 0 { "even" } else { "odd" };
            let mut c = Connection::new_pending(&format!("t-{i}"), plugin, vec![]);
            c.mark_connected(&t);
            (c, t.clone())
        })
        .collect();
    store.import_connections(&items).expect("import");
    let filter = ConnectionFilter {
        tenant_id: None,
        plugin: Some("odd".into()),
        status: Some(Status::Connected),
    };
    c.bench_function("store: list 50 by plugin and status of 10,000", |b| {
        b.iter(|| {
            store
                .list_connections(&filter, None, 50)
                .expect("list")
                .len()
        })
    });
}

criterion_group!(benches, crypto, store);
criterion_main!(benches);
