//! Tests of the index: the store functions on `:memory:`, then `Db` and `Reader` on files.

use super::store;
use super::*;
use crate::identity::ShortId;
use crate::protocol::{Counter, Vector};
use rusqlite::Connection;

const FOLDER: &str = "abcde-fghij";
const NOW: u64 = 1_700_000_000;

fn dev(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 32])
}

fn local() -> DeviceId {
    dev(1)
}

fn peer() -> DeviceId {
    dev(2)
}

fn hash(seed: &str) -> BlockHash {
    BlockHash::of(seed.as_bytes())
}

fn entry(name: &str) -> FileInfo {
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: 0,
        permissions: 0o644,
        modified_ns: 1_700_000_000_123_456_789,
        modified_by: ShortId(0),
        deleted: false,
        version: Vector::new(),
        sequence: 0,
        blocks: Vec::new(),
        symlink_target: String::new(),
    }
}

/// A file of one block covering it.
fn small(name: &str, seed: &str) -> FileInfo {
    FileInfo {
        size: 4096,
        blocks: vec![BlockInfo {
            hash: hash(seed),
            size: 4096,
        }],
        ..entry(name)
    }
}

/// A file of `n` blocks of varied sizes.
fn big(name: &str, seed: &str, n: u32) -> FileInfo {
    let blocks: Vec<BlockInfo> = (0..n)
        .map(|i| BlockInfo {
            hash: hash(&format!("{seed}/{i}")),
            size: 65536 + i * 7,
        })
        .collect();
    FileInfo {
        size: blocks.iter().map(|b| u64::from(b.size)).sum(),
        blocks,
        ..entry(name)
    }
}

fn change(info: FileInfo) -> LocalChange {
    LocalChange {
        info,
        inode: 42,
        ctime_ns: 7,
    }
}

fn tombstone(name: &str) -> FileInfo {
    FileInfo {
        deleted: true,
        ..entry(name)
    }
}

fn mem() -> Connection {
    let conn = Connection::open_in_memory().expect("memory db");
    store::configure(&conn).expect("configure");
    store::migrate(&conn).expect("migrate");
    store::init_local(&conn, local()).expect("local device");
    conn
}

/// Runs one write in a transaction, as the writer thread does.
fn write<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, DbError>) -> T {
    conn.execute_batch("BEGIN").expect("begin");
    let out = f(conn).expect("write");
    conn.execute_batch("COMMIT").expect("commit");
    out
}

