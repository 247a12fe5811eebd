//! Micro-benchmarks of the vault's hot paths: sealing/opening a value and store reads/writes.
//! Run: `cargo bench --bench vault`. Figures go in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion};

use connect_appliance::connections::model::{Connection, TokenSet};
use connect_appliance::vault::{CredentialsUpdate, Keyring, RedbStore, Store};

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
    group.finish();
}

criterion_group!(benches, crypto, store);
criterion_main!(benches);
