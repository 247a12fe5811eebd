//! Store tests: the original behaviour, group commit (concurrent writes, one bad write in a
//! batch) and the derived indexes (listing equals the filtered full list, survives a restart,
//! built for an older database).

use std::sync::Arc;

use redb::ReadableTableMetadata;

use super::audit::AUDIT;
use super::index::{CONNECTION_INDEX, EXPIRY};
use super::*;
use crate::connections::model::{new_id, now, Status};
use crate::vault::generate_identity_file;

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let (store, opened) =
        RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
    assert_eq!(
        opened,
        Opened::Created {
            identity_generated: true
        }
    );
    (dir, store)
}

fn link(conn: &Connection, expires_at: i64) -> Link {
    Link {
        connection_id: conn.id.clone(),
        plugin: conn.plugin.clone(),
        redirect_url: None,
        scopes: vec![],
        created_at: now(),
        expires_at,
        used_at: None,
        params: Default::default(),
        redirect_uri: None,
    }
}

#[test]
fn tenant_index_filters_and_pages() {
    let (_dir, store) = open();
    let mut ids = Vec::new();
    for i in 0..5 {
        let tenant = if i % 2 == 0 { "alice" } else { "bob" };
        let c = Connection::new_pending(tenant, "p", vec![]);
        store
            .create_link(&new_id("l"), &link(&c, now() + 60), &c)
            .unwrap();
        ids.push((tenant, c.id));
    }
    let alice = ConnectionFilter {
        tenant_id: Some("alice".into()),
        ..Default::default()
    };
    let first = store.list_connections(&alice, None, 2).unwrap();
    let rest = store
        .list_connections(&alice, Some(&first[1].id), 10)
        .unwrap();
    let got: Vec<_> = first.iter().chain(&rest).map(|c| c.id.clone()).collect();
    let want: Vec<_> = ids
        .iter()
        .filter(|(t, _)| *t == "alice")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(got, want);
    let pending = ConnectionFilter {
        status: Some(Status::Connected),
        ..Default::default()
    };
    assert!(store
        .list_connections(&pending, None, 10)
        .unwrap()
        .is_empty());
    assert!(store.delete_connection(&ids[0].1).unwrap());
    assert_eq!(store.list_connections(&alice, None, 10).unwrap().len(), 2);
}

#[test]
fn take_flow_is_single_use_and_sweep_removes_expired() {
    let (_dir, store) = open();
    let c = Connection::new_pending("t", "p", vec![]);
    store
        .create_link("live", &link(&c, now() + 60), &c)
        .unwrap();
    store
        .create_link("old", &link(&c, now() - 100_000), &c)
        .unwrap();
    let flow = |expires_at| Flow {
        link_hash: "live".into(),
        connection_id: c.id.clone(),
        plugin: "p".into(),
        pkce_verifier: Some("v".into()),
        browser_hash: "b".into(),
        expires_at,
        redirect_uri: None,
    };
    store.put_flow("s1", &flow(now() + 60)).unwrap();
    store.put_flow("s2", &flow(now() - 10)).unwrap();
    assert!(store.take_flow("s1").unwrap().is_some());
    assert!(store.take_flow("s1").unwrap().is_none());
    assert_eq!(store.sweep_expired(now(), now() - 86_400).unwrap(), 2);
    assert!(store.flow("s2").unwrap().is_none());
    assert!(store.link("old").unwrap().is_none());
    assert!(store.link("live").unwrap().is_some());
}

#[test]
fn sweeping_events_keeps_the_newest_so_ids_never_restart() {
    let (_dir, store) = open();
    let c = Connection::new_pending("t", "p", vec![]);
    store.create_link("a", &link(&c, now() + 60), &c).unwrap();
    store.create_link("b", &link(&c, now() + 60), &c).unwrap();
    assert_eq!(store.sweep_events(now() + 10).unwrap(), 1);
    assert!(store
        .append_event(&c.id, "connection.refresh_failed", None)
        .unwrap());
    let ids: Vec<u64> = store
        .events(0, 10, &|_| true)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [2, 3]);
    assert!(!store
        .append_event("conn_gone", "connection.refresh_failed", None)
        .unwrap());
}

#[test]
fn reopen_needs_the_same_identity() {
    let (dir, store) = open();
    drop(store);
    let db = dir.path().join("db.redb");
    let (_, opened) = RedbStore::open(&db, &dir.path().join("id.txt")).unwrap();
    assert_eq!(opened, Opened::Existing);
    let other = dir.path().join("other.txt");
    generate_identity_file(&other).unwrap();
    assert!(matches!(
        RedbStore::open(&db, &other),
        Err(VaultError::WrongIdentityFile { .. })
    ));
    assert!(matches!(
        RedbStore::open(&db, &dir.path().join("missing.txt")),
        Err(VaultError::IdentityMissing { .. })
    ));
}

