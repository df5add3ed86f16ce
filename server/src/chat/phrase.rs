//! A `search` text for SQLite FTS5: the phrase type is the protocol's
//! ([`chat_protocol::search::Phrase`]: the words a text matches), quoted here as one FTS5
//! phrase ([`fts5`]) for the full-text index, whose tokenizer ([`FTS5_TOKENIZER`]) splits
//! words as the phrase does. User text never becomes FTS5 syntax: inside a quoted phrase,
//! `*`, `:`, `AND`, `NEAR(...)` and `^` are punctuation or plain words.

pub use chat_protocol::search::Phrase;

/// The tokenizer of the full-text index (`log_fts`); [`Phrase`] splits the same way.
pub(crate) const FTS5_TOKENIZER: &str = "unicode61 remove_diacritics 2";

/// The text as one FTS5 phrase: in double quotes, each `"` in it doubled. FTS5 reads a
/// quoted string as a phrase whatever it holds, so the text's own syntax means nothing.
pub(crate) fn fts5(phrase: &Phrase) -> String {
    format!("\"{}\"", phrase.text().replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_quotes_and_doubles_quotes() {
        let p = Phrase::new(r#"say "hi" OR *"#).expect("words");
        assert_eq!(fts5(&p), r#""say ""hi"" OR *""#);
    }
}
