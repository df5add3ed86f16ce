//! A `search` text as a phrase: its words, in order, matched as whole words without regard
//! to case or diacritics. The SQLite store hands the text to FTS5 as one quoted phrase
//! ([`Phrase::fts5`]), whose `unicode61` tokenizer (with `remove_diacritics 2`) splits and
//! folds it; messages not in the full-text index yet, and the memory store, are matched here
//! ([`Phrase::matches`]) the same way: a word is a run of letters and digits, lowercased,
//! its combining marks dropped (`é` is `e`). User text never becomes FTS5 syntax: inside a
//! quoted phrase, `*`, `:`, `AND`, `NEAR(...)` and `^` are punctuation or plain words.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The tokenizer of the full-text index (`log_fts`); [`words`] splits the same way.
pub(crate) const FTS5_TOKENIZER: &str = "unicode61 remove_diacritics 2";

/// A search text with at least one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    text: String,
    words: Vec<String>,
}

impl Phrase {
    /// None when the text has no word (only punctuation or spaces): it matches nothing.
    pub fn new(text: &str) -> Option<Phrase> {
        let words = words(text);
        (!words.is_empty()).then(|| Phrase {
            text: text.to_owned(),
            words,
        })
    }

    /// The text as one FTS5 phrase: in double quotes, each `"` in it doubled. FTS5 reads a
    /// quoted string as a phrase whatever it holds, so the text's own syntax means nothing.
    pub fn fts5(&self) -> String {
        format!("\"{}\"", self.text.replace('"', "\"\""))
    }

    /// Whether `text` holds the phrase's words one after another.
    pub fn matches(&self, text: &str) -> bool {
        let found = words(text);
        found
            .windows(self.words.len())
            .any(|w| w == self.words.as_slice())
    }
}

/// The words of a text: runs of letters and digits, lowercased, without combining marks.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_diacritics_and_split_on_punctuation() {
        assert_eq!(words("Café, au-lait!  42x"), ["cafe", "au", "lait", "42x"]);
        assert!(words(" \"*:^ ").is_empty());
        assert!(Phrase::new("\"*\"").is_none());
    }

    #[test]
    fn a_phrase_is_whole_words_in_order() {
        let p = Phrase::new("brown FOX").expect("words");
        assert!(p.matches("the quick Brown fox jumps"));
        assert!(p.matches("brown, fox"));
        assert!(!p.matches("fox brown"));
        assert!(!p.matches("brownfox"));
        assert!(!p.matches("brown foxes"));
    }

    #[test]
    fn fts5_quotes_and_doubles_quotes() {
        let p = Phrase::new(r#"say "hi" OR *"#).expect("words");
        assert_eq!(p.fts5(), r#""say ""hi"" OR *""#);
    }
}