fn local_update(conn: &Connection, infos: Vec<FileInfo>) -> Vec<FileInfo> {
    write(conn, |c| {
        store::update_local(c, FOLDER, infos.into_iter().map(change).collect(), NOW)
    })
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

fn vector(pairs: &[(u64, u64)]) -> Vector {
    Vector::from_counters(
        pairs
            .iter()
            .map(|&(id, value)| Counter {
                id: ShortId(id),
                value,
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// Store functions on :memory:.

#[test]
fn local_entries_round_trip_in_every_shape() {
    let conn = mem();
    let mut odd_block = small("odd", "odd");
    odd_block.size = 5000; // a single block that does not cover the file: stored with its size
    let dir = FileInfo {
        file_type: FileType::Dir,
        permissions: 0o755,
        ..entry("dir")
    };
    let link = FileInfo {
        file_type: FileType::Symlink,
        symlink_target: "../elsewhere/ünïcode".into(),
        ..entry("dir/link")
    };
    let infos = vec![
        big("big.iso", "big", 5),
        small("dir/small.txt", "small"),
        odd_block,
        entry("empty"),
        dir,
        link,
        small("doomed", "doomed"),
    ];
    let stored = local_update(&conn, infos.clone());
    assert_eq!(stored.len(), infos.len());
    for (i, (s, original)) in stored.iter().zip(&infos).enumerate() {
        assert_eq!(s.sequence, i as u64 + 1);
        assert_eq!(s.modified_by, local().short());
        assert_eq!(s.version, Vector::new().updated(local().short(), NOW));
        assert!(s.same_contents(original));
        assert_eq!(
            store::get_local(&conn, FOLDER, &s.name)
                .expect("get")
                .as_ref(),
            Some(s)
        );
        assert_eq!(
            store::get(&conn, FOLDER, local(), &s.name)
                .expect("get")
                .as_ref(),
            Some(s)
        );
    }
    let gone = local_update(&conn, vec![tombstone("doomed")]);
    assert_eq!(gone.len(), 1);
    assert!(gone[0].deleted);
    assert_eq!(gone[0].version.get(local().short()), NOW + 1);
    assert_eq!(
        store::get_local(&conn, FOLDER, "doomed").expect("get"),
        Some(gone[0].clone())
    );
}

#[test]
fn remote_entries_round_trip_exactly_including_unknown_devices() {
    let conn = mem();
    let stranger = ShortId(0xdead_beef_0000_0001);
    let files = vec![
        FileInfo {
            version: vector(&[
                (stranger.0, 3),
                (peer().short().0, 9),
                (local().short().0, 2),
            ]),
            modified_by: stranger,
            sequence: 17,
            ..big("shared/big", "b", 3)
        },
        FileInfo {
            version: vector(&[(u64::MAX, u64::MAX)]),
            modified_by: ShortId(u64::MAX),
            sequence: u64::MAX,
            ..small("odd/values", "v")
        },
        FileInfo {
            size: u64::MAX,
            modified_ns: i64::MIN,
            permissions: u32::MAX,
            sequence: 18,
            ..small("huge", "h")
        },
        FileInfo {
            version: Vector::new(),
            sequence: 19,
            ..tombstone("gone")
        },
        FileInfo {
            file_type: FileType::Symlink,
            symlink_target: "t".into(),
            version: vector(&[(peer().short().0, 1)]),
            modified_by: peer().short(),
            sequence: 20,
            ..entry("link")
        },
    ];
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 77, files.clone())
    });
    for f in &files {
        assert_eq!(
            store::get(&conn, FOLDER, peer(), &f.name)
                .expect("get")
                .as_ref(),
            Some(f),
            "{}",
            f.name
        );
        assert_eq!(store::get_local(&conn, FOLDER, &f.name).expect("get"), None);
    }
    assert_eq!(
        store::index_info(&conn, FOLDER, peer()).expect("info"),
        Some((77, u64::MAX))
    );

    // The stranger's full ID becomes known later: its short-only row is completed and the
    // vectors that named it still read the same.
    let mut full = [0u8; 32];
    full[..8].copy_from_slice(&stranger.0.to_be_bytes());
    full[8] = 5;
    let stranger_id = DeviceId::from_bytes(full);
    write(&conn, |c| {
        store::update_remote(c, FOLDER, stranger_id, 5, vec![small("x", "x")])
    });
    assert_eq!(
        store::get(&conn, FOLDER, peer(), "shared/big")
            .expect("get")
            .as_ref(),
        Some(&files[0])
    );
    let devices_with_that_short: i64 = conn
        .query_row(
            "SELECT count(*) FROM devices WHERE short_id = ?1",
            [stranger.0 as i64],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(devices_with_that_short, 1);
}

#[test]
fn the_local_device_is_not_a_peer() {
    let conn = mem();
    conn.execute_batch("BEGIN").expect("begin");
    let err = store::update_remote(&conn, FOLDER, local(), 1, vec![small("a", "a")]);
    assert!(matches!(err, Err(DbError::Invalid(_))), "{err:?}");
}

#[test]
fn sequence_numbers_increase_per_folder() {
    let conn = mem();
    let a = local_update(&conn, vec![small("a", "1"), small("b", "2")]);
    let other = write(&conn, |c| {
        store::update_local(c, "other", vec![change(small("a", "1"))], NOW)
    });
    let c = local_update(&conn, vec![small("c", "3"), small("a", "changed")]);
    assert_eq!(
        a.iter().chain(&c).map(|f| f.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(other[0].sequence, 1);
    let since = store::local_changes_since(&conn, FOLDER, 1, 10).expect("since");
    assert_eq!(
        since
            .iter()
            .map(|f| (f.name.as_str(), f.sequence))
            .collect::<Vec<_>>(),
        [("b", 2), ("c", 3), ("a", 4)]
    );
    assert_eq!(since[2], c[1]);
    let limited = store::local_changes_since(&conn, FOLDER, 0, 2).expect("since");
    assert_eq!(
        limited.iter().map(|f| f.sequence).collect::<Vec<_>>(),
        [2, 3]
    );
    let (id, max) = store::index_info(&conn, FOLDER, local())
        .expect("info")
        .expect("row");
    assert_eq!(max, 4);
    assert_ne!(id, 0);
    assert_ne!(store::local_index_id(&conn, "other").expect("id"), Some(id));
    assert_eq!(store::folders(&conn).expect("folders"), [FOLDER, "other"]);
}

#[test]
fn unchanged_content_is_not_a_new_version() {
    let conn = mem();
    let first = local_update(&conn, vec![small("a", "1")]);
    let again = write(&conn, |c| {
        let touched = LocalChange {
            info: small("a", "1"),
            inode: 99,
            ctime_ns: 12345,
        };
        store::update_local(c, FOLDER, vec![touched], NOW + 50)
    });
    assert!(again.is_empty());
    assert_eq!(
        store::get_local(&conn, FOLDER, "a").expect("get").as_ref(),
        Some(&first[0])
    );
    let state = store::scan_state(&conn, FOLDER).expect("scan state");
    assert_eq!(
        (
            state.get("a").expect("a").inode,
            state.get("a").expect("a").ctime_ns
        ),
        (99, 12345)
    );
    assert_eq!(
        store::index_info(&conn, FOLDER, local())
            .expect("info")
            .map(|i| i.1),
        Some(1)
    );

    // A metadata change is a change: the counter moves on even with the clock behind.
    let mut touched = small("a", "1");
    touched.permissions = 0o600;
    let changed = local_update(&conn, vec![touched]);
    assert_eq!(changed[0].version.get(local().short()), NOW + 1);
    assert_eq!(changed[0].sequence, 2);
}

#[test]
fn deleting_what_is_not_there_does_nothing() {
    let conn = mem();
    assert!(local_update(&conn, vec![tombstone("never")]).is_empty());
    assert_eq!(count(&conn, "names"), 0);
    local_update(&conn, vec![small("a", "1")]);
    assert_eq!(local_update(&conn, vec![tombstone("a")]).len(), 1);
    assert!(local_update(&conn, vec![tombstone("a")]).is_empty());
    let state = store::scan_state(&conn, FOLDER).expect("scan state");
    assert!(state.get("a").expect("a").deleted);
    // Coming back after deletion is a new version descending from the tombstone.
    let back = local_update(&conn, vec![small("a", "1")]);
    assert_eq!(back[0].version.get(local().short()), NOW + 2);
}

#[test]
fn block_map_finds_local_blocks_only() {
    let conn = mem();
    let b = big("big", "big", 4);
    local_update(&conn, vec![small("s", "single"), b.clone()]);
    let found = store::find_blocks(&conn, &hash("single"), 10).expect("find");
    assert_eq!(
        found,
        [BlockLocation {
            folder: FOLDER.into(),
            name: "s".into(),
            offset: 0,
            size: 4096
        }]
    );
    let third = store::find_blocks(&conn, &b.blocks[2].hash, 10).expect("find");
    let offset = u64::from(b.blocks[0].size) + u64::from(b.blocks[1].size);
    assert_eq!(
        third,
        [BlockLocation {
            folder: FOLDER.into(),
            name: "big".into(),
            offset,
            size: b.blocks[2].size
        }]
    );

    // A peer's blocks are not ours to copy from.
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, vec![small("p", "peer-only")])
    });
    assert!(
        store::find_blocks(&conn, &hash("peer-only"), 10)
            .expect("find")
            .is_empty()
    );

    // Same prefix, different hash: the prefix match is filtered out.
    let mut twin = hash("single");
    twin.0[31] ^= 1;
    assert!(
        store::find_blocks(&conn, &twin, 10)
            .expect("find")
            .is_empty()
    );

    // The same block in a second file: both found, limit respected.
    local_update(&conn, vec![small("copy", "single")]);
    assert_eq!(
        store::find_blocks(&conn, &hash("single"), 10)
            .expect("find")
            .len(),
        2
    );
    assert_eq!(
        store::find_blocks(&conn, &hash("single"), 1)
            .expect("find")
            .len(),
        1
    );

    // Deleted or rewritten: the old blocks are gone from the map.
    local_update(
        &conn,
        vec![tombstone("s"), tombstone("copy"), big("big", "new", 3)],
    );
    assert!(
        store::find_blocks(&conn, &hash("single"), 10)
            .expect("find")
            .is_empty()
    );
    assert!(
        store::find_blocks(&conn, &b.blocks[2].hash, 10)
            .expect("find")
            .is_empty()
    );
    assert_eq!(count(&conn, "blockmap"), 3);
}

#[test]
fn block_lists_are_shared_and_collected() {
    let conn = mem();
    let content = big("big", "v1", 6);
    let local_v1 = local_update(&conn, vec![content.clone()]);
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, local_v1.clone())
    });
    assert_eq!(count(&conn, "blocklists"), 1);
    assert_eq!(
        store::blocklist_by_hash(&conn, &content.blocks_hash()).expect("list"),
        Some(content.blocks.clone())
    );

    // Local moves on: the peer still holds v1's list.
    let v2 = big("big", "v2", 6);
    local_update(&conn, vec![v2.clone()]);
    assert_eq!(count(&conn, "blocklists"), 2);

    // The peer moves on too: v1's list is no longer referenced and goes.
    let mut peer_v2 = v2.clone();
    peer_v2.sequence = 2;
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, vec![peer_v2])
    });
    assert_eq!(count(&conn, "blocklists"), 1);
    assert_eq!(
        store::blocklist_by_hash(&conn, &content.blocks_hash()).expect("list"),
        None
    );
    // Shrinking to one block drops the list too.
    local_update(&conn, vec![small("big", "tiny")]);
    write(&conn, |c| store::drop_device_index(c, FOLDER, peer()));
    assert_eq!(count(&conn, "blocklists"), 0);
}

