//! A `search` text for SQLite FTS5: the phrase type is the protocol's
//! ([`chat_protocol::search::Phrase`]: the words a text matches), given to the full-text index
//! as one FTS5 phrase of those words ([`fts5`]). The index holds each message's words too
//! (`index_text`), so its tokenizer ([`FTS5_TOKENIZER`]) only splits them at the spaces. User
//! text never becomes FTS5 syntax: the phrase is its words (letters and digits) between
//! double quotes, so `*`, `:`, `AND`, `NEAR(...)`, `^`, quotes and control characters are
//! gone or plain words.

pub use chat_protocol::search::Phrase;
use std::borrow::Cow;

use chat_protocol::search::index_text;

/// The tokenizer of the full-text index (`log_fts`), which is given words already split.
pub(crate) const FTS5_TOKENIZER: &str = "unicode61 remove_diacritics 2";

/// The phrase as one FTS5 phrase: its words between double quotes, one space apart, as the
/// index holds every text's words ([`index_text`]), so a phrase of Chinese, Japanese, Korean
/// or Thai characters is found inside a longer run of them. Never the raw text (a NUL in it
/// ended FTS5's reading of the query: "unterminated string").
pub(crate) fn fts5(phrase: &Phrase) -> String {
    format!("\"{}\"", phrase.words().join(" "))
}

/// [`chat_protocol::search::index_text`] as the SQL function `index_text(text)`, which the
/// store's statements that fill the full-text index call on each message's text, as
/// `coalesce(index_text(text), text)`: it is NULL for a text the index is given as it is
/// (ASCII, or nothing but separators beyond it: most texts), without a copy.
pub(crate) fn register_index_text(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "index_text",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = ctx
                .get_raw(0)
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
            Ok(match index_text(text) {
                Cow::Borrowed(_) => None,
                Cow::Owned(spaced) => Some(spaced),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_is_the_phrase_words_quoted() {
        let p = Phrase::new(r#"say "hi" OR *"#).expect("words");
        assert_eq!(fts5(&p), r#""say hi or""#);
        let p = Phrase::new("took\u{0}5").expect("words");
        assert_eq!(fts5(&p), r#""took 5""#);
        let p = Phrase::new("東京").expect("words");
        assert_eq!(fts5(&p), "\"東 京\"");
    }

    /// For every code point, the full-text index's tokens of a text are the words the scans
    /// compare (`Phrase::matches`): the index and the scans find the same messages.
    #[test]
    fn the_index_tokenizes_every_code_point_as_the_scans_do() {
        use chat_protocol::search::words;
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE t USING fts5(text, content = '', tokenize = '{FTS5_TOKENIZER}');
             CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');"
        ))
        .expect("tables");
        // Planes 0 to 3 and 14 whole; of 15 and 16 (private use, no character assigned
        // but that) their ends.
        let chars: Vec<char> = ('\u{80}'..='\u{3FFFF}')
            .chain('\u{E0000}'..='\u{E0FFF}')
            .chain(['\u{F0000}', '\u{FFFFD}', '\u{100000}', '\u{10FFFD}'])
            .collect();
        let texts: Vec<String> = chars
            .chunks(2000)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|c| format!("a{c}b x {c} y"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let tx = conn.unchecked_transaction().expect("tx");
        for (i, text) in texts.iter().enumerate() {
            tx.execute(
                "INSERT INTO t (rowid, text) VALUES (?1, ?2)",
                rusqlite::params![i as i64, index_text(text).as_ref()],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
        let mut tokens = conn
            .prepare("SELECT term FROM v WHERE doc = ?1 ORDER BY offset")
            .expect("prepare");
        for (i, text) in texts.iter().enumerate() {
            let indexed: Vec<String> = tokens
                .query_map([i as i64], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            let scanned = words(text);
            if indexed != scanned {
                // Name the first code point whose piece disagrees.
                let bad = chars[i * 2000..]
                    .iter()
                    .take(2000)
                    .find(|c| {
                        let piece = format!("a{c}b x {c} y");
                        let conn2 = rusqlite::Connection::open_in_memory().expect("open");
                        conn2
                            .execute_batch(&format!(
                                "CREATE VIRTUAL TABLE t USING fts5(text, tokenize = '{FTS5_TOKENIZER}');
                                 CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');"
                            ))
                            .expect("tables");
                        conn2
                            .execute("INSERT INTO t (text) VALUES (?1)", [index_text(&piece).as_ref()])
                            .expect("insert");
                        let got: Vec<String> = conn2
                            .prepare("SELECT term FROM v ORDER BY offset")
                            .expect("prepare")
                            .query_map([], |r| r.get(0))
                            .expect("query")
                            .collect::<Result<_, _>>()
                            .expect("rows");
                        got != words(&piece)
                    })
                    .copied();
                panic!("the index and the scans split {bad:?} differently");
            }
        }
    }

    #[test]
    fn index_text_is_a_sql_function() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        register_index_text(&conn).expect("register");
        let call = |text: &str| -> Option<String> {
            conn.query_row("SELECT index_text(?1)", [text], |r| r.get(0))
                .expect("call")
        };
        assert_eq!(call("東京 tower").as_deref(), Some("東 京 tower"));
        assert_eq!(call("tower"), None, "unchanged: NULL");
    }
}
