//! What a `search` text matches: its words, in order, as whole words, without regard to
//! case or diacritics. A word is a run of letters and digits, lowercased, its combining
//! marks dropped (`é` is `e`): the way SQLite FTS5's `unicode61` tokenizer (with
//! `remove_diacritics 2`) splits text, so the server's full-text index, its scans and the
//! terminal client's search of its own scrollback find the same messages.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

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

    /// The text as given.
    pub fn text(&self) -> &str {
        &self.text
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
}