#[test]
fn a_new_index_id_drops_what_we_held() {
    let conn = mem();
    let mut a = small("a", "a");
    a.sequence = 1;
    let mut b = big("b", "b", 2);
    b.sequence = 2;
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 10, vec![a, b])
    });
    let mut c = small("c", "c");
    c.sequence = 1;
    write(&conn, |x| {
        store::update_remote(x, FOLDER, peer(), 11, vec![c.clone()])
    });
    assert_eq!(store::get(&conn, FOLDER, peer(), "a").expect("get"), None);
    assert_eq!(
        store::get(&conn, FOLDER, peer(), "c").expect("get"),
        Some(c)
    );
    assert_eq!(
        store::index_info(&conn, FOLDER, peer()).expect("info"),
        Some((11, 1))
    );
    assert_eq!(count(&conn, "blocklists"), 0);
    assert_eq!(count(&conn, "names"), 1);
    // Same index ID again: an update, nothing dropped.
    let mut d = small("d", "d");
    d.sequence = 2;
    write(&conn, |x| {
        store::update_remote(x, FOLDER, peer(), 11, vec![d])
    });
    assert_eq!(count(&conn, "files"), 2);
}

#[test]
fn dropping_a_folder_forgets_it_and_a_new_one_gets_a_new_index_id() {
    let conn = mem();
    let stored = local_update(&conn, vec![small("a", "a"), big("b", "b", 3)]);
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, stored)
    });
    local_update_other(&conn);
    let old_id = store::local_index_id(&conn, FOLDER).expect("id");
    write(&conn, |c| store::drop_folder(c, FOLDER));
    assert_eq!(store::local_index_id(&conn, FOLDER).expect("id"), None);
    assert_eq!(store::get_local(&conn, FOLDER, "a").expect("get"), None);
    assert!(
        store::find_blocks(&conn, &hash("a"), 5)
            .expect("find")
            .is_empty()
    );
    assert_eq!(count(&conn, "blocklists"), 0);
    // The other folder's name survives, ours are gone.
    assert_eq!(count(&conn, "names"), 1);
    assert_eq!(count(&conn, "blockmap"), 1);
    let new_id = write(&conn, |c| store::add_folder(c, FOLDER));
    assert_ne!(Some(new_id), old_id);
    assert_eq!(store::folders(&conn).expect("folders"), [FOLDER, "other"]);
}