fn reopen(dir: &tempfile::TempDir) -> RedbStore {
    let (store, opened) =
        RedbStore::open(&dir.path().join("db.redb"), &dir.path().join("id.txt")).unwrap();
    assert_eq!(opened, Opened::Existing);
    store
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: "at".into(),
        token_type: "Bearer".into(),
        refresh_token: Some("rt".into()),
        expires_at: Some(now() + 3600),
        scopes: vec![],
        id_token: None,
        extra: serde_json::Map::new(),
        obtained_at: now(),
    }
}

#[test]
fn concurrent_writes_all_succeed_and_survive_a_restart() {
    let (dir, store) = open();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| {
                        let c = Connection::new_pending(&format!("tenant-{t}"), "p", vec![]);
                        let hash = format!("link-{t}-{i}");
                        store.create_link(&hash, &link(&c, now() + 60), &c).unwrap();
                        (hash, c.id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<(String, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(written.len(), 640);
    drop(store);

    let store = reopen(&dir);
    for (hash, id) in &written {
        assert!(store.link(hash).unwrap().is_some(), "link {hash} lost");
        assert!(
            store.connection(id).unwrap().is_some(),
            "connection {id} lost"
        );
    }
    // One link.created event each, numbered without gaps across the batches.
    let ids: Vec<u64> = store
        .events(0, 1000, &|_| true)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, (1..=640).collect::<Vec<u64>>());
}

#[test]
fn a_failing_write_does_not_fail_the_others_in_its_batch() {
    let (dir, store) = open();
    // A row that cannot be opened: updating it fails when the writer reads it back.
    let bad = Connection::new_pending("t", "p", vec![]);
    let txn = begin_write(&store.core.db).unwrap();
    txn.open_table(CONNECTIONS)
        .unwrap()
        .insert(bad.id.as_str(), b"garbage".as_slice())
        .unwrap();
    txn.commit().unwrap();

    let store = Arc::new(store);
    let good: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let c = Connection::new_pending(&format!("tenant-{i}"), "p", vec![]);
                store
                    .put_connection(&c, CredentialsUpdate::Keep)
                    .map(|()| c.id)
            })
        })
        .collect();
    let failing: Vec<_> = (0..4)
        .map(|_| {
            let (store, bad) = (Arc::clone(&store), bad.clone());
            std::thread::spawn(move || store.put_connection(&bad, CredentialsUpdate::Keep))
        })
        .collect();
    for f in failing {
        assert!(f.join().unwrap().is_err());
    }
    let ids: Vec<String> = good
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    drop(store);
    let store = reopen(&dir);
    for id in &ids {
        assert!(store.connection(id).unwrap().is_some());
    }
    assert_eq!(store.events(0, 100, &|_| true).unwrap().len(), 0);
}

/// Connections over two plugins in every status, some changed and one deleted.
fn varied_connections(store: &RedbStore) {
    let mut n = 0;
    for plugin in ["alpha", "beta"] {
        for status in [
            Status::Pending,
            Status::Connected,
            Status::Failed,
            Status::Expired,
            Status::Revoked,
        ] {
            for _ in 0..3 {
                n += 1;
                let mut c = Connection::new_pending(&format!("tenant-{}", n % 4), plugin, vec![]);
                store
                    .create_link(&new_id("l"), &link(&c, now() + 60), &c)
                    .unwrap();
                match status {
                    Status::Pending => continue,
                    Status::Connected => c.mark_connected(&tokens()),
                    Status::Failed => c.mark_failed("access_denied", "no"),
                    Status::Expired => c.mark_expired("invalid_grant", "gone"),
                    Status::Revoked => c.mark_revoked(),
                }
                store
                    .put_connection(&c, CredentialsUpdate::Replace(&tokens()))
                    .unwrap();
            }
        }
    }
    let doomed = store
        .list_connections(&ConnectionFilter::default(), None, 1)
        .unwrap();
    assert!(store.delete_connection(&doomed[0].id).unwrap());
}

