//! What a `search` text matches: its words, in order, as whole words, without regard to
//! case or diacritics. A word is a run of letters and digits, lowercased, its combining
//! marks dropped (`é` is `e`): the way SQLite FTS5's `unicode61` tokenizer (with
//! `remove_diacritics 2`) splits text, so the server's full-text index, its scans and the
//! terminal client's search of its own scrollback find the same messages.
//!
//! Chinese, Japanese and Korean are written without spaces between words, so a run of
//! their characters would be one "word" and `東京` would not be found in `東京タワー`: each
//! of their characters ([`spaced`]) is a word of its own, so a phrase of them is found
//! wherever its characters stand together. The full-text index gets the same split by
//! indexing [`index_text`] (the text with those characters spaced out) rather than the text.

use std::borrow::Cow;

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

/// The words of a text: runs of letters and digits, lowercased, without combining marks;
/// each [`spaced`] character a word of its own.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    // A spaced character is a word as it is written composed (`각`, `が`: not their jamo or
    // their base kana and voicing mark), as the full-text index holds it ([`index_text`]);
    // everything else is decomposed and loses its marks.
    for composed in text.nfc() {
        if spaced(composed) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(fold_spaced(composed).to_string());
            continue;
        }
        for c in std::iter::once(composed).nfd() {
            if is_combining_mark(c) {
                continue;
            }
            if c.is_alphanumeric() {
                word.extend(c.to_lowercase());
            } else if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A spaced character in the one form search compares: the compatibility ideographs
/// (U+F900 to U+FAFF) as the ideograph they stand for (their canonical decomposition); the
/// others as they are.
fn fold_spaced(c: char) -> char {
    if !('\u{F900}'..='\u{FAFF}').contains(&c) {
        return c;
    }
    let mut decomposed = std::iter::once(c).nfd();
    match (decomposed.next(), decomposed.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

/// Whether `c` is of a script written without spaces between words, so that each of its
/// characters is a word for search: Han ideographs (with their extensions and
/// compatibility forms), hiragana, katakana (half-width too) and Hangul (syllables, and
/// the jamo they decompose into).
pub fn spaced(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}' // Hangul jamo
        | '\u{3040}'..='\u{30FF}' // hiragana, katakana
        | '\u{31F0}'..='\u{31FF}' // katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}' // Han extension A
        | '\u{4E00}'..='\u{9FFF}' // Han
        | '\u{A960}'..='\u{A97F}' // Hangul jamo extended A
        | '\u{AC00}'..='\u{D7FF}' // Hangul syllables, jamo extended B
        | '\u{F900}'..='\u{FAFF}' // Han compatibility
        | '\u{FF66}'..='\u{FFDC}' // half-width katakana and Hangul
        | '\u{20000}'..='\u{3FFFF}' // Han extensions B and later
    ) && c.is_alphanumeric()
}

/// The text as the full-text index holds it: each [`spaced`] character between spaces, so
/// the index's tokenizer makes it a token of its own, as [`words`] does. The text itself
/// when it has none.
pub fn index_text(text: &str) -> Cow<'_, str> {
    // Every spaced character is U+1100 or above: three or four bytes in UTF-8, led by 0xE1
    // or more. Most texts have none of those bytes, and are let through on a byte scan.
    if !text.bytes().any(|b| b >= 0xE1) || !text.chars().any(spaced) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 2);
    // Composed first, as [`words`] reads a text: conjoining jamo become their syllable, a
    // kana and a separate voicing mark one kana.
    for c in text.nfc() {
        if spaced(c) {
            out.push(' ');
            out.push(fold_spaced(c));
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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
    fn chinese_japanese_and_korean_characters_are_words_of_their_own() {
        assert_eq!(
            words("東京タワーに行くiPhone"),
            ["東", "京", "タ", "ワ", "ー", "に", "行", "く", "iphone"]
        );
        let tokyo = Phrase::new("東京").expect("words");
        assert!(tokyo.matches("明日は東京タワーに行く"));
        assert!(tokyo.matches("東京"));
        assert!(!tokyo.matches("京東"));
        assert!(Phrase::new("タワー").expect("words").matches("東京タワー"));
        assert!(Phrase::new("北京").expect("words").matches("我住在北京市"));
        assert!(!Phrase::new("上海").expect("words").matches("我住在北京市"));
        // Hangul: a syllable is found inside a word with its particle.
        let seoul = Phrase::new("서울").expect("words");
        assert!(seoul.matches("서울에서 만나요"));
        assert!(!seoul.matches("서을에서"));
        // Other scripts keep whole words.
        assert!(!Phrase::new("cat").expect("words").matches("concatenate"));
        assert_eq!(index_text("plain text"), "plain text");
        assert!(matches!(index_text("plain text"), Cow::Borrowed(_)));
        assert_eq!(index_text("東京tower"), " 東  京 tower");
        assert_eq!(index_text("서울에서"), " 서  울  에  서 ");
        // One form for the scans and the index: a Hangul syllable whole, a voiced kana
        // whole (also when typed as kana and mark), a compatibility ideograph as its
        // ideograph.
        assert_eq!(words("각"), ["각"]);
        assert!(!Phrase::new("가").expect("words").matches("각"));
        assert!(!Phrase::new("か").expect("words").matches("がっこう"));
        assert!(
            Phrase::new("が")
                .expect("words")
                .matches("か\u{3099}っこう")
        );
        assert!(!Phrase::new("ハン").expect("words").matches("パン"));
        assert!(Phrase::new("\u{8C48}").expect("words").matches("\u{F900}"));
        assert_eq!(index_text("か\u{3099}"), " が ");
        assert_eq!(index_text("\u{F900}"), " \u{8C48} ");
        assert_eq!(index_text("\u{1100}\u{1161}"), " 가 ");
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