fn local_update_other(conn: &Connection) {
    write(conn, |c| {
        store::update_local(c, "other", vec![change(small("kept", "kept"))], NOW)
    });
}

#[test]
fn pulled_entries_keep_their_version_and_get_a_local_sequence() {
    let conn = mem();
    local_update(&conn, vec![small("first", "1")]);
    let theirs = FileInfo {
        version: vector(&[(peer().short().0, 500)]),
        modified_by: peer().short(),
        sequence: 999,
        ..small("pulled", "p")
    };
    let stored = write(&conn, |c| {
        store::apply_pulled(c, FOLDER, vec![change(theirs.clone())])
    });
    let expected = FileInfo {
        sequence: 2,
        ..theirs.clone()
    };
    assert_eq!(stored, std::slice::from_ref(&expected));
    assert_eq!(
        store::get_local(&conn, FOLDER, "pulled").expect("get"),
        Some(expected)
    );
    assert_eq!(
        store::find_blocks(&conn, &hash("p"), 5)
            .expect("find")
            .len(),
        1
    );
    let again = write(&conn, |c| {
        store::apply_pulled(c, FOLDER, vec![change(theirs)])
    });
    assert!(again.is_empty());
}

#[test]
fn for_each_local_walks_in_name_order_and_stops_on_error() {
    let conn = mem();
    local_update(
        &conn,
        vec![
            small("b", "b"),
            small("a/z", "az"),
            small("a", "a"),
            small("é", "e"),
        ],
    );
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, vec![small("0-peer-only", "p")])
    });
    let mut names = Vec::new();
    store::for_each_local::<DbError>(&conn, FOLDER, |f| {
        names.push(f.name);
        Ok(())
    })
    .expect("walk");
    assert_eq!(names, ["a", "a/z", "b", "é"]);

    #[derive(Debug)]
    enum Mine {
        Stop,
        Db,
    }
    impl From<DbError> for Mine {
        fn from(_: DbError) -> Self {
            Mine::Db
        }
    }
    let mut seen = 0;
    let r = store::for_each_local(&conn, FOLDER, |_| {
        seen += 1;
        Err(Mine::Stop)
    });
    assert!(matches!(r, Err(Mine::Stop)));
    assert_eq!(seen, 1);
}

