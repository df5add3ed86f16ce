//! A database file of schema version 3, the last whose `room_index` and `cids` were keyed by
//! the namespace's and the room's texts (version 4 keys them by `rooms.id`), made from a file
//! this build wrote: where the upgrade tests start.

use rusqlite::Connection;

/// Turns a closed store's file back into version 3's layout, every row kept: `rooms` keyed by
/// (ns, room) with no id, `room_index` (ns, room, seq -> rowid) and `cids` (ns, room, sender,
/// cid -> rowid), and `user_version` 3. The tables as `schema.rs` created them then.
pub fn downgrade_to_version_3(conn: &Connection) {
    conn.execute_batch(
        "BEGIN IMMEDIATE;
        CREATE TABLE rooms_v3 (
            ns TEXT NOT NULL, room TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0, topic TEXT,
            PRIMARY KEY (ns, room)) WITHOUT ROWID;
        INSERT INTO rooms_v3 (ns, room, last_seq, topic) SELECT ns, room, last_seq, topic FROM rooms;
        CREATE TABLE room_index_v3 (
            ns TEXT NOT NULL, room TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (ns, room, seq)) WITHOUT ROWID;
        INSERT INTO room_index_v3 (ns, room, seq, n)
            SELECT r.ns, r.room, i.seq, i.n FROM room_index i JOIN rooms r ON r.id = i.room_id;
        CREATE TABLE cids_v3 (
            ns TEXT NOT NULL, room TEXT NOT NULL, sender TEXT NOT NULL, cid TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (ns, room, sender, cid)) WITHOUT ROWID;
        INSERT INTO cids_v3 (ns, room, sender, cid, n)
            SELECT r.ns, r.room, c.sender, c.cid, c.n FROM cids c JOIN rooms r ON r.id = c.room_id;
        DROP TABLE room_index;
        DROP TABLE cids;
        DROP TABLE rooms;
        ALTER TABLE rooms_v3 RENAME TO rooms;
        ALTER TABLE room_index_v3 RENAME TO room_index;
        ALTER TABLE cids_v3 RENAME TO cids;
        PRAGMA user_version = 3;
        COMMIT;",
    )
    .expect("the file turns back into version 3's layout");
    assert!(!has_room_ids(conn), "version 3 has no room ids");
}

/// Whether `room_index` is keyed by room id (version 4 on).
pub fn has_room_ids(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('room_index') WHERE name = 'room_id'",
        [],
        |r| r.get(0),
    )
    .expect("room_index's columns")
}
