//! A `search` text for SQLite FTS5: the phrase type is the protocol's
//! ([`chat_protocol::search::Phrase`]: the words a text matches), quoted here as one FTS5
//! phrase ([`fts5`]) for the full-text index, whose tokenizer ([`FTS5_TOKENIZER`]) splits
//! words as the phrase does. User text never becomes FTS5 syntax: inside a quoted phrase,
//! `*`, `:`, `AND`, `NEAR(...)` and `^` are punctuation or plain words.

pub use chat_protocol::search::Phrase;
use std::borrow::Cow;

use chat_protocol::search::index_text;

/// The tokenizer of the full-text index (`log_fts`); [`Phrase`] splits the same way.
pub(crate) const FTS5_TOKENIZER: &str = "unicode61 remove_diacritics 2";

/// The text as one FTS5 phrase: in double quotes, each `"` in it doubled. FTS5 reads a
/// quoted string as a phrase whatever it holds, so the text's own syntax means nothing. The
/// text is given as its words, as the index's texts are ([`index_text`]), so a phrase of Chinese,
/// Japanese or Korean characters is found inside a longer run of them.
pub(crate) fn fts5(phrase: &Phrase) -> String {
    format!("\"{}\"", index_text(phrase.text()).replace('"', "\"\""))
}

/// [`chat_protocol::search::index_text`] as the SQL function `index_text(text)`, which the
/// store's statements that fill the full-text index call on each message's text, as
/// `coalesce(index_text(text), text)`: it is NULL for an ASCII text (most are), which the
/// index is given as it is, without a copy.
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
    fn fts5_quotes_and_doubles_quotes() {
        let p = Phrase::new(r#"say "hi" OR *"#).expect("words");
        assert_eq!(fts5(&p), r#""say ""hi"" OR *""#);
        let p = Phrase::new("東京").expect("words");
        assert_eq!(fts5(&p), "\"東 京\"");
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