#[test]
fn a_scoped_scan_state_holds_the_names_what_is_under_them_and_their_ancestors() {
    let conn = mem();
    let dir = |n: &str| FileInfo {
        file_type: FileType::Dir,
        ..entry(n)
    };
    local_update(
        &conn,
        vec![
            dir("d"),
            dir("d/e"),
            small("d/e/f", "1"),
            small("d/g", "2"),
            small("d-x", "3"),
            small("d0", "4"),
            small("dd", "5"),
            small("other", "6"),
        ],
    );
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, vec![small("d/peer-only", "p")])
    });
    let names = |v: &[&str]| -> Vec<String> {
        let mut got: Vec<String> = store::scan_state_within(
            &conn,
            FOLDER,
            &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .expect("state")
        .names()
        .map(str::to_string)
        .collect();
        got.sort();
        got
    };
    assert_eq!(names(&["d"]), ["d", "d/e", "d/e/f", "d/g"]);
    assert_eq!(names(&["d/e/f"]), ["d", "d/e", "d/e/f"]);
    assert_eq!(
        names(&["d/", "other"]),
        ["d", "d/e", "d/e/f", "d/g", "other"]
    );
    assert_eq!(names(&["d/new"]), ["d"]);
    assert!(names(&["missing/x"]).is_empty());
    // The same entries as the whole folder's state.
    let whole = store::scan_state(&conn, FOLDER).expect("state");
    let part = store::scan_state_within(&conn, FOLDER, &["d".to_string()]).expect("state");
    for (k, v) in part.iter() {
        assert_eq!(whole.get(k), Some(v), "{k}");
    }
}

#[test]
fn scan_state_and_counts_see_local_entries_only() {
    let conn = mem();
    let link = FileInfo {
        file_type: FileType::Symlink,
        symlink_target: "target".into(),
        ..entry("link")
    };
    local_update(
        &conn,
        vec![small("a", "a"), big("b", "b", 2), link, small("c", "c")],
    );
    local_update(&conn, vec![tombstone("c")]);
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 1, vec![small("peer", "p")])
    });
    let state = store::scan_state(&conn, FOLDER).expect("state");
    assert_eq!(state.len(), 4);
    assert_eq!(
        state.get("a").expect("a"),
        ScanState {
            file_type: FileType::File,
            deleted: false,
            size: 4096,
            permissions: 0o644,
            modified_ns: 1_700_000_000_123_456_789,
            inode: 42,
            ctime_ns: 7,
            symlink_target: String::new(),
        }
    );
    assert_eq!(state.get("link").expect("link").symlink_target, "target");
    assert!(state.get("c").expect("c").deleted);
    let b_size = big("b", "b", 2).size;
    assert_eq!(
        store::local_counts(&conn, FOLDER).expect("counts"),
        (2, 4096 + b_size)
    );
    assert!(
        store::scan_state(&conn, "unknown")
            .expect("state")
            .is_empty()
    );
}

#[test]
fn a_failing_write_changes_nothing() {
    let conn = mem();
    local_update(&conn, vec![small("a", "a")]);
    // What the writer thread does around each job.
    conn.execute_batch("BEGIN; SAVEPOINT job").expect("begin");
    let r = store::update_local(
        &conn,
        FOLDER,
        vec![change(small("b", "b")), change(small("", "bad"))],
        NOW,
    );
    assert!(matches!(r, Err(DbError::Invalid(_))), "{r:?}");
    conn.execute_batch("ROLLBACK TO job; RELEASE job; COMMIT")
        .expect("rollback");
    assert_eq!(store::get_local(&conn, FOLDER, "b").expect("get"), None);
    assert_eq!(
        store::index_info(&conn, FOLDER, local())
            .expect("info")
            .map(|i| i.1),
        Some(1)
    );
}