/// Every plugin/status filter, paged 2 at a time, against the full list filtered in memory.
fn assert_listing_matches_full_scan(store: &RedbStore) {
    let all = store
        .list_connections(&ConnectionFilter::default(), None, usize::MAX)
        .unwrap();
    let statuses = [
        None,
        Some(Status::Pending),
        Some(Status::Connected),
        Some(Status::Failed),
        Some(Status::Expired),
        Some(Status::Revoked),
    ];
    for plugin in [None, Some("alpha"), Some("beta"), Some("gamma"), Some("al")] {
        for status in statuses {
            let filter = ConnectionFilter {
                tenant_id: None,
                plugin: plugin.map(String::from),
                status,
            };
            let want: Vec<&str> = all
                .iter()
                .filter(|c| filter.matches(c))
                .map(|c| c.id.as_str())
                .collect();
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_connections(&filter, after.as_deref(), 2)
                    .unwrap();
                got.extend(page.iter().map(|c| c.id.clone()));
                match page.last() {
                    Some(last) if page.len() == 2 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
            assert_eq!(got, want, "plugin {plugin:?} status {status:?}");
        }
    }
}

#[test]
fn listing_by_plugin_and_status_uses_the_index_and_survives_a_restart() {
    let (dir, store) = open();
    varied_connections(&store);
    assert_listing_matches_full_scan(&store);
    // 29 connections, three entries each.
    let txn = store.core.db.begin_read().unwrap();
    assert_eq!(txn.open_table(CONNECTION_INDEX).unwrap().len().unwrap(), 87);
    drop(txn);
    // Counting from the index agrees with counting every row.
    let all = store
        .list_connections(&ConnectionFilter::default(), None, usize::MAX)
        .unwrap();
    let mut want = std::collections::BTreeMap::new();
    for c in &all {
        *want
            .entry((c.plugin.clone(), c.status.as_str().to_string()))
            .or_insert(0u64) += 1;
    }
    let got: Vec<_> = store.connection_counts().unwrap();
    let want: Vec<_> = want.into_iter().map(|((p, s), n)| (p, s, n)).collect();
    assert_eq!(got, want);
    drop(store);
    let store = reopen(&dir);
    assert_listing_matches_full_scan(&store);
}

#[test]
fn an_older_database_gets_its_indexes_built_once_on_open() {
    let (dir, store) = open();
    varied_connections(&store);
    let c = Connection::new_pending("t", "alpha", vec![]);
    store
        .create_link("old-link", &link(&c, now() - 100_000), &c)
        .unwrap();
    // What a database written before the indexes looks like.
    let txn = begin_write(&store.core.db).unwrap();
    txn.delete_table(CONNECTION_INDEX).unwrap();
    txn.delete_table(EXPIRY).unwrap();
    txn.open_table(META)
        .unwrap()
        .remove("index_version")
        .unwrap();
    txn.commit().unwrap();
    drop(store);

    let store = reopen(&dir);
    assert_listing_matches_full_scan(&store);
    let txn = store.core.db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert!(meta.get("index_version").unwrap().is_some());
    drop((meta, txn));
    assert_eq!(store.sweep_expired(now(), now() - 86_400).unwrap(), 1);
    assert!(store.link("old-link").unwrap().is_none());
}

fn audit_record(at: i64) -> crate::audit::AuditRecord {
    crate::audit::AuditRecord {
        id: 0,
        at,
        actor: "key:abc".into(),
        action: "GET /v1/connections".into(),
        status: 200,
        connection_id: None,
        tenant_id: Some("t".into()),
        plugin: None,
    }
}

#[test]
fn the_audit_sweep_removes_old_records_but_keeps_the_newest() {
    use crate::vault::AuditStore;
    let (_dir, store) = open();
    assert_eq!(store.sweep_audit(now()).unwrap(), 0, "an empty log");
    for at in [100, 200, now()] {
        store.append_audit(&[audit_record(at)]).unwrap();
    }
    assert_eq!(store.sweep_audit(150).unwrap(), 1);
    assert_eq!(
        store.sweep_audit(now() + 10).unwrap(),
        1,
        "the newest stays"
    );
    let left = store.audit(0, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, 3);
    store.append_audit(&[audit_record(now())]).unwrap();
    assert_eq!(store.audit(3, 10).unwrap()[0].id, 4, "ids never restart");
}

/// A batch is stored in rows of bounded size; pages cross row boundaries, and a row written
/// one record at a time (before batching) reads the same way.
#[test]
fn audit_batches_page_across_rows_and_old_single_rows_still_read() {
    use crate::vault::AuditStore;
    let (_dir, store) = open();
    // A row as versions before batching wrote it: one sealed record under its own id.
    let mut old = audit_record(50);
    old.id = 1;
    let txn = begin_write(&store.core.db).unwrap();
    let sealed = store.core.seal(AUDIT.name(), "1", &old).unwrap();
    txn.open_table(AUDIT)
        .unwrap()
        .insert(1, sealed.as_slice())
        .unwrap();
    txn.commit().unwrap();

    let batch: Vec<_> = (0..600).map(|i| audit_record(1000 + i)).collect();
    store.append_audit(&batch).unwrap();
    let ids = |after, limit| -> Vec<u64> {
        store
            .audit(after, limit)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(0, 3), vec![1, 2, 3]);
    assert_eq!(
        ids(255, 4),
        vec![256, 257, 258, 259],
        "across a row boundary"
    );
    assert_eq!(ids(598, 10), vec![599, 600, 601]);
    assert!(ids(601, 10).is_empty());
    assert_eq!(store.audit(1, 1).unwrap()[0].at, 1000);
    // Rows go whole: the old row and the first full batch row are older than 1300.
    assert_eq!(store.sweep_audit(1300).unwrap(), 1 + 256);
    assert_eq!(ids(0, 1), vec![258]);
}