#[test]
fn hot_queries_use_their_indexes() {
    let conn = mem();
    let plan = |sql: &str| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan rows");
        rows.join(" | ")
    };
    let since = plan(
        "SELECT f.name FROM files f JOIN names n ON n.idx = f.name \
         WHERE f.folder = 1 AND f.device = 0 AND f.sequence > 5 ORDER BY f.sequence LIMIT 10",
    );
    assert!(since.contains("files_local_sequence"), "{since}");
    assert!(!since.contains("TEMP B-TREE"), "{since}");
    let walk = plan(
        "SELECT f.size FROM names n CROSS JOIN files f \
         ON f.folder = 1 AND f.device = 0 AND f.name = n.idx \
         LEFT JOIN blocklists bl ON bl.idx = f.blocklist ORDER BY n.name",
    );
    assert!(!walk.contains("TEMP B-TREE"), "{walk}");
    let used = plan("SELECT 1 FROM files WHERE blocklist = 3");
    assert!(used.contains("files_blocklist"), "{used}");
}

// ---------------------------------------------------------------------------------------
// Db and Reader on files.

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.db");
    (dir, path)
}

#[test]
fn db_writes_and_reader_reads() {
    let (_dir, path) = temp();
    let db = Db::open(&path, local()).expect("open");
    let id = db.add_folder(FOLDER).expect("folder");
    let stored = db
        .update_local(
            FOLDER,
            vec![change(small("a", "a")), change(big("b", "b", 3))],
        )
        .expect("update");
    assert_eq!(stored.len(), 2);
    db.update_remote(FOLDER, peer(), 9, stored.clone())
        .expect("remote");
    let reader = db.reader().expect("reader");
    assert_eq!(reader.local_index_id(FOLDER).expect("id"), Some(id));
    assert_eq!(
        reader.get_local(FOLDER, "b").expect("get").as_ref(),
        Some(&stored[1])
    );
    assert_eq!(
        reader.get(FOLDER, peer(), "a").expect("get").as_ref(),
        Some(&stored[0])
    );
    assert_eq!(
        reader.index_info(FOLDER, peer()).expect("info"),
        Some((9, 2))
    );
    assert_eq!(
        reader.local_changes_since(FOLDER, 0, 10).expect("since"),
        stored
    );
    assert_eq!(reader.find_blocks(&hash("a"), 3).expect("find").len(), 1);
    assert_eq!(
        reader
            .blocklist_by_hash(&stored[1].blocks_hash())
            .expect("list"),
        Some(stored[1].blocks.clone())
    );
    let mut n = 0;
    reader
        .for_each_local::<DbError>(FOLDER, |_| {
            n += 1;
            Ok(())
        })
        .expect("walk");
    assert_eq!(n, 2);
    assert_eq!(reader.scan_state(FOLDER).expect("state").len(), 2);
    assert_eq!(reader.local_counts(FOLDER).expect("counts").0, 2);
    assert_eq!(reader.folders().expect("folders"), [FOLDER]);

    // Errors come back to the caller; the writer carries on.
    let err = db.update_remote(FOLDER, local(), 1, vec![]);
    assert!(matches!(err, Err(DbError::Invalid(_))), "{err:?}");
    db.drop_device_index(FOLDER, peer()).expect("drop index");
    assert_eq!(reader.get(FOLDER, peer(), "a").expect("get"), None);
    db.drop_folder(FOLDER).expect("drop folder");
    assert!(reader.folders().expect("folders").is_empty());
    db.close().expect("close");

    // Reopened: the same local device is accepted, another is refused.
    drop(Db::open(&path, local()).expect("reopen"));
    let err = Db::open(&path, dev(3)).expect_err("wrong device");
    assert!(matches!(err, DbError::WrongDevice { .. }), "{err}");
    assert!(err.to_string().contains("shoal rescan"), "{err}");
}

#[test]
fn many_callers_are_batched_and_all_answered() {
    let (_dir, path) = temp();
    let db = Db::open(&path, local()).expect("open");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let name = format!("t{t}/f{i}");
                    let out = db
                        .update_local(FOLDER, vec![change(small(&name, &name))])
                        .expect("update");
                    assert_eq!(out.len(), 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let reader = db.reader().expect("reader");
    let all = reader.local_changes_since(FOLDER, 0, 1000).expect("since");
    assert_eq!(
        all.iter().map(|f| f.sequence).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<u64>>()
    );
}

#[test]
fn queued_writes_are_committed_together_and_answered_in_order() {
    let (_dir, path) = temp();
    let db = Db::open(&path, local()).expect("open");
    let mut pending = Vec::new();
    for batch in 0..20 {
        let changes = (0..50)
            .map(|i| change(small(&format!("b{batch}/f{i}"), &format!("{batch}.{i}"))))
            .collect();
        pending.push(db.submit_local(FOLDER, changes).expect("submit"));
    }
    // A failing write among them fails alone.
    let bad = db
        .submit_remote(FOLDER, local(), 1, vec![small("x", "x")])
        .expect("submit");
    let peer_write = db
        .submit_remote(FOLDER, peer(), 1, vec![small("y", "y")])
        .expect("submit");
    let mut sequences = Vec::new();
    for p in pending {
        sequences.extend(p.wait().expect("stored").into_iter().map(|f| f.sequence));
    }
    assert_eq!(sequences, (1..=1000).collect::<Vec<u64>>());
    assert!(matches!(bad.wait(), Err(DbError::Invalid(_))));
    peer_write.wait().expect("peer entry stored");
    let reader = db.reader().expect("reader");
    assert!(reader.get(FOLDER, peer(), "y").expect("get").is_some());
    assert_eq!(reader.get_local(FOLDER, "x").expect("get"), None);
}

#[test]
fn a_reader_reads_while_the_writer_writes() {
    let (_dir, path) = temp();
    let db = Db::open(&path, local()).expect("open");
    db.add_folder(FOLDER).expect("folder");
    let reader = db.reader().expect("reader");
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for batch in 0..40 {
                let changes = (0..100)
                    .map(|i| change(small(&format!("b{batch}/f{i}"), &format!("{batch}/{i}"))))
                    .collect();
                db.update_local(FOLDER, changes).expect("update");
            }
        })
    };
    // Each batch commits as a whole: a reader never sees part of one.
    let mut last = 0;
    while !writer.is_finished() {
        let n = reader.scan_state(FOLDER).expect("state").len();
        assert_eq!(n % 100, 0, "saw a partial batch: {n}");
        assert!(n >= last);
        last = n;
    }
    writer.join().expect("writer");
    assert_eq!(reader.scan_state(FOLDER).expect("state").len(), 4000);
}

#[test]
fn an_empty_file_becomes_the_current_schema() {
    let (_dir, path) = temp();
    std::fs::write(&path, b"").expect("empty file");
    drop(Db::open(&path, local()).expect("open"));
    let conn = Connection::open(&path).expect("sqlite");
    assert_eq!(
        store::user_version(&conn).expect("version"),
        store::SCHEMA_VERSION
    );
    assert_eq!(
        conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))
            .expect("auto_vacuum"),
        2
    );
}

#[test]
fn a_database_from_a_newer_shoal_is_refused() {
    let (_dir, path) = temp();
    drop(Db::open(&path, local()).expect("open"));
    let conn = Connection::open(&path).expect("sqlite");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    let err = Db::open(&path, local()).expect_err("newer");
    assert!(
        matches!(err, DbError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade shoal"), "{err}");
    let err = Reader::open(&path).expect_err("newer");
    assert!(err.to_string().contains("upgrade shoal"), "{err}");
}

#[test]
fn a_reader_waits_while_another_process_creates_the_database() {
    // A service starting creates the file and migrates it in one transaction; a command
    // reading at that moment sees an empty database: "busy", never "damaged".
    let (_dir, path) = temp();
    let conn = Connection::open(&path).expect("sqlite");
    conn.pragma_update(None, "journal_mode", "wal")
        .expect("wal");
    drop(conn);
    let err = Reader::open(&path).expect_err("empty");
    assert!(matches!(err, DbError::Locked { .. }), "{err}");
    drop(Db::open(&path, local()).expect("migrate"));
    Reader::open(&path).expect("ready once created");
}

#[test]
fn a_foreign_database_is_refused() {
    let (_dir, path) = temp();
    let conn = Connection::open(&path).expect("sqlite");
    conn.execute_batch("CREATE TABLE files (x)").expect("table");
    drop(conn);
    let err = Db::open(&path, local()).expect_err("foreign");
    assert!(matches!(err, DbError::Corrupt { .. }), "{err}");
}

#[test]
fn random_bytes_are_a_damaged_database_not_a_panic() {
    let (_dir, path) = temp();
    let mut bytes = vec![0u8; 64 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = Db::open(&path, local()).expect_err("random bytes");
    assert!(matches!(err, DbError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("damaged") && msg.contains("shoal rescan"),
        "{msg}"
    );
    assert!(Reader::open(&path).is_err());
}

#[test]
fn a_truncated_database_is_refused() {
    let (_dir, path) = temp();
    {
        let db = Db::open(&path, local()).expect("open");
        for batch in 0..4 {
            let changes = (0..500)
                .map(|i| change(small(&format!("d{batch}/f{i}"), &format!("{batch}.{i}"))))
                .collect();
            db.update_local(FOLDER, changes).expect("update");
        }
        db.close().expect("close");
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    for keep in [len / 2, len - 4096, 4096 * 3] {
        let copy = path.with_extension(format!("cut{keep}"));
        std::fs::copy(&path, &copy).expect("copy");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .expect("open copy");
        f.set_len(keep).expect("truncate");
        drop(f);
        let err = Db::open(&copy, local()).expect_err("truncated");
        assert!(
            matches!(err, DbError::Corrupt { .. }),
            "cut to {keep}: {err}"
        );
    }
}

/// The design goal: at most 400 bytes of database per file with the local index and one
/// peer's index of the same folder stored.
#[test]
fn database_size_per_file_is_within_budget() {
    let (_dir, path) = temp();
    let db = Db::open(&path, local()).expect("open");
    let files = 50_000usize;
    let mut stored = Vec::with_capacity(files);
    for chunk in 0..files / 1000 {
        let changes: Vec<LocalChange> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let name = format!("d{:03}/f{i:05}.dat", i / 1000);
                let info = if i % 5000 == 0 {
                    big(&name, &name, 40)
                } else {
                    small(&name, &name)
                };
                LocalChange {
                    info,
                    inode: 1_000_000 + i as u64,
                    ctime_ns: 1_700_000_000_000_000_000 + i as i64,
                }
            })
            .collect();
        stored.extend(db.update_local(FOLDER, changes).expect("update"));
    }
    for chunk in stored.chunks(1000) {
        db.update_remote(FOLDER, peer(), 5, chunk.to_vec())
            .expect("remote");
    }
    db.checkpoint().expect("checkpoint");
    let bytes = std::fs::metadata(&path).expect("meta").len();
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let per_file = (bytes + wal) as f64 / files as f64;
    println!("database: {bytes} bytes + {wal} WAL for {files} files = {per_file:.1} bytes/file");
    assert!(per_file <= 400.0, "{per_file:.1} bytes per file");
}

#[test]
fn tombstones_are_forgotten_only_after_their_time() {
    let conn = mem();
    // update_local stamps versions with the fixed NOW (see local_update).
    local_update(&conn, vec![small("gone", "a"), small("kept", "b")]);
    local_update(&conn, vec![tombstone("gone")]);
    let forgotten = write(&conn, |c| store::forget_tombstones(c, NOW));
    assert_eq!(forgotten, 0, "a recent tombstone is kept");
    let forgotten = write(&conn, |c| store::forget_tombstones(c, u64::MAX));
    assert_eq!(forgotten, 1);
    assert!(
        store::get_local(&conn, FOLDER, "gone")
            .expect("get")
            .is_none()
    );
    assert!(
        store::get_local(&conn, FOLDER, "kept")
            .expect("get")
            .is_some(),
        "live entries stay"
    );
}

#[test]
fn a_peers_invalid_entries_forget_what_we_held_and_count_as_received() {
    let conn = mem();
    let mut a = small("a", "a");
    a.sequence = 1;
    let mut b = big("b", "b", 2);
    b.sequence = 2;
    write(&conn, |c| {
        store::update_remote(c, FOLDER, peer(), 10, vec![a.clone(), b])
    });
    write(&conn, |c| {
        store::forget_remote_names(
            c,
            FOLDER,
            peer(),
            10,
            &[("b".to_string(), 3), ("never-seen".to_string(), 4)],
        )
    });
    assert_eq!(store::get(&conn, FOLDER, peer(), "b").expect("get"), None);
    assert_eq!(
        store::get(&conn, FOLDER, peer(), "a").expect("get"),
        Some(a)
    );
    assert_eq!(
        store::index_info(&conn, FOLDER, peer()).expect("info"),
        Some((10, 4)),
        "the invalid entries' sequences count as received"
    );
    assert_eq!(count(&conn, "blocklists"), 0, "b's list is collected");
    assert!(
        store::forget_remote_names(&conn, FOLDER, local(), 1, &[]).is_err(),
        "the local device is not a peer"
    );
}

#[test]
fn resequencing_local_entries_gives_them_the_next_numbers_and_nothing_else() {
    let conn = mem();
    let stored = local_update(
        &conn,
        vec![small("a", "a"), small("b", "b"), small("c", "c")],
    );
    let before = store::get_local(&conn, FOLDER, "a")
        .expect("get")
        .expect("a");
    let n = write(&conn, |c| {
        store::resequence_local(c, FOLDER, &["a".to_string(), "missing".to_string()])
    });
    assert_eq!(n, 1);
    let after = store::get_local(&conn, FOLDER, "a")
        .expect("get")
        .expect("a");
    let top = stored.iter().map(|f| f.sequence).max().expect("seq");
    assert_eq!(after.sequence, top + 1);
    assert_eq!(
        FileInfo {
            sequence: before.sequence,
            ..after.clone()
        },
        before,
        "only the sequence changed"
    );
    let since = store::local_changes_since(&conn, FOLDER, top, 10).expect("since");
    assert_eq!(
        since.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
}
